"""Resumable runs: a run stopped at any step, or killed at any point of a checkpoint write, and
resumed ends bit-identical to one never stopped, or is refused with one line. No sleeps: the
stops come from the progress callback, and the faults from the write path itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import safetensors
import torch
import yaml
from safetensors.torch import load_file, save_file

from syncos import api, checkpoint, io
from syncos.cli import _Progress, main
from syncos.planning import count_nfe
from syncos.samplers import Cancelled, sample
from syncos.scenario import load_scenario

# 12 frames, chunks of 6 at stride 3 (3 chunks): tens of milliseconds a step.
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
    "extend": {"steps": 4, "stride": 3},  # 3 chunks one after another: the kill falls in the second
}
TOTAL = {"independent": 12, "codenoise": 12, "syncos": 12, "fifo": 18, "extend": 12}


def scenario(method: str, **extra) -> dict:
    return {**BASE, "sampler": {"method": method, **SAMPLER[method]}, **extra}


def write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


_REFERENCES: dict[str, api.Generation] = {}


def reference(data: dict) -> api.Generation:
    """The uninterrupted run (cached: several tests compare with the same one)."""
    key = json.dumps(data, sort_keys=True)
    if key not in _REFERENCES:
        _REFERENCES[key] = api.generate(data)
    return _REFERENCES[key]


def saved(out: Path) -> dict:
    """The JSON part of OUT's checkpoint (in the safetensors header), {} if there is none."""
    if not (out / checkpoint.FILE).is_file():
        return {}
    with safetensors.safe_open(str(out / checkpoint.FILE), framework="pt") as f:
        return json.loads(f.metadata()[checkpoint.KEY])


def saved_step(out: Path) -> int | None:
    return saved(out).get("step")


def rewrite(out: Path, edit) -> None:
    """Change OUT's checkpoint: ``edit(meta, tensors)`` edits its JSON part and tensors in place."""
    meta, tensors = saved(out), load_file(str(out / checkpoint.FILE))
    edit(meta, tensors)
    save_file(tensors, str(out / checkpoint.FILE), metadata={checkpoint.KEY: json.dumps(meta)})


def store_for(out: Path, data: dict, **kwargs) -> checkpoint.Checkpoint:
    return checkpoint.Checkpoint(out, checkpoint.fingerprint(load_scenario(data).to_dict()), **kwargs)


def interrupted_run(out: Path, data: dict, after: int = 2) -> checkpoint.Checkpoint:
    """A checkpoint in OUT: a run of ``data`` cancelled after ``after`` steps (in this process).

    No write is due before (every 5 minutes): the step on disk is the one the cancel flushed.
    """
    store = store_for(out, data)
    with pytest.raises(Cancelled):
        api.generate(data, callback=lambda step: step.index + 1 < after, checkpoint=store)
    assert saved_step(out) == after - 1
    return store


def resume_in_process(out: Path, data: dict) -> api.Generation:
    store = store_for(out, data)
    store.load()
    return api.generate(data, checkpoint=store)


def assert_one_line_refusal(rc: int, err: str, *parts: str) -> None:
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("syncos: error: ") and err.endswith("rerun without --resume to start over\n"), err
    for part in parts:
        assert part in err, err


# ---- stopped at a step ---------------------------------------------------------------------------

KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from syncos import cli
    where, at = sys.argv[1].split(":")  # SIGKILL: no handler, no flush, no cleanup, as a crash
    def progress(self, step):  # "step:K": after step K's callback
        if where == "step" and step.index == int(at):
            os.kill(os.getpid(), signal.SIGKILL)
    renames, replace = [], os.replace
    def rename(src, dst):  # "rename:N": the N-th rename, the temporary file written and synced
        renames.append(dst)
        if where == "rename" and len(renames) == int(at):
            os.kill(os.getpid(), signal.SIGKILL)
        replace(src, dst)
    cli._Progress.__call__ = progress
    os.replace = rename
    sys.exit(cli.main(sys.argv[2:]))
    """
)


def killed_run(tmp_path: Path, data: dict, where: str, *args: str) -> tuple[Path, Path]:
    """The command line run in a child process that SIGKILLs itself at ``where`` (see KILLER)."""
    path, out = write(tmp_path, data), tmp_path / "out"
    threads = str(torch.get_num_threads())  # the same arithmetic as here
    env = {**os.environ, "OMP_NUM_THREADS": threads, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, where, "generate", str(path), "-o", str(out), "-q", *args],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return path, out


@pytest.mark.parametrize("method", list(SAMPLER))
def test_sigkill_at_a_step_then_resume_is_bit_identical(tmp_path, capsys, method):
    """A real crash (SIGKILL from the progress callback) after step 5 with --checkpoint-every 3:
    the file holds step 3 and the resume ends bit-identical, counts included.

    Kills: a resume that redoes or skips a step, a generator not restored, counts not carried."""
    data = scenario(method)
    path, out = killed_run(tmp_path, data, "step:4", "--checkpoint-every", "3")
    assert saved_step(out) == 2 and not (out / "video.mp4").exists()

    assert main(["generate", str(path), "-o", str(out), "--resume", "--save-latent"]) == 0
    assert f"resuming after step 3 of {TOTAL[method]}" in capsys.readouterr().err
    ref = reference(data)
    assert torch.equal(load_file(str(out / "latent.safetensors"))["latent"], ref.latent), method
    assert json.loads((out / "run.json").read_text())["nfe"] == ref.nfe  # counts carry over the restart
    assert sorted(p.name for p in out.iterdir()) == ["latent.safetensors", "run.json", "video.mp4"]


def test_sigterm_writes_the_newest_step_and_says_how_to_resume(tmp_path, capsys, monkeypatch):
    """SIGTERM at step 7 (sent by the progress callback; no periodic write is due in 5 minutes):
    the handler writes step 7, exits 130 with one line, and the resume ends bit-identical.

    Kills: a handler that does not flush the pending step (the file would be missing)."""
    data = scenario("codenoise")
    path, out = write(tmp_path, data), tmp_path / "out"

    def progress(self, step):
        if step.index == 6:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(_Progress, "__call__", progress)
    assert main(["generate", str(path), "-o", str(out)]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "step 7 of 12 is saved" in err and "--resume" in err, err
    assert saved_step(out) == 6 and not (out / "video.mp4").exists()
    monkeypatch.undo()
    assert main(["generate", str(path), "-o", str(out), "--resume", "--save-latent", "-q"]) == 0
    assert torch.equal(load_file(str(out / "latent.safetensors"))["latent"], reference(data).latent)


@pytest.mark.parametrize(
    "every, expected",
    [(None, [None] * 3 + [3] * 3 + [6] * 3 + [9, 9, 11]), (5, [None] * 3 + [3, 4, 4, 4, 7, 7, 9, 9, 11])],
)
def test_writes_follow_the_clock_every_n_steps_and_the_last_step(tmp_path, every, expected):
    """A fake clock that advances a minute a step: with minutes=2.5 the writes fall on steps 4, 7
    and 10 (1-based) and the last; with every=5 on steps 4, 5, 8 (the clock restarts at 5), 10, 12.
    ``expected``: the step on disk as each step's callback sees it. No sleep.

    Kills: time ignored, the interval not restarted after a write, the last step not written."""
    data = scenario("codenoise")
    now = [0.0]
    store = store_for(tmp_path, data, every=every, minutes=2.5, clock=lambda: now[0])
    written: list[int | None] = []

    def tick(step):
        written.append(store.written)
        now[0] += 60.0

    api.generate(data, callback=tick, checkpoint=store)
    assert written == expected


def test_a_cancel_and_an_error_write_the_newest_step(tmp_path, monkeypatch):
    """A run stopped by its callback, or by an error in a step, leaves its last completed step.

    Kills: a flush only on signals (a network that fails at its 12th call would lose every step)."""
    data = scenario("syncos")
    interrupted_run(tmp_path / "cancel", data, after=4)

    from syncos.backends.toyworld import model

    calls = [0]
    real = model.ToyWorldBackend.forward

    def failing(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 12:
            raise RuntimeError("CUDA out of memory (injected)")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(model.ToyWorldBackend, "forward", failing)
    out = tmp_path / "error"
    with pytest.raises(RuntimeError, match="injected"):
        api.generate(data, checkpoint=store_for(out, data))
    step = saved_step(out)
    monkeypatch.undo()
    assert step is not None and step >= 0
    got = resume_in_process(out, data)
    assert torch.equal(got.latent, reference(data).latent) and got.nfe == reference(data).nfe


# ---- killed inside a write ----------------------------------------------------------------------


class Died(BaseException):
    """The process dies here: no handler runs, nothing is flushed (a BaseException, not an error)."""


def _die_at(monkeypatch, point: str, write: int) -> None:
    """Make the ``write``-th checkpoint write (0-based) die at ``point`` of syncos.io's write path."""
    calls = {"save": 0, "sync": 0, "replace": 0}
    save, sync, replace = save_file, io.sync, os.replace

    def counted(kind: str, index: int) -> bool:
        n = calls[kind]
        calls[kind] += 1
        return n == index

    def fake_save(tensors, filename, metadata=None):
        if point == "mid-write" and counted("save", write):
            save(tensors, filename, metadata=metadata)
            data = Path(filename).read_bytes()
            Path(filename).write_bytes(data[: len(data) // 2])  # half of it reached the disk
            raise Died
        save(tensors, filename, metadata=metadata)

    def fake_sync(path):
        # each write syncs its file (call 2w), then its folder (2w + 1)
        if point in ("before-file-sync", "before-folder-sync"):
            if counted("sync", 2 * write + (point == "before-folder-sync")):
                raise Died
        sync(path)

    def fake_replace(src, dst):
        if point == "before-rename" and counted("replace", write):
            raise Died
        replace(src, dst)

    monkeypatch.setattr("safetensors.torch.save_file", fake_save)
    monkeypatch.setattr(io, "sync", fake_sync)
    monkeypatch.setattr(os, "replace", fake_replace)


POINTS = {  # where the process dies -> the step the file holds after the write of step 2 (write 3 of FIFO)
    "mid-write": 1,
    "before-file-sync": 1,
    "before-rename": 1,
    "before-folder-sync": 2,  # renamed: the new step is there (a power loss here could undo the rename)
}


@pytest.mark.parametrize("method", ["fifo", "syncos"])
@pytest.mark.parametrize("point", list(POINTS))
def test_death_at_each_write_point_then_resume_is_bit_identical(tmp_path, monkeypatch, method, point):
    """The process dies at each point of the write of step 3 (checkpointing every step); a crash
    leaves the temporary file too. The file then holds step 2 or 3, and the resume is bit-identical.

    Kills: writing in place (a torn file), no rename (nothing new ever lands), two files (the
    format-1 JSON and tensors could disagree), a leftover temporary file read or in the way."""
    data = scenario(method)
    out = tmp_path / "out"
    ref = reference(data)
    write = 3 if method == "fifo" else 2  # FIFO's first write is its base clip (step -1)
    _die_at(monkeypatch, point, write)
    with pytest.raises(Died):
        api.generate(data, checkpoint=store_for(out, data, every=1))
    monkeypatch.undo()
    assert saved_step(out) == POINTS[point]
    partial = io.partial_path(out / checkpoint.FILE)
    partial.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{torn")  # what a kill mid-write leaves
    got = resume_in_process(out, data)
    assert torch.equal(got.latent, ref.latent) and got.nfe == ref.nfe, point


def test_sigkill_inside_a_write_leaves_the_previous_step_and_a_partial_file(tmp_path, capsys):
    """A real crash between the write of the temporary file and its rename (the 3rd write: step
    3): the file holds step 2, the partial file is left beside it, and the resume ignores it,
    ends bit-identical and removes it.

    Kills: a resume that reads or trips over the partial file, or leaves it behind; a rename
    before the data is complete (the file would hold step 3)."""
    data = scenario("syncos")
    path, out = killed_run(tmp_path, data, "rename:3", "--checkpoint-every", "1")
    assert saved_step(out) == 1 and io.partial_path(out / checkpoint.FILE).is_file()
    assert main(["generate", str(path), "-o", str(out), "--resume", "--save-latent"]) == 0
    assert "resuming after step 2 of 12" in capsys.readouterr().err
    assert torch.equal(load_file(str(out / "latent.safetensors"))["latent"], reference(data).latent)
    assert sorted(p.name for p in out.iterdir()) == ["latent.safetensors", "run.json", "video.mp4"]


@pytest.mark.parametrize("keep", [7, 40, 0.5, 0.9, 0.999])
def test_a_torn_checkpoint_file_is_refused_with_one_line(tmp_path, capsys, keep):
    """A checkpoint cut short (by a copy, a full disk, a filesystem without atomic rename) is
    refused with one line at every length: inside the header's size, the header, the tensors.

    Kills: a reader that trusts whatever bytes it finds, or lets safetensors' error through."""
    data = scenario("codenoise")
    out = tmp_path / "out"
    interrupted_run(out, data)
    raw = (out / checkpoint.FILE).read_bytes()
    (out / checkpoint.FILE).write_bytes(raw[: keep if isinstance(keep, int) else int(keep * len(raw))])
    rc = main(["generate", str(write(tmp_path, data)), "-o", str(out), "--resume", "-q"])
    assert_one_line_refusal(rc, capsys.readouterr().err, "cannot be read")
    assert (out / checkpoint.FILE).is_file()  # left for the user


def _drop_rng(meta, tensors):
    del tensors["rng"]


def _extra_tensor(meta, tensors):
    tensors["state.ghost"] = torch.zeros(1)


def _short_rng(meta, tensors):
    tensors["rng"] = tensors["rng"][:100].clone()


def _latent_of_another_shape(meta, tensors):
    tensors["state.x"] = torch.zeros(3, 3)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m, t: m.update(step=12), "step 12 is outside the run's 12 steps"),
        (lambda m, t: m.update(step=-2), "step -2 is outside the run's 12 steps"),
        (lambda m, t: m.update(step="1"), "step '1' is outside"),
        (lambda m, t: m.update(format=1), "format 1, this syncos reads 2"),
        (lambda m, t: m.pop("nfe"), "cannot be read ('nfe')"),
        (lambda m, t: m["nfe"].update(stage1="many"), "its counts are not numbers"),
        (_drop_rng, "tensors ['rng'] are missing or not described"),
        (_extra_tensor, "tensors ['state.ghost'] are missing or not described"),
        (_short_rng, "the generator state is torch.uint8 (100,), not a CPU generator's"),
        (lambda m, t: m["values"].update(x={"tensor": "state.nowhere"}), "'state.nowhere' is described but"),
        (lambda m, t: m.update(total=7), "the checkpoint's loop has 7 steps, this run's 12"),
        (_latent_of_another_shape, "its x is ((3, 3), torch.float32), this run's ((3, 12, 32, 32), torch"),
        (lambda m, t: m["values"].pop("history"), "it holds ['x'], this sampler's loop ['history', 'x']"),
        (
            lambda m, t: m["values"].update(history={"value": 5}),
            "its history is int, this run's None or History",
        ),
        (lambda m, t: m["values"].update(history={"type": "History", "fields": []}), "cannot be read ("),
        (
            lambda m, t: m["values"].update(history={"type": "Popen", "fields": {}}),
            "unknown state type 'Popen'",
        ),
    ],
)
def test_a_checkpoint_whose_parts_disagree_is_refused_with_one_line(tmp_path, capsys, edit, message):
    """Kills: a resume that takes a step outside the loop, a generator state it cannot set, tensors
    the metadata does not name (or the reverse), or a state of other shapes (a traceback, or worse,
    a run that goes on from the wrong place)."""
    data = scenario("codenoise")
    out = tmp_path / "out"
    interrupted_run(out, data)
    rewrite(out, edit)
    rc = main(["generate", str(write(tmp_path, data)), "-o", str(out), "--resume", "-q"])
    assert_one_line_refusal(rc, capsys.readouterr().err, message)
    assert (out / checkpoint.FILE).is_file()  # a refused checkpoint is not deleted


