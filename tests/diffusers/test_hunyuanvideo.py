"""HunyuanVideo: one chunk equals HunyuanVideoPipeline; a long two-event video; its constraints."""

from __future__ import annotations

import pytest
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

STEPS, CFG, EMBEDDED = 3, 4.0, 5.0


def test_one_chunk_matches_stock_pipeline():
    b = load(
        "hunyuanvideo",
        model_options={"native_frames": 9, "max_sequence_length": 16, "embedded_guidance_scale": EMBEDDED},
    )
    mine, noise, prompt = one_chunk(b, STEPS, CFG)
    ref = tiny_pipe("hunyuanvideo")(
        prompt=prompt,
        negative_prompt="",
        true_cfg_scale=CFG,  # the sampler's guidance_scale is true CFG ...
        guidance_scale=EMBEDDED,  # ... and the pipeline's guidance_scale the embedded one
        height=b.height,
        width=b.width,
        num_frames=b.video_frames(b.chunk_length),
        num_inference_steps=STEPS,
        max_sequence_length=b.max_sequence_length,
        latents=noise[None],
        output_type="latent",
    ).frames[0]
    err = relative_error(mine, ref)
    print(f"hunyuanvideo: relative max error {err:.1e}")
    assert err < 1e-5


def test_embedded_guidance_reaches_the_network():
    import torch

    b = load("hunyuanvideo")
    x, t = torch.randn(1, *b.latent_shape(b.chunk_length)), torch.tensor([700.0])
    cond = b.encode(["a cat"])
    out = b.forward(x, t, cond)
    b.embedded_guidance = 1.0
    assert not torch.allclose(out, b.forward(x, t, cond), atol=1e-5)


@pytest.mark.parametrize("family", ["hunyuanvideo", "hunyuanvideo15", "kandinsky5"])
def test_decode_matches_the_pipeline_s(family):
    # the three pipelines decode alike: latents / scaling_factor through the VAE
    decode_matches_stock(
        load(family),
        lambda pipe, z: pipe.vae.decode(z / pipe.vae.config.scaling_factor, return_dict=False)[0],
    )


def test_loads_from_a_saved_folder(tmp_path):
    folder_round_trip("hunyuanvideo", tmp_path)


def test_long_two_event_video():
    long_video(load("hunyuanvideo"))


def test_constraints():
    with pytest.raises(UserError, match="hunyuanvideo cannot take 20x16: .*multiples of 8"):
        load("hunyuanvideo", height=20)
    with pytest.raises(UserError, match="embedded_guidance_scale must be a number"):
        load("hunyuanvideo", model_options={"embedded_guidance_scale": "high"})
