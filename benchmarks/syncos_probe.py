"""Which parts of SynCoS help on toyworld, and why: a small grid of sampler variants.

Each variant runs the same scenarios and seeds; the script prints one row per variant with the
mean and a 95% interval (t-distribution over scenario x seed) of every toyworld metric, and
appends raw rows to a CSV so an interrupted run resumes.

    OMP_NUM_THREADS=1 python benchmarks/syncos_probe.py --seeds 4 --out benchmarks/results/probe.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

import syncos
from syncos.api import evaluate_frames

SCENARIOS = {
    # colour and lighting left open: chunks must agree on them with no prompt to pin them
    "open-colour": {
        "global_prompt": "a ball on the grass",
        "events": [
            {"prompt": "the ball moves to the right", "frames": 24},
            {"prompt": "the ball jumps", "frames": 24},
        ],
    },
    # everything global pinned, drift (hue, brightness) is what can go wrong
    "pinned": {
        "global_prompt": "a red ball on green grass by day",
        "events": [
            {"prompt": "the ball moves to the right", "frames": 24},
            {"prompt": "the ball stays still", "frames": 24},
        ],
    },
    "story": {
        "global_prompt": "a blue square in the desert",
        "events": [
            {"prompt": "the square grows", "frames": 16},
            {"prompt": "the square moves to the left", "frames": 16},
            {"prompt": "night falls", "frames": 16},
        ],
    },
}

VARIANTS = {
    "codenoise": {"method": "codenoise"},
    "syncos (paper)": {"method": "syncos"},
    "syncos reversion=predicted": {"method": "syncos", "reversion": "predicted"},
    "syncos kernel=clean": {"method": "syncos", "kernel": "clean"},
    "syncos lr=0.05": {"method": "syncos", "lr": 0.05},
    "syncos lr=0.05 clean t_min=700": {"method": "syncos", "lr": 0.05, "kernel": "clean", "t_min": 700.0},
    "syncos t_min=700": {"method": "syncos", "t_min": 700.0},
    "syncos clean t_min=700": {"method": "syncos", "kernel": "clean", "t_min": 700.0},
    "syncos chain_rule": {"method": "syncos", "chain_rule": True},
    "syncos chain_rule lr=0.05": {"method": "syncos", "chain_rule": True, "lr": 0.05},
    "syncos chain_rule clean lr=0.05": {
        "method": "syncos",
        "chain_rule": True,
        "kernel": "clean",
        "lr": 0.05,
    },
}
METRICS = (
    "subject_consistency",
    "background_consistency",
    "global_fidelity",
    "local_fidelity",
    "smoothness",
    "clean",
)


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of a 95% t-interval."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), float("nan")
    t = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 8: 2.36, 10: 2.26, 12: 2.20, 16: 2.13}
    crit = t.get(len(v), 2.0 if len(v) > 16 else 2.26)
    return float(v.mean()), float(crit * v.std(ddof=1) / math.sqrt(len(v)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first..first+N-1 (fresh ones confirm)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--out", default="benchmarks/results/probe.csv")
    ap.add_argument("--baseline", default="codenoise")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.exists():
        with out.open() as f:
            done = {(r["variant"], r["scenario"], int(r["seed"])) for r in csv.DictReader(f)}
    fields = ["variant", "scenario", "seed", *METRICS, "seconds", "nfe"]
    with out.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        if not done:
            w.writeheader()
        for variant in args.variants:
            for name, sc in SCENARIOS.items():
                for seed in range(args.first_seed, args.first_seed + args.seeds):
                    if (variant, name, seed) in done:
                        continue
                    sampler = {"steps": args.steps, "guidance_scale": 6.0, **VARIANTS[variant]}
                    start = time.perf_counter()
                    gen = syncos.generate({**sc, "sampler": sampler, "seed": seed})
                    m = evaluate_frames(gen, np.stack(list(gen.frames())))
                    w.writerow(
                        {
                            "variant": variant,
                            "scenario": name,
                            "seed": seed,
                            **{k: round(m[k], 4) for k in METRICS},
                            "seconds": round(time.perf_counter() - start, 2),
                            "nfe": json.dumps(gen.nfe),
                        }
                    )
                    f.flush()
    with out.open() as f:
        rows = list(csv.DictReader(f))
    print(f"| variant | n | {' | '.join(METRICS)} |")
    print("|---" * (len(METRICS) + 2) + "|")
    for variant in args.variants:
        rs = [r for r in rows if r["variant"] == variant]
        cells = []
        for k in METRICS:
            mean, half = interval([float(r[k]) for r in rs])
            cells.append(f"{mean:.3f} ± {half:.3f}")
        print(f"| {variant} | {len(rs)} | {' | '.join(cells)} |")
    # Paired by scenario and seed (same initial noise), the differences are much tighter.
    base = {(r["scenario"], r["seed"]): r for r in rows if r["variant"] == args.baseline}
    print(f"\nDifference to {args.baseline}, paired by scenario and seed:\n")
    print(f"| variant | n | {' | '.join(METRICS)} |")
    print("|---" * (len(METRICS) + 2) + "|")
    for variant in args.variants:
        rs = [r for r in rows if r["variant"] == variant and (r["scenario"], r["seed"]) in base]
        if variant == args.baseline or not rs:
            continue
        cells = []
        for k in METRICS:
            mean, half = interval([float(r[k]) - float(base[(r["scenario"], r["seed"])][k]) for r in rs])
            cells.append(f"{mean:+.3f} ± {half:.3f}")
        print(f"| {variant} | {len(rs)} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
