"""``syncos.generate(..., pipe=...)``: a pipeline the caller built runs exactly as the same model
loaded from its folder."""

from __future__ import annotations

import json

import torch
from diffusers_tiny import TINY_SETTINGS, tiny_pipe

import syncos
from syncos import api


def test_generate_with_a_handed_in_pipe_equals_the_folder_run(tmp_path):
    """The same scenario through ``pipe=`` and through the saved folder: the same backend family,
    the same latent bit for bit, the same plan and counts. Kills: ``pipe`` ignored (toyworld runs
    instead: another backend, shape and metrics); any pipe-only path that changes what is sampled."""
    family = "cogvideox"
    tiny_pipe(family).save_pretrained(tmp_path / "model")
    scenario = {
        **TINY_SETTINGS[family],
        "global_prompt": "a red astronaut",
        "events": [
            {"prompt": "walks through a puddle", "frames": 9},
            {"prompt": "watches fireworks", "frames": 9},
        ],
        "sampler": {"method": "syncos", "steps": 2, "guidance_scale": 3.0, "iterations": 1, "t_min": -1},
        "seed": 4,
    }
    by_pipe = syncos.generate(scenario, pipe=tiny_pipe(family))
    by_folder = syncos.generate({**scenario, "model": str(tmp_path / "model")})
    assert type(by_pipe.backend) is type(by_folder.backend) and by_pipe.backend.name == family
    assert by_pipe.latent.shape == by_folder.latent.shape
    assert torch.equal(by_pipe.latent, by_folder.latent)
    assert by_pipe.plan == by_folder.plan and by_pipe.nfe == by_folder.nfe and by_pipe.nfe["stage2"] > 0
    api.save(by_pipe, tmp_path / "out")
    written = json.loads((tmp_path / "out" / "run.json").read_text())
    assert written["plan"] == json.loads(json.dumps(api.save(by_folder, tmp_path / "out2")["plan"]))
    assert written["device"] == "cpu" and written["nfe"] == by_folder.nfe
    # run.json names the handed-in pipeline (built in memory: no name_or_path, so its class), not the
    # scenario's default "toyworld" (fails on the old code); the folder run names its folder.
    assert written["scenario"]["model"] == "CogVideoXPipeline"
    assert written["model"] == {
        "family": family,
        "pipeline": "CogVideoXPipeline",
        "name_or_path": "",
        "dtype": "float32",
    }
    folder_model = json.loads((tmp_path / "out2" / "run.json").read_text())["model"]
    assert folder_model["name_or_path"] == str(tmp_path / "model")
    assert "metrics" not in written  # toyworld's own metrics would mean toyworld decoded the video
