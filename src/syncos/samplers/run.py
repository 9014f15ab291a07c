"""What a sampling call holds and the one loop every sampler runs.

:class:`Run` is the per-call context (denoiser, generator, counters, the model's solver); its
:meth:`Run.loop` calls a sampler's ``step(k, **state)`` for every step and owns, once for all
samplers, what is not the method: the resume from a checkpoint, the checkpoint after each step,
the progress callback and its cancel, and writing the newest step when an error stops the run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple, NoReturn

import torch

from syncos import checkpoint as ckpt
from syncos.backends.base import Backend
from syncos.denoiser import Counter, Denoiser
from syncos.errors import UserError
from syncos.samplers.noise import reschedule
from syncos.samplers.options import SamplerOptions
from syncos.solvers import History, Solver, step
from syncos.timeline import Plan


class Cancelled(Exception):
    """Raised when the progress callback asks to stop."""


@dataclass(frozen=True)
class Step:
    """What the progress callback sees after each step of the sampler's loop."""

    index: int
    total: int
    timestep: float
    x0: torch.Tensor  # the fused clean estimate of this step (unbatched long latent)


Callback = Callable[[Step], "bool | None"]


class Stepped(NamedTuple):
    """What a sampler's step returns to the loop: its state after the step (checkpointed as it
    is, and given to the next step) and what the progress callback is shown."""

    state: dict[str, Any]
    timestep: float
    x0: torch.Tensor


@dataclass
class SampleResult:
    latent: torch.Tensor
    plan: Plan
    nfe: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    solver: str = "ddim"  # the step rule, and the steps where it fell back to first order
    fifo_mode: str | None = None  # FIFO only: "per-frame" (diagonal denoising) or "shared" (approximation)
    notes: tuple[str, ...] = ()  # what a user should know about this run (e.g. an empty sync window)


@dataclass(frozen=True)
class Fresh:
    """A loop state that costs work to build (FIFO's base clip): built by ``make`` only when a
    run starts over, never before a resume throws it away; ``shape`` and ``dtype`` check a restored one."""

    shape: tuple[int, ...]
    make: Callable[[], torch.Tensor]
    dtype: torch.dtype = torch.float32


class Run:
    """The per-call context of a sampler: denoiser, generator, counters, timing, progress and
    the checkpoint store (``checkpoint``: resumable runs, :mod:`syncos.checkpoint`; None: none)."""

    def __init__(
        self,
        backend: Backend,
        plan: Plan,
        options: SamplerOptions,
        seed: int | torch.Generator,
        callback: Callback | None,
        checkpoint: ckpt.Checkpoint | None = None,
        latents: torch.Tensor | None = None,
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
            guidance_rescale=options.guidance_rescale,
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
        self.latents = given_latents(latents, self.shape)
        self.spec = self.denoiser.spec  # the model's spec, built once per run (the denoiser's)
        self.solver: Solver = self.spec.solver
        self.first_order: list[int] = []  # steps a multistep solver had to take at first order
        self.store = checkpoint
        if self.store is not None:
            self.store.resolve(backend)
        self.total = 0  # steps of the sampler's loop, set by loop()

    def loop(self, total: int, step: Callable[..., Stepped], **state: Any) -> dict[str, Any]:
        """The sampler's loop of ``total`` steps: ``step(k, **state)`` for each k; the final state.

        ``state`` is the loop's state before step 0 (see :meth:`_resume` for what it may hold),
        replaced by a checkpoint's when the store holds one; after each step the loop offers the
        new state to the store, then shows the progress callback (a cancel comes after the step
        is kept). An error that stops the run first writes the newest step kept in memory.
        """
        try:
            start, state = self._resume(total, state)
            for k in range(start, total):
                done = step(k, **state)
                state = done.state
                self._checkpoint(k, state)
                if (
                    self.callback is not None
                    and self.callback(Step(k, total, done.timestep, done.x0)) is False
                ):
                    raise Cancelled(f"cancelled after step {k + 1} of {total}")
        except Exception:
            if self.store is not None:
                with contextlib.suppress(OSError):  # the error that stopped the run is the one to report
                    self.store.flush()
            raise
        return state

    def randn(self, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        """Noise of ``shape``, or of the whole long latent (rescheduled if the options say so).

        The first long-latent draw is replaced by the caller's ``latents`` when given, as given (not
        rescheduled); it is still drawn, so the generator's later noise is the same as without them.
        """
        noise = torch.randn(shape or self.shape, generator=self.generator, dtype=torch.float32)
        if shape is None and self.options.noise == "rescheduled":
            noise = reschedule(noise, self.axis, self.plan.chunk_length, self.plan.stride, self.generator)
        if shape is None and self.latents is not None:
            noise, self.latents = self.latents, None
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

    def result(self, latent: torch.Tensor, first_order: str = "") -> SampleResult:
        """The sampler's output; ``first_order`` says why it never used the model's solver, if so."""
        text = self.solver.describe()
        if self.solver.name != "ddim" and first_order:
            text = f"ddim ({first_order}; the model's solver is {text})"
        elif self.first_order:
            text += f"; first order at {len(self.first_order)} of {len(self.grid)} steps (re-noised there)"
        return SampleResult(latent, self.plan, dict(self.counter.nfe), dict(self.counter.seconds), text)

    def _resume(self, total: int, state: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(first step, state) for a loop of ``total`` steps: as given, or restored from the store.

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
                self._checkpoint(-1, values, boundary=True)
            return 0, values
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
        return saved.step + 1, {k: ckpt.to_device(saved.values[k], device) for k in state}

    def _checkpoint(self, k: int, state: dict[str, Any], boundary: bool = False) -> None:
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


def given_latents(latents: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor | None:
    """A caller's initial noise of the long latent as float32 on the host: ``shape`` (unbatched,
    the backend's ``latent_shape``) or ``(1, *shape)`` (diffusers' batch of one); else refused."""
    if latents is None:
        return None
    if not isinstance(latents, torch.Tensor) or tuple(latents.shape) not in (shape, (1, *shape)):
        got = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
        raise UserError(
            f"latents: must be a tensor of shape {shape} or {(1, *shape)} (this video's long latent), "
            f"got {got}"
        )
    return latents.reshape(shape).detach().to("cpu", torch.float32)


def _refuse(what: str) -> NoReturn:
    raise ckpt.Refused(
        f"cannot resume: the checkpoint is not this sampler's state ({what}); {ckpt.START_OVER}"
    )
