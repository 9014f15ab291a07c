"""HunyuanVideo 1.5: one chunk equals HunyuanVideo15Pipeline; a long two-event video; constraints."""

from __future__ import annotations

import pytest
from diffusers_tiny import (
    TINY_SETTINGS,
    folder_round_trip,
    load,
    long_video,
    one_chunk,
    relative_error,
    tiny_pipe,
)

from syncos.backends.diffusers import load_diffusers_backend
from syncos.errors import UserError

STEPS, CFG = 3, 5.0


def test_one_chunk_matches_stock_pipeline():
    from diffusers import ClassifierFreeGuidance

    b = load("hunyuanvideo15")
    mine, noise, prompt = one_chunk(b, STEPS, CFG)
    pipe = tiny_pipe("hunyuanvideo15")
    pipe.guider = ClassifierFreeGuidance(guidance_scale=CFG)  # the pipeline takes its scale from the guider
    ref = pipe(
        prompt=prompt,
        negative_prompt="",
        height=b.height,
        width=b.width,
        num_frames=b.video_frames(b.chunk_length),
        num_inference_steps=STEPS,
        latents=noise[None],
        output_type="latent",
    ).frames[0]
    err = relative_error(mine, ref)
    print(f"hunyuanvideo15: relative max error {err:.1e}")
    assert err < 1e-5


def test_loads_from_a_saved_folder(tmp_path):
    folder_round_trip("hunyuanvideo15", tmp_path)


def test_long_two_event_video():
    long_video(load("hunyuanvideo15"))


def test_constraints():
    from diffusers import ClassifierFreeGuidance

    with pytest.raises(UserError, match="hunyuanvideo15 cannot take 40x32: .*multiples of 16"):
        load("hunyuanvideo15", height=40)
    pipe = tiny_pipe("hunyuanvideo15")
    pipe.guider = ClassifierFreeGuidance(guidance_scale=6.0, guidance_rescale=0.7)
    with pytest.raises(UserError, match="guider ClassifierFreeGuidance.*not reproduced"):
        load_diffusers_backend(None, pipe=pipe, **TINY_SETTINGS["hunyuanvideo15"])
    assert load("hunyuanvideo15", height=None, width=None).height % 16 == 0  # the pipeline's default size
