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

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from toyworld_runs import Results, check_arguments, parser, run, scenarios_of

from syncos.backends.toyworld import ToyWorldBackend
from syncos.backends.toyworld.metrics import consistency_by_distance, decode_frames, sharp
from syncos.bench.report import interval

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


def far_pairs(curve: np.ndarray, far: int, pairs: np.ndarray | None = None) -> float:
    """Mean similarity over every frame pair at least ``far`` frames apart (index = distance);
    ``pairs``: how many pairs each distance's mean is over (default: all, T - d)."""
    T = len(curve)
    d = np.arange(far, T)
    n = (T - d) if pairs is None else np.asarray(pairs, dtype=float)[d]
    n = np.where(np.isnan(curve[d]), 0.0, n)
    return float((np.nan_to_num(curve[d]) * n).sum() / n.sum()) if n.sum() else math.nan


def main() -> None:
    ap = parser(
        __doc__,
        "benchmarks/suites/toyworld-length",
        "benchmarks/results/length/runs.csv",
        "docs/open-questions/length.png",
    )
    ap.add_argument("--lengths", nargs="*", type=int, default=[4, 6, 8, 10], help="in native clips")
    ap.add_argument("--far", type=int, default=3, help="far pairs: at least this many native clips apart")
    args = ap.parse_args()
    check_arguments(ap, args)
    torch.set_num_threads(1)
    clip = ToyWorldBackend().chunk_length  # toyworld: one latent frame is one video frame
    scenarios = scenarios_of(args)
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
        gen, frames, record = run(name, scaled(scenarios[name], k * clip), v, seed)
        attrs = decode_frames(frames)
        curves = consistency_by_distance(attrs)
        sharp_curves = consistency_by_distance(attrs, sharp_only=True)
        ok = sharp(attrs)
        pairs = [int(np.diagonal(ok[:, None] & ok[None], d).sum()) for d in range(len(ok))]
        results.add(
            {
                "variant": v,
                "scenario": name,
                "length": k,
                "seed": seed,
                "frames": len(frames),
                **record,
                **{f"{c}_curve": json.dumps([round(float(x), 4) for x in curves[c]]) for c in KINDS},
                **{
                    f"{c}_sharp_curve": json.dumps([round(float(x), 4) for x in sharp_curves[c]])
                    for c in KINDS
                },
                "sharp_pairs": json.dumps(pairs),
            }
        )
        print(f"[{i + 1}/{len(todo)}] {name} {k}x seed {seed} {v}: {record['seconds']} s", flush=True)
    rows = [r for r in results.rows if r["scenario"] in scenarios and int(r["length"]) in args.lengths]
    print(report(rows, list(args.variants), args.lengths, clip, args.far, args.baseline))
    plot(rows, list(args.variants), args.lengths, clip, args.plot)
    print(f"plot: {args.plot}")


def per_scenario(rows: list[dict], value) -> dict[tuple[str, int], dict[str, float]]:
    """(variant, length) -> scenario -> mean over seeds of value(row) (NaN seeds left out, and a
    scenario whose every seed is NaN)."""
    acc: dict = defaultdict(lambda: defaultdict(list))
    for r in rows:
        acc[(r["variant"], int(r["length"]))][r["scenario"]].append(value(r))
    return {
        key: {s: float(np.nanmean(v)) for s, v in by.items() if not np.isnan(v).all()}
        for key, by in acc.items()
    }


def curve(r: dict, kind: str, sharp_only: bool = False) -> np.ndarray:
    return np.array(json.loads(r[f"{kind}_sharp_curve" if sharp_only else f"{kind}_curve"]), dtype=float)


def far_means(rows: list[dict], far: int) -> dict[str, dict]:
    """Measure -> (variant, length) -> scenario -> far-pair mean: every pair, then sharp pairs only."""
    out = {}
    for kind in KINDS:
        out[kind] = per_scenario(rows, lambda r, k=kind: far_pairs(curve(r, k), far))
        out[f"{kind} sharp"] = per_scenario(
            rows, lambda r, k=kind: far_pairs(curve(r, k, True), far, json.loads(r["sharp_pairs"]))
        )
    return out


def share_sharp(r: dict, far: int) -> float:
    """The fraction of far pairs (at least ``far`` frames apart) whose two frames are both sharp."""
    n, T = np.array(json.loads(r["sharp_pairs"]), dtype=float), int(r["frames"])
    d = np.arange(far, T)
    return float(n[d].sum() / (T - d).sum())


