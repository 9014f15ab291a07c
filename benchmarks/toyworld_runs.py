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
    frames = np.stack(list(gen.frames()))
    metrics = evaluate_frames(gen, frames)
    record = {
        **{k: round(v, 4) for k, v in metrics.items()},
        "nfe_total": sum(gen.nfe.values()),
        "nfe": json.dumps(gen.nfe),
        "seconds": round(time.perf_counter() - start, 2),
        "noise_seed": seed,
    }
    return gen, frames, record


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
