"""The Python API the command line is a thin layer over."""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from syncos import distributed, threads
from syncos.backends import Backend, load_backend
from syncos.errors import UserError
from syncos.io import output_folder, write_json, write_video
from syncos.samplers import SAMPLERS, Callback
from syncos.scenario import MAX_VIDEO_FRAMES, Scenario, load_scenario
from syncos.timeline import AUTO, Plan, event_frames, plan_timeline

# What run.json and `syncos metrics` say the toyworld metrics are computed from.
METRICS_FROM_RUN = "decoded frames, before video encoding"
METRICS_FROM_FILE = "frames read back from the file (H.264 is lossy: run.json's differ slightly)"


@dataclass
class Generation:
    """A finished sampling run: the long latent and everything needed to decode and report it."""

    scenario: Scenario
    backend: Backend
    plan: Plan
    latent: torch.Tensor
    nfe: dict[str, int]
    seconds: dict[str, float]
    solver: str = "ddim"  # the step rule the sampler took (syncos.solvers), as run.json records it
    fifo_mode: str | None = None  # FIFO's timestep mode (samplers.fifo), as run.json records it
    wall_seconds: float = 0.0  # generate() from start to end, loading the model included
    notes: tuple[str, ...] = ()  # the sampler's remarks on this run (run.json "notes")

    def frames(self) -> Iterator[np.ndarray]:
        """Decoded uint8 frames (H, W, 3), streamed."""
        return self.backend.decode(self.latent)

    @property
    def fps(self) -> float:
        return float(self.scenario.fps or self.backend.fps)


def make_plan(scenario: Scenario, backend: Backend) -> Plan:
    return plan_timeline(
        scenario.global_prompt,
        scenario.events,
        chunk_length=backend.chunk_length,
        stride=scenario.stride or backend.default_stride,
        fps=float(scenario.fps or backend.fps),
        latent_frames=backend.latent_frames,
        video_frames=backend.video_frames,
        prompt_mode=scenario.prompt_mode,
    )


# Peak bytes of a run per byte of its float32 long latent: the latent's working copies (noise,
# estimates, CSD state and optimiser moments) plus the stacked overlapping chunks, CHUNK_COPIES
# times L / stride. Measured on toyworld SynCoS (its exact posterior works in float64): peak RSS
# grew 0.8 MB per latent frame of 12 KB from 48 to 480 frames at L / stride = 3, about 65x.
LATENT_COPIES, CHUNK_COPIES = 24, 14


