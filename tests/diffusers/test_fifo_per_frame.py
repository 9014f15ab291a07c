"""Per-frame timesteps on the diffusers families that take them (FIFO-Diffusion's diagonal denoising).

LTX-Video and Wan 2.2 TI2V-5B take one timestep per token through their transformers' public
``timestep`` argument; each test below computes that call directly, token by token.
CogVideoX, Wan 2.1 / A14B and the UNets take one per clip: FIFO runs shared there.
"""

import pytest
import torch
from diffusers_tiny import load, make_plan

from syncos.samplers import FIFOOptions, sample

PER_FRAME = ["ltx", "wan-ti2v"]


def per_token(t: torch.Tensor, tokens_per_frame: int) -> torch.Tensor:
    """(n, F) -> (n, F * tokens_per_frame): token k belongs to frame k // tokens_per_frame."""
    k = torch.arange(t.shape[1] * tokens_per_frame)
    return t[:, k // tokens_per_frame]


def direct(family, backend, x, t, cond):
    """The transformer called by hand with one timestep per token (patch sizes of the tiny models)."""
    n, c, f, h, w = x.shape
    tr = backend.pipe.transformer
    with torch.no_grad():
        if family == "ltx":  # patch 1 x 1 x 1: tokens are the latent's pixels in (frame, row, column) order
            embeds, mask = cond
            out = tr(
                hidden_states=x.flatten(2).transpose(1, 2),
                encoder_hidden_states=embeds,
                timestep=per_token(t, h * w),
                encoder_attention_mask=mask,
                num_frames=f,
                height=h,
                width=w,
                rope_interpolation_scale=(
                    backend.temporal_factor / backend.fps,
                    *(backend.spatial_factor,) * 2,
                ),
                return_dict=False,
            )[0]
            return out.transpose(1, 2).reshape(n, c, f, h, w)
        # Wan: patch 1 x 2 x 2, tokens in (frame, row, column) order
        timestep = per_token(t, (h // 2) * (w // 2))
        return tr(hidden_states=x, timestep=timestep, encoder_hidden_states=cond, return_dict=False)[0]


@pytest.mark.parametrize("family", PER_FRAME)
def test_per_frame_forward_is_the_per_token_call(family):
    b = load(family, height=32, width=32)  # several tokens per frame, so their order is tested
    assert b.per_frame_timesteps
    F = b.chunk_length
    g = torch.Generator().manual_seed(0)
    x = torch.randn((2, *b.latent_shape(F)), generator=g)
    t = torch.stack([torch.linspace(950.0, 50.0, F), torch.linspace(100.0, 900.0, F)])
    cond = b.encode(["a red astronaut walks", "a red astronaut sits"])
    out = b.forward(x, t, cond)
    torch.testing.assert_close(out, direct(family, b, x, t, cond), rtol=1e-5, atol=1e-5)
    # all frames at one level is the shared-timestep call; and the levels do reach the model
    same = t[:, :1].expand(-1, F)
    torch.testing.assert_close(b.forward(x, same, cond), b.forward(x, t[:, 0], cond), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out, b.forward(x, same, cond), atol=1e-3)


@pytest.mark.parametrize("family", PER_FRAME)
def test_fifo_runs_per_frame(family):
    b = load(family)
    plan = make_plan(b, [17])  # 5 latent frames: longer than one chunk
    opts = FIFOOptions(steps=b.chunk_length, guidance_scale=2.0)
    res = sample("fifo", b, plan, opts, seed=0)
    assert res.fifo_mode == "per-frame" and torch.isfinite(res.latent).all()
    assert res.latent.shape == b.latent_shape(plan.latent_frames)
    shared = sample(
        "fifo", b, plan, FIFOOptions(steps=b.chunk_length, guidance_scale=2.0, timesteps="shared"), 0
    )
    assert shared.fifo_mode == "shared" and not torch.allclose(res.latent, shared.latent)


@pytest.mark.parametrize("family", ["cogvideox", "wan", "animatediff", "modelscope"])
def test_one_timestep_per_clip_families_run_shared(family):
    from syncos.samplers.fifo import timestep_mode

    b = load(family)
    assert timestep_mode(b, "auto") == "shared"
    with pytest.raises(ValueError, match="one timestep per chunk"):
        timestep_mode(b, "per-frame")