def test_a_file_without_the_metadata_is_refused(tmp_path, capsys):
    data = scenario("codenoise")
    out = tmp_path / "out"
    out.mkdir()
    save_file({"rng": torch.zeros(3, dtype=torch.uint8)}, str(out / checkpoint.FILE))
    rc = main(["generate", str(write(tmp_path, data)), "-o", str(out), "--resume", "-q"])
    assert_one_line_refusal(rc, capsys.readouterr().err, "no 'syncos.checkpoint' metadata in its header")


def test_an_older_syncos_checkpoint_json_is_refused_then_replaced(tmp_path, capsys):
    """Format 1 (checkpoint.json beside the tensors) is refused with one line on --resume; a run
    without --resume replaces it; once a new checkpoint is written the stale JSON is gone.

    Kills: a resume that reads the JSON (its step may not be the tensors'), or trips over it."""
    data = scenario("codenoise")
    path, out = write(tmp_path, data), tmp_path / "out"
    out.mkdir()
    (out / checkpoint.LEGACY).write_text(json.dumps({"format": 1, "step": 3}))
    save_file({"rng": torch.zeros(5056, dtype=torch.uint8)}, str(out / checkpoint.FILE))
    rc = main(["generate", str(path), "-o", str(out), "--resume", "-q"])
    assert_one_line_refusal(rc, capsys.readouterr().err, "written by an older syncos (checkpoint format 1)")
    (out / checkpoint.FILE).unlink()
    rc = main(["generate", str(path), "-o", str(out), "--resume", "-q"])
    assert_one_line_refusal(rc, capsys.readouterr().err, "older syncos")

    interrupted_run(out, data)  # a new checkpoint supersedes the JSON
    assert not (out / checkpoint.LEGACY).exists()
    (out / checkpoint.LEGACY).write_text("{}")
    assert main(["generate", str(path), "-o", str(out), "--steps", "2"]) == 0
    assert "unfinished run's checkpoint will be replaced" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["run.json", "video.mp4"]