def _available_memory(device: torch.device) -> tuple[int, str]:
    """Bytes a run may use on ``device`` and the device's name (CUDA: free memory; else RAM)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free), f"{torch.cuda.get_device_name(device)} ({device})"
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024, "this machine"
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "this machine"


def check_fits(scenario: Scenario, backend: Backend) -> None:
    """Refuse, before anything is allocated, what this model cannot run: a stride longer than its
    chunk, more steps than its schedule has, a video whose latent and frames would not fit in memory."""
    L = backend.chunk_length
    stride = scenario.stride or backend.default_stride
    if stride != AUTO and stride > L:
        default = "" if scenario.stride else " (the model's default; set sampler.stride)"
        raise UserError(
            f"sampler.stride: must be in [1, {L}] (this model's chunk length), got {stride}{default}"
        )
    options = scenario.sampler_options()
    steps = options.levels(L) if hasattr(options, "levels") else options.steps
    limit = backend.schedule.num_train_timesteps
    if steps > limit:
        key = "sampler.partitions" if hasattr(options, "levels") else "sampler.steps"
        raise UserError(f"{key}: {steps} sampling steps, but this model's schedule has {limit} timesteps")
    fps = float(scenario.fps or backend.fps)
    frames = sum(event_frames(e, fps) for e in scenario.events)
    if frames > MAX_VIDEO_FRAMES:
        raise UserError(
            f"events: the video would have {frames} frames; at most {MAX_VIDEO_FRAMES} "
            f"({MAX_VIDEO_FRAMES / fps / 60:.0f} minutes at {fps:g} fps)"
        )
    if stride == AUTO:
        stride = make_plan(scenario, backend).stride
    latent_frame = 4 * math.prod(backend.latent_shape(1))
    per_latent_frame = latent_frame * (LATENT_COPIES + CHUNK_COPIES * L / max(1, stride))
    height, width = getattr(backend, "height", 0), getattr(backend, "width", 0)
    # backends with their own metrics score the whole decoded video at once; the others stream it
    per_frame = 3 * height * width if hasattr(backend, "evaluate") else 0
    latent_frames = backend.latent_frames(frames)
    need = latent_frames * per_latent_frame + frames * per_frame
    have, where = _available_memory(backend.device)
    if need > 0.8 * have:
        fit = int(0.8 * have / (need / frames))
        if backend.latent_frames(fit) < L:
            raise UserError(
                f"height x width {height}x{width}: not even one chunk of this model fits in the "
                f"{have / 2**30:.1f} GiB free on {where}; lower the resolution"
            )
        raise UserError(
            f"events: a video of {frames} frames needs about {need / 2**30:.1f} GiB (long latent, its "
            f"working copies and frames) but {where} has {have / 2**30:.1f} GiB free; about {fit} frames "
            f"({fit / fps:.0f} s at {fps:g} fps) fit here: for longer videos use a device with more memory "
            "(torchrun splits the work over GPUs, not the latent)"
        )


def prepare(
    scenario: Scenario | Mapping[str, Any] | str | Path,
    *,
    pipe: Any = None,
    backend: Backend | None = None,
    overrides: list[str] | None = None,
) -> tuple[Scenario, Backend, Plan]:
    """The validated scenario, its backend and its timeline: everything checked before sampling."""
    if not isinstance(scenario, Scenario) or overrides:
        source = scenario.to_dict() if isinstance(scenario, Scenario) else scenario
        scenario = load_scenario(source, overrides)
    if backend is None:
        backend = load_backend(scenario.model, pipe=pipe, **scenario.model_settings())
    check_fits(scenario, backend)
    plan = make_plan(scenario, backend)
    backend.encode(list(plan.prompts))  # a prompt the model cannot take fails now, not mid-run
    return scenario, backend, plan


def generate(
    scenario: Scenario | Mapping[str, Any] | str | Path,
    *,
    pipe: Any = None,
    backend: Backend | None = None,
    callback: Callback | None = None,
    overrides: list[str] | None = None,
) -> Generation:
    """Sample the long latent of a scenario (a Scenario, a mapping, or a YAML/JSON path).

    ``pipe`` hands over a diffusers pipeline the caller already built (LoRA, quantisation and
    offloading stay as set up); ``backend`` reuses a loaded backend across calls.
    """
    start = time.perf_counter()
    scenario, backend, plan = prepare(scenario, pipe=pipe, backend=backend, overrides=overrides)
    fn = SAMPLERS[scenario.method][0]
    with threads.for_backend(backend):  # one thread for toyworld / tiny models unless the user chose
        result = fn(backend, plan, scenario.sampler_options(), scenario.seed, callback)
    if not bool(torch.isfinite(result.latent).all()):
        raise UserError(
            "sampling diverged: the latent holds NaN or infinity; lower sampler.guidance_scale or sampler.lr"
        )
    wall = time.perf_counter() - start
    return Generation(
        scenario,
        backend,
        result.plan,
        result.latent,
        result.nfe,
        result.seconds,
        result.solver,
        result.fifo_mode,
        wall_seconds=wall,
        notes=result.notes,
    )


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("syncos", "torch", "numpy", "diffusers", "transformers"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def run_record(gen: Generation, wall_seconds: float, video_frames: int) -> dict:
    """What run.json holds: enough to reproduce the video and to compare runs."""
    return {
        "scenario": gen.scenario.to_dict(),
        "seed": gen.scenario.seed,
        "method": gen.scenario.method,
        "versions": versions(),
        "device": str(gen.backend.device),
        **({"pipeline": type(gen.backend.pipe).__name__} if hasattr(gen.backend, "pipe") else {}),
        "plan": dataclasses.asdict(gen.plan),
        "solver": gen.solver,
        **({"fifo_mode": gen.fifo_mode} if gen.fifo_mode else {}),
        **({"notes": list(gen.notes)} if gen.notes else {}),
        "nfe": gen.nfe,
        "seconds": {**{k: round(v, 4) for k, v in gen.seconds.items()}, "total": round(wall_seconds, 4)},
        "frames": video_frames,
        "fps": gen.fps,
        **({"unused_options": gen.scenario.unused_options} if gen.scenario.unused_options else {}),
        **({"world_size": distributed.world_size()} if distributed.world_size() > 1 else {}),
    }


def video_events(plan: Plan, scenario: Scenario) -> list[tuple[int, int, str]]:
    """Each event as (first frame, end frame, local prompt) in the output video: what metrics score."""
    return [(a, b, e.prompt) for (a, b), e in zip(plan.video_spans, scenario.events, strict=True)]


def evaluate_frames(gen: Generation, frames: np.ndarray) -> dict[str, float] | None:
    """The backend's own metrics of a decoded video, if it has any (toyworld does)."""
    evaluate = getattr(gen.backend, "evaluate", None)
    if evaluate is None:
        return None
    return evaluate(frames, gen.scenario.global_prompt, video_events(gen.plan, gen.scenario))


def save(
    gen: Generation, outdir: str | Path, *, gif: bool = False, wall_seconds: float | None = None
) -> dict:
    """Write OUTDIR/video.mp4 (and video.gif), then OUTDIR/run.json; returns the run record.

    ``seconds.total`` in run.json is ``wall_seconds`` (default: ``generate``'s own time) plus the
    time spent here. In a process group only rank 0 writes (every rank holds the same latent);
    the other ranks get the record without decoding (no ``metrics``) and touch no file.
    """
    wall = gen.wall_seconds if wall_seconds is None else wall_seconds
    if not distributed.is_main():
        return run_record(gen, wall, gen.plan.video_frames)
    with output_folder(outdir) as out:
        start = time.perf_counter()
        frames: Iterable[np.ndarray] = gen.frames()
        metrics = None
        if hasattr(gen.backend, "evaluate"):  # toyworld: small frames, scored before anything is written
            frames = np.stack(list(frames))
            metrics = evaluate_frames(gen, frames)
        n = write_video(frames, out / "video.mp4", gen.fps, gif=out / "video.gif" if gif else None)
        decode_seconds = time.perf_counter() - start
        record = run_record(gen, wall + decode_seconds, n)
        record["seconds"]["decode_and_write"] = round(decode_seconds, 4)
        if metrics is not None:
            record["metrics"] = metrics
            record["metrics_from"] = METRICS_FROM_RUN
        write_json(record, out / "run.json")
    return record


__all__ = ["Generation", "check_fits", "generate", "make_plan", "prepare", "save"]
