"""What the length and contradiction benchmarks share: one toyworld run of a probe variant, and a
results CSV that an interrupted run resumes and a changed variant reruns (``--rerun``).

The settings are the comparison suite's (benchmarks/suites/toyworld/suite.yaml): 12 DDIM steps,
no classifier-free guidance, 10 CSD iterations, micro-batch 64; every scenario has its own seeds
(``syncos.bench.suite.scenario_seed``) and every variant of a scenario and seed starts from the
same noise, so differences between variants are paired.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import yaml
from syncos_probe import variant as sampler_of

import syncos
from syncos.api import Generation, evaluate_frames, video_events
from syncos.bench.suite import scenario_seed

SUITE = {"steps": 12, "guidance_scale": 1.0, "iterations": 10, "micro_batch": 64}


def run(name: str, scenario: dict, variant: str, k: int) -> tuple[Generation, np.ndarray, dict]:
    """Generate a scenario with a probe variant (``name`` or ``name+key=value``) from the scenario's
    k-th own seed (``scenario_seed``); (generation, frames, record with metrics, NFE, seconds)."""
    sampler = {**(scenario.get("sampler") or {}), **SUITE, **sampler_of(variant)}
    start = time.perf_counter()
    seed = scenario_seed(name, k)
    gen = syncos.generate({**scenario, "model": "toyworld", "sampler": sampler, "seed": seed})
    frames = gen.frames()
    metrics = evaluate_frames(gen, frames)
    record = {
        **{k: round(v, 4) for k, v in metrics.items()},
        "nfe_total": sum(gen.nfe.values()),
        "nfe": json.dumps(gen.nfe),
        "seconds": round(time.perf_counter() - start, 2),
        "noise_seed": seed,
    }
    return gen, frames, record


ROOT = Path(__file__).resolve().parent.parent
METHODS = ["independent", "codenoise", "fifo", "paper", "paper-renoise", "default"]


def parser(doc: str, suite: str, out: str, plot: str) -> argparse.ArgumentParser:
    """The options both scripts take; defaults: a suite folder, a results CSV and a plot, under ROOT."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--suite", type=Path, default=ROOT / suite)
    ap.add_argument(
        "--variants", nargs="*", default=METHODS, help="syncos_probe variants (name or name+key=value)"
    )
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--baseline", default="codenoise", help="the variant paired differences are taken to")
    ap.add_argument("--only", nargs="*", help="scenario names (default: all)")
    ap.add_argument("--rerun", nargs="*", default=[], help="variants whose rows are dropped and run again")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / out)
    ap.add_argument("--plot", type=Path, default=ROOT / plot)
    return ap


def scenarios_of(args: argparse.Namespace) -> dict[str, dict]:
    """The suite's scenarios (``--only`` some of them), by file name."""
    files = sorted(args.suite.glob("*.yaml"))
    return {p.stem: yaml.safe_load(p.read_text()) for p in files if not args.only or p.stem in args.only}


def check_arguments(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit 2 with one line on a variant the probe does not know or on --rerun without runs."""
    if args.report_only and args.rerun:
        ap.error("--rerun drops rows to run them again; it cannot go with --report-only")
    for v in {*args.variants, *args.rerun}:
        try:
            sampler_of(v)
        except SystemExit as e:
            ap.error(str(e))


def events_of(gen: Generation) -> list[tuple[int, int, str]]:
    """(start, end exclusive, local prompt) of every event, in video frames."""
    return video_events(gen.plan, gen.scenario)


class Results:
    """A CSV of runs keyed by ``key`` columns; rows of ``rerun`` variants are dropped on open."""

    def __init__(self, path: Path, key: tuple[str, ...], rerun: Iterable[str] = ()):
        self.path, self.key = path, key
        self.rows: list[dict] = []
        if path.exists():
            with path.open(newline="") as f:
                self.rows = list(csv.DictReader(f))
        drop = set(rerun)
        if drop and any(r["variant"] in drop for r in self.rows):
            self.rows = [r for r in self.rows if r["variant"] not in drop]
            self._rewrite()
        self.done = {tuple(r[k] for k in key) for r in self.rows}

    def has(self, **key) -> bool:
        return tuple(str(key[k]) for k in self.key) in self.done

    def add(self, row: dict) -> None:
        row = {k: str(v) for k, v in row.items()}
        new = not self.path.exists() or self.path.stat().st_size == 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not new and self.rows and list(self.rows[0]) != list(row):
            raise SystemExit(f"{self.path} has other columns; move it away or pass another --out")
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        self.rows.append(row)
        self.done.add(tuple(row[k] for k in self.key))

    def _rewrite(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            if self.rows:
                w = csv.DictWriter(f, fieldnames=list(self.rows[0]))
                w.writeheader()
                w.writerows(self.rows)
        tmp.replace(self.path)
