"""What every sampler shares: options, the result, noise, progress, and stage 1 (co-denoising)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn

import torch

from syncos import checkpoint as ckpt
from syncos.backends.base import Backend
from syncos.denoiser import Counter, Denoiser
from syncos.errors import UserError, shown, type_name
from syncos.fusion import crop, fuse
from syncos.solvers import History, Solver, step
from syncos.timeline import Plan


class Cancelled(Exception):
    """Raised when the progress callback asks to stop."""


@dataclass(frozen=True)
class SamplerOptions:
    """Options every sampler takes (the paper's CogVideoX settings by default)."""

    steps: int = 50
    guidance_scale: float = 6.0
    negative_prompt: str = ""
    # chunks per forward call; with CFG the call's batch is twice that, each chunk's conditional and
    # unconditional pass side by side (``syncos plan`` prints the batch)
    micro_batch: int = 4
    # The long latent's noise: i.i.d. ("independent"), or "rescheduled" as FreeNoise does: every
    # frame past the first chunk repeats the noise of the frame one chunk earlier, shuffled within
    # blocks of ``stride`` frames, so every chunk starts from the same noise in another order and
    # frame-wide decisions (scene, light, colour) come out alike in all chunks.
    noise: str = "independent"

    def __post_init__(self) -> None:
        check_types(self)
        check_range(self, "steps", 1, 1000)  # the models' 1000 training timesteps
        # 1 = no guidance; below 1 would push away from the prompt, above 100 only saturates
        check_range(self, "guidance_scale", 1.0, 100.0)
        check_range(self, "micro_batch", 1, 4096)
        check_choice(self, "noise", ("independent", "rescheduled"))


# Option values are checked where the options are built, so the command line, the Python API and
# the bench all get the same one-line UserError naming the key as a scenario writes it (sampler.KEY).
_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "None": type(None)}


