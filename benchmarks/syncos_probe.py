"""Which parts of SynCoS earn what on toyworld: sampler variants over a folder of scenarios.

Every variant runs every scenario and seed with the same initial noise; rows go to a CSV (an
interrupted run resumes). The report averages the seeds within each scenario first, then gives
the mean over scenarios and its 95% t-interval, the same for the difference to a baseline
paired by scenario, and the network evaluations (NFE) of every row next to its quality.

    OMP_NUM_THREADS=1 python benchmarks/syncos_probe.py benchmarks/suites/toyworld \\
        --seeds 2 --out benchmarks/results/probe/suite.csv --variants codenoise default renoise
    # another resolution / the flow schedule: --model-option scale=2 / --model-option schedule=flow
    # the CPU examples as written (50 steps, guidance 6, their own seed):
    python benchmarks/syncos_probe.py examples --as-written --seeds 1 --out ... \
        --only ball_story beach_day desert_walk snow_compare --variants independent codenoise default
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import yaml

import syncos
from syncos.api import evaluate_frames
from syncos.bench.report import interval
from syncos.bench.suite import scenario_seed, split_method

METRICS = (
    "subject_consistency",
    "background_consistency",
    "global_fidelity",
    "local_fidelity",
    "smoothness",
    "clean",
)

# name -> sampler section (method + options); the comparison's rows and the levers of issue 10
VARIANTS: dict[str, dict] = {
    "independent": {"method": "independent"},
    "codenoise": {"method": "codenoise"},
    "fifo": {"method": "fifo"},
    "extend": {"method": "extend"},
    "paper": {"method": "syncos", "preset": "paper"},
    "default": {"method": "syncos"},
    # the re-noise control of a SynCoS variant: the same window, no CSD move
    "paper-renoise": {"method": "syncos", "preset": "paper", "iterations": 0},
    "renoise": {"method": "syncos", "iterations": 0},
    "renoise-t500": {"method": "syncos", "iterations": 0, "t_min": 500.0},
    "renoise-snr": {"method": "syncos", "iterations": 0, "sync_until": -2.25},
    # the same bound with a resolution term, + log(h w / 1024): at toyworld scale 2, -2.25 - log 4
    "renoise-res": {"method": "syncos", "iterations": 0, "sync_until": -3.64},
    "shifted": {"method": "syncos", "layout": "shifted", "sync_until": -60.0, "sync_from": -61.0},
    "shifted-renoise": {"method": "syncos", "layout": "shifted", "iterations": 0},
    "shifted-csd": {"method": "syncos", "layout": "shifted", "lr": 0.05, "kernel": "clean", "iterations": 5},
    "csd": {"method": "syncos", "lr": 0.05, "kernel": "clean", "iterations": 5},
    "variant700": {"method": "syncos", "t_min": 700.0, "lr": 0.05, "kernel": "clean"},
    "variant700-renoise": {"method": "syncos", "t_min": 700.0, "iterations": 0},
    "renoise-1": {"method": "syncos", "iterations": 0, "sync_until": -1.0},
    "renoise-3.5": {"method": "syncos", "iterations": 0, "sync_until": -3.5},
    "renoise-0": {"method": "syncos", "iterations": 0, "sync_until": 0.0},
    "pyramid": {"method": "syncos", "blend": "pyramid", "sync_until": -60.0, "sync_from": -61.0},
    "pyramid-renoise-1": {"method": "syncos", "blend": "pyramid", "iterations": 0, "sync_until": -1.0},
    "stage2-only": {"method": "syncos", "preset": "paper", "stage1": False},
}


def variant(name: str) -> dict:
    """A VARIANTS entry with ``+key=value`` overrides: ``renoise+t_min=500``, ``default+iterations=3``
    (parsed as ``syncos bench`` parses its methods)."""
    base, plus = split_method(name)
    if base not in VARIANTS:
        raise SystemExit(f"unknown variant {base!r}; known: {', '.join(VARIANTS)}")
    return {**VARIANTS[base], **plus}


def scenarios_of(folder: Path) -> dict[str, dict]:
    files = sorted(
        p for p in folder.iterdir() if p.suffix in (".yaml", ".yml", ".json") and p.name != "suite.yaml"
    )
    return {p.stem: yaml.safe_load(p.read_text()) for p in files}


def scenario_means(
    rows: list[dict], keys: tuple[str, ...] = (*METRICS, "nfe_total")
) -> dict[tuple[str, str], dict[str, float]]:
    """(variant, scenario) -> metric -> mean over that scenario's seeds (NFE included)."""
    per = defaultdict(lambda: defaultdict(list))
    for r in rows:
        for k in keys:
            per[(r["variant"], r["scenario"])][k].append(float(r[k]))
    return {key: {k: float(np.mean(v)) for k, v in d.items()} for key, d in per.items()}


