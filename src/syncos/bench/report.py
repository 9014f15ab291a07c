"""results.csv -> summary.md (mean and 95% interval per method and metric) and PNG plots.

Intervals treat scenarios as the sample: seeds are averaged within a scenario first, then a
t-interval is taken over scenarios (seeds of one scenario are not independent draws of the
suite). Paired differences against a baseline method use the same per-scenario means.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from syncos.bench.runner import DRIFT, RESULTS, STRIPS
from syncos.bench.table import read_rows, row_key
from syncos.errors import UserError

# not metrics; model and model_options say which judge made a row (`syncos bench --model/--set`)
META = ("scenario", "method", "seed", "sampler", "events", "frames", "chunks", "fifo_mode", "model")
META += ("model_options",)
SHARED = "shared-timestep approx."  # how a FIFO run without per-frame timesteps is labelled
# two-sided 95% t quantiles by degrees of freedom (normal beyond the table)
_T975 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    12: 2.179,
    15: 2.131,
    20: 2.086,
    25: 2.060,
    30: 2.042,
    40: 2.021,
    60: 2.000,
    120: 1.980,
}


def t975(df: int) -> float:
    return _T975[max(k for k in _T975 if k <= df)] if df >= 1 else math.nan


def interval(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t-interval); the half-width is nan for fewer than 2 values."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()) if len(v) else math.nan, math.nan
    return float(v.mean()), t975(len(v) - 1) * float(v.std(ddof=1)) / math.sqrt(len(v))


def load(outdir: Path) -> tuple[list[dict], list[str], list[str]]:
    """Rows with numbers parsed, methods in order of appearance, metric columns."""
    rows = read_rows(outdir / RESULTS)
    if not rows:
        raise UserError(
            f"{outdir / RESULTS} has no results yet, so there is nothing to report; "
            "run the bench without --report-only first"
        )
    metrics: list[str] = []
    for r in rows:
        for k, v in list(r.items()):
            if k in META or v in ("", None):
                continue
            r[k] = float(v)
            if k not in metrics:
                metrics.append(k)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    return rows, methods, metrics


def method_label(rows: list[dict], method: str) -> str:
    """The method's name in tables; FIFO runs in the shared-timestep mode are not FIFO-Diffusion."""
    modes = [r.get("fifo_mode") for r in rows if r["method"] == method]
    shared = modes.count("shared")
    if not shared:
        return method
    where = "" if shared == len(modes) else f" in {shared} of {len(modes)} runs"
    return f"{method} ({SHARED}{where})"


def per_scenario(rows: list[dict], method: str, metric: str) -> dict[str, float]:
    """Scenario -> mean over its seeds."""
    acc: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r["method"] == method and isinstance(r.get(metric), float):
            acc[r["scenario"]].append(r[metric])
    return {s: float(np.mean(v)) for s, v in acc.items()}


def _fmt(mean: float, hw: float) -> str:
    digits = 3 if abs(mean) < 100 else 1
    return f"{mean:.{digits}f}" + ("" if math.isnan(hw) else f" ± {hw:.{digits}f}")


