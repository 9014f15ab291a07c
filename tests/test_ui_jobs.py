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


def test_plan_figure_draws_events_chunks_and_the_sync_window(tmp_path):
    import xml.etree.ElementTree as ET

    from syncos.ui.plan_figure import LEFT, RIGHT, WIDTH, plan_svg

    studio = Studio(tmp_path)
    raw = {**TINY, "sampler": {"method": "syncos", "steps": 20, "stride": 3}}
    raw["global_prompt"] = "a red ball on <green> grass"  # markup in a prompt stays text
    plan = studio.plan(raw)
    svg = ET.fromstring(plan_svg(plan))
    ns = "{http://www.w3.org/2000/svg}"
    groups = lambda kind: [g for g in svg.iter(f"{ns}g") if g.get("class") == kind]  # noqa: E731
    chunks, events = groups("chunk"), groups("event")
    assert len(chunks) == len(plan.chunks) == 3 and len(events) == 2
    scale = (WIDTH - LEFT - RIGHT) / plan.plan.video_frames
    for bar, row in zip(chunks, plan.chunks, strict=True):  # each bar spans its chunk's video frames
        rect = bar.find(f"{ns}rect")
        assert float(rect.get("x")) == pytest.approx(LEFT + row.video[0] * scale, abs=0.1)
        assert row.prompt in bar.find(f"{ns}title").text
    steps = [r for r in svg.iter(f"{ns}rect") if (r.get("class") or "").startswith("step")]
    synced = [i for i, r in enumerate(steps) if r.get("class") == "step synced"]
    assert len(steps) == 20 and synced == plan.sync_steps and synced
    assert "a red ball on <green> grass" in events[0].find(f"{ns}title").text
    empty = plan_svg(studio.plan({**raw, "sampler": {"method": "syncos", "steps": 5}}))
    assert "the sync window holds none" in empty and 'class="step synced"' not in empty
    assert "codenoise: no sync window" in plan_svg(studio.plan(TINY))


def test_time_left_comes_from_finished_steps_only(tmp_path, monkeypatch):
    import syncos.ui.jobs as jobs

    studio = Studio(tmp_path)
    job = jobs.Job(scenario=TINY, outdir=tmp_path, state="running")
    assert studio.status(job) == "loading the model"
    job.started = 100.0
    clock = iter([105.0, 500.0, 900.0])
    monkeypatch.setattr(jobs.time, "monotonic", lambda: next(clock))
    assert studio.status(job) == "sampling: first step..."  # no step done: no guess
    job.step, job.total, job.last_step_at = 2, 10, 104.0
    said = studio.status(job)
    assert said == "sampling: step 2 of 10, about 16 s left" and studio.status(job) == said  # holds still
    job.warnings = ["the sync window held none of the 5 steps"]
    assert studio.status(job).endswith("\n\nnote: the sync window held none of the 5 steps")


def test_finished_run_shows_its_metrics_and_notes(tmp_path):
    studio = Studio(tmp_path)
    job = studio.submit({**TINY, "sampler": {"method": "syncos", "steps": 3, "stride": 3, "lr": 0.2}})
    assert job.done.wait(120) and job.state == "done", job.message
    assert any("held none of the 3 steps" in w for w in job.warnings)  # known before the first step
    assert "| subject_consistency |" in job.summary and "the subject keeps its shape" in job.summary
    notes = json.loads(job.record.read_text())["notes"]
    assert notes and all(f"- note: {n}" in job.summary for n in notes)


