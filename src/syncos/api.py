"""The Python API the command line is a thin layer over."""

from __future__ import annotations

import dataclasses
import platform
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from syncos import distributed
from syncos.backends import Backend, load_backend
from syncos.io import prepare_outdir, write_json, write_video
from syncos.samplers import SAMPLERS, Callback
from syncos.scenario import Scenario, load_scenario
from syncos.timeline import Plan, plan_timeline


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
    if not isinstance(scenario, Scenario) or overrides:
        source = scenario.to_dict() if isinstance(scenario, Scenario) else scenario
        scenario = load_scenario(source, overrides)
    if backend is None:
        backend = load_backend(scenario.model, pipe=pipe, **scenario.model_settings())
    plan = make_plan(scenario, backend)
    backend.encode(list(plan.prompts))  # a prompt the model cannot take fails now, not mid-run
    fn = SAMPLERS[scenario.method][0]
    result = fn(backend, plan, scenario.sampler_options(), scenario.seed, callback)
    return Generation(
        scenario,
        backend,
        result.plan,
        result.latent,
        result.nfe,
        result.seconds,
        result.solver,
        result.fifo_mode,
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
        "plan": dataclasses.asdict(gen.plan),
        "solver": gen.solver,
        **({"fifo_mode": gen.fifo_mode} if gen.fifo_mode else {}),
        "nfe": gen.nfe,
        "seconds": {**{k: round(v, 4) for k, v in gen.seconds.items()}, "total": round(wall_seconds, 4)},
        "frames": video_frames,
        "fps": gen.fps,
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


def save(gen: Generation, outdir: str | Path, *, gif: bool = False, wall_seconds: float = 0.0) -> dict:
    """Write OUTDIR/video.mp4 (and video.gif), then OUTDIR/run.json; returns the run record.

    In a process group only rank 0 writes (every rank holds the same latent); the other ranks
    get the record without decoding (no ``metrics``) and touch no file.
    """
    if not distributed.is_main():
        return run_record(gen, wall_seconds, gen.plan.video_frames)
    out = prepare_outdir(outdir)
    start = time.perf_counter()
    frames: Iterable[np.ndarray] = gen.frames()
    metrics = None
    if hasattr(gen.backend, "evaluate"):  # toyworld: small frames, scored before anything is written
        frames = np.stack(list(frames))
        metrics = evaluate_frames(gen, frames)
    n = write_video(frames, out / "video.mp4", gen.fps, gif=out / "video.gif" if gif else None)
    decode_seconds = time.perf_counter() - start
    record = run_record(gen, wall_seconds + decode_seconds, n)
    record["seconds"]["decode_and_write"] = round(decode_seconds, 4)
    if metrics is not None:
        record["metrics"] = metrics
    write_json(record, out / "run.json")
    return record


__all__ = ["Generation", "generate", "make_plan", "save"]
