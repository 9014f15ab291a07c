"""The seed's third check: contradictory events (day -> night, grass -> snow, red -> blue) under a
global prompt naming the subject. What does each method keep, and what does it let change?

Each frame is decoded to the attributes a prompt can name (``metrics.frame_labels``: shape,
colour, size, scene, lighting). An attribute that some events pin to different values is
*changed*, every other one *kept*. Per run and attribute:

- kept: the fraction of frames that show the video's most common value (a frame that is no
  toyworld frame shows none);
- changed: the fraction of each pinning event's frames that show its value (mean over events),
  and, at each boundary between two events that pin different values, the switch: the frame that
  best splits the two events' frames into "old value, then new value", minus the boundary
  (negative: the change starts before its event).

Per method: mean over the scenarios where the attribute is kept (changed), seeds averaged
first, ± the 95% t-interval half-width, with the NFE of a 48-frame video.

    OMP_NUM_THREADS=1 python benchmarks/contradiction.py                  # run what is missing, report
    OMP_NUM_THREADS=1 python benchmarks/contradiction.py --rerun default  # after `default` changed
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from toyworld_runs import Results, check_arguments, events_of, parser, run, scenarios_of

from syncos.backends.toyworld import world as W
from syncos.backends.toyworld.metrics import decode_frames, frame_labels, prompt_labels
from syncos.bench.report import interval

ATTRIBUTES = ("shape", "colour", "size", "scene", "lighting")


def switch_frame(labels: np.ndarray, old: int, new: int) -> float:
    """Index k that best explains labels as ``old`` before k and ``new`` from k on (0..len);
    the middle of the best k's when several tie (a stretch showing neither value)."""
    before = np.concatenate([[0], np.cumsum(labels == old)])
    after = np.concatenate([np.cumsum((labels == new)[::-1])[::-1], [0]])
    score = before + after
    return float(np.flatnonzero(score == score.max()).mean())


def measure(
    labels: dict[str, np.ndarray], global_prompt: str, events: list[tuple[int, int, str]], near: int = 6
) -> dict:
    """Per attribute: {"kept": fraction, "open": no prompt pins it, "kept near" / "kept far": the
    same over frames less / at least ``near`` frames from an event boundary} or {"in_span":
    fraction, "switch": [offsets in frames]}."""
    pins = [prompt_labels(f"{global_prompt}. {p}" if global_prompt else p) for _, _, p in events]
    T = len(labels[ATTRIBUTES[0]])
    gap = np.min([np.abs(np.arange(T) + 0.5 - s) for s, _, _ in events[1:]] or [np.full(T, np.inf)], axis=0)
    close = gap < near
    out = {}
    for a in ATTRIBUTES:
        lab, targets = labels[a], [pin.get(a) for pin in pins]
        if len({t for t in targets if t is not None}) < 2:
            valid = lab[lab >= 0]
            same = lab == np.bincount(valid).argmax() if len(valid) else np.zeros(T, bool)
            out[a] = {"kept": float(same.mean()), "open": all(t is None for t in targets)}
            out[a] |= {"kept near": float(same[close].mean())} if close.any() else {}
            out[a] |= {"kept far": float(same[~close].mean())} if (~close).any() else {}
            continue
        spans = [(s, e, t) for (s, e, _), t in zip(events, targets, strict=True) if t is not None]
        offsets = [  # the switch found in both events' frames, relative to the second one's start
            s0 + switch_frame(lab[s0:e1], t0, t1) - s1
            for (s0, _, t0), (s1, e1, t1) in zip(spans, spans[1:], strict=False)
            if t0 != t1
        ]
        out[a] = {"in_span": float(np.mean([(lab[s:e] == t).mean() for s, e, t in spans])), "switch": offsets}
    return out


