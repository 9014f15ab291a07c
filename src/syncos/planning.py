"""What a run will do, before it runs: the chunk layout, thin events, network evaluations, wall time.

``syncos plan`` prints it and the studio shows it. The NFE per stage is a closed form of the plan
and the options (chunks, steps, sync window, iterations, minibatch, CFG, FIFO's queue), not a dry
run of the sampler, so a sampler that miscounts cannot agree with it by construction: tests check
it against hand-computed numbers and against what runs count. Where SynCoS may stop a step's
iterations early (``stop_below`` > 0) its stage-2 count is an upper bound and is said so.
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
from syncos.memory import MemoryCheck
from syncos.samplers import FIFOOptions, SamplerOptions, SynCoSOptions
from syncos.samplers.fifo import queue_layout, steps_note
from syncos.samplers.syncos import first_forward_free, stage1_plan, synced_step, window_note
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
    micro_batch: int  # chunks per network call (sampler.micro_batch)
    cfg: bool  # classifier-free guidance: two passes per chunk
    seconds_per_nfe: float | None = None
    notes: list[str] = field(default_factory=list)
    # what the user should know before running: ignored words and options, an empty sync window
    warnings: list[str] = field(default_factory=list)
    sync_steps: list[int] | None = None  # SynCoS: the steps in its sync window (0 = first step)
    # stages whose count is an upper bound (SynCoS's stage 2 with stop_below > 0); then so is the total
    nfe_at_most: list[str] = field(default_factory=list)
    memory: MemoryCheck | None = None  # the measured memory check (CUDA; syncos.memory)

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
        out.update(thin_events=self.thin_events, total_nfe=self.total_nfe, forward_batch=self.forward_batch)
        out["nfe_text"] = self.nfe_text()
        out["estimated_seconds"] = self.estimated_seconds
        return out

    @property
    def forward_batch(self) -> int:
        """Network passes per forward call at most: ``micro_batch`` chunks, each twice with CFG."""
        return self.micro_batch * (2 if self.cfg else 1)

    def _batch_text(self) -> str:
        cfg = " x 2: CFG's conditional and unconditional pass" if self.cfg else ", no CFG"
        return f"sampler.micro_batch {self.micro_batch} chunks{cfg}"

    def nfe_text(self) -> str:
        """The counts in words: "stage1 72, stage2 at most 480 (total at most 552)"."""
        bound = lambda k: "at most " if k in self.nfe_at_most else ""  # noqa: E731
        parts = ", ".join(f"{k} {bound(k)}{v}" for k, v in self.nfe.items() if v)
        total = f"{'at most ' if self.nfe_at_most else ''}{self.total_nfe}"
        return f"{parts} (total {total})"

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
        lower = " or lower the stride" if p.stride > 1 else ""  # at stride 1 only a longer event helps
        for i in self.thin_events:
            lines.append(
                f"warning: event {i} gets {self.events[i].chunks} chunk; with fewer than two it "
                f"starts and ends abruptly (make it longer{lower})"
            )
        lines += ["", "network evaluations: " + self.nfe_text()]
        if self.nfe_at_most:
            lines.append("  (at most: sampler.stop_below may end a step's CSD iterations early)")
        lines.append(
            f"forward batch: up to {self.forward_batch} passes per network call ({self._batch_text()})"
        )
        if self.seconds_per_nfe is not None:
            lines.append(
                f"estimated sampling time: {_duration(self.estimated_seconds or 0.0)} "
                f"({self.seconds_per_nfe * 1000:.2f} ms per evaluation, measured; decoding not included)"
            )
        lines.append(
            self.memory.format()
            if self.memory is not None
            else "memory: not measured on this device (the measured check needs CUDA; syncos.memory)"
        )
        lines += self.notes
        lines += [f"note: {w}" for w in self.warnings]
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
    """The chunk layout a method samples with: ``independent`` tiles, ``extend`` its chain of
    chunks, the others overlap."""
    if method == "extend":
        return plan.extended()
    return plan.with_stride(plan.chunk_length) if method == "independent" else plan


def video_span(backend: Backend, latent: tuple[int, int]) -> tuple[int, int]:
    """Video frames [start, end) that latent frames [a, b) decode to (causal VAEs: frame 0 alone)."""
    a, b = latent
    return (backend.video_frames(a) if a > 0 else 0, backend.video_frames(b))


def passes(backend: Backend, options: SamplerOptions) -> int:
    """Network passes per chunk: two with classifier-free guidance (cond and uncond), else one."""
    return 2 if Denoiser(backend, options.guidance_scale).cfg else 1


def count_nfe(backend: Backend, plan: Plan, method: str, options: SamplerOptions) -> dict[str, int]:
    """Network evaluations per stage (one chunk through the network once; CFG counts two), in
    closed form. The keys are those a run's counter records (SynCoS's stage 3 makes none: 0).
    With SynCoS's ``stop_below`` > 0 stage 2 is an upper bound (:func:`bounded_stages`)."""
    k = passes(backend, options)
    if method == "fifo":
        assert isinstance(options, FIFOOptions)
        L = plan.chunk_length
        N, _, windows = queue_layout(options, L)  # the base clip takes N one-chunk steps
        return {"init": k * N, "stage1": k * len(windows) * (plan.latent_frames + N - L)}
    steps = len(backend.schedule.grid(options.steps))
    if method == "independent":
        return {"stage1": k * plan.with_tiles().num_chunks * steps}
    if method == "codenoise":
        return {"stage1": k * plan.num_chunks * steps}
    if method == "extend":
        return {"stage1": k * plan.extended().num_chunks * steps}
    assert method == "syncos" and isinstance(options, SynCoSOptions), method
    return _count_syncos(backend, plan, options, k)


