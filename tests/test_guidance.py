"""Classifier-free guidance's blank frames, and rescaled guidance (sampler.guidance_rescale)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from syncos import api
from syncos.backends.toyworld import defects as D
from syncos.backends.toyworld import metrics as M
from syncos.denoiser import rescale_guidance
from syncos.errors import UserError
from syncos.samplers.options import SamplerOptions


def test_rescale_matches_diffusers():
    pipe = pytest.importorskip("diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion")
    g = torch.Generator().manual_seed(0)
    guided, cond = torch.randn(3, 2, 4, 5, 5, generator=g) * 3, torch.randn(3, 2, 4, 5, 5, generator=g)
    for phi in (0.0, 0.3, 1.0):
        want = pipe.rescale_noise_cfg(guided, cond, guidance_rescale=phi)
        torch.testing.assert_close(rescale_guidance(guided, cond, phi), want)


def test_rescale_keeps_each_row_apart():
    guided, cond = torch.ones(2, 3) * torch.tensor([[1.0], [4.0]]), torch.zeros(2, 3)
    guided[:, 0] = 0  # rows of spread 1/3 and 4/3 relative to their own mean
    cond[:, 0] = 1
    out = rescale_guidance(guided, cond, 1.0)
    torch.testing.assert_close(out.std(dim=1), cond.std(dim=1))


def test_option_is_checked():
    with pytest.raises(UserError, match=r"sampler\.guidance_rescale"):
        SamplerOptions(guidance_rescale=1.5)


# The light is left open and night falls in the second event: the chunks' conditional and
# unconditional estimates disagree on the light, CFG at 6 extrapolates past both, and the decoder
# clips the frames to black or white. Rescaled guidance keeps them in range (docs/syncos.md).
HARD = {
    "model": "toyworld",
    "global_prompt": "a red ball on green grass",
    "events": [{"prompt": "the ball jumps", "frames": 16}, {"prompt": "night falls", "frames": 16}],
    "sampler": {"method": "codenoise", "steps": 20, "guidance_scale": 6.0},
    "seed": 0,
}


def _blank(sampler: dict) -> tuple[int, ...]:
    gen = api.generate({**HARD, "sampler": {**HARD["sampler"], **sampler}})
    frames = np.stack(list(gen.backend.preview(gen.latent)))
    found = D.find_defects(
        M.decode_frames(frames), HARD["global_prompt"], api.video_events(gen.plan, gen.scenario)
    )
    return found.blank


def test_cfg_blanks_frames_and_rescale_keeps_them():
    assert len(_blank({})) >= 4  # plain CFG: frames gone black
    assert _blank({"guidance_scale": 1.0}) == ()  # the same run unguided: none
    assert _blank({"guidance_rescale": 1.0}) == ()