def check_types(options: object) -> None:
    """Each field has its annotated type (an int is taken for a float); floats must be finite."""
    for f in dataclasses.fields(options):  # type: ignore[arg-type]
        value = getattr(options, f.name)
        allowed = [_TYPES[t.strip()] for t in str(f.type).split("|")]
        if value is None and type(None) in allowed:
            continue
        if float in allowed and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
            object.__setattr__(options, f.name, value)  # frozen: set the coerced value once
        ok = isinstance(value, tuple(allowed)) and (bool in allowed or not isinstance(value, bool))
        if not ok:
            expected = type_name(tuple(allowed)) + (" (or null)" if type(None) in allowed else "")
            raise UserError(f"sampler.{f.name}: expected {expected}, got {shown(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"sampler.{f.name}: must be a finite number, got {value}")


def check_range(options: object, name: str, lo: float, hi: float, *, open_lo: bool = False) -> None:
    """``lo <= value <= hi`` (``lo < value`` with ``open_lo``); None passes (a nullable default)."""
    value = getattr(options, name)
    if value is None:
        return
    if value < lo or value > hi or (open_lo and value == lo):
        lo_, hi_ = (f"{v:g}" if isinstance(v, float) else str(v) for v in (lo, hi))
        span = f"({lo_}, {hi_}]" if open_lo else f"[{lo_}, {hi_}]"
        raise UserError(f"sampler.{name}: must be in {span}, got {value}")


def check_choice(options: object, name: str, allowed: tuple[str, ...]) -> None:
    value = getattr(options, name)
    if value not in allowed:
        raise UserError(f"sampler.{name}: must be one of {', '.join(allowed)}, got {shown(value)}")


@dataclass(frozen=True)
class Step:
    """What the progress callback sees after each denoising step."""

    index: int
    total: int
    timestep: float
    x0: torch.Tensor  # the fused clean estimate of this step (unbatched long latent)


Callback = Callable[[Step], "bool | None"]


@dataclass
class SampleResult:
    latent: torch.Tensor
    plan: Plan
    nfe: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    solver: str = "ddim"  # the step rule, and the steps where it fell back to first order
    fifo_mode: str | None = None  # FIFO only: "per-frame" (diagonal denoising) or "shared" (approximation)
    notes: tuple[str, ...] = ()  # what a user should know about this run (e.g. an empty sync window)


class Run:
    """The per-call context of a sampler: denoiser, generator, counters, timing and progress."""

    def __init__(
        self,
        backend: Backend,
        plan: Plan,
        options: SamplerOptions,
        seed: int | torch.Generator,
        callback: Callback | None,
    ):
        self.backend, self.plan, self.options, self.callback = backend, plan, options, callback
        self.counter = Counter()
        self.denoiser = Denoiser(
            backend,
            options.guidance_scale,
            options.negative_prompt,
            options.micro_batch,
            self.counter,
            steps=options.steps,
        )
        # One CPU generator, drawn in a fixed order: results do not depend on batching or device. A
        # CPU torch.Generator handed in (SynCoSPipeline's ``generator``) is drawn from, as diffusers does.
        self.generator = (
            seed if isinstance(seed, torch.Generator) else torch.Generator("cpu").manual_seed(int(seed))
        )
        self.grid = backend.schedule.grid(options.steps)
        if backend.prediction == "eps" and bool((self.grid.alpha <= 0).any()):
            raise UserError(
                f"model {backend.name!r} predicts noise (eps), which gives no clean estimate at "
                "alpha = 0, and its schedule starts there (zero terminal SNR); use a schedule "
                "without zero terminal SNR, or a v-, x0- or flow-prediction model"
            )
        self.axis = backend.frame_axis
        self.shape = tuple(backend.latent_shape(plan.latent_frames))
        self.solver: Solver = backend.spec.solver
        self.first_order: list[int] = []  # steps a multistep solver had to take at first order
        self.store = ckpt.current()  # resumable runs (syncos.checkpoint); None: no-ops
        if self.store is not None:
            self.store.resolve(backend)
        self.total = 0  # steps of the sampler's loop, set by resume()

    def randn(self, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        """Noise of ``shape``, or of the whole long latent (rescheduled if the options say so)."""
        noise = torch.randn(shape or self.shape, generator=self.generator, dtype=torch.float32)
        if shape is None and self.options.noise == "rescheduled":
            noise = reschedule(noise, self.axis, self.plan.chunk_length, self.plan.stride, self.generator)
        return noise.to(self.backend.device)

    @contextmanager
    def stage(self, name: str):
        self.denoiser.stage = name
        start = time.perf_counter()
        try:
            yield
        finally:
            self.counter.add(name, seconds=time.perf_counter() - start)

    def coefficients(self, k: int) -> tuple[float, float, float, float, float]:
        g = self.grid
        return (
            float(g.timesteps[k]),
            float(g.alpha[k]),
            float(g.sigma[k]),
            float(g.alpha_next[k]),
            float(g.sigma_next[k]),
        )

    def step(
        self,
        k: int,
        x: torch.Tensor,
        x0: torch.Tensor,
        eps: torch.Tensor,
        history: History | None,
        ode: bool = True,
    ) -> tuple[torch.Tensor, History]:
        """The next latent by the backend's solver (``syncos.solvers``); any noise from the run's generator.

        ode=False: (x0, eps) is not the model's estimate at x (re-noised); the step is first order.
        """
        if not ode and self.solver.order > 1:
            self.first_order.append(k)
        return step(self.solver, self.grid, k, x, x0, eps, history, ode, self.generator)

    def report(self, k: int, t: float, x0: torch.Tensor) -> None:
        if self.callback is not None and self.callback(Step(k, len(self.grid), t, x0)) is False:
            raise Cancelled(f"cancelled after step {k + 1} of {len(self.grid)}")

    def result(self, latent: torch.Tensor, first_order: str = "") -> SampleResult:
        """The sampler's output; ``first_order`` says why it never used the model's solver, if so."""
        text = self.solver.describe()
        if self.solver.name != "ddim" and first_order:
            text = f"ddim ({first_order}; the model's solver is {text})"
        elif self.first_order:
            text += f"; first order at {len(self.first_order)} of {len(self.grid)} steps (re-noised there)"
        return SampleResult(latent, self.plan, dict(self.counter.nfe), dict(self.counter.seconds), text)

    def resume(self, total: int, **state: Any) -> tuple[Any, ...]:
        """(first step, *state) for a loop of ``total`` steps: as given, or restored from a checkpoint.

        Restoring also sets the generator, the counts and the solver notes, so the run goes on as
        if it had never stopped. ``state`` holds tensors, None, lists, a solver History, or a
        :class:`Fresh` tensor: built only when the run starts over, and checkpointed at once
        (step -1) as the end of a stage. A checkpoint holding another state is refused.
        """
        self.total = total
        saved = self.store.begin(total) if self.store is not None else None
        if saved is None:
            values = {k: v.make() if isinstance(v, Fresh) else v for k, v in state.items()}
            if any(isinstance(v, Fresh) for v in state.values()):
                self.checkpoint(-1, boundary=True, **values)
            return (0, *values.values())
        if set(saved.values) != set(state):
            _refuse(f"it holds {sorted(saved.values)}, this sampler's loop {sorted(state)}")
        for k, v in state.items():
            got = saved.values[k]
            if isinstance(v, (torch.Tensor, Fresh)):
                want = (tuple(v.shape), v.dtype)
                have = (tuple(got.shape), got.dtype) if isinstance(got, torch.Tensor) else type(got).__name__
                if have != want:
                    _refuse(f"its {k} is {have}, this run's {want}")
            elif not (isinstance(got, type(v)) if v is not None else got is None or isinstance(got, History)):
                want = type(v).__name__ if v is not None else "None or History"
                _refuse(f"its {k} is {type(got).__name__}, this run's {want}")
        self.generator.set_state(saved.rng)
        self.counter.nfe, self.counter.seconds = dict(saved.nfe), dict(saved.seconds)
        self.first_order = list(saved.first_order)
        device = self.backend.device
        return (saved.step + 1, *(ckpt.to_device(saved.values[k], device) for k in state))

    def checkpoint(self, k: int, boundary: bool = False, **state: Any) -> None:
        """Step k is done; ``state`` (with the generator) is all the loop needs to go on from k + 1.

        ``boundary``: a stage ends here, write it now (else the store's schedule decides).
        """
        if self.store is not None:
            self.store.offer(
                ckpt.State(
                    step=k,
                    total=self.total,
                    values=dict(state),
                    rng=self.generator.get_state(),
                    nfe=dict(self.counter.nfe),
                    seconds=dict(self.counter.seconds),
                    first_order=list(self.first_order),
                ),
                boundary=boundary,
            )


@dataclass(frozen=True)
class Fresh:
    """A loop state that costs work to build (FIFO's base clip): built by ``make`` only when a
    run starts over, never before a resume throws it away; ``shape`` and ``dtype`` check a restored one."""

    shape: tuple[int, ...]
    make: Callable[[], torch.Tensor]
    dtype: torch.dtype = torch.float32


def _refuse(what: str) -> NoReturn:
    raise ckpt.Refused(
        f"cannot resume: the checkpoint is not this sampler's state ({what}); {ckpt.START_OVER}"
    )


def reschedule(noise: torch.Tensor, axis: int, length: int, stride: int, generator: torch.Generator):
    """FreeNoise's noise rescheduling: frame f >= ``length`` takes the noise of frame f - length,
    the ``stride`` frames of each block in a random order (so all of it is the first chunk's)."""
    F = noise.shape[axis]
    index = torch.arange(F)
    for start in range(length, F, stride):
        n = min(stride, F - start)
        index[start : start + n] = index[start - length : start - length + n][
            torch.randperm(n, generator=generator)
        ]
    return noise.index_select(axis, index)


def blend_window(kind: str, length: int) -> torch.Tensor | None:
    """Weights of a chunk's positions when overlaps are averaged: None (uniform, the paper's) or a
    pyramid that favours each chunk's middle, where it sees the most context on both sides."""
    if kind == "uniform":
        return None
    i = torch.arange(length, dtype=torch.float64)
    return (torch.minimum(i + 1, length - i) / ((length + 1) // 2)).float()


def denoise_chunks(
    run: Run, x: torch.Tensor, t: float, alpha: float, sigma: float, plan: Plan
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every chunk of ``plan`` denoised under its own prompt: per-chunk (x0, eps), stacked."""
    with run.stage("stage1"):
        return run.denoiser(
            crop(x, plan.starts, plan.chunk_length, run.axis), t, alpha, sigma, plan.chunk_prompts
        )


def fuse_chunks(
    run: Run, chunks: tuple[torch.Tensor, torch.Tensor], plan: Plan, window: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-chunk (x0, eps) fused onto the long latent: overlaps averaged, or each frame's owner."""
    F = plan.latent_frames
    return tuple(fuse(c, plan.starts, F, run.axis, window=window, owned=plan.owned) for c in chunks)


def codenoise_estimate(
    run: Run,
    x: torch.Tensor,
    t: float,
    alpha: float,
    sigma: float,
    plan: Plan | None = None,
    window: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 1's estimate: every chunk denoised under its own prompt, (x0, eps) fused (``plan``: the
    run's). An estimate, not a step: ``Run.step`` takes the step."""
    plan = plan or run.plan
    return fuse_chunks(run, denoise_chunks(run, x, t, alpha, sigma, plan), plan, window)