def main() -> None:
    ap = parser(
        __doc__,
        "benchmarks/suites/toyworld-contradiction",
        "benchmarks/results/contradiction/runs.csv",
        "docs/open-questions/contradiction.png",
    )
    args = ap.parse_args()
    check_arguments(ap, args)
    torch.set_num_threads(1)
    scenarios = scenarios_of(args)
    results = Results(args.out, ("variant", "scenario", "seed"), args.rerun)
    todo = [
        (name, seed, v)
        for name in scenarios
        for seed in range(args.seeds)
        for v in args.variants
        if not results.has(variant=v, scenario=name, seed=seed)
    ]
    for i, (name, seed, v) in enumerate([] if args.report_only else todo):
        gen, frames, record = run(name, scenarios[name], v, seed)
        labels = frame_labels(decode_frames(frames))
        results.add(
            {
                "variant": v,
                "scenario": name,
                "seed": seed,
                **record,
                "global_prompt": gen.scenario.global_prompt,
                "events": json.dumps(events_of(gen)),
                "labels": json.dumps({k: x.tolist() for k, x in labels.items()}),
            }
        )
        print(f"[{i + 1}/{len(todo)}] {name} seed {seed} {v}: {record['seconds']} s", flush=True)
    rows = [r for r in results.rows if r["scenario"] in scenarios]
    print(report(rows, list(args.variants), args.baseline))
    plot(rows, list(args.variants), args.plot)
    print(f"plot: {args.plot}")


def measured(rows: list[dict]) -> tuple[dict, dict]:
    """(variant, attribute, measure) -> scenario -> mean over seeds; variant -> mean NFE."""
    acc: dict = defaultdict(lambda: defaultdict(list))
    nfe: dict = defaultdict(list)
    for r in rows:
        nfe[r["variant"]].append(float(r["nfe_total"]))
        labels = {k: np.array(v) for k, v in json.loads(r["labels"]).items()}
        for a, m in measure(labels, r["global_prompt"], [tuple(e) for e in json.loads(r["events"])]).items():
            a = f"{a}, open" if m.pop("open", False) else a  # kept with no prompt naming it
            for k, v in m.items():
                if k == "switch":
                    acc[(r["variant"], a, "|switch|")][r["scenario"]].append(np.mean(np.abs(v)))
                    acc[(r["variant"], a, "switch")][r["scenario"]].append(np.mean(v))
                else:
                    acc[(r["variant"], a, k)][r["scenario"]].append(v)
    means = {key: {sc: float(np.mean(v)) for sc, v in by.items()} for key, by in acc.items()}
    return means, {v: float(np.mean(x)) for v, x in nfe.items()}