def _count_syncos(backend: Backend, plan: Plan, o: SynCoSOptions, k: int) -> dict[str, int]:
    """Stage 1: every stage-1 chunk at every step; stage 2: ``iterations`` forwards of ``minibatch``
    chunks at every synchronised step, less the first with ``baseline_noise: implied`` (free)."""
    grid = backend.schedule.grid(o.steps)
    n = plan.num_chunks
    m = n if o.minibatch is None else min(o.minibatch, n)
    moves = o.iterations > 0 and o.lr > 0
    out: dict[str, int] = {}
    stage1 = stage2 = 0
    synced = False
    for i in range(len(grid)):
        t, a, s = (float(v[i]) for v in (grid.timesteps, grid.alpha, grid.sigma))
        if o.stage1:
            stage1 += k * stage1_plan(plan, o, i).num_chunks
        if synced_step(o, t, a, s):
            synced = True
            if moves:
                stage2 += k * m * (o.iterations - int(first_forward_free(o, s, m == n)))
    if o.stage1:
        out["stage1"] = stage1
    if synced:
        out["stage2"] = stage2
    out["stage3"] = 0
    return out


def bounded_stages(method: str, options: SamplerOptions, nfe: Mapping[str, int]) -> list[str]:
    """Stages whose count is only an upper bound: SynCoS's stage 2 when ``stop_below`` may end a
    step's iterations after the first (the stop is decided by the run's own updates)."""
    if isinstance(options, SynCoSOptions) and method == "syncos" and options.stop_below > 0:
        return ["stage2"] if nfe.get("stage2", 0) and options.iterations > 1 else []
    return []


def method_steps(plan: Plan, method: str, options: SamplerOptions) -> int:
    if method == "fifo":
        assert isinstance(options, FIFOOptions)
        return options.levels(plan.chunk_length)
    return options.steps


# Scenario options a method does not read: FIFO slides one latent frame per step and independent
# tiles at the chunk length, whatever sampler.stride says.
IGNORED_BY = {"fifo": ("stride",), "independent": ("stride",)}


def ignored_options(scenario: Scenario) -> list[str]:
    """The given sampler keys this method does not use (run.json keeps them)."""
    own = [k for k in IGNORED_BY.get(scenario.method, ()) if getattr(scenario, k) is not None]
    return [f"sampler.{k}" for k in [*own, *scenario.unused_options]]


def input_notes(scenario: Scenario, backend: Backend) -> list[str]:
    """What the run will not read: prompt words the model does not know, options the method ignores
    (run.json's notes and the lines ``generate`` prints before sampling)."""
    notes = []
    ignored = backend.spec.ignored_words
    if ignored is not None:
        texts = [scenario.global_prompt, *(e.prompt for e in scenario.events)]
        words = list(dict.fromkeys(w for text in texts for w in ignored(text)))
        if words:
            notes.append(
                f"{scenario.model} ignores the words {', '.join(words)} (`syncos vocab` lists its own)"
            )
    unused = ignored_options(scenario)
    if unused:
        notes.append(f"{scenario.method} does not use {', '.join(unused)} (kept in run.json)")
    return notes


def sync_steps(backend: Backend, options: SamplerOptions) -> list[int] | None:
    """The steps (0 = first) SynCoS synchronises at; None for the other methods."""
    if not isinstance(options, SynCoSOptions):
        return None
    grid = backend.schedule.grid(options.steps)
    coefficients = [[float(v[i]) for v in (grid.timesteps, grid.alpha, grid.sigma)] for i in range(len(grid))]
    return [i for i, c in enumerate(coefficients) if synced_step(options, *c)]


def empty_window(backend: Backend, options: SamplerOptions) -> str | None:
    """SynCoS's note when its sync window holds none of the steps (the run is plain co-denoising)."""
    synced = sync_steps(backend, options)
    if synced != []:
        return None
    assert isinstance(options, SynCoSOptions)
    return window_note(options, [], len(backend.schedule.grid(options.steps)))


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
        assert isinstance(options, FIFOOptions)
        notes += filter(None, [steps_note(options, L)])
        notes.append(
            "fifo slides a window of the chunk length one latent frame per step; each window takes the "
            "event covering most of it (the chunks above show the same assignment at this stride)"
        )
    if scenario.method == "extend":
        over = layout.starts[-1] + L > layout.latent_frames
        notes.append(
            "extend samples these chunks one after another, each holding the frames it shares with "
            "the chunks before (an event's first chunk holds one), one chunk per network call"
            + ("; the last runs past the video's end, and those frames are dropped" if over else "")
        )
    nfe = count_nfe(backend, plan, scenario.method, options)
    return RunPlan(
        model=scenario.model,
        method=scenario.method,
        steps=method_steps(plan, scenario.method, options),
        fps=float(scenario.fps or backend.fps),
        plan=layout,
        chunks=chunks,
        events=events,
        nfe=nfe,
        micro_batch=1 if scenario.method == "extend" else options.micro_batch,
        cfg=passes(backend, options) == 2,
        notes=notes,
        warnings=input_notes(scenario, backend) + list(filter(None, [empty_window(backend, options)])),
        sync_steps=sync_steps(backend, options),
        nfe_at_most=bounded_stages(scenario.method, options, nfe),
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
    from syncos.api import fit_memory, prepare

    scenario, backend, plan = prepare(scenario, pipe=pipe, backend=backend, overrides=overrides)
    with threads.for_backend(backend):
        scenario, checked = fit_memory(scenario, backend, plan)
    out = plan_run(scenario, backend, plan)
    out.memory = checked
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
    "bounded_stages",
    "count_nfe",
    "ignored_options",
    "input_notes",
    "method_plan",
    "plan_run",
    "plan_scenario",
    "time_forward",
]