# ---- FIFO: the base clip is restored, never resampled --------------------------------------------


def _fifo_case():
    from dist_worker import make_plan
    from gaussian_backend import GaussianBackend
    from syncos.samplers import SAMPLERS

    backend = GaussianBackend()
    plan = make_plan(backend, (8, 8))
    return backend, plan, SAMPLERS["fifo"][1](steps=12, guidance_scale=2.0)


@pytest.mark.parametrize("stop", [-1, 0, 5])
def test_fifo_resumes_without_sampling_its_base_clip_again(tmp_path, stop):
    """FIFO stopped after its base clip (-1) or after loop step 0 or 5: the resumed run makes
    exactly the network calls of the steps left (none of the base clip's 12) and ends bit-identical.

    Kills: the base clip sampled before the checkpoint is restored (12 calls too many), or not
    checkpointed at once (a stop at -1 would leave nothing)."""
    backend, plan, options = _fifo_case()
    marks: list[int] = []
    ref = sample("fifo", backend, plan, options, seed=1, callback=lambda s: marks.append(len(backend.calls)))
    calls_total = len(backend.calls)
    assert marks[0] > 12  # the base clip's 12 calls and step 0's come first

    class Stop(BaseException):
        pass

    def stopper(s):
        if s.index == max(stop, 0):
            raise Stop  # a BaseException: nothing is flushed, the file holds what was written
        return True

    every = None if stop == -1 else 1
    stop_store = checkpoint.Checkpoint(tmp_path, {"case": "fifo"}, every=every)
    with pytest.raises(Stop):
        sample("fifo", backend, plan, options, seed=1, callback=stopper, checkpoint=stop_store)
    assert saved_step(tmp_path) == stop

    backend.calls.clear()
    go = checkpoint.Checkpoint(tmp_path, {"case": "fifo"})
    go.load()
    got = sample("fifo", backend, plan, options, seed=1, checkpoint=go)
    done = marks[stop] if stop >= 0 else marks[0] - (marks[1] - marks[0])
    assert len(backend.calls) == calls_total - done
    assert torch.equal(got.latent, ref.latent) and got.nfe == ref.nfe


