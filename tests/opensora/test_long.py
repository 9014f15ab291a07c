"""A folder in the release's layout -> a long multi-event video with every method, and clear errors.

The folder is what the hub holds, at toy size: ``transformer/`` and ``vae/`` saved by the
authors' classes (``save_pretrained``), a tiny random mT5 in ``text_encoder/`` and a word-level
tokenizer in ``tokenizer/``; no ``scheduler/``, so the release's scheduler applies.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import oracle
import pytest
import torch
from osp_tiny import TOKENS, VAE, reference_transformer, text_parts

from syncos import api
from syncos.backends import load_backend
from syncos.backends.opensora_plan.backend import OpenSoraPlanBackend
from syncos.errors import UserError

EVENTS = ["walks through puddle", "watches fireworks at night", "sits on beach"]
SCENARIO = {
    "global_prompt": "a red astronaut",
    "events": [{"prompt": p, "frames": 9} for p in EVENTS],
    "height": 16,
    "width": 16,
    "seed": 3,
    "model_options": {"native_frames": 9, "max_sequence_length": TOKENS},
}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    from transformers import MT5Config, MT5EncoderModel

    folder = tmp_path_factory.mktemp("osp") / "Open-Sora-Plan-v1.3.0"
    reference_transformer(sparse=True).save_pretrained(folder / "transformer")
    wfvae = oracle.reference("models.causalvideovae.model.vae.modeling_wfvae").WFVAEModel
    torch.manual_seed(7)
    wfvae(**VAE).save_pretrained(folder / "vae")
    t5, tokenizer = text_parts()
    config = MT5Config(**{k: v for k, v in t5.config.to_dict().items() if k in MT5Config().to_dict()})
    torch.manual_seed(8)
    MT5EncoderModel(config).save_pretrained(folder / "text_encoder")  # the release's encoder class
    tokenizer.save_pretrained(folder / "tokenizer")
    return folder


def _generate(folder, method: str, **sampler):
    spec = {**SCENARIO, "model": str(folder), "sampler": {"method": method, "steps": 10, **sampler}}
    return api.generate(spec)


def test_folder_loads_as_the_release(release):
    backend = load_backend(str(release), model_options={"max_sequence_length": TOKENS})
    assert isinstance(backend, OpenSoraPlanBackend) and backend.name == "opensora-plan-v1.3"
    assert (backend.height, backend.width, backend.chunk_length, backend.fps) == (352, 640, 24, 18.0)
    assert backend.prediction == "v" and backend.solver.name == "euler_ancestral"
    assert type(backend.pipe.text_encoder).__name__ == "MT5EncoderModel"
    assert not backend.spec.per_frame_timesteps  # one timestep per sample


def test_every_method_makes_the_long_video(release, tmp_path):
    backend = load_backend(str(release), **{k: SCENARIO[k] for k in ("height", "width", "model_options")})
    calls: list[list[str]] = []
    encode = backend.encode
    backend.encode = lambda prompts, negative=False: (calls.append(list(prompts)), encode(prompts, negative))[
        1
    ]
    for method in ("independent", "codenoise", "fifo", "syncos"):
        calls.clear()
        extra = {"iterations": 2} if method == "syncos" else {}
        spec = {**SCENARIO, "model": str(release), "sampler": {"method": method, "steps": 10, **extra}}
        gen = api.generate(spec, backend=backend)
        plan = gen.plan
        seen = [p for call in calls[1:] for p in call]  # calls[0]: every prompt, checked before sampling
        assert plan.latent_frames == backend.latent_frames(27) and torch.isfinite(gen.latent).all()
        conditional = [p for p in seen if p]
        if method == "independent":  # tile i is denoised under the event it covers, in order
            tiles = plan.with_tiles().chunk_prompts
            assert conditional[: len(tiles)] == list(tiles)
            assert [sum(e in p for p in tiles) > 0 for e in EVENTS] == [True] * 3
        elif method == "codenoise":
            assert conditional[: plan.num_chunks] == list(plan.chunk_prompts)
            assert plan.num_chunks > 3
        elif method == "fifo":
            assert gen.fifo_mode == "shared"  # the transformer embeds one timestep per sample
            assert gen.solver.startswith("ddim (FIFO's windows mix noise levels")
        else:
            # 10 steps on the zero-SNR grid: t = 999 (alpha 2^-12, no signal) is skipped, t = 899
            # (log-SNR -9.2) is in the default window, t = 799 (-6.2) is past it
            assert gen.notes[0].startswith("stage 2 (CSD) ran at 1 of 10 steps (t = 899;"), gen.notes
            assert gen.nfe["stage2"] > 0
        assert gen.solver.startswith("ddim") if method == "fifo" else gen.solver == "euler_ancestral"
        assert all(e in " ".join(seen) for e in EVENTS)
    frames = np.stack(list(backend.decode(gen.latent)))
    assert frames.shape == (backend.video_frames(plan.latent_frames), 16, 16, 3)
    assert frames.std() > 1.0  # a decoded video, not a constant
    assert backend.preview(gen.latent).shape == (plan.latent_frames, 2, 2, 3)  # latent-size frames


def test_the_release_sampling_defaults_apply_unless_set(release):
    scenario, _, _ = api.prepare({**SCENARIO, "model": str(release)})
    assert (scenario.sampler_options().steps, scenario.sampler_options().guidance_scale) == (100, 7.5)
    scenario, _, _ = api.prepare({**SCENARIO, "model": str(release), "sampler": {"steps": 3}})
    assert (scenario.sampler_options().steps, scenario.sampler_options().guidance_scale) == (3, 7.5)
    assert scenario.to_dict()["sampler"]["guidance_scale"] == 7.5  # what run.json records


def test_cli_generate_from_the_release_folder(release, tmp_path):
    from syncos import cli

    scenario = tmp_path / "scenario.json"
    scenario.write_text(
        json.dumps({**SCENARIO, "sampler": {"method": "syncos", "steps": 3, "iterations": 1}})
    )
    out = tmp_path / "out"
    assert cli.main(["generate", str(scenario), "-o", str(out), "-q", "--model", str(release)]) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["frames"] == 29 and (out / "video.mp4").stat().st_size > 0


@pytest.mark.parametrize("part", ["vae", "text_encoder", "tokenizer"])
def test_a_missing_part_is_named(release, tmp_path, part):
    folder = tmp_path / "partial"
    shutil.copytree(release, folder)
    shutil.rmtree(folder / part)
    with pytest.raises(UserError, match=f"model folder .* has no {part}/ .*model_options.{part}"):
        load_backend(str(folder))


def test_parts_given_apart(release, tmp_path):
    options = {p: str(release / p) for p in ("transformer", "vae", "text_encoder", "tokenizer")}
    backend = load_backend("opensora-plan-v1.3", height=16, width=16, model_options=options)
    assert isinstance(backend, OpenSoraPlanBackend)
    with pytest.raises(UserError, match="not an OpenSoraT2V_v1_3 folder"):
        load_backend("opensora-plan-v1.3", model_options={**options, "transformer": str(release / "vae")})
    with pytest.raises(UserError, match="no model_options.vae .*the WF-VAE folder"):
        load_backend("opensora-plan-v1.3", model_options={**options, "vae": None})
    with pytest.raises(UserError, match="cpu_offload is not supported for opensora-plan-v1.3"):
        load_backend(str(release), cpu_offload=True)