def summary_table(rows: list[dict], methods: list[str], metrics: list[str]) -> str:
    lines = ["| method | " + " | ".join(metrics) + " |", "| --- " * (len(metrics) + 1) + "|"]
    for m in methods:
        cells = [_fmt(*interval(list(per_scenario(rows, m, k).values()))) for k in metrics]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(rows: list[dict], methods: list[str], metrics: list[str], baseline: str) -> str:
    """Method minus baseline on the scenarios both ran, with the interval of the difference."""
    lines = [f"| method − {baseline} | " + " | ".join(metrics) + " |", "| --- " * (len(metrics) + 1) + "|"]
    for m in methods:
        if m == baseline:
            continue
        cells = []
        for k in metrics:
            a, b = per_scenario(rows, m, k), per_scenario(rows, baseline, k)
            diffs = [a[s] - b[s] for s in a if s in b]
            mean, hw = interval(diffs)
            if len(diffs) > 1 and np.ptp(diffs) == 0:  # e.g. NFE: fixed by the method, not measured
                cells.append(_fmt(mean, math.nan) + (" (every scenario)" if mean else ""))
                continue
            mark = "" if math.isnan(hw) or abs(mean) <= hw else " *"
            cells.append(_fmt(mean, hw) + mark)
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def drift_by_method(outdir: Path, methods: list[str]) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Kind -> method -> (distances, mean similarity over runs); duplicate rows (a crash) dropped."""
    seen: set = set()
    acc: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in read_rows(outdir / DRIFT):
        key = (*row_key(r), r.get("kind", ""), r["distance"])
        if key in seen:
            continue
        seen.add(key)
        acc[r.get("kind") or "similarity"][r["method"]][int(r["distance"])].append(float(r["similarity"]))
    out: dict = {}
    for kind, by_method in acc.items():
        out[kind] = {}
        for m in methods:
            # only distances every run has: past the shortest video the mix of scenarios would change
            runs = max((len(v) for v in by_method[m].values()), default=0)
            ds = sorted(d for d, v in by_method[m].items() if len(v) == runs)
            out[kind][m] = (np.array(ds), np.array([np.mean(by_method[m][d]) for d in ds]))
    return out


def directions(metrics: list[str]) -> list[str]:
    """A line saying which columns count defects (lower is better), when the table has any."""
    from syncos.backends.toyworld.metrics import COUNTS

    counts = [k for k in metrics if k in COUNTS]
    if not counts:
        return []
    return [
        f"{', '.join(counts)}: defects a viewer sees, 0 is best (docs/toyworld.md); the other toyworld "
        "columns are scores in [0, 1], higher is better."
    ]


def unit_interval(rows: list[dict], metric: str) -> bool:
    """A score in [0, 1] (every toyworld score, and cut_rate): all its values lie there; NFE's do not."""
    values = [r[metric] for r in rows if isinstance(r.get(metric), float)]
    return metric not in ("wall_s", "nfe") and all(0.0 <= v <= 1.0 for v in values)


