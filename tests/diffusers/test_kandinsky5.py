"""Kandinsky 5 T2V: one chunk equals Kandinsky5T2VPipeline; prompts of different lengths in one
batch; a long two-event video; its constraints."""

from __future__ import annotations

import pytest
import torch
from diffusers_tiny import folder_round_trip, load, long_video, one_chunk, relative_error, tiny_pipe

from syncos.errors import UserError

STEPS, CFG = 3, 5.0


def test_one_chunk_matches_stock_pipeline():
    b = load("kandinsky5")
    mine, noise, prompt = one_chunk(b, STEPS, CFG)
    z = noise.permute(1, 2, 3, 0)[None]  # the pipeline's latents are channels-last ...
    z = torch.cat([z, torch.zeros_like(z), torch.zeros_like(z[..., :1])], dim=-1)  # ... with visual_cond
    ref = tiny_pipe("kandinsky5")(
        prompt=prompt,
        negative_prompt="",  # its default is a long negative text; the samplers' default is ""
        height=b.height,
        width=b.width,
        num_frames=b.video_frames(b.chunk_length),
        num_inference_steps=STEPS,
        guidance_scale=CFG,
        max_sequence_length=b.max_sequence_length,
        latents=z,
        output_type="latent",
    ).frames[0]
    err = relative_error(mine, ref.permute(3, 0, 1, 2))
    print(f"kandinsky5: relative max error {err:.1e}")
    assert err < 1e-5


def test_rows_with_different_text_lengths_equal_single_rows():
    b = load("kandinsky5")
    x = torch.randn(3, *b.latent_shape(b.chunk_length))
    t = torch.tensor([900.0, 500.0, 100.0])
    prompts = ["a cat", "", "a red dog runs on the beach at night"]
    cond = b.encode(prompts)
    assert len(set(cond[1].tolist())) == 3  # three text lengths
    batch = b.forward(x, t, cond)
    single = torch.cat([b.forward(x[i : i + 1], t[i : i + 1], b.encode([p])) for i, p in enumerate(prompts)])
    assert torch.allclose(batch, single, atol=1e-5)


def test_loads_from_a_saved_folder(tmp_path):
    folder_round_trip("kandinsky5", tmp_path)


def test_long_two_event_video():
    long_video(load("kandinsky5"))


def test_constraints():
    with pytest.raises(UserError, match="kandinsky5 cannot take 40x32: .*multiples of 16"):
        load("kandinsky5", height=40)
    with pytest.raises(UserError, match="max_sequence_length must be below 1024"):
        load("kandinsky5", model_options={"max_sequence_length": 2000})
