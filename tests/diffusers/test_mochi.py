"""Mochi: one chunk equals MochiPipeline (with or without inverted time); long two-event runs; constraints."""

from __future__ import annotations

import pytest
import torch
from diffusers_tiny import (
    TINY_SETTINGS,
    decode_matches_stock,
    folder_round_trip,
    load,
    long_video,
    make_plan,
    one_chunk,
    relative_error,
    tiny_pipe,
)

from syncos.backends.diffusers import load_diffusers_backend
from syncos.errors import UserError

STEPS, CFG = 4, 4.5


def mochi(invert_sigmas: bool):
    """The tiny Mochi pipeline (its scheduler inverts sigmas, as the released one) or one whose
    FlowMatchEulerDiscreteScheduler does not: (backend, the stock pipeline with that scheduler)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    def pipe():
        p = tiny_pipe("mochi")
        p.scheduler = FlowMatchEulerDiscreteScheduler.from_config(
            p.scheduler.config, invert_sigmas=invert_sigmas
        )
        return p

    return load_diffusers_backend(None, pipe=pipe(), **TINY_SETTINGS["mochi"]), pipe()


@pytest.mark.parametrize("invert_sigmas", [True, False])
def test_one_chunk_matches_stock_pipeline(invert_sigmas):
    """Both scheduler settings, each read from the config, equal MochiPipeline's own run."""
    b, stock = mochi(invert_sigmas)
    mine, noise, prompt = one_chunk(b, STEPS, CFG)
    ref = stock(
        prompt=prompt,
        negative_prompt="",
        height=b.height,
        width=b.width,
        num_frames=b.video_frames(b.chunk_length),
        num_inference_steps=STEPS,
        guidance_scale=CFG,
        max_sequence_length=b.max_sequence_length,
        latents=noise[None],
        output_type="latent",
    ).frames[0]
    err = relative_error(mine, ref)
    print(f"mochi invert_sigmas={invert_sigmas}: relative max error {err:.1e}")
    assert err < 1e-5


@pytest.mark.parametrize("invert_sigmas", [True, False])
def test_grid_is_a_noise_level(invert_sigmas):
    """Fails on the old code with invert_sigmas=False: the inversion was always undone, so the
    samplers' grid ran from sigma 0 up to 0.58."""
    g = mochi(invert_sigmas)[0].schedule.grid(8)
    assert float(g.sigma[0]) == pytest.approx(1.0) and torch.all(g.sigma[1:] < g.sigma[:-1])
    assert float(g.sigma_next[-1]) == 0.0
    assert torch.allclose(g.timesteps, 1000 * g.sigma)


def test_both_settings_synchronise_on_the_same_steps():
    """A 2-event SynCoS run over several chunks at 8 steps, default (log-SNR) window: the same
    synchronised steps whatever the folder's invert_sigmas. Fails on the old code: with
    invert_sigmas=False it synchronised at none of the 8 steps (0 stage-2 evaluations)."""
    from syncos.samplers import SynCoSOptions, sample

    runs = []
    for invert in (True, False):
        b = mochi(invert)[0]
        native = b.video_frames(b.chunk_length)
        plan = make_plan(b, [native, native])
        assert plan.num_chunks >= 3 and len(set(plan.chunk_prompts)) == 2
        opts = SynCoSOptions(steps=8, guidance_scale=CFG, micro_batch=8, iterations=1)
        res = sample("syncos", b, plan, opts, seed=1)
        assert torch.isfinite(res.latent).all()
        runs.append((res.nfe.get("stage2", 0), res.notes))
    assert runs[0] == runs[1] and runs[0][0] > 0, runs


def test_empty_prompt_is_zeroed_alone():
    b = load("mochi")
    both = b.encode(["a cat", ""])
    assert both[1][0].sum() > 0 and both[1][1].sum() == 0  # only the empty prompt's mask is zeroed


def test_decode_matches_the_pipeline_s():
    def stock(pipe, z):  # MochiPipeline's decoding, latents_mean / latents_std from the VAE config
        c = z.shape[1]
        mean = torch.tensor(pipe.vae.config.latents_mean).view(1, c, 1, 1, 1)
        std = torch.tensor(pipe.vae.config.latents_std).view(1, c, 1, 1, 1)
        return pipe.vae.decode(z * std / pipe.vae.config.scaling_factor + mean, return_dict=False)[0]

    decode_matches_stock(load("mochi"), stock)


def test_loads_from_a_saved_folder(tmp_path):
    folder_round_trip("mochi", tmp_path)


def test_long_two_event_video():
    long_video(load("mochi"))


def test_constraints():
    with pytest.raises(UserError, match="mochi cannot take 24x16: .*multiples of 16"):
        load("mochi", height=24)
    assert load("mochi").video_frames(3) == 13  # causal VAE, six frames per latent frame
