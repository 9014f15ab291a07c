"""Resumable runs: a process killed at a random step and resumed ends bit-identical to one never stopped."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from syncos import api, checkpoint
from syncos.cli import main
from syncos.planning import count_nfe
from syncos.samplers import Cancelled
from syncos.scenario import load_scenario

# 12 frames, chunks of 6 at stride 3 (3 chunks): tens of milliseconds a step, so a poll every
# few milliseconds catches the run mid-way.
BASE = {
    "model": "toyworld",
    "model_options": {"chunk_length": 6},
    "global_prompt": "a red ball on green grass",
    "events": [{"prompt": "the ball moves", "frames": 6}, {"prompt": "night falls", "frames": 6}],
    "seed": 3,
}
SAMPLER = {
    "independent": {"steps": 12},
    "codenoise": {"steps": 12, "stride": 3},
    "syncos": {"steps": 12, "stride": 3, "iterations": 1, "t_min": 400, "minibatch": 2},
    "fifo": {"steps": 12, "stride": 3},  # two partitions: 12 levels, 18 loop steps
}


def scenario(method: str, **extra) -> dict:
    return {**BASE, "sampler": {"method": method, **SAMPLER[method]}, **extra}


def write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def reference(data: dict) -> api.Generation:
    return api.generate(data)


def cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # the same arithmetic as here
    return subprocess.Popen(
        [sys.executable, "-m", "syncos", "generate", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def saved(out: Path) -> dict:
    try:
        return json.loads((out / checkpoint.META).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def saved_step(out: Path) -> int:
    return saved(out).get("step", -1)


def wait_for_step(proc: subprocess.Popen, out: Path, step: int, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while saved_step(out) < step:
        assert proc.poll() is None, f"the run ended before step {step}: {proc.communicate()[1]}"
        assert time.monotonic() < end, f"no checkpoint of step {step} after {timeout} s"
        time.sleep(0.002)


@pytest.mark.parametrize("method", list(SAMPLER))
def test_sigkill_at_a_random_step_then_resume_is_bit_identical(tmp_path, capsys, method):
    data = scenario(method)
    path, out = write(tmp_path, data), tmp_path / "out"
    ref = reference(data)
    proc = cli(str(path), "-o", str(out), "-q")
    wait_for_step(proc, out, 0)
    total = saved(out)["total"]
    kill_after = random.randrange(0, total // 2)
    wait_for_step(proc, out, kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = saved_step(out)
    assert killed_at < total - 1 and not (out / "video.mp4").exists(), "the run finished before the kill"

    assert main(["generate", str(path), "-o", str(out), "--resume", "--save-latent"]) == 0
    assert f"resuming after step {killed_at + 1} of {total}" in capsys.readouterr().err
    latent = load_file(str(out / "latent.safetensors"))["latent"]
    assert torch.equal(latent, ref.latent), f"{method}: killed after step {killed_at}"
    run = json.loads((out / "run.json").read_text())
    assert run["nfe"] == ref.nfe  # counts carry over the restart
    assert sorted(p.name for p in out.iterdir()) == ["latent.safetensors", "run.json", "video.mp4"]


def test_sigterm_writes_the_newest_step_and_says_how_to_resume(tmp_path):
    data = scenario("codenoise")
    path, out = write(tmp_path, data), tmp_path / "out"
    proc = cli(str(path), "-o", str(out), "--checkpoint-every", "5")
    wait_for_step(proc, out, 4)  # the periodic write of step 5
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    step = saved_step(out)
    assert step >= 4 and f"step {step + 1} is saved" in err and "--resume" in err
    assert not (out / "video.mp4").exists()
    assert main(["generate", str(path), "-o", str(out), "--resume", "--save-latent", "-q"]) == 0
    assert torch.equal(load_file(str(out / "latent.safetensors"))["latent"], reference(data).latent)


def interrupted_run(out: Path, data: dict, after: int = 2) -> checkpoint.Checkpoint:
    """A checkpoint in OUT: a run of ``data`` cancelled after ``after`` steps (in this process)."""
    scen = load_scenario(data)
    store = checkpoint.Checkpoint(out, checkpoint.fingerprint(scen.to_dict()))
    out.mkdir(parents=True, exist_ok=True)
    with checkpoint.active(store), pytest.raises(Cancelled):
        api.generate(scen, callback=lambda step: step.index + 1 < after)
    assert saved_step(out) == after - 1
    return store


@pytest.mark.parametrize(
    "change, message",
    [
        (["--steps", "7"], "sampler.steps differs (checkpoint 12, now 7)"),
        (["--seed", "4"], "seed differs (checkpoint 3, now 4)"),
        (["--set", "sampler.lr=0.1"], "sampler.lr differs (checkpoint 0.5, now 0.1)"),
        (["--model", "org/other-model"], "model differs (checkpoint 'toyworld', now 'org/other-model')"),
    ],
)
def test_resume_refuses_a_changed_run(tmp_path, capsys, change, message):
    data = scenario("syncos")
    out = tmp_path / "out"
    interrupted_run(out, data)
    rc = main(["generate", str(write(tmp_path, data)), "-o", str(out), "--resume", "-q", *change])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert err == f"syncos: error: cannot resume: {message}; rerun without --resume to start over\n"
    assert saved_step(out) == 1  # the checkpoint is left as it was


def test_resume_refuses_another_package_version(tmp_path, capsys):
    data = scenario("codenoise")
    out = tmp_path / "out"
    interrupted_run(out, data)
    meta = json.loads((out / checkpoint.META).read_text())
    meta["fingerprint"]["syncos"] = "0.0.1"
    (out / checkpoint.META).write_text(json.dumps(meta))
    assert main(["generate", str(write(tmp_path, data)), "-o", str(out), "--resume"]) == 2
    assert "cannot resume: syncos differs (checkpoint '0.0.1', now" in capsys.readouterr().err


def test_resume_without_a_checkpoint_starts_over_and_a_stale_one_is_replaced(tmp_path, capsys):
    data = scenario("independent")
    path, out = write(tmp_path, data), tmp_path / "out"
    assert main(["generate", str(path), "-o", str(out), "--resume", "--steps", "2"]) == 0
    assert "no checkpoint in" in capsys.readouterr().err
    interrupted_run(out, data)
    assert main(["generate", str(path), "-o", str(out), "--steps", "2"]) == 0
    assert "unfinished run's checkpoint will be replaced" in capsys.readouterr().err
    assert not (out / checkpoint.META).exists() and not (out / checkpoint.TENSORS).exists()


def test_count_nfe_matches_a_checkpointed_run(tmp_path):
    """The counts a checkpoint carries are the run's own; the plan's formula agrees with them."""
    data = scenario("fifo")
    out = tmp_path / "out"
    interrupted_run(out, data, after=3)
    assert main(["generate", str(write(tmp_path, data)), "-o", str(out), "--resume", "-q"]) == 0
    scen, backend, plan = api.prepare(data)
    assert json.loads((out / "run.json").read_text())["nfe"] == count_nfe(
        backend, plan, "fifo", scen.sampler_options()
    )


def test_under_torchrun_rank0_writes_and_every_rank_resumes(tmp_path, monkeypatch):
    """Two ranks; one dies mid-run (the other exits 3, leaving rank 0's checkpoint); two ranks resume."""
    import dist_worker
    from test_distributed import SCENARIO as GAUSSIAN
    from test_distributed import launch

    data = {**GAUSSIAN, "sampler": {**GAUSSIAN["sampler"], "steps": 8}}
    path, one, two = tmp_path / "g.json", tmp_path / "one", tmp_path / "two"
    path.write_text(json.dumps(data))
    monkeypatch.setattr(api, "load_backend", dist_worker.gaussian_loader(api.load_backend))
    assert main(["generate", str(path), "-o", str(one), "-q", "--save-latent"]) == 0

    args = ["cli", "generate", str(path), "-o", str(two), "-q"]
    (rc0, _, err0, _), (rc1, _, _, _) = launch(2, args, tmp_path, SYNCOS_TEST_FAULT="1:4:exit")
    assert (rc0, rc1) == (3, 17), err0
    step = saved_step(two)
    assert 0 <= step < 7 and not (two / "video.mp4").exists()

    (rc0, _, err0, _), (rc1, _, err1, _) = launch(2, [*args, "--resume", "--save-latent"], tmp_path)
    assert (rc0, rc1) == (0, 0), err0 + err1
    assert sorted(p.name for p in two.iterdir()) == ["latent.safetensors", "run.json", "video.mp4"]
    latent = load_file(str(two / "latent.safetensors"))["latent"]
    assert torch.equal(latent, load_file(str(one / "latent.safetensors"))["latent"]), f"after step {step}"


@pytest.mark.parametrize("method", ["codenoise", "syncos", "independent"])
def test_a_multistep_solver_history_is_restored(tmp_path, method):
    """UniPC carries earlier estimates from step to step: they are part of the checkpoint."""
    from dist_worker import make_plan
    from gaussian_backend import GaussianBackend
    from syncos.samplers import SAMPLERS, sample
    from syncos.solvers import Solver

    backend = GaussianBackend()
    backend.solver = Solver("unipc", order=2)
    plan = make_plan(backend, (8, 8))
    options = SAMPLERS[method][1](steps=6, guidance_scale=2.0)
    if method == "syncos":
        options = SAMPLERS[method][1](steps=6, guidance_scale=2.0, iterations=1, t_min=800)
    ref = sample(method, backend, plan, options, seed=1)
    stop = checkpoint.Checkpoint(tmp_path, {"case": method})
    with checkpoint.active(stop), pytest.raises(Cancelled):
        sample(method, backend, plan, options, seed=1, callback=lambda s: s.index < 3)
    go = checkpoint.Checkpoint(tmp_path, {"case": method})
    assert go.load().step == 3 and go.saved.values["history"].x0  # a history with estimates in it
    with checkpoint.active(go):
        got = sample(method, backend, plan, options, seed=1)
    assert torch.equal(got.latent, ref.latent) and got.nfe == ref.nfe and got.solver == ref.solver
