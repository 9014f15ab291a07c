"""Fuzz the command line: a few hundred mutated scenarios and option sets, each one either runs
or is refused with one line and exit 2, leaving nothing behind, in bounded memory.

The mutator is seeded (reproducible). Cases that pass validation run for real on toyworld, so
their number is capped (each takes ~1-2 s); the rest exercise the refusals.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from syncos.cli import _overrides, build_parser, main
from syncos.errors import UserError
from syncos.scenario import load_scenario
from test_cli import SCENARIO

# the command-line tests' scenario at its cheapest: one step of co-denoising by default
BASE = {**SCENARIO, "sampler": {"method": "codenoise", "steps": 1, "iterations": 1, "t_min": 0}}
CASES, SEED = 300, 13
MAX_RUNS = {"codenoise": 6, "independent": 2, "syncos": 3, "fifo": 1}  # FIFO takes >= L steps
MEMORY_BOUND = 1536 * 2**20  # bytes of peak RSS growth over the whole fuzz run

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
VALID = {  # in-range values, so that a share of the cases runs to the end
    "seed": [7, 2**63 - 1], "sampler.steps": [2], "sampler.guidance_scale": [1, 1.5],
    "sampler.negative_prompt": ["🎥 blur", ""], "sampler.lr": [0.3, 10], "sampler.micro_batch": [1, 4096],
    "sampler.stride": [12, 1], "sampler.prompt_mode": ["local-only"], "events[1].frames": [13],
    "events[0].prompt": ["the ball jumps ünïcödé 🎥"], "height": [256, None], "fps": [8], "device": ["cpu"],
    "global_prompt": ["a blue cube at night, then more words: 🎥 ünïcödé"],
}
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
TEXTS = [  # raw scenario files that are not valid documents
    "", "\x00\x01\x02", 'global_prompt: "a ball\nevents: []\n', "global_prompt: [unclosed\n", "- a list\n",
    "\ufeffglobal_prompt: a ball\n", "{",
    "global_prompt: a ball\nevents:\n  - {prompt: jumps, frames: .nan}\n",
    "a: &x [*x]\n", "global_prompt: !!python/object:os.system echo\n", "[" * 50_000,
    "a:\n" + " - " * 3000 + "1\n",
    "a: &a [x, x, x, x, x, x, x, x, x]\n"  # "billion laughs": 9**8 values once the anchors are expanded
    + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefg", "bcdefgh", strict=True))
    + "global_prompt: *h\n",
]
# fmt: on


def _set(raw: dict, key: str, value, rng: random.Random) -> None:
    """Set (or, one time in eight, delete) ``key`` in the raw scenario, creating sections on the way."""
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
                return
            node = node[p]
        else:
            if not isinstance(node, dict):
                return
            if not isinstance(node.get(p), (dict, list)):
                node[p] = {}
            node = node[p]
    last = parts[-1]
    if isinstance(last, int):
        if isinstance(node, list) and last < len(node):
            node[last] = value
    elif isinstance(node, dict):
        if rng.random() < 0.125:
            node.pop(last, None)
        else:
            node[last] = value


def mutate(rng: random.Random) -> tuple[dict | str, list[str], str]:
    """(scenario mapping or raw text, extra command-line arguments, file suffix)."""
    if rng.random() < 0.05:
        return rng.choice(TEXTS), [], rng.choice([".yaml", ".json"])
    raw = json.loads(json.dumps(BASE))
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.4:
            key = rng.choice(list(VALID))
            _set(raw, key, rng.choice(VALID[key]), rng)
        else:
            _set(raw, rng.choice(KEYS), rng.choice(VALUES), rng)
    args: list[str] = []
    for _ in range(rng.choice([0, 0, 1, 2])):
        args += ["--set", rng.choice(OVERRIDES)]
    if rng.random() < 0.3:
        args += rng.choice(FLAGS)
    return raw, args, rng.choice([".yaml", ".yaml", ".json"])


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
        assert all(0.0 <= v <= 1.0 for v in run["metrics"].values()), f"{label}: {run['metrics']}"
        assert (out / "video.mp4").stat().st_size > 0


def test_fuzz_command_line(tmp_path, monkeypatch):
    import syncos.api

    monkeypatch.setattr(syncos.api, "_available_memory", lambda device: (8 * 2**30, "this machine"))
    rng = random.Random(SEED)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    codes = {0: 0, 2: 0}
    runs = dict.fromkeys(MAX_RUNS, 0)
    i = 0
    while sum(codes.values()) < CASES:
        i += 1
        scenario, args, suffix = mutate(rng)
        case = tmp_path / f"case{i}"
        case.mkdir()
        path = case / f"scenario{suffix}"
        _write(path, scenario)
        out = case / "out" / "nested"
        argv = ["generate", str(path), "-o", str(out), "--quiet", *args]
        method = _method_if_valid(argv)
        if method is not None:
            if runs[method] >= MAX_RUNS[method]:  # enough full runs of this sampler: draw another case
                path.unlink()
                case.rmdir()
                continue
            runs[method] += 1
        listing = sorted(p.name for p in case.iterdir())
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as e:  # argparse's usage errors
                code = e.code if isinstance(e.code, int) else 2
        _check_outcome(code, err.getvalue(), case, out, listing, f"case {i}: {argv[1:]}")
        codes[code] += 1
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert grown < MEMORY_BOUND, f"peak RSS grew by {grown / 2**20:.0f} MiB"
    print(f"fuzz: {codes} exit codes, {runs} full runs, peak RSS grew {grown / 2**20:.0f} MiB")
    # both outcomes were exercised: the fuzz is not just a list of refusals
    assert codes[0] >= 3 and codes[2] >= 0.8 * CASES, codes


@pytest.mark.parametrize(
    "change,args",
    [
        ({"events": [{"prompt": "the ball jumps", "frames": 10**9}]}, []),
        ({}, ["--set", "events[0].frames=99999"]),  # passes the frame cap; refused by the memory check
        ({}, ["--steps", "1", "--set", "sampler.lr=0.3"]),  # codenoise does not use lr: runs, kept
    ],
)
def test_fuzz_real_process(tmp_path, change, args):
    """A handful through a real process: exit code, stderr, nothing left, the child's peak memory."""
    case = tmp_path / "case"
    case.mkdir()
    path = case / "s.yaml"
    path.write_text(yaml.safe_dump({**BASE, **change}))
    out = case / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    code = (
        "import resource, sys\nimport syncos.api\nfrom syncos.cli import main\n"
        # the same 8 GiB on every machine, so the memory check refuses the same videos everywhere
        "syncos.api._available_memory = lambda device: (8 * 2**30, 'this machine')\n"
        "rc = main(sys.argv[1:])\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\nsys.exit(rc)\n"
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
    assert peak_kib * 1024 < MEMORY_BOUND, f"peak RSS {peak_kib / 1024:.0f} MiB"
