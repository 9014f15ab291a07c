"""Every method on a story (the demo, or its hard case): one table row and one contact sheet each.

Per method: wall seconds, network evaluations, the toyworld scores and defect counts, and the mean
pixel of the last five frames; the sheet shows every frame, one row of frames per event, one band
of rows per method (docs/demo.md).

    OMP_NUM_THREADS=1 python benchmarks/demo_sheets.py examples/ball_story.yaml docs/demo_story
    OMP_NUM_THREADS=1 python benchmarks/demo_sheets.py examples/ball_story_hard.yaml docs/demo_hard \\
        --extra syncos:guidance_rescale=0.7
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from syncos import api
from syncos.samplers.options import DEFAULT_METHOD

METHODS = ("extend", "independent", "codenoise", "fifo", "syncos")
SCALE = 2  # pixels per world pixel in the sheet


def run(story: str, method: str, extra: list[str]) -> tuple[dict, np.ndarray, list[tuple[int, int, str]]]:
    start = time.perf_counter()
    gen = api.generate(story, overrides=[f"sampler.method={method}", *extra])
    frames = np.stack(list(gen.backend.preview(gen.latent)))
    wall = time.perf_counter() - start
    scores = api.evaluate_frames(gen, frames) or {}
    default = " (default)" if method == DEFAULT_METHOD and not extra else ""
    row = {
        "method": " ".join([method, *extra]) + default,
        "seconds": round(wall, 1),
        "nfe": sum(gen.nfe.values()),
        **{k: round(float(v), 3) for k, v in scores.items()},
        "last5_mean_pixel": round(float(frames[-5:].mean()), 1),
    }
    return row, frames, api.video_events(gen.plan, gen.scenario)


def band(frames: np.ndarray, events: list[tuple[int, int, str]], label: str) -> Image.Image:
    """One row of frames per event (1 px white gaps), the method's name above."""
    h, w = frames.shape[1:3]
    cols = max(b - a for a, b, _ in events)
    img = np.full((len(events) * (h + 1) + 12, cols * (w + 1), 3), 255, np.uint8)
    for r, (a, b, _) in enumerate(events):
        for c, f in enumerate(frames[a:b]):
            y, x = 12 + r * (h + 1), c * (w + 1)
            img[y : y + h, x : x + w] = f
    out = Image.fromarray(img.repeat(SCALE, 0).repeat(SCALE, 1))
    ImageDraw.Draw(out).text((2, 2), label, fill=(0, 0, 0))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("story")
    p.add_argument("out", help="writes OUT.json (the table) and OUT.png (the sheet)")
    p.add_argument("--extra", action="append", default=[], help="METHOD:KEY=VALUE,... one more row")
    args = p.parse_args()
    runs = [(m, []) for m in METHODS]
    for spec in args.extra:
        method, _, sets = spec.partition(":")
        runs.append((method, [f"sampler.{s}" for s in sets.split(",")]))
    rows, bands = [], []
    for method, extra in runs:
        row, frames, events = run(args.story, method, extra)
        rows.append(row)
        bands.append(band(frames, events, row["method"]))
        print(json.dumps(row), flush=True)
    sheet = Image.new("RGB", (max(b.width for b in bands), sum(b.height for b in bands)), "white")
    y = 0
    for b in bands:
        sheet.paste(b, (0, y))
        y += b.height
    sheet.save(f"{args.out}.png", optimize=True)
    Path(f"{args.out}.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
