"""Plots for docs/open-questions.md from the probe's CSVs (benchmarks/syncos_probe.py).

    # Q1 overhead: quality vs NFE of CSD iterations and the cost levers
    python benchmarks/open_questions.py overhead benchmarks/results/probe/overhead.csv
    # Q4 window: quality vs t_min (CSD and its re-noise control), over toyworld's posterior entropy
    python benchmarks/open_questions.py window benchmarks/results/probe/window.csv

Every point is the mean over scenarios of the difference to co-denoising (seeds averaged within
a scenario first), with its 95% interval; NFE is relative to co-denoising.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from syncos_probe import paired, scenario_means  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "docs" / "open-questions"
SHOWN = ("subject_consistency", "background_consistency", "clean", "local_fidelity")


def load(path: Path) -> dict:
    with path.open() as f:
        return scenario_means(list(csv.DictReader(f)))


def _axes(n: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6))
    return plt, fig, axes


def overhead(path: Path, baseline: str = "codenoise") -> None:
    """Q1: each variant at (NFE ratio, quality difference), CSD iterations joined by a line."""
    mean = load(path)
    variants = sorted({v for v, _ in mean} - {baseline})
    plt, fig, axes = _axes(len(SHOWN))
    iters = sorted(
        (int(m.group(1)), v) for v in variants if (m := re.fullmatch(r"default\+iterations=(\d+)", v))
    )
    for ax, metric in zip(axes, SHOWN, strict=True):
        xs, ys = [], []
        for _, v in iters:
            (x, _), (y, h) = paired(mean, v, baseline, "nfe_total"), paired(mean, v, baseline, metric)
            xs.append(x)
            ys.append(y)
            ax.errorbar(x, y, yerr=h, fmt="o", color="C0", capsize=2)
        ax.plot(xs, ys, "-", color="C0", label="CSD iterations 1..20")
        for i, v in enumerate(v for v in variants if v not in {w for _, w in iters}):
            (x, _), (y, h) = paired(mean, v, baseline, "nfe_total"), paired(mean, v, baseline, metric)
            ax.errorbar(x, y, yerr=h, fmt="s", color=plt.cm.tab20(i % 20), capsize=2, label=v)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(metric.replace("_", " "))
        ax.set_xlabel(f"NFE / {baseline}")
    axes[0].set_ylabel(f"difference to {baseline}")
    axes[-1].legend(fontsize=6, loc="best")
    fig.tight_layout()
    OUT.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT / "overhead.png", dpi=110)
    print(f"wrote {OUT / 'overhead.png'}")


def entropy_curves(timesteps: np.ndarray, samples: int) -> dict[str, dict[str, np.ndarray]]:
    """Posterior entropy of colour and scene over t: CogVideoX's VP schedule and flow shift 3."""
    from syncos.backends.toyworld import ToyWorldBackend
    from syncos.backends.toyworld.model import attribute_entropy

    return {
        "VP (CogVideoX)": attribute_entropy(ToyWorldBackend(), timesteps, samples=samples),
        "flow shift 3": attribute_entropy(
            ToyWorldBackend(schedule="flow", shift=3.0), timesteps, samples=samples
        ),
    }


def window(path: Path, baseline: str = "codenoise", samples: int = 16) -> None:
    """Q4: CSD and its re-noise control against t_min, next to the entropy of the coarse attributes."""
    mean = load(path)
    plt, fig, axes = _axes(3)
    ts = np.linspace(20, 980, 25)
    for i, (name, h) in enumerate(entropy_curves(ts, samples).items()):
        for key, style in (("colour", "-"), ("scene", "--")):
            axes[0].plot(ts, h[key], style, color=f"C{i}", label=f"{key}, {name}")
    axes[0].set_title("posterior entropy (1: undecided)")
    axes[0].set_xlabel("t")
    axes[0].legend(fontsize=6)
    for kind, colour in (("default", "C0"), ("renoise", "C1")):
        rows = sorted(
            (float(m.group(1)), v)
            for v in {v for v, _ in mean}
            if (m := re.fullmatch(rf"{kind}\+t_min=([\d.]+).*", v))
        )
        if kind == "renoise" and any(v == "renoise" for v, _ in mean):
            # the default log-SNR window, -6.96, is t > 900 on CogVideoX's schedule
            rows = sorted([*rows, (900.0, "renoise")])
        for ax, metric in zip(axes[1:], ("subject_consistency", "background_consistency"), strict=True):
            pts = [(t, *paired(mean, v, baseline, metric)) for t, v in rows]
            if pts:
                t, y, h = map(np.array, zip(*pts, strict=True))
                label = "CSD" if kind == "default" else "re-noise control"
                ax.errorbar(t, y, yerr=h, fmt="o-", color=colour, capsize=2, label=label)
            ax.set_title(f"{metric.replace('_', ' ')} − {baseline}")
            ax.set_xlabel("t_min (window: t > t_min)")
            ax.axhline(0, color="grey", lw=0.8)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    OUT.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT / "window.png", dpi=110)
    print(f"wrote {OUT / 'window.png'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("overhead", "window"))
    ap.add_argument("csv", type=Path)
    ap.add_argument("--baseline", default="codenoise")
    args = ap.parse_args()
    {"overhead": overhead, "window": window}[args.what](args.csv, args.baseline)


if __name__ == "__main__":
    main()