def plot_metrics(rows: list[dict], methods: list[str], metrics: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(metrics))
    nrows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.8 * nrows), squeeze=False)
    for ax, k in zip(axes.flat, metrics, strict=False):
        stats = [interval(list(per_scenario(rows, m, k).values())) for m in methods]
        half = np.array([0 if math.isnan(s[1]) else s[1] for s in stats])
        means = np.array([s[0] for s in stats])
        low, high = half, half
        if unit_interval(rows, k):  # a score in [0, 1]: its error bar stays in [0, 1]
            low, high = np.minimum(half, means), np.minimum(half, 1 - means)
        ax.bar(
            range(len(methods)),
            means,
            yerr=np.stack([low, high]),
            color=[f"C{i}" for i in range(len(methods))],
            capsize=3,
        )
        ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=7)
        ax.set_title(k, fontsize=9)
        lo, hi = float((means - low).min()), float((means + high).max())
        if lo > 0 and hi > 0 and (hi - lo) < 0.5 * hi:  # zoom in when every bar is far from zero
            ax.set_ylim(lo - 0.15 * (hi - lo + 1e-9), hi + 0.15 * (hi - lo + 1e-9))
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_drift(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(curves) or ["similarity"]
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 3.6), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for i, (m, (d, sim)) in enumerate(curves.get(kind, {}).items()):
            if len(d):
                ax.plot(d, sim, label=m, color=f"C{i}")
        ax.set_xlabel("distance between frames (video frames)")
        ax.set_ylabel(f"{kind} similarity")
        ax.set_title(f"drift: {kind} similarity of frame pairs vs distance", fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def contact_sheet(
    outdir: Path,
    scenario: str,
    methods: list[str],
    path: Path,
    columns: int = 10,
    labels: dict[str, str] | None = None,
) -> bool:
    """Rows = methods, columns = evenly spaced frames of seed 0 of one scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strips = [(m, outdir / STRIPS / scenario / f"{m}.png") for m in methods]
    strips = [(m, p) for m, p in strips if p.is_file()]
    if not strips:
        return False
    fig, axes = plt.subplots(len(strips), 1, figsize=(columns * 0.9, 1.05 * len(strips)), squeeze=False)
    for ax, (m, p) in zip(axes[:, 0], strips, strict=True):
        img = np.asarray(Image.open(p).convert("RGB"))
        h = img.shape[0]
        frames = img.reshape(h, -1, h, 3).transpose(1, 0, 2, 3)  # square frames side by side
        pick = np.linspace(0, len(frames) - 1, columns).round().astype(int)
        ax.imshow(np.concatenate(list(frames[pick]), axis=1), interpolation="nearest")
        ax.set_yticks([])
        ax.set_xticks([(i + 0.5) * h for i in range(columns)], [str(p) for p in pick], fontsize=6)
        ax.set_ylabel((labels or {}).get(m, m), rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"{scenario}, seed 0 (frame numbers below)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_report(
    outdir: str | Path,
    *,
    methods: Sequence[str] | None = None,
    baseline: str | None = None,
    contact: str | None = None,
    title: str = "Benchmark",
    description: str = "",
) -> Path:
    """Write OUTDIR/summary.md, metrics.png, drift.png and contact_sheet.png; returns summary.md."""
    out = Path(outdir)
    rows, seen, metrics = load(out)
    names = [m for m in (methods or seen) if m in seen] + [m for m in seen if m not in (methods or seen)]
    scen = sorted({r["scenario"] for r in rows})
    seeds = sorted({r["seed"] for r in rows}, key=lambda x: (len(x), x))  # numeric order of digit strings
    label = {m: method_label(rows, m) for m in names}
    contact = contact if contact in scen else (scen[0] if scen else None)
    sheet = out / "contact_sheet.png"
    has_sheet = contact is not None and contact_sheet(out, contact, names, sheet, labels=label)
    # from here on every method is shown by its label (strips and drift rows are read by name)
    curves = {k: {label[m]: c for m, c in by.items()} for k, by in drift_by_method(out, names).items()}
    for r in rows:
        r["method"] = label[r["method"]]
    methods = [label[m] for m in names]
    baseline = label.get(baseline or "", methods[0])
    plot_metrics(rows, methods, metrics, out / "metrics.png")
    plot_drift(curves, out / "drift.png")
    md = [
        f"# {title}",
        "",
        *([description, ""] if description else []),
        f"{len(rows)} runs: {len(scen)} scenarios x {len(methods)} methods x {len(seeds)} "
        f"seed{'s' if len(seeds) > 1 else ''} ({', '.join(seeds)}).",
        *judges(rows),
        "Each cell: mean over scenarios (seeds averaged first) ± half-width of the 95% t-interval.",
        *directions(metrics),
        "",
        summary_table(rows, methods, metrics),
        "",
        f"Paired differences against {baseline} (per scenario; * = the interval excludes 0; a difference "
        "that is the same in every scenario, like NFE, is fixed by the methods' design, not measured):",
        "",
        paired_table(rows, methods, metrics, baseline),
        "",
        "Drift (mean similarity of frame pairs at a distance, over every run; distances up to the "
        "shortest video, so every point averages the same runs):",
        "",
        drift_table(curves),
        "",
        "![metrics](metrics.png)",
        "![drift](drift.png)",
    ]
    if has_sheet:
        md.append("![contact sheet](contact_sheet.png)")
    (out / "summary.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    return out / "summary.md"


def judges(rows: list[dict]) -> list[str]:
    """A line naming the model(s) and model options the rows ran on (rows older than the columns: none)."""
    seen = dict.fromkeys((r.get("model"), r.get("model_options")) for r in rows if r.get("model"))
    if not seen:
        return []
    shown = "; ".join(f"`{m}`" + (f" with model_options {o}" if o not in ("", "{}") else "") for m, o in seen)
    return [f"Model: {shown}."]


def drift_table(curves: dict, distances: Sequence[int] = (1, 2, 4, 8, 12, 16, 24, 32, 47)) -> str:
    lines = []
    for kind, by_method in curves.items():
        present = [d for d in distances if any(d in c[0] for c in by_method.values())]
        lines += ["", f"| {kind}: method | " + " | ".join(f"d={d}" for d in present) + " |"]
        lines.append("| --- " * (len(present) + 1) + "|")
        for m, (d, sim) in by_method.items():
            lookup = dict(zip(d.tolist(), sim.tolist(), strict=True))
            cells = [f"{lookup[x]:.3f}" if x in lookup else "" for x in present]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines).strip()
