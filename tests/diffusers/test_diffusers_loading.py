"""Loading from folders (save_pretrained layout), the command line, and clear errors for bad folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers_tiny import TINY_SETTINGS, load, tiny_pipe

from syncos.backends import load_backend
from syncos.errors import UserError


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Every family saved once with save_pretrained (safetensors)."""
    root = tmp_path_factory.mktemp("pipes")
    out = {}
    for family in ("cogvideox", "wan", "ltx", "animatediff", "modelscope"):
        folder = root / family
        tiny_pipe(family).save_pretrained(folder)
        out[family] = folder
    return out


@pytest.mark.parametrize("family", ["cogvideox", "wan", "ltx", "animatediff", "modelscope"])
def test_folder_loads_like_the_pipeline_object(saved, family):
    b = load_backend(str(saved[family]), **TINY_SETTINGS[family])
    ref = load(family)
    assert type(b) is type(ref) and b.name == ref.name
    x = torch.randn(2, *b.latent_shape(b.chunk_length))
    t = torch.tensor([900.0, 900.0])
    out = b.forward(x, t, b.encode(["a cat", ""]))
    expect = ref.forward(x, t, ref.encode(["a cat", ""]))
    assert torch.allclose(out, expect, atol=1e-5)


def test_cli_generate_from_folder(saved, tmp_path):
    from syncos import cli

    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(
        "global_prompt: a red astronaut\n"
        "events:\n"
        "  - {prompt: walks through puddle, frames: 9}\n"
        "  - {prompt: watches fireworks at night, frames: 9}\n"
        "  - {prompt: sits on beach, frames: 9}\n"
        "sampler: {method: syncos, steps: 2, iterations: 1, guidance_scale: 2.0, t_min: 400}\n"
        "height: 16\nwidth: 16\nseed: 5\n"
        "model_options: {native_frames: 9, max_sequence_length: 16}\n"
    )
    out = tmp_path / "out"
    rc = cli.main(["generate", str(scenario), "-o", str(out), "-q", "--set", f"model={saved['wan']}"])
    assert rc == 0
    record = json.loads((out / "run.json").read_text())
    assert (out / "video.mp4").stat().st_size > 0
    assert record["frames"] == 29  # 27 frames -> 1 + ceil(26 / 4) = 8 latent frames -> 29 frames
    import imageio.v3 as iio

    frames = iio.imread(out / "video.mp4")
    assert frames.shape[0] == record["frames"] and frames.shape[1:] == (16, 16, 3)
    assert np.isfinite(frames).all()


def test_folder_without_model_index(tmp_path):
    (tmp_path / "weights.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match="not a diffusers video pipeline.*model_index.json"):
        load_backend(str(tmp_path))


def test_folder_with_an_image_pipeline(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(UserError, match="StableDiffusionPipeline, not a supported text-to-video pipeline"):
        load_backend(str(tmp_path))


def test_missing_folder_and_uncached_id(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        load_backend(str(tmp_path / "nope"))
    with pytest.raises(UserError, match="could not be found"):
        load_backend("nobody-here/no-such-video-model")


def test_unknown_setting(saved):
    with pytest.raises(UserError, match="unknown model settings"):
        load_backend(str(saved["wan"]), colour="blue")
