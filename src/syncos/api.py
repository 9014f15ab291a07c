"""The Python API the command line is a thin layer over."""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from syncos import __version__, distributed, memory, threads
from syncos.backends import Backend, load_backend
from syncos.checkpoint import Checkpoint
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
    _frames: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def frames(self) -> np.ndarray:
        """The decoded video, uint8 (T, H, W, 3): decoded on the first call and kept, so metrics,
        ``save`` and a user's own loop never decode it twice. Every call returns the same array (copy
        it before writing into it; not read-only, so torch.from_numpy takes it). It is held in host
        memory; :meth:`decode` streams instead."""
        if self._frames is None:
            self._frames = np.stack(list(self.backend.decode(self.latent)))
        return self._frames

    def decode(self) -> Iterator[np.ndarray]:
        """The frames one at a time, holding none: decodes the latent on every call, unless
        :meth:`frames` already did (then its frames are replayed)."""
        return iter(self._frames) if self._frames is not None else self.backend.decode(self.latent)

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
    need = resident_bytes(scenario, backend, frames)
    height, width = backend.spec.height, backend.spec.width
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


def resident_bytes(scenario: Scenario, backend: Backend, frames: int) -> int:
    """Estimated bytes a run holds apart from the network's activations: the long latent, its working
    copies and stacked chunks (LATENT_COPIES, CHUNK_COPIES), and the decoded video where it is held."""
    L = backend.chunk_length
    stride = scenario.stride or backend.default_stride
    if stride == AUTO:
        stride = make_plan(scenario, backend).stride
    latent_frame = 4 * math.prod(backend.latent_shape(1))
    per_latent_frame = latent_frame * (LATENT_COPIES + CHUNK_COPIES * L / max(1, stride))
    spec = backend.spec
    # backends with their own metrics score the whole decoded video at once; the others stream it
    per_frame = 3 * spec.height * spec.width if spec.evaluate is not None else 0
    return int(backend.latent_frames(frames) * per_latent_frame + frames * per_frame)


def fit_memory(
    scenario: Scenario, backend: Backend, plan: Plan, probe: memory.Probe | None = None
) -> tuple[Scenario, memory.MemoryCheck | None]:
    """The measured memory check (``syncos.memory``): sampler.micro_batch picked from the first
    forward's peak unless the scenario sets it (run.json records the value), a refusal when not even
    one chunk fits; nothing is measured where the device has no peak counter (CPU)."""
    given = "micro_batch" in scenario.options
    resident = resident_bytes(scenario, backend, plan.video_frames)
    options, result = memory.check(backend, plan, scenario.sampler_options(), resident, given, probe)
    if result is None or given:
        return scenario, result
    return dataclasses.replace(
        scenario, options={**scenario.options, "micro_batch": options.micro_batch}
    ), result


def with_model_defaults(scenario: Scenario, backend: Backend) -> Scenario:
    """The model's own call settings (``spec.defaults``: the stock pipeline's ``__call__`` defaults,
    e.g. Wan's CFG 5, distilled HunyuanVideo's no CFG; Open-Sora Plan's release samples 100 steps at
    CFG 7.5) for the sampler keys the scenario leaves out; run.json records them."""
    given = scenario.options
    defaults = {k: v for k, v in backend.spec.defaults.sampler_keys().items() if k not in given}
    return dataclasses.replace(scenario, options={**defaults, **given}) if defaults else scenario


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
    if pipe is not None:  # the scenario's model key names nothing that ran: name the pipeline
        identity = backend.spec.identity
        scenario = dataclasses.replace(scenario, model=identity["name_or_path"] or identity["pipeline"])
    scenario = with_model_defaults(scenario, backend)
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
    checkpoint: Checkpoint | None = None,
    generator: torch.Generator | None = None,
    latents: torch.Tensor | None = None,
    **call: Any,
) -> Any:
    """Sample the long latent of a scenario (a Scenario, a mapping, or a YAML/JSON path).

    ``pipe`` hands over a diffusers pipeline the caller already built (LoRA, quantisation and
    offloading stay as set up); ``backend`` reuses a loaded backend across calls; ``checkpoint``
    makes the run resumable (:mod:`syncos.checkpoint`: restored from it, written to it);
    ``generator`` (a CPU torch.Generator) is drawn from instead of seeding one with the scenario's seed;
    ``latents`` is the long latent's initial noise, of shape ``backend.latent_shape(plan.latent_frames)``
    or with a leading batch axis of 1 (``Run.randn``; FIFO takes none).

    ``generate(pipe, global_prompt=..., events=[...], ...)``, a diffusers pipeline first, is
    ``SynCoSPipeline.from_pipe(pipe, height=, width=, fps=, model_options=)(...)``: it returns that
    call's output (``.frames``).
    """
    if not isinstance(scenario, Scenario | Mapping | str | os.PathLike):
        from syncos.pipeline import SynCoSPipeline

        build = {k: call.pop(k) for k in ("height", "width", "fps", "model_options") if k in call}
        pipeline = SynCoSPipeline.from_pipe(scenario, **build)
        return pipeline(generator=generator, latents=latents, callback=callback, **call)
    if call:
        raise UserError(
            f"generate(scenario, ...) takes no {', '.join(sorted(call))}: set them in the scenario, or "
            "hand a diffusers pipeline first: generate(pipe, global_prompt=..., events=[...])"
        )
    from syncos.planning import input_notes

    start = time.perf_counter()
    scenario, backend, plan = prepare(scenario, pipe=pipe, backend=backend, overrides=overrides)
    with threads.for_backend(backend):
        scenario, _ = fit_memory(scenario, backend, plan)
    fn = SAMPLERS[scenario.method][0]
    seed = scenario.seed if generator is None else generator
    with threads.for_backend(backend):  # one thread for toyworld / tiny models unless the user chose
        result = fn(backend, plan, scenario.sampler_options(), seed, callback, checkpoint, latents)
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
        notes=(*input_notes(scenario, backend), *result.notes),
    )


PACKAGES = ("syncos", "torch", "numpy", "diffusers", "transformers")  # what a run's numbers depend on


def versions(absent: str | None = None) -> dict[str, str]:
    """Python's and each package's version; a package not installed is left out, or ``absent``."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = __version__ if name == "syncos" else absent  # syncos run from its source tree
            if version is not None:
                out[name] = version
    return out


def run_record(gen: Generation, wall_seconds: float, video_frames: int) -> dict:
    """What run.json holds: enough to reproduce the video and to compare runs."""
    return {
        "scenario": gen.scenario.to_dict(),
        "seed": gen.scenario.seed,
        "method": gen.scenario.method,
        "versions": versions(),
        "device": str(gen.backend.device),
        "model": dict(gen.backend.spec.identity),
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
    evaluate = gen.backend.spec.evaluate
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
        frames: Iterable[np.ndarray] = gen.decode()  # streamed: a long video is never held whole
        metrics = None
        if gen.backend.spec.evaluate is not None:  # toyworld: small frames, scored before anything is written
            frames = gen.frames()
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
