"""Extension on real (tiny) diffusers networks: held frames shown clean where the transformer takes
one timestep per frame (LTX-Video, Wan 2.2 TI2V), noised where it takes one per clip."""

import pytest
import torch
from diffusers_tiny import load, make_plan

from syncos.samplers import sample
from syncos.samplers.extend import ExtendOptions


@pytest.mark.parametrize("family, held", [("ltx", "clean"), ("wan-ti2v", "clean"), ("cogvideox", "noised")])
def test_extend_runs_with_the_held_frames_the_model_can_take(family, held):
    b = load(family)
    plan = make_plan(b, [17, 16])  # two events: an event's first chunk holds one frame
    opts = ExtendOptions(steps=3, guidance_scale=2.0)
    res = sample("extend", b, plan, opts, seed=0)
    assert torch.isfinite(res.latent).all() and res.latent.shape == b.latent_shape(plan.latent_frames)
    assert res.notes and f"held {held}" in res.notes[0]
    assert res.plan.num_chunks > 1 and res.nfe == {"stage1": 2 * res.plan.num_chunks * 3}
    if held == "clean":  # the same run with the held frames noised is another video
        noised = sample("extend", b, plan, ExtendOptions(steps=3, guidance_scale=2.0, held="noised"), 0)
        assert not torch.allclose(res.latent, noised.latent)
