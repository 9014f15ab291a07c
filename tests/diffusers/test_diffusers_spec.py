"""Every diffusers family declares a full ModelSpec, with the stock pipeline's call defaults."""

from __future__ import annotations

import inspect

import pytest
import torch
from diffusers_tiny import BUILDERS, MORE_BUILDERS, load

from spec_check import check_spec

# the stock __call__ defaults (diffusers' signatures) syncos must take when a call leaves them out;
# HunyuanVideo is guidance-distilled: its true CFG (true_cfg_scale) is off by default
STOCK = {"wan": 5.0, "ltx": 3.0, "cogvideox": 6.0, "hunyuanvideo": 1.0, "mochi": 4.5, "modelscope": 9.0}


@pytest.mark.parametrize("family", [*BUILDERS, *MORE_BUILDERS])
def test_every_family_declares_its_spec(family):
    b = load(family)
    spec = check_spec(b)
    assert spec.identity["family"] == family and spec.identity["pipeline"] == type(b.pipe).__name__
    assert spec.evaluate is None and spec.preview is not None and spec.solver is b.solver
    params = inspect.signature(type(b.pipe).__call__).parameters
    assert spec.defaults.steps == params["num_inference_steps"].default
    if family in STOCK:
        assert spec.defaults.guidance_scale == STOCK[family]
    # forward runs without autograd, once for every family (the base's no_grad, not each family's)
    x = torch.randn(1, *b.latent_shape(b.chunk_length))
    out = b.forward(x, torch.tensor([500.0]), b.encode(["a cat"]))
    assert out.shape == x.shape and not out.requires_grad


def test_hunyuanvideo_defaults_to_no_cfg():
    """Fails on the old code, which gave distilled HunyuanVideo CogVideoX's CFG 6: two passes per
    chunk and an over-guided result."""
    from syncos import api
    from syncos.scenario import load_scenario

    b = load("hunyuanvideo")
    scenario = api.with_model_defaults(
        load_scenario({"global_prompt": "a cat", "events": [{"prompt": "sits", "frames": 5}]}), b
    )
    assert scenario.sampler_options().guidance_scale == 1.0
    assert scenario.options["guidance_scale"] == 1.0  # recorded in run.json's scenario
