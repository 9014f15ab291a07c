"""Q3, stride: toyworld quality and network evaluations against ``sampler.stride``, per method.

Reads the CSVs ``syncos_probe.py`` writes for rows ``VARIANT+stride=N`` and ``VARIANT+stride=auto``,
prints the markdown tables of docs/open-questions.md (Q3) and draws the plot. Seeds are averaged within a
scenario, then the mean over scenarios and its 95% t-interval are taken (as the probe does);
differences are paired by scenario against the same method at ``--baseline`` stride. ``score``
is the unweighted mean of the six toyworld metrics: a one-number summary for ranking strides
per scenario, shown next to the metrics, never instead of them. ``--suite`` names the scenarios'
folder, to show the stride ``stride: auto`` picks for each.

    python benchmarks/stride_report.py benchmarks/results/stride/suite.csv \\
        --suite benchmarks/suites/toyworld --plot docs/open-questions/stride.png
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np
import yaml

from syncos.api import prepare
from syncos.bench.report import interval

sys.path.insert(0, str(Path(__file__).resolve().parent))
from syncos_probe import METRICS, paired, scenario_means  # noqa: E402

COLUMNS = (*METRICS, "score")
AUTO = "auto"


def kind(scenario: str) -> str:
    """The suite's scenario kind: the name's first word (motion, background, story, long, open)."""
    return scenario.split("-")[0]


def split(label: str) -> tuple[str, str]:
    """A probe row's label -> (the variant without its stride, the stride): paper+stride=8 -> paper, 8."""
    parts = label.split("+")
    stride = next((p.partition("=")[2] for p in parts[1:] if p.startswith("stride=")), "")
    return "+".join(p for p in parts if not p.startswith("stride=")), stride


def load(paths: list[Path]) -> dict[tuple[str, str], dict[str, dict[str, float]]]:
    """(method, stride) -> scenario -> column -> mean over seeds; stride is 'N', 'auto...' or ''."""
    rows = []
    for path in paths:
        with path.open() as f:
            rows += list(csv.DictReader(f))
    data: dict = {}
    for (label, scenario), values in scenario_means(rows).items():
        values["score"] = float(np.mean([values[k] for k in METRICS]))
        data.setdefault(split(label), {})[scenario] = values
    return data


def against(data: dict, row: tuple[str, str], base: tuple[str, str], col: str) -> tuple[float, float]:
    """Paired difference of two rows over their common scenarios (mean, 95% half-width); NFE: ratio."""
    flat = {(key, s): v for key in (row, base) for s, v in data[key].items()}
    return paired(flat, row, base, col)


def auto_strides(suite: Path) -> dict[str, tuple[int, list[int]]]:
    """Scenario -> (the stride ``stride: auto`` resolves to on toyworld, event lengths in latent frames)."""
    out = {}
    for p in sorted(suite.glob("*.yaml")):
        if p.name != "suite.yaml":
            raw = yaml.safe_load(p.read_text())
            raw["sampler"] = {**(raw.get("sampler") or {}), "stride": AUTO}
            plan = prepare({**raw, "model": "toyworld"})[2]
            out[p.stem] = plan.stride, [b - a for a, b in plan.event_spans]
    return out


def order(stride: str) -> float:
    return float(stride) if stride.isdigit() else math.inf


def cell(m: float, h: float, star: bool = False) -> str:
    return f"{m:+.3f} ± {h:.3f}" + (" *" if abs(m) > h else "") if star else f"{m:.3f} ± {h:.3f}"


def summary(data: dict, baseline: str) -> str:
    methods = list(dict.fromkeys(m for m, _ in sorted(data)))
    out = [
        "| method | stride | scenarios | NFE | NFE / stride " + baseline + " | " + " | ".join(COLUMNS) + " |"
    ]
    out.append("|---" * (len(COLUMNS) + 5) + "|")
    for method in methods:
        for stride in sorted((s for m, s in data if m == method), key=order):
            per = data[(method, stride)]
            nfe = np.mean([v["nfe_total"] for v in per.values()])
            cells = [cell(*interval([v[k] for v in per.values()])) for k in COLUMNS]
            has_base = (method, baseline) in data
            r = (
                f"{against(data, (method, stride), (method, baseline), 'nfe_total')[0]:.2f}x"
                if has_base
                else ""
            )
            out.append(
                f"| {method} | {stride or '-'} | {len(per)} | {nfe:.0f} | {r} | " + " | ".join(cells) + " |"
            )
    return "\n".join(out)


