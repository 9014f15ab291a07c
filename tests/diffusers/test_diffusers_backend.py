"""The adapters against the Backend protocol: shapes, caching, schedules, experts, decoding, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers_tiny import BUILDERS, load, make_plan, tiny_pipe

from syncos.backends.base import Backend
from syncos.backends.diffusers.decode import tile_ranges, tiled_decode
from syncos.errors import UserError
from syncos.samplers import SamplerOptions, sample

LAYOUT = {"cogvideox": 0, "wan": 1, "ltx": 1, "animatediff": 1, "modelscope": 1}


@pytest.mark.parametrize("family", list(BUILDERS))
def test_protocol_and_shapes(family):
    b = load(family)
    assert isinstance(b, Backend)
    assert b.frame_axis == LAYOUT[family]
    shape = b.latent_shape(7)
    assert len(shape) == 4 and shape[b.frame_axis] == 7
    for n in (1, 2, 5, 17):
        assert b.video_frames(b.latent_frames(n)) >= n
        assert b.latent_frames(b.video_frames(n)) == n
    x = torch.randn(3, *b.latent_shape(b.chunk_length))
    out = b.forward(x, torch.full((3,), 500.0), b.encode(["a cat", "a dog", "a cat"]))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_causal_frame_counts():
    b = load("cogvideox")
    assert b.video_frames(13) == 49 and b.latent_frames(49) == 13 and b.latent_frames(50) == 14
    assert load("modelscope").video_frames(16) == 16


def test_encode_caches_per_prompt(family):
    b = load(family)
    calls = []
    original = b._encode_uncached
    b._encode_uncached = lambda prompts: calls.append(list(prompts)) or original(prompts)
    first = b.encode(["a. cat", "a. dog", "a. cat", ""])
    again = b.encode(["a. dog", "", "a. cat"])
    assert calls == [["a. cat", "a. dog", ""]]
    rows = first if isinstance(first, torch.Tensor) else first[0]
    rows2 = again if isinstance(again, torch.Tensor) else again[0]
    assert torch.equal(rows2[0], rows[1]) and torch.equal(rows2[2], rows[0])


def test_vp_schedule_is_the_scheduler_s():
    b = load("cogvideox")
    sched = b.pipe.scheduler
    sched.set_timesteps(50)
    g = b.schedule.grid(50)
    assert g.timesteps.long().tolist() == sched.timesteps.tolist()
    ab = sched.alphas_cumprod.double()
    assert torch.allclose(g.alpha**2, ab[sched.timesteps.long()], rtol=1e-6)


@pytest.mark.parametrize("family", ["wan", "ltx"])
def test_flow_schedule_is_the_scheduler_s(family):
    b = load(family)
    g = b.schedule.grid(10)
    assert float(g.sigma[0]) == pytest.approx(1.0, abs=1e-6) and float(g.sigma_next[-1]) == 0.0
    assert torch.all(g.sigma[1:] < g.sigma[:-1])
    assert torch.allclose(g.alpha + g.sigma, torch.ones_like(g.alpha))


def test_wan_experts_switch_at_boundary():
    b = load("wan-experts")
    assert b.boundary == pytest.approx(875.0)
    x = torch.randn(2, *b.latent_shape(b.chunk_length))
    cond = b.encode(["a cat", "a dog"])
    t = torch.tensor([950.0, 300.0])  # one row on each side of the boundary
    out = b.forward(x, t, cond)
    with torch.no_grad():
        hi = b.pipe.transformer(
            hidden_states=x[:1], timestep=t[:1], encoder_hidden_states=cond[:1], return_dict=False
        )[0]
        lo = b.pipe.transformer_2(
            hidden_states=x[1:], timestep=t[1:], encoder_hidden_states=cond[1:], return_dict=False
        )[0]
    assert torch.allclose(out[:1], hi, atol=1e-6) and torch.allclose(out[1:], lo, atol=1e-6)
    assert not torch.allclose(
        out[1:],
        b.pipe.transformer(
            hidden_states=x[1:], timestep=t[1:], encoder_hidden_states=cond[1:], return_dict=False
        )[0].detach(),
        atol=1e-4,
    )


def test_determinism_and_seed(family):
    b = load(family)
    plan = make_plan(b, [b.video_frames(b.chunk_length)] * 2)
    opts = SamplerOptions(steps=2, guidance_scale=2.0, micro_batch=8)
    r1 = sample("codenoise", b, plan, opts, seed=3).latent
    r2 = sample("codenoise", load(family), plan, opts, seed=3).latent
    r3 = sample("codenoise", b, plan, opts, seed=4).latent
    assert torch.equal(r1, r2)
    assert not torch.allclose(r1, r3)


@pytest.mark.parametrize("family", ["cogvideox", "wan", "animatediff"])
def test_dtype_bfloat16(family):
    b = load(family, dtype="bfloat16")
    module = getattr(b.pipe, "transformer", None) or b.pipe.unet
    assert module.dtype == torch.bfloat16
    x = torch.randn(2, *b.latent_shape(b.chunk_length))
    out = b.forward(x, torch.full((2,), 700.0), b.encode(["a cat", ""]))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    ref = load(family).forward(x, torch.full((2,), 700.0), load(family).encode(["a cat", ""]))
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max() + 0.1


# ---- decoding ----------------------------------------------------------------------------------


def test_tile_ranges_cover_and_align():
    assert tile_ranges(10, 4, 1) == [(0, 4), (3, 7), (6, 10)]
    assert tile_ranges(11, 4, 1) == [(0, 4), (3, 7), (6, 10), (7, 11)]
    assert tile_ranges(3, 8, 2) == [(0, 3)]


def test_tiled_decode_streams_and_blends():
    # a fake causal VAE (r = 4) whose decoded frame value is its global frame index: blending must keep it
    calls = []

    def decode(a, b):
        calls.append((a, b))
        n = 1 + 4 * (b - a - 1)
        idx = torch.arange(4 * a, 4 * a + n, dtype=torch.float32)
        return (idx / 100 - 1).view(1, n, 1, 1).expand(3, n, 2, 2)

    gen = tiled_decode(decode, 10, lambda k: 1 + 4 * (k - 1), tile=4, overlap=1)
    first = next(gen)
    assert len(calls) == 1  # frames leave before the rest is decoded: memory does not grow with length
    frames = [first, *gen]
    assert len(frames) == 37
    values = np.array([f[0, 0, 0] for f in frames], dtype=float)
    expect = np.round((np.arange(37) / 100 / 2) * 255)
    assert np.abs(values - expect).max() <= 1


def test_single_tile_decode_matches_stock_vae(family):
    b = load(family, model_options={**load(family).options, "decode_tile": 64})
    lat = torch.randn(b.latent_shape(b.chunk_length)) * 0.5
    frames = np.stack(list(b.decode(lat)))
    pipe = b.pipe
    with torch.no_grad():
        if family == "cogvideox":
            video = pipe.decode_latents(lat[None])
        elif family == "wan":
            c = pipe.vae.config.z_dim
            z = lat[None] * torch.tensor(pipe.vae.config.latents_std).view(1, c, 1, 1, 1) + torch.tensor(
                pipe.vae.config.latents_mean
            ).view(1, c, 1, 1, 1)
            video = pipe.vae.decode(z, return_dict=False)[0]
        elif family == "ltx":
            z = lat[None] * pipe.vae.latents_std.view(1, -1, 1, 1, 1) / pipe.vae.config.scaling_factor
            video = pipe.vae.decode(z + pipe.vae.latents_mean.view(1, -1, 1, 1, 1), None, return_dict=False)[
                0
            ]
        else:
            video = pipe.decode_latents(lat[None])
    ref = pipe.video_processor.postprocess_video(video, output_type="np")[0]
    ref = (ref * 255).round().astype(np.uint8)
    assert frames.shape == ref.shape
    assert np.abs(frames.astype(int) - ref.astype(int)).max() <= 1


def test_per_frame_vae_tiles_are_exact():
    b = load("modelscope")
    lat = torch.randn(b.latent_shape(9))
    whole = np.stack(list(load("modelscope", model_options={"decode_tile": 9}).decode(lat)))
    tiled = np.stack(
        list(load("modelscope", model_options={"decode_tile": 2, "decode_overlap": 0}).decode(lat))
    )
    assert np.array_equal(whole, tiled)


def test_long_causal_decode_frame_count(family):
    b = load(family, model_options={**load(family).options, "decode_tile": 3, "decode_overlap": 1})
    frames = list(b.decode(torch.randn(b.latent_shape(8))))
    assert len(frames) == b.video_frames(8)


# ---- errors ------------------------------------------------------------------------------------


def test_bad_size_names_allowed_sizes():
    with pytest.raises(UserError, match="multiples of 16"):
        load("cogvideox", height=40)
    with pytest.raises(UserError, match="multiples of 16"):
        load("wan", width=24)


def test_unknown_model_option():
    with pytest.raises(UserError, match="model_options .*not known for wan.*boundary_ratio"):
        load("wan", model_options={"frobnicate": 1})
    with pytest.raises(UserError, match="positive integer"):
        load("ltx", model_options={"chunk_length": 0})


def test_bad_dtype_and_device():
    from syncos.backends.diffusers import load_diffusers_backend

    with pytest.raises(UserError, match="dtype"):
        load_diffusers_backend(None, pipe=tiny_pipe("wan"), dtype="float64")
    with pytest.raises(UserError, match="device"):
        load_diffusers_backend(None, pipe=tiny_pipe("wan"), device="nonsense")


def test_unsupported_pipeline_object():
    from syncos.backends.diffusers import load_diffusers_backend

    class StableDiffusionPipeline:  # noqa: D101 - a stand-in with an unsupported class name
        pass

    with pytest.raises(UserError, match="not a supported text-to-video pipeline.*cogvideox"):
        load_diffusers_backend(None, pipe=StableDiffusionPipeline())