def test_queue_is_bounded_and_keeps_order(tmp_path):
    studio = Studio(tmp_path, max_waiting=3)
    long = studio.submit({**TINY, "sampler": {**TINY["sampler"], "steps": 200}})
    while long.step < 1 and not long.finished:
        long.done.wait(0.01)
    quick = {**TINY, "sampler": {**TINY["sampler"], "steps": 1}}
    waiting = [studio.submit(quick) for _ in range(3)]
    with pytest.raises(UserError, match=r"^the studio is busy: 3 jobs are waiting \(at most 3\)"):
        studio.submit(quick)
    long.cancel()
    assert waiting[-1].done.wait(120) and all(j.state == "done" for j in waiting)
    ends = [j.last_step_at for j in waiting]
    starts = [j.started for j in waiting]
    assert all(ends[i] <= starts[i + 1] for i in range(2))  # one at a time, in the order submitted
    more = [studio.submit(quick) for _ in range(3)]  # room again once the queue drained
    assert more[-1].done.wait(120) and [j.state for j in more] == ["done"] * 3


@pytest.mark.parametrize(
    "args,message",
    [
        (["--host", "0.0.0.0"], "add --auth USER:PASS, or --no-auth on a network you trust"),
        (["--host", "0.0.0.0", "--auth", "nopass"], "--auth: expected USER:PASS"),
        (["--auth", "u:p", "--no-auth"], "--auth and --no-auth contradict each other"),
    ],
)
def test_ui_beyond_this_machine_needs_auth_or_no_auth(capsys, args, message):
    from syncos.cli import main

    assert main(["ui", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_ui_auth_is_gradios_login(tmp_path, monkeypatch):
    import socket
    import urllib.error
    import urllib.request

    from syncos.ui import app

    seen = {}
    monkeypatch.setattr(app, "launch", lambda **kw: seen.update(kw))
    from syncos.cli import main

    assert main(["ui", "--host", "0.0.0.0", "--auth", "ann:pa:ss", "--output", str(tmp_path)]) == 0
    assert seen["auth"] == ("ann", "pa:ss") and seen["root"] == str(tmp_path) and seen["host"] == "0.0.0.0"
    monkeypatch.undo()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = app.launch(port=port, root=str(tmp_path), block=False, auth=("ann", "secret"))
    try:
        with pytest.raises(urllib.error.HTTPError) as e:  # the page's API needs the login
            urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=30)
        assert e.value.code == 401
    finally:
        demo.close()


def test_temporary_outputs_are_removed_when_the_studio_stops(tmp_path):
    import contextlib
    import re
    import signal
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", "syncos", "ui", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # as from a terminal: a test run started in the background (`make test &`) ignores SIGINT,
        # and a child inherits that, so Ctrl-C would never reach the studio
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        line = proc.stdout.readline()
        folder = Path(re.search(r"outputs in (\S+), a temporary folder removed when", line).group(1))
        assert folder.is_dir()
        (folder / "job").mkdir()  # as a job leaves it
        for _ in range(600):  # serving: Ctrl-C now stops a running studio, not its start-up
            with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5):
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # faulthandler: every thread's stack, then exit
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            proc.kill()
            raise AssertionError("the studio did not stop on Ctrl-C:\n" + proc.communicate()[0]) from None
        assert code in (0, 130), proc.communicate()[0]  # 130: interrupted while Gradio was starting
    finally:
        proc.kill()
    assert not folder.exists()


def test_docs_nfe_figures_are_syncos_plans():
    """docs/ui.md's network-evaluation counts are what `syncos plan` says for the example."""
    import re

    from syncos.planning import plan_scenario

    root = Path(__file__).parent.parent
    text = (root / "docs" / "ui.md").read_text()
    example = root / "examples" / "ball_story.yaml"
    syncos = plan_scenario(example, overrides=["sampler.method=syncos"]).nfe
    codenoise = plan_scenario(example, overrides=["sampler.method=codenoise"]).nfe
    said = re.search(r"\| syncos \((\d+) \+ (\d+) evaluations\)", text)
    assert said and [int(x) for x in said.groups()] == [syncos["stage1"], syncos["stage2"]]
    said = re.search(r"\| `--method codenoise` \((\d+)\)", text)
    assert said and int(said.group(1)) == codenoise["stage1"]