# ---- what a resume must match ----------------------------------------------------------------


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


@pytest.mark.parametrize(
    "key, value",
    [
        ("syncos", "0.0.1"),
        ("torch", "1.0"),
        ("diffusers", "0.1"),
        ("transformers", "absent"),
        ("python", "2.7"),
    ],
)
def test_resume_refuses_another_package_version(tmp_path, capsys, key, value):
    """Kills: a fingerprint without that package's version (a scheduler grid can change between
    diffusers releases)."""
    data = scenario("codenoise")
    out = tmp_path / "out"
    interrupted_run(out, data)
    rewrite(out, lambda meta, tensors: meta["fingerprint"].update({key: value}))
    rc = main(["generate", str(write(tmp_path, data)), "-o", str(out), "--resume", "-q"])
    assert_one_line_refusal(
        rc, capsys.readouterr().err, f"cannot resume: {key} differs (checkpoint {value!r}, now"
    )


@pytest.mark.parametrize("key, value", [("device", "cuda (NVIDIA H200)"), ("dtype", "bfloat16")])
def test_resume_refuses_another_resolved_device_or_dtype(tmp_path, capsys, key, value):
    """The scenario leaves device and dtype to the default: what they resolved to is checked.

    Kills: a fingerprint of the scenario only (a CPU checkpoint continued on a GPU is not the run)."""
    data = scenario("codenoise")
    out = tmp_path / "out"
    interrupted_run(out, data)
    assert saved(out)["fingerprint"]["device"] == "cpu"
    rewrite(out, lambda meta, tensors: meta["fingerprint"].update({key: value}))
    rc = main(["generate", str(write(tmp_path, data)), "-o", str(out), "--resume", "-q"])
    assert_one_line_refusal(
        rc, capsys.readouterr().err, f"cannot resume: {key} differs (checkpoint {value!r}"
    )
    assert (out / checkpoint.FILE).is_file()


