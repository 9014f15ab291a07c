"""Calibrate toyworld on posterior entropy alone (no sampler involved) and time one chunk evaluation.

For each contrast (latent = contrast * (pixel - 0.5)) it measures the normalised posterior
entropy over the subject's colour and the scene at t = 900 / 700 / 500 under CogVideoX's
schedule, prints the contrasts that meet the criterion (undecided at 900: entropy > 0.8;
decided by 500: < 0.1), and plots entropy against t for the default contrast under the
CogVideoX and Stable Diffusion schedules to docs/toyworld_calibration.png.

    python benchmarks/toyworld_calibration.py [--samples 48] [--quick]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from syncos.backends.toyworld import ToyWorldBackend
from syncos.backends.toyworld.model import CONTRAST, attribute_entropy

OUT = Path(__file__).resolve().parent.parent / "docs" / "toyworld_calibration.png"


def sweep(contrasts: list[float], samples: int) -> None:
    print("contrast | colour H(900/700/500) | scene H(900/700/500) | meets criterion")
    for c in contrasts:
        h = attribute_entropy(ToyWorldBackend(contrast=c), [900, 700, 500], samples=samples)
        ok = min(h["colour"][0], h["scene"][0]) > 0.8 and max(h["colour"][2], h["scene"][2]) < 0.1
        fmt = lambda a: "/".join(f"{v:.3f}" for v in a)  # noqa: E731
        print(f"{c:8.2f} | {fmt(h['colour']):21} | {fmt(h['scene']):20} | {'yes' if ok else 'no'}")


def plot(samples: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = np.arange(999, 0, -50)
    fig, ax = plt.subplots(figsize=(7, 4))
    for schedule, style in (("cogvideox", "-"), ("sd", "--")):
        h = attribute_entropy(ToyWorldBackend(schedule=schedule), ts, samples=samples)
        for key, colour in (("colour", "tab:red"), ("scene", "tab:green")):
            ax.plot(ts, h[key], style, color=colour, label=f"{key}, {schedule} schedule")
    ax.axvspan(500, 900, color="0.92")
    ax.set_xlim(1000, 0)
    ax.set_xlabel("timestep t")
    ax.set_ylabel("normalised posterior entropy")
    ax.set_title(f"toyworld: when are global attributes decided? (contrast {CONTRAST})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT, dpi=120)
    print(f"wrote {OUT}")


def timing(repeats: int = 5) -> None:
    b = ToyWorldBackend()
    x = torch.randn(8, *b.latent_shape(b.chunk_length))
    t = torch.full((8,), 500.0)
    for label, prompts in (
        ("conditional", ["a red ball on grass. the ball jumps"] * 4),
        ("unconditional", [""] * 4),
        ("CFG micro-batch (4 cond + 4 uncond)", ["a red ball on grass. the ball jumps"] * 4 + [""] * 4),
    ):
        cond = b.encode(prompts)
        xs, ts = x[: len(prompts)], t[: len(prompts)]
        b.forward(xs, ts, cond)  # builds and caches the prompt's tables
        best = min(_time(b.forward, xs, ts, cond) for _ in range(repeats))
        size = len(b.mixture(prompts[-1]))
        print(f"{label}: {best / len(prompts) * 1e3:.1f} ms per chunk ({size} components)")


def _time(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=48)
    p.add_argument("--quick", action="store_true", help="fewer samples, no sweep")
    args = p.parse_args()
    samples = 8 if args.quick else args.samples
    if not args.quick:
        sweep([0.5, 0.75, 1.0, 1.25, 1.5], samples)
    plot(samples)
    timing()


if __name__ == "__main__":
    main()
