"""Print the toyworld results next to the paper's numbers (method.md), same rows, same order.

python benchmarks/paper_tables.py benchmarks/results/toyworld benchmarks/results/toyworld-ablation
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from syncos.bench.report import interval, load, method_label, per_scenario

# paper (CogVideoX-2B): SC, BC, MS, DD, AQ, IQ, global PF, local PF
PAPER = {
    "independent tiles (the floor)": ("independent", None),
    "Gen-L-Video": ("codenoise", (81.34, 89.46, 98.32, 50.00, 60.09, 58.52, 0.324, 0.351)),
    "FIFO-Diffusion": ("fifo", (83.54, 90.72, 98.04, 70.83, 59.59, 63.18, 0.323, 0.327)),
    "SynCoS (paper settings)": ("paper", (88.92, 94.57, 98.21, 85.42, 63.37, 67.43, 0.341, 0.354)),
    "re-noise control of SynCoS (no CSD)": ("paper-renoise", None),
    "SynCoS (package default)": ("syncos", None),
}
COLUMNS = (  # paper column, toyworld metric (None: toyworld has no counterpart)
    ("subject consistency", "subject_consistency"),
    ("background consistency", "background_consistency"),
    ("motion smoothness", "smoothness"),
    ("dynamic degree", None),
    ("aesthetic quality", None),
    ("imaging quality", "clean"),
    ("global PF", "global_fidelity"),
    ("local PF", "local_fidelity"),
)
# paper ablations: SC, BC, AQ, PF
ABLATIONS = {
    "full": ("full", (0.864, 0.927, 0.643, 0.381)),
    "without t_min": ("no-tmin", (0.724, 0.854, 0.632, 0.373)),
    "without grounded timestep": ("random-timestep", (0.803, 0.899, 0.638, 0.364)),
    "without fixed baseline noise": ("fresh-noise", (0.817, 0.904, 0.643, 0.382)),
    "without structured prompt": ("local-prompt-only", (0.837, 0.903, 0.663, 0.362)),
    "stages 1+3 only": ("stages-1+3", None),
    "stage 2 only": ("stage2-only", None),
    "re-noise control (no CSD move)": ("renoise-control", None),
    "stride 2": ("stride-2", None),
    "stride 6": ("stride-6", None),
    "stride 8": ("stride-8", None),
}
PAPER_STAGES = {"stages 1+3 only": "SC 80.46", "stage 2 only": "SC 78.88 (a slideshow)", "full": "SC 82.70"}
ABL_COLUMNS = (
    ("SC", "subject_consistency"),
    ("BC", "background_consistency"),
    ("AQ", "clean"),
    ("PF", "local_fidelity"),
    ("global PF", "global_fidelity"),
    ("smoothness", "smoothness"),
)


def cell(rows, method, metric) -> str:
    if metric is None:
        return "n/a"
    vals = list(per_scenario(rows, method, metric).values())
    if not vals:
        return "not run"
    mean, hw = interval(vals)
    return f"{mean:.3f}" + ("" if hw != hw else f" ± {hw:.3f}")


def cost(rows, method, baseline) -> str:
    """NFE per video and its ratio to the baseline's, scenario by scenario."""
    a, b = per_scenario(rows, method, "nfe"), per_scenario(rows, baseline, "nfe")
    if not a:
        return "not run"
    ratio = [a[s] / b[s] for s in a if b.get(s)]
    return (
        f"{np.mean(list(a.values())):.0f} ({np.mean(ratio):.2f}x)"
        if ratio
        else f"{np.mean(list(a.values())):.0f}"
    )


def comparison(outdir: Path) -> str:
    rows, methods, _ = load(outdir)
    head = "| method | NFE per video (x codenoise) | "
    head += " | ".join(f"{p} (paper / toyworld)" for p, _ in COLUMNS) + " | s per video |"
    lines = [head, "| --- " * (len(COLUMNS) + 3) + "|"]
    for name, (method, paper) in PAPER.items():
        if method not in methods:
            continue
        paper = paper or (None,) * len(COLUMNS)
        cells = [
            f"{'' if v is None else f'{v:g} / '}{cell(rows, method, m)}"
            for v, (_, m) in zip(paper, COLUMNS, strict=True)
        ]
        label = method_label(rows, method)  # a shared-timestep FIFO run is named as such
        name = name if label == method else f"{name}; toyworld: {label}"
        lines.append(
            f"| {name} | {cost(rows, method, 'codenoise')} | "
            + " | ".join(cells)
            + f" | {cell(rows, method, 'wall_s')} |"
        )
    return "\n".join(lines)


def ablation(outdir: Path) -> str:
    rows, _, _ = load(outdir)
    head = "| variant | NFE per video (x full) | paper SC / BC / AQ / PF | "
    head += " | ".join(f"toyworld {c}" for c, _ in ABL_COLUMNS) + " |"
    lines = [head, "| --- " * (len(ABL_COLUMNS) + 3) + "|"]
    for name, (method, paper) in ABLATIONS.items():
        p = " / ".join(f"{v:g}" for v in paper) if paper else ""
        if name in PAPER_STAGES:
            p = (p + "; " if p else "") + "stages table: " + PAPER_STAGES[name]
        cells = [cell(rows, method, m) for _, m in ABL_COLUMNS]
        lines.append(
            f"| {name} ({method}) | {cost(rows, method, 'full')} | {p} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(comparison(Path(sys.argv[1])))
    if len(sys.argv) > 2:
        print()
        print(ablation(Path(sys.argv[2])))