def test_the_fingerprint_holds_every_version_and_the_resolved_device_and_dtype(monkeypatch):
    from importlib import metadata

    real = metadata.version

    def version(name):
        if name == "transformers":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "version", version)
    fp = checkpoint.fingerprint({"seed": 1})
    assert fp["transformers"] == "absent" and fp["torch"] == real("torch") and fp["scenario"] == {"seed": 1}
    assert {"python", "syncos", "numpy", "diffusers"} <= set(fp)
    from gaussian_backend import GaussianBackend

    got = checkpoint.runtime(GaussianBackend())  # the spec's identity (diffusers: tests/diffusers)
    assert got["device"] == "cpu" and got["dtype"] == "float32" and got["model"]["family"] == "gaussian"
    from syncos.backends.toyworld import ToyWorldBackend

    assert checkpoint.runtime(ToyWorldBackend())["dtype"] == "n/a"


def test_resume_without_a_checkpoint_starts_over_and_a_stale_one_is_replaced(tmp_path, capsys):
    data = scenario("independent")
    path, out = write(tmp_path, data), tmp_path / "out"
    assert main(["generate", str(path), "-o", str(out), "--resume", "--steps", "2"]) == 0
    assert "no checkpoint in" in capsys.readouterr().err
    interrupted_run(out, data)
    io.partial_path(out / checkpoint.FILE).write_bytes(b"torn")  # a crash mid-write leaves it
    assert main(["generate", str(path), "-o", str(out), "--steps", "2"]) == 0
    assert "unfinished run's checkpoint will be replaced" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["run.json", "video.mp4"]


@pytest.mark.parametrize(
    "flag, value",
    [("--checkpoint-minutes", "0"), ("--checkpoint-minutes", "inf"), ("--checkpoint-every", "0")],
)
def test_checkpoint_flags_take_positive_numbers(tmp_path, capsys, flag, value):
    path = write(tmp_path, scenario("codenoise"))
    with pytest.raises(SystemExit) as e:
        main(["generate", str(path), "-o", str(tmp_path / "out"), flag, value])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and f"{flag}: expected a positive" in err, err


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
    assert step is not None and 0 <= step < 7 and not (two / "video.mp4").exists()

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
    from syncos.samplers import SAMPLERS
    from syncos.solvers import Solver

    backend = GaussianBackend()
    backend.solver = Solver("unipc", order=2)
    plan = make_plan(backend, (8, 8))
    options = SAMPLERS[method][1](steps=6, guidance_scale=2.0)
    if method == "syncos":
        options = SAMPLERS[method][1](steps=6, guidance_scale=2.0, iterations=1, t_min=800)
    ref = sample(method, backend, plan, options, seed=1)
    stop = checkpoint.Checkpoint(tmp_path, {"case": method})
    with pytest.raises(Cancelled):
        sample(method, backend, plan, options, seed=1, callback=lambda s: s.index < 3, checkpoint=stop)
    go = checkpoint.Checkpoint(tmp_path, {"case": method})
    assert go.load().step == 3 and go.saved.values["history"].x0  # a history with estimates in it
    got = sample(method, backend, plan, options, seed=1, checkpoint=go)
    assert torch.equal(got.latent, ref.latent) and got.nfe == ref.nfe and got.solver == ref.solver