def report(
    rows: list[dict], variants: list[str], lengths: list[int], clip: int, far: int, baseline: str
) -> str:
    fm = far_means(rows, far * clip)
    share = per_scenario(rows, lambda r: share_sharp(r, far * clip))
    near = per_scenario(rows, lambda r: float(np.mean(curve(r, "subject")[1 : clip + 1])))
    nfe = per_scenario(rows, lambda r: float(r["nfe_total"]))
    clean = per_scenario(rows, lambda r: float(r["clean"]))
    first, last = lengths[0], lengths[-1]

    def cell(d: dict, key) -> str:
        m, h = interval(list(d.get(key, {}).values()))
        return "" if math.isnan(m) else f"{m:.3f}" + ("" if math.isnan(h) else f" ± {h:.3f}")

    out = [
        f"Far pairs: frames at least {far} native clips ({far * clip} frames) apart; sharp pairs: both "
        "frames sharp renderings (no ghost); mean over scenarios (seeds averaged first) ± 95% t-interval "
        "half-width.",
        "",
        "| method | length | NFE | far subject | far background | far subject, sharp pairs "
        "| far background, sharp pairs | far pairs that are sharp | near subject (d <= 1 clip) | clean |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        for k in lengths:
            if (v, k) not in nfe:
                continue
            cells = [
                cell(fm[m], (v, k)) for m in ("subject", "background", "subject sharp", "background sharp")
            ]
            cells += [cell(share, (v, k)), cell(near, (v, k)), cell(clean, (v, k))]
            n_sc, n_nfe = len(nfe[(v, k)]), np.mean(list(nfe[(v, k)].values()))
            out.append(f"| {v} | {k}x ({n_sc} sc.) | {n_nfe:.0f} | " + " | ".join(cells) + " |")
    out += [
        "",
        f"Change from {first}x to {last}x (paired by scenario; * the interval excludes 0) and where each "
        f"method breaks down: the shortest length whose far-pair mean is below {HOLDS['subject']} "
        f"(subject) / {HOLDS['background']} (background); '< {first}x' when it is already below at {first}x.",
        "",
        f"| method | far subject {last}x − {first}x | far background {last}x − {first}x "
        f"| far subject (sharp) {last}x − {first}x | subject breaks at | background breaks at "
        "| subject (sharp pairs) breaks at | background (sharp pairs) breaks at |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        cells = []
        for m in ("subject", "background", "subject sharp"):
            a, b = fm[m].get((v, first), {}), fm[m].get((v, last), {})
            diffs = [b[s] - a[s] for s in a if s in b]
            mean, h = interval(diffs) if diffs else (math.nan, math.nan)
            cells.append(f"{mean:+.3f} ± {h:.3f}" + (" *" if abs(mean) > h else ""))
        for m in ("subject", "background", "subject sharp", "background sharp"):
            means = [(k, np.mean(list(fm[m][(v, k)].values()))) for k in lengths if fm[m].get((v, k))]
            broken = [k for k, x in means if x < HOLDS[m.split()[0]]]
            if not broken:
                cells.append(f"holds to {means[-1][0]}x" if means else "")
            else:
                cells.append(f"< {broken[0]}x" if broken[0] == first else f"{broken[0]}x")
        if (v, first) in nfe:
            out.append(f"| {v} | " + " | ".join(cells) + " |")
    out += [
        "",
        f"Far-pair consistency minus {baseline}'s, paired by scenario (* the 95% interval excludes 0):",
        "",
        f"| method − {baseline} | "
        + " | ".join(f"far subject {k}x" for k in lengths)
        + " | "
        + " | ".join(f"far background {k}x" for k in lengths)
        + " |",
        "|---|" + "---|" * 2 * len(lengths),
    ]
    for v in variants:
        cells = []
        for m in KINDS:
            for k in lengths:
                a, b = fm[m].get((v, k), {}), fm[m].get((baseline, k), {})
                diffs = [a[s] - b[s] for s in a if s in b]
                mean, h = interval(diffs) if diffs else (math.nan, math.nan)
                cells.append(
                    "" if math.isnan(mean) else f"{mean:+.3f} ± {h:.3f}" + (" *" if abs(mean) > h else "")
                )
        if v != baseline and any(cells):
            out.append(f"| {v} | " + " | ".join(cells) + " |")
    out += [
        "",
        "Per scenario, far subject / far background (mean over seeds):",
        "",
        "| method | scenario | " + " | ".join(f"{k}x" for k in lengths) + " |",
        "|---|---|" + "---|" * len(lengths),
    ]
    for v in variants:
        for sc in sorted({s for k in lengths for s in fm["subject"].get((v, k), {})}):
            cells = [
                f"{fm['subject'][(v, k)][sc]:.2f} / {fm['background'][(v, k)][sc]:.2f}"
                if sc in fm["subject"].get((v, k), {})
                else ""
                for k in lengths
            ]
            out.append(f"| {v} | {sc} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def plot(rows: list[dict], variants: list[str], lengths: list[int], clip: int, path: Path) -> None:
    """Grid: rows = subject / background drift over every pair, then over sharp pairs only;
    columns = lengths; one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(kind, False) for kind in KINDS] + [(kind, True) for kind in KINDS]
    fig, axes = plt.subplots(
        len(panels),
        len(lengths),
        figsize=(3.3 * len(lengths), 2.6 * len(panels)),
        squeeze=False,
        sharey="row",
    )
    for j, k in enumerate(lengths):
        for i, (kind, sharp_only) in enumerate(panels):
            ax = axes[i, j]
            for c, v in enumerate(variants):
                runs = [r for r in rows if r["variant"] == v and int(r["length"]) == k]
                if not runs:
                    continue
                if sharp_only:  # pooled over runs: each distance's mean weighted by its sharp pairs
                    n = np.array([json.loads(r["sharp_pairs"]) for r in runs], dtype=float)
                    sims = np.nan_to_num(np.array([curve(r, kind, True) for r in runs]))
                    with np.errstate(invalid="ignore"):
                        mean = (sims * n).sum(0) / n.sum(0)
                else:  # every run of a length has the same frame count
                    mean = np.mean([curve(r, kind) for r in runs], axis=0)
                d = np.arange(1, len(mean))
                ax.plot(d / clip, mean[1:], color=f"C{c}", label=v, lw=1.2)
            ax.axhline(HOLDS[kind], color="grey", lw=0.6, ls=":")
            ax.set_ylim(0, 1.02)
            if i == 0:
                ax.set_title(f"{k}x the native clip ({k * clip} frames)", fontsize=9)
            if i == len(panels) - 1:
                ax.set_xlabel("distance between frames (native clips)", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{kind}" + (", sharp pairs" if sharp_only else ", every pair"), fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("toyworld drift by video length: mean similarity of frame pairs at a distance", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
