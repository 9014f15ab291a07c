"""Fuzz the command line: a few hundred mutated scenarios and option sets, each one either runs
or is refused with one line and exit 2, leaving nothing behind, in bounded memory.

Every case runs in a forked child that measures its own peak memory growth (so one case's
growth cannot hide under an earlier case's peak). A mutation drawn from ``BAD`` must be refused
and a case built only from ``VALID`` values must run: a validator that wrongly accepts (or
wrongly refuses) one of those fails the fuzz, not only a crash. Other random values are only
held to "runs or refuses cleanly".

The mutator is seeded (reproducible). Cases that pass validation run for real on toyworld, so
their number is capped (each takes ~1-2 s); the rest exercise the refusals.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from syncos.backends.toyworld.metrics import COUNTS
from syncos.cli import _overrides, build_parser, main
from syncos.errors import UserError
from syncos.scenario import load_scenario
from test_cli import SCENARIO

# the command-line tests' scenario at its cheapest: one step of co-denoising by default
BASE = {**SCENARIO, "sampler": {"method": "codenoise", "steps": 1, "iterations": 1, "t_min": 0}}
CASES, SEED = 300, 13
MAX_RUNS = {"codenoise": 6, "independent": 2, "syncos": 3, "fifo": 1}  # FIFO takes >= L steps
# Peak RSS growth of one case over its process's RSS when it starts (a forked child that already
# holds torch and syncos). Measured: at most ~200 MiB over this fuzz's cases (toyworld runs).
CASE_BOUND = 400 * 2**20
# Peak RSS of a whole fresh process (python, torch, syncos, one toyworld run). Measured: 230 MiB
# for a refusal, 310 MiB for a 1-step co-denoising run, 390 MiB for 4 steps of SynCoS.
PROCESS_BOUND = 768 * 2**20

# fmt: off
VALUES = [
    None, True, False, "", "abc", [], [1, 2], {}, {"a": 1},  # types
    -1, 0, 1, 2, 2.5, -0.0, 1e-300, 12, 13,  # ranges
    float("nan"), float("inf"), float("-inf"),  # non-finite
    10**9, 2**63, 10**30, 1e308, 100_001, "9" * 400,  # huge
    "ünïcödé", "🎥 the ball", "\x00", "a\nb", "ball " * 2000, "\u202e",  # unicode, control characters
]
KEYS = [
    "model", "global_prompt", "events", "sampler", "seed", "height", "width", "fps", "dtype", "device",
    "cpu_offload", "vae_tiling", "vae_slicing", "model_options", "colour", "🎥",
    "events[0]", "events[0].prompt", "events[0].frames", "events[0].seconds", "events[1].frames",
    "events[0].unknown", "sampler.method", "sampler.steps", "sampler.guidance_scale", "sampler.lr",
    "sampler.stride", "sampler.prompt_mode", "sampler.iterations", "sampler.t_min", "sampler.minibatch",
    "sampler.micro_batch", "sampler.negative_prompt", "sampler.optimizer", "sampler.weight_decay",
    "sampler.partitions", "sampler.timesteps", "sampler.lookahead", "sampler.kernel", "sampler.chain_rule",
    "sampler.lrate", "model_options.display_scale", "model_options.chunk_length", "model_options.contrast",
    "model_options.prediction", "model_options.nope",
]
VALID = {  # in-range values, so that a share of the cases runs to the end; any mix of them must run
    "seed": [7, 2**63 - 1], "sampler.steps": [2], "sampler.guidance_scale": [1, 1.5],
    "sampler.negative_prompt": ["🎥 blur", ""], "sampler.lr": [0.3, 10], "sampler.micro_batch": [1, 4096],
    "sampler.stride": [12, 1], "sampler.prompt_mode": ["local-only"], "events[1].frames": [13],
    "events[0].prompt": ["the ball jumps ünïcödé 🎥"], "height": [256, None], "fps": [8], "device": ["cpu"],
    "global_prompt": ["a blue cube at night, then more words: 🎥 ünïcödé"],
}
BAD = {  # values that must be refused whatever else the case holds
    "seed": [-1, 2**63, 2.5, True, "7"], "sampler.steps": [0, -1, 2.5, "2", 10**6],
    "sampler.guidance_scale": [0.5, -1, float("nan"), "abc"], "sampler.lr": [-1, 11, float("inf")],
    "sampler.micro_batch": [0, 4097], "sampler.stride": [0, -1, 999, "AUTO", 2.5],
    "sampler.method": ["magic", "", None], "sampler.optimizer": ["adam"], "sampler.nope": [1],
    "events[0].frames": [0, -1, 2.5, True, 10**9], "events[0].prompt": ["", "   ", 3, None],
    "events": [[], {}, "x"], "global_prompt": ["", " ", 3, None], "height": [7, 0, -1, 100, 10**9],
    "fps": [0, -1, 3, 1e308], "dtype": ["float64", ""], "device": ["tpu", "cuda:99", ""],
    "model": ["", "no/such/model"], "model_options.nope": [1], "model_options.chunk_length": [0, -1],
    "vae_tiling": [True], "🎥": [1], "model_options": [False, 0, "", []],  # these four: accepted before
}
OVERRIDES_BAD = {
    "=3", "sampler.lr", "sampler..lr=1", "sampler.lr=.nan", "sampler.lr=-1", "sampler.lr=abc", "seed=-1",
    "seed=zero", "height=480", "sampler.guidance_scale=-1", "sampler.guidance_scale=.inf", "sampler.steps=0",
    "sampler.steps=1000000", "model=", "model=no/such/model", "fps=1e400", "sampler.method=magic",
    "sampler.stride=999", "🎥=1", "events[5].frames=3", "events[0]=5", "events.x=1", "sampler[0]=1",
    "events[0].frames=1e9", "sampler.lr=[1, 2]",
}
OVERRIDES_OK = {"events[0].frames=30", "sampler.stride=2"}
OVERRIDES = [
    "events[0].frames=30", "events[5].frames=3", "events[0]=5", "events.x=1", "sampler[0]=1", "sampler..lr=1",
    "=3", "sampler.lr", "sampler.lr=[1, 2]", "sampler.lr=.nan", "sampler.lr=-1", "sampler.lr=abc",
    "events[0].frames=1e9", "events[0].frames=1000000000", "seed=-1", "seed=zero", "height=480",
    "sampler.guidance_scale=-1", "sampler.guidance_scale=.inf", "sampler.steps=0", "sampler.steps=1000000",
    "model=", "model=no/such/model", "fps=1e400", "sampler.method=magic", "global_prompt=zzz qqq",
    "model_options.display_scale=100000", "sampler.partitions=1000", "sampler.stride=999", "🎥=1",
    "sampler.stride=2",
]
FLAGS = [
    ["--method", "fifo"], ["--method", "syncos"], ["--method", "independent"], ["--method", "magic"],
    ["--steps", "0"], ["--steps", "-3"], ["--steps", "x"], ["--steps", "2"], ["--seed", "-1"],
    ["--seed", str(2**64)], ["--seed", "nan"], ["--model", "🎥"], ["--gif"], ["--bogus"],
    ["--dist-timeout", "x"],
]
FLAGS_BAD = [
    ["--method", "magic"], ["--steps", "0"], ["--steps", "-3"], ["--steps", "x"], ["--seed", "-1"],
    ["--seed", str(2**64)], ["--seed", "nan"], ["--model", "🎥"], ["--bogus"], ["--dist-timeout", "x"],
]
FLAG_KEYS = {"--method": "sampler.method", "--steps": "sampler.steps", "--seed": "seed", "--model": "model"}
TEXTS = [  # raw scenario files that are not valid scenarios: all must be refused
    "", "\x00\x01\x02", 'global_prompt: "a ball\nevents: []\n', "global_prompt: [unclosed\n", "- a list\n",
    "\ufeffglobal_prompt: a ball\n", "{",
    "global_prompt: a ball\nevents:\n  - {prompt: jumps, frames: .nan}\n",
    "a: &x [*x]\n", "global_prompt: !!python/object:os.system echo\n", "[" * 50_000,
    "a:\n" + " - " * 3000 + "1\n",
    "a: &a [x, x, x, x, x, x, x, x, x]\n"  # "billion laughs": 9**8 values once the anchors are expanded
    + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefg", "bcdefgh", strict=True))
    + "global_prompt: *h\n",
    # a key given twice: parsers keep the last one silently (accepted before it was refused)
    "global_prompt: a ball\nseed: 1\nseed: 2\nevents:\n  - {prompt: jumps, frames: 12}\n",
    "global_prompt: a ball\nevents:\n  - {prompt: jumps, frames: 12, frames: 24}\n",
]
# fmt: on


def _set(raw: dict, key: str, value, rng: random.Random) -> bool:
    """Set (or, one time in eight, delete) ``key`` in the raw scenario, creating sections on the way;
    False if it deleted the key or could not reach it (then the case's outcome is not known)."""
    parts: list = []
    for name in key.split("."):
        base, _, index = name.partition("[")
        parts.append(base)
        if index:
            parts.append(int(index.rstrip("]")))
    node = raw
    for p in parts[:-1]:
        if isinstance(p, int):
            if not isinstance(node, list) or p >= len(node):
                return False
            node = node[p]
        else:
            if not isinstance(node, dict):
                return False
            if not isinstance(node.get(p), (dict, list)):
                node[p] = {}
            node = node[p]
    last = parts[-1]
    if isinstance(last, int):
        if isinstance(node, list) and last < len(node):
            node[last] = value
            return True
        return False
    if not isinstance(node, dict):
        return False
    if rng.random() < 0.125:
        node.pop(last, None)
        return False
    node[last] = value
    return True


def _related(a: str, b: str) -> bool:
    """One key is the other or inside it (a later change to one can undo the other)."""
    a, b = a.replace("[", ".["), b.replace("[", ".[")
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def mutate(rng: random.Random) -> tuple[dict | str, list[str], str, str | None]:
    """(scenario mapping or raw text, extra command-line arguments, file suffix, expected outcome:
    "refuse", "accept" or None where the mutation's validity is not known here)."""
    if rng.random() < 0.05:
        return rng.choice(TEXTS), [], rng.choice([".yaml", ".json"]), "refuse"
    raw = json.loads(json.dumps(BASE))
    changed: list[tuple[str, str | None]] = []  # (key, "good" / "bad" / None)
    for _ in range(rng.randint(1, 3)):
        draw = rng.random()
        table, kind = (VALID, "good") if draw < 0.4 else (BAD, "bad") if draw < 0.6 else (None, None)
        key = rng.choice(list(table)) if table else rng.choice(KEYS)
        value = rng.choice(table[key]) if table else rng.choice(VALUES)
        changed.append((key, kind if _set(raw, key, value, rng) else None))
    args: list[str] = []
    for _ in range(rng.choice([0, 0, 1, 2])):
        item = rng.choice(OVERRIDES)
        args += ["--set", item]
        kind = "bad" if item in OVERRIDES_BAD else "good" if item in OVERRIDES_OK else None
        changed.append((item.partition("=")[0].strip() or "=", kind))
    if rng.random() < 0.3:
        flag = rng.choice(FLAGS)
        args += flag
        changed.append((FLAG_KEYS.get(flag[0], flag[0]), "bad" if flag in FLAGS_BAD else "good"))
    keys = [k for k, _ in changed]
    if any(_related(a, b) for i, a in enumerate(keys) for b in keys[i + 1 :]):
        expect = None  # a later change may undo an earlier one
    elif any(kind == "bad" for _, kind in changed):
        expect = "refuse"
    else:
        expect = "accept" if all(kind == "good" for _, kind in changed) else None
    return raw, args, rng.choice([".yaml", ".yaml", ".json"]), expect


def _write(path: Path, scenario: dict | str) -> None:
    if isinstance(scenario, str):
        path.write_text(scenario, encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text(json.dumps(scenario), encoding="utf-8")  # NaN/Infinity as JSON5-ish literals
    else:
        path.write_text(yaml.safe_dump(scenario, allow_unicode=True), encoding="utf-8")


def _method_if_valid(argv: list[str]) -> str | None:
    """The sampler a case would run if it passes validation (None if refused): caps the slow cases."""
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            args = build_parser().parse_args(argv)
            return load_scenario(args.scenario, _overrides(args)).method
        except (SystemExit, UserError):
            return None


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def _check_outcome(code: int, err: str, case: Path, out: Path, listing: list[str], label: str) -> None:
    assert code in (0, 2), f"{label}: exit {code}\n{err}"
    assert "Traceback" not in err, f"{label}: traceback\n{err}"
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and ": error: " in lines[0], f"{label}: not one line\n{err}"
        left = sorted(p.name for p in case.iterdir())
        assert left == listing, f"{label}: exit 2 left {sorted(set(left) - set(listing))} behind"
    else:
        run = _strict((out / "run.json").read_text(encoding="utf-8"))
        scores = {k: v for k, v in run["metrics"].items() if k not in COUNTS}  # counts: 0 and up
        assert all(0.0 <= v <= 1.0 for v in scores.values()), f"{label}: {run['metrics']}"
        assert all(run["metrics"][k] >= 0 for k in COUNTS), f"{label}: {run['metrics']}"
        assert (out / "video.mp4").stat().st_size > 0


def _kib(field: str) -> int:
    """A VmRSS / VmHWM line of /proc/self/status, in KiB."""
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _run_in_child(argv: list[str]) -> tuple[int, str, int]:
    """``syncos`` with ``argv`` in a forked child: (exit code, stderr, the child's peak RSS growth
    in bytes over its RSS at the start, its peak reset first so the parent's cannot count)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read)
            import torch

            torch.set_num_threads(1)
            with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
                f.write("5")  # reset VmHWM (the peak) to the current RSS
            start = _kib("VmRSS")
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                try:
                    code = main(argv)
                except SystemExit as e:  # argparse's usage errors
                    code = e.code if isinstance(e.code, int) else 2
            result = [code, err.getvalue(), (_kib("VmHWM") - start) * 1024]
        except BaseException as e:  # noqa: BLE001 (reported to the parent, which fails the case)
            result = [99, f"Traceback (in the fuzz child) {type(e).__name__}: {e}", 0]
        with os.fdopen(write, "w", encoding="utf-8") as f:
            json.dump(result, f)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, encoding="utf-8") as f:
        text = f.read()
    os.waitpid(pid, 0)
    code, err, grown = json.loads(text)
    return code, err, grown


def test_fuzz_command_line(tmp_path, monkeypatch):
    """Kills: a validator that accepts a known-bad value or refuses a known-good mix (the oracle of
    ``BAD`` / ``VALID``); a traceback or a multi-line error; a refusal that leaves files; one case
    whose memory grows past ``CASE_BOUND`` even when an earlier case peaked higher."""
    import syncos.api

    monkeypatch.setattr(syncos.api, "_available_memory", lambda device: (8 * 2**30, "this machine"))
    rng = random.Random(SEED)
    codes = {0: 0, 2: 0}
    runs = dict.fromkeys(MAX_RUNS, 0)
    expected = {"accept": 0, "refuse": 0}
    peak = 0
    i = 0
    while sum(codes.values()) < CASES:
        i += 1
        scenario, args, suffix, expect = mutate(rng)
        case = tmp_path / f"case{i}"
        case.mkdir()
        path = case / f"scenario{suffix}"
        _write(path, scenario)
        out = case / "out" / "nested"
        argv = ["generate", str(path), "-o", str(out), "--quiet", *args]
        method = _method_if_valid(argv)
        if method is not None and expect != "refuse":  # (a known-bad case always runs: it must fail)
            if runs[method] >= MAX_RUNS[method]:  # enough full runs of this sampler: draw another case
                path.unlink()
                case.rmdir()
                continue
            runs[method] += 1
        listing = sorted(p.name for p in case.iterdir())
        code, err, grown = _run_in_child(argv)
        label = f"case {i}: {argv[1:]}"
        _check_outcome(code, err, case, out, listing, label)
        if expect is not None:
            assert code == (0 if expect == "accept" else 2), (
                f"{label}: expected to {expect}, exit {code}\n{err}"
            )
            expected[expect] += 1
        assert grown < CASE_BOUND, f"{label}: peak RSS grew by {grown / 2**20:.0f} MiB"
        peak = max(peak, grown)
        codes[code] += 1
    print(
        f"fuzz: {codes} exit codes, {runs} full runs, {expected} known outcomes, peak {peak / 2**20:.0f} MiB"
    )
    # both outcomes were exercised, and the oracle judged a real share of the cases
    assert codes[0] >= 3 and codes[2] >= 0.8 * CASES, codes
    assert expected["accept"] >= 2 and expected["refuse"] >= 0.2 * CASES, expected


def test_every_known_bad_input_is_refused_alone(tmp_path, monkeypatch):
    """Each ``BAD`` value, ``--set`` override and flag on the base scenario, and each raw text, is
    refused with exit 2 and one line (the random fuzz meets each only by chance). Kills: any
    validator check dropped (e.g. a negative seed or a duplicate key accepted)."""
    import syncos.api

    monkeypatch.setattr(syncos.api, "_available_memory", lambda device: (8 * 2**30, "this machine"))
    cases: list[tuple[dict | str, list[str], str]] = [(text, [], ".yaml") for text in TEXTS]
    for key, values in BAD.items():
        for value in values:
            raw = json.loads(json.dumps(BASE))
            _set(raw, key, value, random.Random(0))  # Random(0) first draws 0.84: sets, never deletes
            cases.append((raw, [], ".json" if value != value else ".yaml"))  # NaN: only JSON writes it
    cases += [(BASE, ["--set", item], ".yaml") for item in sorted(OVERRIDES_BAD)]
    cases += [(BASE, flag, ".yaml") for flag in FLAGS_BAD]
    for i, (scenario, args, suffix) in enumerate(cases):
        case = tmp_path / f"case{i}"
        case.mkdir()
        path = case / f"scenario{suffix}"
        _write(path, scenario)
        argv = ["generate", str(path), "-o", str(case / "out"), "--quiet", *args]
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 2
        label = f"{scenario if isinstance(scenario, str) else ''}{argv[1:]}"
        assert code == 2, f"accepted: {label}"
        _check_outcome(code, err.getvalue(), case, case / "out", [path.name], label)


@pytest.mark.parametrize(
    "change,args",
    [
        ({"events": [{"prompt": "the ball jumps", "frames": 10**9}]}, []),
        ({}, ["--set", "events[0].frames=99999"]),  # passes the frame cap; refused by the memory check
        ({}, ["--steps", "1", "--set", "sampler.lr=0.3"]),  # codenoise does not use lr: runs, kept
    ],
)
def test_fuzz_real_process(tmp_path, change, args):
    """A handful through a real process: exit code, stderr, nothing left, the whole process's peak
    memory (python and torch included). Kills: a refusal that allocates the video first."""
    case = tmp_path / "case"
    case.mkdir()
    path = case / "s.yaml"
    path.write_text(yaml.safe_dump({**BASE, **change}))
    out = case / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    code = (
        "import sys\nimport syncos.api\nfrom syncos.cli import main\n"
        # the same 8 GiB on every machine, so the memory check refuses the same videos everywhere
        "syncos.api._available_memory = lambda device: (8 * 2**30, 'this machine')\n"
        "rc = main(sys.argv[1:])\n"
        # VmHWM, not ru_maxrss: Linux carries the parent's high-water mark across fork + exec into
        # ru_maxrss, so a large pytest process would be billed to the child
        "peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
        "print(peak)\nsys.exit(rc)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code, "generate", str(path), "-o", str(out), "--quiet", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    _check_outcome(p.returncode, p.stderr, case, out, ["s.yaml"], f"{change} {args}")
    peak_kib = int(p.stdout.split()[-1])
    assert peak_kib * 1024 < PROCESS_BOUND, f"peak RSS {peak_kib / 1024:.0f} MiB"
