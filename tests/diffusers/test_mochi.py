"""Mochi: one chunk equals MochiPipeline (inverted time); a long two-event video; its constraints."""

from __future__ import annotations

import pytest
import torch
from diffusers_tiny import (
    decode_matches_stock,
    folder_round_trip,
    load,
    long_video,
    one_chunk,
    relative_error,
    tiny_pipe,
)

from syncos.errors import UserError

STEPS, CFG = 4, 4.5


def test_one_chunk_matches_stock_pipeline():
    b = load("mochi")
    mine, noise, prompt = one_chunk(b, STEPS, CFG)
    ref = tiny_pipe("mochi")(
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
    print(f"mochi: relative max error {err:.1e}")
    assert err < 1e-5


def test_grid_is_a_noise_level():
    g = load("mochi").schedule.grid(8)
    assert float(g.sigma[0]) == pytest.approx(1.0) and torch.all(g.sigma[1:] < g.sigma[:-1])
    assert torch.allclose(g.timesteps, 1000 * g.sigma)


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
