"""Steps above SynCoS's t_min (900) of 50, and stage 2's network evaluations, per model and flow shift.

SynCoS runs stage 2 (``iterations`` CSD forwards of every chunk, twice with CFG) at the steps
whose timestep lies above ``t_min``; for flow models t = 1000 * sigma, so the shift decides how
many steps that is. The grids are syncos's own (the adapters' schedules, built from the scheduler
configs in benchmarks/configs/real_size.json), so the counts are those a run takes:

    python benchmarks/flow_shift_nfe.py          # the table of docs/diffusers.md
"""

from __future__ import annotations

import json
from pathlib import Path

import diffusers
from syncos.backends.diffusers.common import flow_schedule, vp_schedule_from_config
from syncos.backends.diffusers.ltx import calculate_shift, ltx_schedule

CONFIGS = Path(__file__).parent / "configs" / "real_size.json"
STEPS, T_MIN, ITERATIONS, CFG_PASSES = 50, 900.0, 20, 2
# chunks of a 4x video at the models' native clip and default stride (docs/diffusers.md's table)
CHUNKS = {"cogvideox-2b": 11, "wan2.1-1.3b": 12, "ltx-video": 12}


def scheduler(name: str, **overrides):
    cfg = dict(json.loads(CONFIGS.read_text())[name]["scheduler"])
    cls = getattr(diffusers, cfg.pop("_class_name"))
    return cls.from_config({**cfg, **overrides})


def above(schedule) -> int:
    return int((schedule.grid(STEPS).timesteps > T_MIN).sum())


def rows() -> list[tuple[str, str, int, int]]:
    """(model, the grid's assumption, steps above t_min, stage-2 evaluations of a 4x video)."""
    out = []
    cog = vp_schedule_from_config(scheduler("cogvideox-2b").config)
    out.append(("cogvideox-2b", "DDIM, trailing, SNR shift 3", above(cog)))
    for shift, why in (
        (3.0, "the diffusers checkpoint's flow_shift"),
        (5.0, "Wan's generate.py"),
        (8.0, "README's range for 1.3B, low end"),
        (12.0, "README's range, high end"),
    ):
        sched = scheduler("wan2.1-1.3b", flow_shift=shift)
        out.append(
            ("wan2.1-1.3b", f"UniPC flow sigmas, shift {shift:g} ({why})", above(flow_schedule(sched)))
        )
    real = json.loads(CONFIGS.read_text())["ltx-video"]
    h, w = (n // 32 for n in real["size"])
    frames = (real["native_frames"] - 1) // 8 + 1
    cfg = dict(scheduler("ltx-video").config)
    mu = calculate_shift(
        frames * h * w,
        cfg["base_image_seq_len"],
        cfg["max_image_seq_len"],
        cfg["base_shift"],
        cfg["max_shift"],
    )
    ltx = ltx_schedule(scheduler("ltx-video"), frames * h * w)
    out.append(
        (
            "ltx-video",
            f"dynamic shift mu = {mu:.2f} at {real['size'][0]}x{real['size'][1]}x"
            f"{real['native_frames']}, terminal 0.1",
            above(ltx),
        )
    )
    return [(m, why, n, n * ITERATIONS * CHUNKS[m] * CFG_PASSES) for m, why, n in out]


def main() -> None:
    print(f"| model | grid ({STEPS} steps) | steps with t > {T_MIN:g} | syncos stage 2, 4x video |")
    print("| --- | --- | --- | --- |")
    for model, why, n, nfe in rows():
        print(f"| {model} | {why} | {n} | {nfe} ({ITERATIONS} iterations x {CHUNKS[model]} chunks x CFG 2) |")


if __name__ == "__main__":
    main()
