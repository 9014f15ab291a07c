"""What a run will do, before it runs: the chunk layout, thin events, network evaluations, wall time.

``syncos plan`` prints it and the studio shows it. The NFE per stage is computed, not sampled:
tests check it against what each sampler's run counts.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from syncos import threads
from syncos.backends.base import Backend
from syncos.denoiser import Counter, Denoiser
from syncos.samplers import FIFOOptions, SamplerOptions
from syncos.scenario import Scenario
from syncos.timeline import AUTO, Plan


@dataclass(frozen=True)
class ChunkRow:
    latent: tuple[int, int]  # [start, end) latent frames
    video: tuple[int, int]  # [start, end) video frames
    event: int
    prompt: str


@dataclass(frozen=True)
class EventRow:
    prompt: str  # the full conditioning text
    latent: tuple[int, int]
    video: tuple[int, int]
    chunks: int  # chunks conditioned on it


@dataclass
class RunPlan:
    """The plan of one scenario on one backend; ``seconds_per_nfe`` is filled in by :func:`time_forward`."""

    model: str
    method: str
    steps: int  # sampling steps of the method (fifo: rounded to its queue length)
    fps: float
    plan: Plan  # the chunk layout the method uses
    chunks: list[ChunkRow]
    events: list[EventRow]
    nfe: dict[str, int]
    seconds_per_nfe: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def thin_events(self) -> list[int]:
        """Events fewer than two chunks show: nothing overlaps their chunk to carry them in or out."""
        return [i for i, e in enumerate(self.events) if e.chunks < 2]

    @property
    def total_nfe(self) -> int:
        return sum(self.nfe.values())

    @property
    def estimated_seconds(self) -> float | None:
        return None if self.seconds_per_nfe is None else self.total_nfe * self.seconds_per_nfe

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(thin_events=self.thin_events, total_nfe=self.total_nfe)
        out["estimated_seconds"] = self.estimated_seconds
        return out

    def format(self) -> str:
        """The plan as text: layout table, events, NFE and (if measured) the time estimate."""
        p = self.plan
        lines = [
            f"{self.model}, {self.method}, {self.steps} steps: {p.video_frames} video frames "
            f"({p.video_frames / self.fps:.1f} s at {self.fps:g} fps), {p.latent_frames} latent frames, "
            f"{p.num_chunks} chunks of {p.chunk_length} latent frames, stride {p.stride}",
            "",
            f"{'chunk':>5}  {'latent':>9}  {'video':>9}  {'event':>5}  prompt",
        ]
        for i, c in enumerate(self.chunks):
            lines.append(f"{i:>5}  {_span(c.latent):>9}  {_span(c.video):>9}  {c.event:>5}  {c.prompt}")
        lines += ["", f"{'event':>5}  {'latent':>9}  {'video':>9}  {'chunks':>6}  prompt"]
        for i, e in enumerate(self.events):
            lines.append(f"{i:>5}  {_span(e.latent):>9}  {_span(e.video):>9}  {e.chunks:>6}  {e.prompt}")
        for i in self.thin_events:
            lines.append(
                f"warning: event {i} gets {self.events[i].chunks} chunk; with fewer than two it "
                "starts and ends abruptly (make it longer or lower the stride)"
            )
        lines += ["", "network evaluations: " + ", ".join(f"{k} {v}" for k, v in self.nfe.items() if v)]
        lines[-1] += f" (total {self.total_nfe})"
        if self.seconds_per_nfe is not None:
            lines.append(
                f"estimated sampling time: {_duration(self.estimated_seconds or 0.0)} "
                f"({self.seconds_per_nfe * 1000:.2f} ms per evaluation, measured; decoding not included)"
            )
        lines += self.notes
        return "\n".join(lines)


def _span(s: tuple[int, int]) -> str:
    return f"{s[0]}-{s[1]}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def method_plan(method: str, plan: Plan) -> Plan:
    """The chunk layout a method samples with: ``independent`` tiles, the others overlap."""
    return plan.with_stride(plan.chunk_length) if method == "independent" else plan


def video_span(backend: Backend, latent: tuple[int, int]) -> tuple[int, int]:
    """Video frames [start, end) that latent frames [a, b) decode to (causal VAEs: frame 0 alone)."""
    a, b = latent
    return (backend.video_frames(a) if a > 0 else 0, backend.video_frames(b))


class _Counting:
    """A backend whose network returns zeros, on the CPU: its sampler runs the real loop and counts."""

    def __init__(self, backend: Backend):
        self._backend = backend
        self.device = torch.device("cpu")

    def __getattr__(self, name: str) -> Any:  # shapes, schedule, solver, guidance hooks: the model's own
        return getattr(self._backend, name)

    def encode(self, prompts: Sequence[str]) -> list[str]:
        return list(prompts)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        return torch.zeros_like(x)


def count_nfe(backend: Backend, plan: Plan, method: str, options: SamplerOptions) -> dict[str, int]:
    """Network evaluations per stage (CFG counts two), as a run counts them: the sampler's own loop
    runs over a network that returns zeros, so the count can never drift from the samplers."""
    from syncos import checkpoint
    from syncos.samplers import SAMPLERS

    with checkpoint.active(None), torch.no_grad(), threads.for_backend(backend):
        return SAMPLERS[method][0](_Counting(backend), plan, options, 0).nfe


def method_steps(plan: Plan, method: str, options: SamplerOptions) -> int:
    if method == "fifo":
        assert isinstance(options, FIFOOptions)
        return options.levels(plan.chunk_length)
    return options.steps


def plan_run(scenario: Scenario, backend: Backend, plan: Plan) -> RunPlan:
    """The :class:`RunPlan` of a scenario whose timeline ``plan`` (``syncos.api.make_plan``) is made."""
    options = scenario.sampler_options()
    layout = method_plan(scenario.method, plan)
    L = layout.chunk_length
    chunks = [
        ChunkRow((s, s + L), video_span(backend, (s, s + L)), e, layout.prompts[e])
        for s, e in zip(layout.starts, layout.chunk_events, strict=True)
    ]
    events = [
        EventRow(
            layout.prompts[i], layout.event_spans[i], layout.video_spans[i], layout.chunk_events.count(i)
        )
        for i in range(len(layout.prompts))
    ]
    notes = []
    if scenario.stride == AUTO:
        notes.append(
            f"stride {plan.stride} chosen by sampler.stride=auto: the largest below the chunk length "
            "at which every event gets a chunk"
        )
    if scenario.method == "fifo":
        notes.append(
            "fifo slides a window of the chunk length one latent frame per step; each window takes the "
            "event covering most of it (the chunks above show the same assignment at this stride)"
        )
    return RunPlan(
        model=scenario.model,
        method=scenario.method,
        steps=method_steps(plan, scenario.method, options),
        fps=float(scenario.fps or backend.fps),
        plan=layout,
        chunks=chunks,
        events=events,
        nfe=count_nfe(backend, plan, scenario.method, options),
        notes=notes,
    )


def plan_scenario(
    scenario: Scenario | Mapping[str, Any] | str | Path,
    *,
    overrides: list[str] | None = None,
    backend: Backend | None = None,
    pipe: Any = None,
    timed: bool = False,
) -> RunPlan:
    """Validate and plan a scenario as ``syncos.generate`` would, without sampling; ``timed`` measures."""
    from syncos.api import prepare

    scenario, backend, plan = prepare(scenario, pipe=pipe, backend=backend, overrides=overrides)
    out = plan_run(scenario, backend, plan)
    if timed:
        with threads.for_backend(backend):  # as generate() will run it
            out.seconds_per_nfe = time_forward(backend, plan, scenario.sampler_options())
    return out


def time_forward(
    backend: Backend, plan: Plan, options: SamplerOptions, repeats: int = 3, prompts: Sequence[str] = ()
) -> float:
    """Seconds per network evaluation, from ``repeats`` timed denoiser calls on one micro-batch.

    One untimed call first (prompt encoding, kernel warm-up). The batch is the run's own: real
    prompts, the chunk shape, the micro-batch size and CFG, at the middle timestep of the grid.
    """
    n = min(options.micro_batch, plan.num_chunks)
    counter = Counter()
    den = Denoiser(backend, options.guidance_scale, options.negative_prompt, options.micro_batch, counter)
    g = torch.Generator("cpu").manual_seed(0)
    x = torch.randn((n, *backend.latent_shape(plan.chunk_length)), generator=g).to(backend.device)
    grid = backend.schedule.grid(options.steps)
    mid = len(grid) // 2
    t, a, s = (float(v[mid]) for v in (grid.timesteps, grid.alpha, grid.sigma))
    texts = list(prompts or plan.chunk_prompts)[:n]
    texts += [texts[-1]] * (n - len(texts))

    def call() -> None:
        with torch.no_grad():
            den(x, t, a, s, texts)
        if backend.device.type == "cuda":
            torch.cuda.synchronize(backend.device)

    call()
    counter.nfe.clear()
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - start) / max(1, sum(counter.nfe.values()))


__all__ = [
    "ChunkRow",
    "EventRow",
    "RunPlan",
    "count_nfe",
    "method_plan",
    "plan_run",
    "plan_scenario",
    "time_forward",
]