def report(rows: list[dict], variants: list[str], baseline: str) -> str:
    acc, nfe = measured(rows)
    present = [v for v in variants if v in nfe]

    def cell(v: str, a: str, k: str) -> str:
        if (v, a, k) not in acc:
            return ""
        m, h = interval(list(acc[(v, a, k)].values()))
        digits = 1 if "switch" in k else 3
        return (
            f"{m:+.{digits}f}"
            if k == "switch"
            else f"{m:.{digits}f}" + ("" if math.isnan(h) else f" ± {h:.{digits}f}")
        )

    def scenarios(a: str, k: str) -> int:
        return max((len(acc[(v, a, k)]) for v in present if (v, a, k) in acc), default=0)

    kept = [a for b in ATTRIBUTES for a in (b, f"{b}, open") if scenarios(a, "kept")]
    changed = [a for a in ATTRIBUTES if scenarios(a, "in_span")]
    out = [
        "Kept: fraction of frames showing the video's most common value, where no event changes it "
        "(open: no prompt names it either); near / far: frames less than / at least 6 frames (half a "
        "native clip) from an event boundary.",
        "",
        "| method | NFE | "
        + " | ".join(f"{a} ({scenarios(a, 'kept')} sc.): all / near / far" for a in kept)
        + " |",
        "|---|---|" + "---|" * len(kept),
    ]
    for v in present:
        cells = [" / ".join(cell(v, a, k) for k in ("kept", "kept near", "kept far")) for a in kept]
        out.append(f"| {v} | {nfe[v]:.0f} | " + " | ".join(cells) + " |")
    out += [
        "",
        "Changed: fraction of each event's frames showing the value it names; |switch| = frames between the "
        "event boundary and the decoded change (signed mean in brackets: negative = early).",
        "",
        "| method | NFE | "
        + " | ".join(
            f"{a} in span ({scenarios(a, 'in_span')} sc.) | {a} \\|switch\\| (signed)" for a in changed
        )
        + " |",
        "|---|---|" + "---|---|" * len(changed),
    ]
    for v in present:
        cells = [
            f"{cell(v, a, 'in_span')} | {cell(v, a, '|switch|')} ({cell(v, a, 'switch')})" for a in changed
        ]
        out.append(f"| {v} | {nfe[v]:.0f} | " + " | ".join(cells) + " |")
    columns = (
        [(a, "kept") for a in kept] + [(a, "kept near") for a in kept] + [(a, "in_span") for a in changed]
    )
    # leave out what no method changes at all (a pinned scene is kept in every frame by every method)
    columns = [c for c in columns if len({x for v in present for x in acc.get((v, *c), {}).values()}) > 1]
    out += [
        "",
        f"Minus {baseline}, paired by scenario (* the 95% interval excludes 0):",
        "",
        f"| method − {baseline} | " + " | ".join(f"{a} {k.replace('_', ' ')}" for a, k in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for v in present:
        if v == baseline:
            continue
        cells = []
        for a, k in columns:
            mine, base = acc.get((v, a, k), {}), acc.get((baseline, a, k), {})
            diffs = [mine[sc] - base[sc] for sc in mine if sc in base]
            m, h = interval(diffs) if diffs else (math.nan, math.nan)
            cells.append("" if math.isnan(m) else f"{m:+.3f} ± {h:.3f}" + (" *" if abs(m) > h else ""))
        out.append(f"| {v} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def plot(rows: list[dict], variants: list[str], path: Path) -> None:
    """Per scenario (rows) and method (columns), seed 0: the decoded colour, scene and lighting by frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({r["scenario"] for r in rows})
    present = [v for v in variants if any(r["variant"] == v for r in rows)]
    fig, axes = plt.subplots(
        len(names), len(present), figsize=(2.3 * len(present) + 1.2, 0.75 * len(names) + 0.8), squeeze=False
    )
    shown = ("colour", "scene", "lighting")
    black = [(0.0, 0.0, 0.0)]  # the last entry: what label -1 (no toyworld frame) shows
    palette = {
        "colour": np.array([*W.hue_to_rgb(np.array(list(W.COLOURS.values()))), *black]),
        "scene": np.array([*(c[1] for c in W.SCENES.values()), *black]),  # the ground's colour
        "lighting": np.array([(0.98, 0.9, 0.5), (0.1, 0.1, 0.3), *black]),  # day, night
    }
    for i, name in enumerate(names):
        for j, v in enumerate(present):
            ax = axes[i, j]
            run = next(
                (r for r in rows if r["variant"] == v and r["scenario"] == name and r["seed"] == "0"), None
            )
            if run is None:
                ax.axis("off")
                continue
            labels = json.loads(run["labels"])
            img = np.stack([palette[a][np.array(labels[a])] for a in shown])  # label -1: the last entry
            ax.imshow(img, aspect="auto", interpolation="nearest")
            for start, _, _ in json.loads(run["events"])[1:]:
                ax.axvline(start - 0.5, color="black", lw=1)
            ax.set_yticks(range(len(shown)), shown if j == 0 else [""] * len(shown), fontsize=6)
            ax.tick_params(axis="x", labelsize=6)
            if i == 0:
                ax.set_title(v, fontsize=8)
            if j == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=7)
    fig.suptitle(
        "decoded per frame (seed 0): the subject's colour, the scene's ground colour, day (yellow) / night "
        "(navy);\nblack: no toyworld frame; lines: event boundaries",
        fontsize=8,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
