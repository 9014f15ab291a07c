"""A 4x long video through all three samplers and the tiled decoder, for every family."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers_tiny import BUILDERS, load, make_plan

from syncos.samplers import SamplerOptions, SynCoSOptions, sample


@pytest.mark.parametrize("family", list(BUILDERS))
def test_long_video_all_samplers(family):
    backend = load(family)
    native = backend.video_frames(backend.chunk_length)
    plan = make_plan(backend, [native] * 4)  # four events, each one native clip long
    assert plan.num_chunks > 4 and plan.latent_frames >= 3 * backend.chunk_length
    opts = {
        "independent": SamplerOptions(steps=2, guidance_scale=3.0, micro_batch=8),
        "codenoise": SamplerOptions(steps=2, guidance_scale=3.0, micro_batch=8),
        "syncos": SynCoSOptions(steps=2, guidance_scale=3.0, micro_batch=8, iterations=2, t_min=-1.0),
    }
    for method, o in opts.items():
        res = sample(method, backend, plan, o, seed=1)
        assert tuple(res.latent.shape) == tuple(backend.latent_shape(plan.latent_frames)), method
        assert torch.isfinite(res.latent).all(), method
        if method == "syncos":
            assert res.nfe.get("stage2", 0) > 0
    frames = list(backend.decode(res.latent))
    assert len(frames) == plan.video_frames == backend.video_frames(plan.latent_frames)
    assert all(f.dtype == np.uint8 and f.shape == (backend.height, backend.width, 3) for f in frames)
