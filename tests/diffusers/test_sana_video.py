"""Sana-Video: one chunk equals SanaVideoPipeline; a long two-event video; its constraints."""

from __future__ import annotations

import pytest
import torch
from diffusers_tiny import folder_round_trip, load, long_video, one_chunk, relative_error, tiny_pipe

from syncos.errors import UserError

STEPS, CFG = 3, 6.0


def test_one_chunk_matches_stock_pipeline():
    b = load("sana-video")
    mine, noise, prompt = one_chunk(b, STEPS, CFG)
    ref = tiny_pipe("sana-video")(
        prompt=prompt,
        negative_prompt="",
        height=b.height,
        width=b.width,
        frames=b.video_frames(b.chunk_length),
        num_inference_steps=STEPS,
        guidance_scale=CFG,
        max_sequence_length=b.max_sequence_length,
        use_resolution_binning=False,  # the binning tables exist for the released sample sizes only
        latents=noise[None],
        output_type="latent",
    ).frames[0]
    err = relative_error(mine, ref)
    print(f"sana-video: relative max error {err:.1e}")
    assert err < 1e-5


def test_instruction_prefixes_prompts_but_not_negatives():
    b = load("sana-video")
    plain = load("sana-video", model_options={**b.options, "complex_human_instruction": False})
    with_, without = b.encode(["a cat", ""]), plain.encode(["a cat", ""])
    assert not torch.allclose(with_[0][0], without[0][0])
    negatives = ["", "blurry, low quality"]
    pairs = zip(b.encode(negatives, True), plain.encode(negatives, True), strict=True)
    assert all(torch.equal(x, y) for x, y in pairs)


@pytest.mark.parametrize("negative", ["", "blurry, low quality"])
def test_negative_prompts_are_encoded_as_the_stock_pipeline_encodes_them(negative):
    """SanaVideoPipeline.encode_prompt leaves the instruction off the negative prompt, whatever it is.
    Fails on the old code for a non-empty negative prompt (it got the instruction, as a prompt)."""
    b = load("sana-video")
    _, _, embeds, mask = b.pipe.encode_prompt(
        "a cat",
        negative_prompt=negative,
        do_classifier_free_guidance=True,
        device=b.device,
        max_sequence_length=b.max_sequence_length,
        complex_human_instruction=b.instruction,
    )
    got = b.encode([negative], negative=True)
    assert torch.equal(got[0], embeds.to(got[0].dtype)) and torch.equal(got[1], mask)
    assert not torch.equal(b.encode([negative])[0], got[0])  # as a prompt it gets the instruction


def test_loads_from_a_saved_folder(tmp_path):
    folder_round_trip("sana-video", tmp_path)


def test_long_two_event_video():
    long_video(load("sana-video"))


def test_constraints():
    with pytest.raises(UserError, match="sana-video cannot take 48x32: .*multiples of 32"):
        load("sana-video", height=48)
    with pytest.raises(UserError, match="complex_human_instruction must be true or false"):
        load("sana-video", model_options={"complex_human_instruction": "yes"})