def paired(mean: dict, variant: str, baseline: str, metric: str) -> tuple[float, float]:
    """Mean and 95% half-width over scenarios of variant - baseline (a ratio for nfe_total)."""
    ss = sorted(s for v, s in mean if v == variant and (baseline, s) in mean)
    if metric == "nfe_total":
        return float(np.mean([mean[(variant, s)][metric] / mean[(baseline, s)][metric] for s in ss])), 0.0
    return interval([mean[(variant, s)][metric] - mean[(baseline, s)][metric] for s in ss])


def report(rows: list[dict], variants: list[str], baseline: str) -> str:
    """Per-scenario means over seeds, then mean ± 95% interval over scenarios; paired differences."""
    mean = scenario_means(rows)
    scen = sorted({s for _, s in mean})
    out = [f"| variant | scenarios | NFE / {baseline} | " + " | ".join(METRICS) + " |"]
    out.append("|---" * (len(METRICS) + 3) + "|")
    for v in variants:
        ss = [s for s in scen if (v, s) in mean]
        if not ss:
            continue
        nfe, _ = paired(mean, v, baseline, "nfe_total")
        cells = [f"{m:.3f} ± {h:.3f}" for m, h in (interval([mean[(v, s)][k] for s in ss]) for k in METRICS)]
        out.append(f"| {v} | {len(ss)} | {nfe:.2f}x | " + " | ".join(cells) + " |")
    out += ["", f"Difference to {baseline}, paired by scenario (* the 95% interval excludes 0):", ""]
    out.append(f"| variant − {baseline} | scenarios | " + " | ".join(METRICS) + " |")
    out.append("|---" * (len(METRICS) + 2) + "|")
    for v in variants:
        ss = [s for s in scen if (v, s) in mean and (baseline, s) in mean]
        if v == baseline or not ss:
            continue
        cells = []
        for k in METRICS:
            m, h = paired(mean, v, baseline, k)
            cells.append(f"{m:+.3f} ± {h:.3f}" + (" *" if abs(m) > h else ""))
        out.append(f"| {v} | {len(ss)} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="a folder of toyworld scenario files")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=6.0)
    ap.add_argument("--model-option", action="append", default=[], help="toyworld model_options key=value")
    ap.add_argument("--set", action="append", default=[], help="sampler key=value for every syncos variant")
    ap.add_argument("--variants", nargs="*", default=["codenoise", "default", "renoise"])
    ap.add_argument("--baseline", default="codenoise")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only", nargs="*", help="scenario names to run (default: all)")
    ap.add_argument(
        "--as-written",
        action="store_true",
        help="each scenario's own steps, guidance and seed (e.g. the examples); --seeds adds seeds after it",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    model_options = {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in args.model_option)}
    extra = {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in args.set)}
    scenarios = scenarios_of(args.folder)
    if args.only:
        scenarios = {k: v for k, v in scenarios.items() if k in args.only}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.out.exists():
        with args.out.open() as f:
            done = {(r["variant"], r["scenario"], int(r["seed"])) for r in csv.DictReader(f)}
    fields = ["variant", "scenario", "seed", *METRICS, "nfe_total", "nfe", "seconds"]
    with args.out.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        if not done:
            w.writeheader()
        for name, sc in scenarios.items():
            own = sc.get("sampler") or {}
            first = int(sc.get("seed", 0)) if args.as_written else args.first_seed
            for seed in range(first, first + args.seeds):
                # a scenario's own seeds (syncos.bench.suite.scenario_seed), the written one as is
                noise_seed = seed if args.as_written else scenario_seed(name, seed)
                for label in args.variants:
                    if (label, name, seed) in done:
                        continue
                    chosen = variant(label)
                    sampler = {
                        **own,
                        "steps": own.get("steps", 50) if args.as_written else args.steps,
                        "guidance_scale": own.get("guidance_scale", 6.0)
                        if args.as_written
                        else args.guidance,
                        "micro_batch": 64,
                        # --set applies to every syncos row, under what the variant itself sets
                        **(extra if chosen["method"] == "syncos" else {}),
                        **chosen,
                    }
                    raw = {**sc, "model": "toyworld", "sampler": sampler, "seed": noise_seed}
                    raw["model_options"] = {**(sc.get("model_options") or {}), **model_options}
                    start = time.perf_counter()
                    gen = syncos.generate(raw)
                    m = evaluate_frames(gen, gen.frames())
                    w.writerow(
                        {
                            "variant": label,
                            "scenario": name,
                            "seed": seed,
                            **{k: round(m[k], 4) for k in METRICS},
                            "nfe_total": sum(gen.nfe.values()),
                            "nfe": json.dumps(gen.nfe),
                            "seconds": round(time.perf_counter() - start, 2),
                        }
                    )
                    f.flush()
    with args.out.open() as f:
        rows = [r for r in csv.DictReader(f) if r["scenario"] in scenarios]
    print(report(rows, [v for v in args.variants], args.baseline))


if __name__ == "__main__":
    main()