def paired_table(data: dict, baseline: str, rules_only: bool = False) -> str:
    """Each row minus the same method at ``baseline`` stride; ``rules_only``: the auto rows alone."""
    out = [
        f"Difference to the same method at stride {baseline}, paired by scenario "
        "(* the 95% interval excludes 0):",
        "",
        "| method | stride − " + baseline + " | " + " | ".join(COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 2) + "|",
    ]
    for method in list(dict.fromkeys(m for m, _ in sorted(data))):
        base = data.get((method, baseline))
        if not base:
            continue
        for stride in sorted((s for m, s in data if m == method and s != baseline), key=order):
            if rules_only and not stride.startswith(AUTO):
                continue
            cells = [
                cell(*against(data, (method, stride), (method, baseline), k), star=True) for k in COLUMNS
            ]
            out.append(f"| {method} | {stride} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def by_kind(data: dict, chosen: dict[str, tuple[int, list[int]]]) -> str:
    """Mean score per scenario kind and stride; each scenario's best fixed stride next to the rule's."""
    fixed = sorted({s for _, s in data if s.isdigit()}, key=order)
    methods = list(dict.fromkeys(m for m, s in sorted(data) if s.isdigit()))
    best: dict[tuple[str, str], str] = {}
    out = ["| method | kind (scenarios) | " + " | ".join(f"s{s}" for s in fixed) + " | best | auto picks |"]
    out.append("|---" * (len(fixed) + 4) + "|")
    for method in methods:
        scen = sorted(set.intersection(*(set(data[(method, st)]) for st in fixed if (method, st) in data)))
        for s in scen:
            ran = [st for st in fixed if s in data.get((method, st), {})]
            best[(method, s)] = max(ran, key=lambda st: data[(method, st)][s]["score"])
        kinds = sorted({kind(s) for s in scen})
        for k in kinds if len(kinds) < len(scen) else []:  # one scenario per name: no kinds
            ss = [s for s in scen if kind(s) == k]
            means = {st: float(np.mean([data[(method, st)][s]["score"] for s in ss])) for st in fixed}
            top = max(means, key=lambda st: means[st])
            picks = sorted({chosen[s][0] for s in ss if s in chosen})
            cells = [f"**{means[st]:.3f}**" if st == top else f"{means[st]:.3f}" for st in fixed]
            out.append(f"| {method} | {k} ({len(ss)}) | " + " | ".join(cells) + f" | {top} | {picks} |")
    out = out if len(out) > 2 else []
    out += ["", "Each scenario's best fixed stride by score (seeds averaged) and the rule's pick:", ""]
    out.append(
        "| scenario | events (latent frames) | auto | " + " | ".join(f"best {m}" for m in methods) + " |"
    )
    out.append("|---" * (len(methods) + 3) + "|")
    for s in sorted({s for _, s in best}):
        n, lengths = chosen.get(s, ("", []))
        out.append(f"| {s} | {lengths} | {n} | " + " | ".join(best.get((m, s), "") for m in methods) + " |")
    return "\n".join(out)


def plot(data: dict, path: Path, baseline: str, title: str) -> None:
    """Each quality column as the paired difference to ``baseline`` stride; NFE as a ratio to it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in dict.fromkeys(m for m, _ in sorted(data)) if (m, baseline) in data]
    n = len(data[(methods[0], baseline)])
    panels = ("score", "subject_consistency", "clean", "local_fidelity", "smoothness", "nfe_total")
    rule_names = sorted({s for _, s in data if s.startswith(AUTO)})
    fig, axes = plt.subplots(2, 3, figsize=(13, 8))
    for ax, col in zip(axes.flat, panels, strict=True):
        for i, method in enumerate(methods):
            strides = sorted((s for m, s in data if m == method and s.isdigit()), key=order)
            stats = [against(data, (method, s), (method, baseline), col) for s in strides]
            line = ax.errorbar(
                [int(s) + 0.1 * (i - 0.5) for s in strides],
                [m for m, _ in stats],
                yerr=[h for _, h in stats],
                marker="o",
                capsize=3,
                label=method,
            )
            rules = sorted(s for m, s in data if m == method and s.startswith(AUTO))
            for j, (s, marker) in enumerate(zip(rules, "D^v", strict=False)):  # right of the tiles
                m, h = against(data, (method, s), (method, baseline), col)
                ax.errorbar(
                    [13 + j + 0.1 * (i - 0.5)],
                    [m],
                    yerr=[h],
                    marker=marker,
                    color=line[0].get_color(),
                    capsize=3,
                    ls="none",
                    label=f"{method}, stride {s}",
                )
        if ("independent", "") in data and ("codenoise", baseline) in data:
            m, h = against(data, ("independent", ""), ("codenoise", baseline), col)
            ax.errorbar(
                [12],
                [m],
                yerr=[h],
                marker="s",
                color="black",
                capsize=3,
                ls="none",
                label=f"independent tiles (against codenoise {baseline})",
            )
        ax.axhline(1.0 if col == "nfe_total" else 0.0, color="grey", lw=0.8)
        heading = (
            f"network evaluations / stride {baseline}" if col == "nfe_total" else f"{col} − stride {baseline}"
        )
        ax.set_title(heading)
        ticks = [2, 3, 4, 6, 8, 10, 11, 12, *range(13, 13 + len(rule_names))]
        ax.set_xticks(ticks, [*map(str, ticks[:7]), "tiles", *rule_names], rotation=45)
        ax.set_xlabel("stride (latent frames; chunk 12)")
        ax.grid(alpha=0.3)
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=8)
    fig.suptitle(
        f"{title} ({n} scenarios x 2 seeds): each method against itself at stride {baseline}, "
        "paired by scenario (mean, 95% interval over scenarios)"
    )
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", type=Path, nargs="+")
    ap.add_argument("--suite", type=Path, help="the scenarios' folder: the stride auto picks for each")
    ap.add_argument("--baseline", default="4", help="the stride differences are taken against")
    ap.add_argument("--against", nargs="*", default=[], help="more strides to pair the auto rows against")
    ap.add_argument("--plot", type=Path)
    ap.add_argument("--title", default="toyworld suite")
    args = ap.parse_args()
    data = load(args.csv)
    chosen = auto_strides(args.suite) if args.suite else {}
    print(summary(data, args.baseline))
    print()
    print(paired_table(data, args.baseline))
    for stride in args.against:
        print()
        print(paired_table(data, stride, rules_only=True))
    print()
    print(by_kind(data, chosen))
    if args.plot:
        plot(data, args.plot, args.baseline, args.title)


if __name__ == "__main__":
    main()
