"""The studio's logic without a browser: forms, YAML, the job queue, previews, cancelling."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from syncos.errors import UserError
from syncos.io import read_video
from syncos.scenario import load_scenario
from syncos.ui.jobs import (
    DEFAULT_SCENARIO,
    Form,
    Studio,
    contact_strip,
    form_from_scenario,
    from_yaml,
    move_row,
    preview_frames,
    scenario_from_form,
    to_yaml,
)

TINY = {
    "model": "toyworld",
    "model_options": {"chunk_length": 6},
    "global_prompt": "a red ball on green grass",
    "events": [{"prompt": "the ball jumps", "frames": 6}, {"prompt": "night falls", "seconds": 0.75}],
    "sampler": {"method": "codenoise", "steps": 3, "stride": 3},
}


def resolved(source) -> dict:
    return load_scenario(source).to_dict()


def test_form_round_trip_keeps_every_key():
    raw = {**TINY, "sampler": {**TINY["sampler"], "method": "syncos", "iterations": 2, "t_min": 500}}
    form = form_from_scenario(raw)
    assert form.events == [["the ball jumps", 6, "frames"], ["night falls", 0.75, "seconds"]]
    assert form.extra == {"model_options": {"chunk_length": 6}, "sampler": {"iterations": 2, "t_min": 500}}
    assert resolved(scenario_from_form(form)) == resolved(raw)
    demo = Path(__file__).parent.parent / "examples" / "ball_story.yaml"
    assert resolved(scenario_from_form(form_from_scenario(DEFAULT_SCENARIO))) == resolved(demo)  # opens on it


def test_form_keeps_stride_auto():
    raw = {**TINY, "sampler": {**TINY["sampler"], "stride": "auto"}}
    form = form_from_scenario(raw)
    assert form.stride == 0 and resolved(scenario_from_form(form)) == resolved(raw)
    form.stride = 2  # a number typed in the form wins
    assert resolved(scenario_from_form(form))["sampler"]["stride"] == 2


def test_form_rows_empty_rows_units_and_errors():
    form = Form(
        "a ball", [["the ball jumps", "2", "seconds"], ["", None, None], ["night falls", 5, "frames"]]
    )
    assert scenario_from_form(form)["events"] == [
        {"prompt": "the ball jumps", "seconds": 2.0},
        {"prompt": "night falls", "frames": 5},
    ]
    with pytest.raises(UserError, match="unit must be seconds or frames"):
        scenario_from_form(Form("a", [["x", 2, "minutes"]]))
    with pytest.raises(UserError, match=r"events\[0\].seconds: expected a number"):
        scenario_from_form(Form("a", [["x", "two", "seconds"]]))


def test_move_row():
    rows = [["a"], ["b"], ["c"]]
    assert move_row(rows, 0, 1) == [["b"], ["a"], ["c"]]
    assert move_row(rows, 2, 1) == rows and move_row(rows, 5, -1) == rows
    assert move_row(rows, 2, -2) == [["c"], ["a"], ["b"]]


def test_yaml_import_export():
    assert from_yaml(to_yaml(TINY)) == TINY
    with pytest.raises(UserError, match="not valid YAML"):
        from_yaml("events: [")
    with pytest.raises(UserError, match="global_prompt: missing"):
        from_yaml("events: [{prompt: a, frames: 3}]")


def test_previews():
    from syncos.backends.toyworld import ToyWorldBackend

    b = ToyWorldBackend()
    latent = torch.randn(b.latent_shape(5))
    frames = preview_frames(b, latent)
    decoded = np.stack(list(b.decode(latent)))
    assert frames.shape == (5, 32, 32, 3) and (frames.repeat(8, 1).repeat(8, 2) == decoded).all()
    strip = contact_strip(frames, count=3, height=64)
    assert strip.shape == (64, 3 * 64, 3) and strip.dtype == np.uint8

    class NoPreview:  # a backend whose spec has no preview: the first channels, scaled
        frame_axis = 0
        spec = type("Spec", (), {"preview": None})()

    fallback = preview_frames(NoPreview(), torch.randn(4, 2, 6, 5))
    assert fallback.shape == (4, 6, 5, 3) and fallback.min() == 0 and fallback.max() == 255


def test_diffusers_preview_is_a_linear_map_fitted_to_the_vae():
    sys.path.insert(0, str(Path(__file__).parent / "diffusers"))
    from diffusers_tiny import load

    b = load("cogvideox")
    latent = torch.randn(b.latent_shape(3))
    frames = b.preview(latent)
    h, w = b.latent_hw
    assert frames.shape == (3, h, w, 3) and frames.dtype == np.uint8
    w_rgb, bias = b._rgb
    assert w_rgb.shape == (b.latent_channels, 3) and bias.shape == (3,)
    assert (b.preview(torch.zeros_like(latent)) == b.preview(torch.zeros_like(latent))[0, 0, 0]).all()


def test_queue_runs_one_job_at_a_time_and_shows_positions(tmp_path):
    studio = Studio(tmp_path, preview_every=0.0)
    first = studio.submit({**TINY, "sampler": {**TINY["sampler"], "steps": 6}})
    second = studio.submit(TINY)
    assert studio.position(second) == 2 and "1 job ahead" in studio.status(second)
    assert second.done.wait(120) and first.done.is_set()
    for job in (first, second):
        assert job.state == "done", job.message
        frames, fps = read_video(job.video)
        assert len(frames) == 12 and fps == 8
        assert json.loads(job.record.read_text())["frames"] == 12
        assert job.preview is not None and job.preview_step == job.total  # the last step's preview
    assert first.total == 6 and second.total == 3 and studio.jobs() == []


def test_cancel_stops_cleanly_and_bad_scenarios_are_refused(tmp_path):
    studio = Studio(tmp_path)

    job = studio.submit({**TINY, "sampler": {**TINY["sampler"], "steps": 50}})
    while job.step < 1 and not job.finished:
        job.done.wait(0.01)
    job.cancel()
    assert job.done.wait(60)
    assert job.state == "cancelled" and "cancelled after step" in studio.status(job)
    assert job.video is None and not (job.outdir / "video.mp4").exists()
    with pytest.raises(UserError, match="sampler.method"):
        studio.submit({**TINY, "sampler": {"method": "nope"}})
    later = studio.submit({**TINY, "global_prompt": "qqq", "events": [{"prompt": "zzz", "frames": 12}]})
    assert later.done.wait(60) and later.state == "failed" and later.message.startswith("failed: ")


def test_plan_uses_the_cached_backend(tmp_path):
    studio = Studio(tmp_path)
    plan = studio.plan(TINY)
    assert plan.nfe == {"stage1": 3 * 3 * 2} and studio.backend(TINY) is studio.backend(dict(TINY))


def test_ui_command_defaults_to_this_machine_only():
    from syncos.cli import build_parser

    args = build_parser().parse_args(["ui"])
    assert (args.host, args.port, args.scenario) == ("127.0.0.1", 7860, None)
