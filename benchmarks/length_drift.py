"""The paper's Q2 on toyworld: consistency against distance for videos 4x-10x the native clip.

Each scenario of benchmarks/suites/toyworld-length/ is a 4x video (48 frames) whose events form a
cycle; at k x the native clip the cycle repeats until the video has k clips' frames, so every
length shows the same local content and only the distances grow. Per run: the subject and
background drift curves (toyworld's consistency kernels averaged over frame pairs at each
distance), the scalar metrics and the NFE. The report gives, per method and length, the
far-pair consistency (pairs at least --far native clips apart) as a mean over scenarios (seeds
averaged first) with its 95% t-interval, and where each method breaks down (below).

    OMP_NUM_THREADS=1 python benchmarks/length_drift.py                  # run what is missing, report
    OMP_NUM_THREADS=1 python benchmarks/length_drift.py --rerun default  # after `default` changed
    OMP_NUM_THREADS=1 python benchmarks/length_drift.py --report-only
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import yaml
from toyworld_runs import Results, run

from syncos.backends.toyworld import ToyWorldBackend
from syncos.backends.toyworld.metrics import consistency_by_distance, decode_frames
from syncos.bench.report import interval

ROOT = Path(__file__).resolve().parent.parent
METHODS = ["independent", "codenoise", "fifo", "paper", "paper-renoise", "default"]
KINDS = ("subject", "background")
# a method "holds" a length while its far-pair consistency (mean over scenarios) stays at or above
# these: subject 0.8 = same shape and hue within ~10 deg on most pairs; background 0.6 = same scene
# with a brightness difference of about one world step or less on most pairs
HOLDS = {"subject": 0.8, "background": 0.6}


def scaled(scenario: dict, frames: int) -> dict:
    """The scenario with its events repeated in order (the last one cut) to fill ``frames``."""
    cycle = scenario["events"]
    if not all(isinstance(e.get("frames"), int) and e["frames"] > 0 for e in cycle):
        raise SystemExit("every event of a length scenario needs `frames:` (a positive integer)")
    events, total = [], 0
    while total < frames:
        e = dict(cycle[len(events) % len(cycle)])
        e["frames"] = min(e["frames"], frames - total)
        events.append(e)
        total += e["frames"]
    return {**scenario, "events": events}


def far_pairs(curve: np.ndarray, far: int) -> float:
    """Mean similarity over every frame pair at least ``far`` frames apart (index = distance)."""
    T = len(curve)
    d = np.arange(far, T)
    return float((curve[d] * (T - d)).sum() / (T - d).sum()) if len(d) else math.nan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", type=Path, default=ROOT / "benchmarks/suites/toyworld-length")
    ap.add_argument("--variants", nargs="*", default=METHODS, help="names from syncos_probe.VARIANTS")
    ap.add_argument("--lengths", nargs="*", type=int, default=[4, 6, 8, 10], help="in native clips")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--far", type=int, default=3, help="far pairs: at least this many native clips apart")
    ap.add_argument("--only", nargs="*", help="scenario names (default: all)")
    ap.add_argument("--rerun", nargs="*", default=[], help="variants whose rows are dropped and run again")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/length/runs.csv")
    ap.add_argument("--plot", type=Path, default=ROOT / "docs/open-questions/length.png")
    args = ap.parse_args()
    torch.set_num_threads(1)
    clip = ToyWorldBackend().chunk_length  # toyworld: one latent frame is one video frame
    files = sorted(args.suite.glob("*.yaml"))
    scenarios = {p.stem: yaml.safe_load(p.read_text()) for p in files if not args.only or p.stem in args.only}
    results = Results(args.out, ("variant", "scenario", "length", "seed"), args.rerun)
    todo = [
        (name, k, seed, v)
        for name in scenarios
        for k in args.lengths
        for seed in range(args.seeds)
        for v in args.variants
        if not results.has(variant=v, scenario=name, length=k, seed=seed)
    ]
    for i, (name, k, seed, v) in enumerate([] if args.report_only else todo):
        gen, frames, record = run(scaled(scenarios[name], k * clip), v, seed)
        curves = consistency_by_distance(decode_frames(frames))
        results.add(
            {
                "variant": v,
                "scenario": name,
                "length": k,
                "seed": seed,
                "frames": len(frames),
                **record,
                **{f"{c}_curve": json.dumps([round(float(x), 4) for x in curves[c]]) for c in KINDS},
            }
        )
        print(f"[{i + 1}/{len(todo)}] {name} {k}x seed {seed} {v}: {record['seconds']} s", flush=True)
    rows = [r for r in results.rows if r["scenario"] in scenarios and int(r["length"]) in args.lengths]
    print(report(rows, [v for v in args.variants], args.lengths, clip, args.far))
    plot(rows, [v for v in args.variants], args.lengths, clip, args.plot)
    print(f"plot: {args.plot}")


def per_scenario(rows: list[dict], value) -> dict[tuple[str, int], dict[str, float]]:
    """(variant, length) -> scenario -> mean over seeds of value(row)."""
    acc: dict = defaultdict(lambda: defaultdict(list))
    for r in rows:
        acc[(r["variant"], int(r["length"]))][r["scenario"]].append(value(r))
    return {key: {s: float(np.mean(v)) for s, v in by.items()} for key, by in acc.items()}


def report(rows: list[dict], variants: list[str], lengths: list[int], clip: int, far: int) -> str:
    def far_of(kind):
        return lambda r: far_pairs(np.array(json.loads(r[f"{kind}_curve"])), far * clip)

    far_m = {kind: per_scenario(rows, far_of(kind)) for kind in KINDS}
    near_m = per_scenario(rows, lambda r: float(np.mean(json.loads(r["subject_curve"])[1 : clip + 1])))
    nfe = per_scenario(rows, lambda r: float(r["nfe_total"]))
    scal = {k: per_scenario(rows, lambda r, k=k: float(r[k])) for k in ("subject_consistency", "clean")}
    out = [
        f"Far pairs: frames at least {far} native clips ({far * clip} frames) apart; mean over scenarios "
        "(seeds averaged first) ± 95% t-interval half-width.",
        "",
        "| method | length | NFE | far subject | far background | near subject (d <= 1 clip) "
        "| subject_consistency | clean |",
        "|---|---|---|---|---|---|---|---|",
    ]
    cell = "{:.3f} ± {:.3f}".format
    first, last = lengths[0], lengths[-1]
    for v in variants:
        for k in lengths:
            if (v, k) not in nfe:
                continue
            cells = [
                cell(*interval(list(d[(v, k)].values())))
                for d in (
                    far_m["subject"],
                    far_m["background"],
                    near_m,
                    scal["subject_consistency"],
                    scal["clean"],
                )
            ]
            n = len(nfe[(v, k)])
            out.append(
                f"| {v} | {k}x ({n} sc.) | {np.mean(list(nfe[(v, k)].values())):.0f} | "
                + " | ".join(cells)
                + " |"
            )
    out += [
        "",
        f"Change from {first}x to {last}x (paired by scenario) and where each method breaks down: "
        f"the shortest length whose far-pair mean is below {HOLDS['subject']} (subject) / "
        f"{HOLDS['background']} (background); '< {first}x' when it is already below at {first}x.",
        "",
        f"| method | far subject {last}x − {first}x | far background {last}x − {first}x "
        "| subject breaks at | background breaks at |",
        "|---|---|---|---|---|",
    ]
    for v in variants:
        cells = []
        for kind in KINDS:
            a, b = far_m[kind].get((v, lengths[0]), {}), far_m[kind].get((v, lengths[-1]), {})
            diffs = [b[s] - a[s] for s in a if s in b]
            m, h = interval(diffs) if diffs else (math.nan, math.nan)
            cells.append(f"{m:+.3f} ± {h:.3f}" + (" *" if abs(m) > h else ""))
        for kind in KINDS:
            means = [
                (k, np.mean(list(far_m[kind][(v, k)].values()))) for k in lengths if (v, k) in far_m[kind]
            ]
            broken = [k for k, m in means if m < HOLDS[kind]]
            if not broken:
                cells.append(f"holds to {means[-1][0]}x" if means else "")
            else:
                cells.append(f"< {broken[0]}x" if broken[0] == lengths[0] else f"{broken[0]}x")
        if any(c for c in cells):
            out.append(f"| {v} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def plot(rows: list[dict], variants: list[str], lengths: list[int], clip: int, path: Path) -> None:
    """Grid: rows = subject / background drift, columns = lengths; one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(lengths), figsize=(3.3 * len(lengths), 5.6), squeeze=False, sharey="row")
    for j, k in enumerate(lengths):
        for i, kind in enumerate(KINDS):
            ax = axes[i, j]
            for c, v in enumerate(variants):
                curves = [
                    np.array(json.loads(r[f"{kind}_curve"]))
                    for r in rows
                    if r["variant"] == v and int(r["length"]) == k
                ]
                if not curves:
                    continue
                mean = np.mean(curves, axis=0)  # every run of a length has the same frame count
                d = np.arange(1, len(mean))
                ax.plot(d / clip, mean[1:], color=f"C{c}", label=v, lw=1.2)
            ax.axhline(HOLDS[kind], color="grey", lw=0.6, ls=":")
            ax.set_ylim(0, 1.02)
            if i == 0:
                ax.set_title(f"{k}x the native clip ({k * clip} frames)", fontsize=9)
            if i == 1:
                ax.set_xlabel("distance between frames (native clips)", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{kind} similarity", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("toyworld drift by video length: mean similarity of frame pairs at a distance", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
