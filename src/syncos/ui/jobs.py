"""The studio's logic, without a browser: scenario forms, one job queue per device, previews.

The Gradio app (:mod:`syncos.ui.app`) only lays out widgets and calls these functions, so
everything here is tested directly.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from syncos.errors import UserError, first_line
from syncos.samplers.options import DEFAULT_METHOD
from syncos.scenario import load_scenario, safe_yaml
from syncos.timeline import AUTO

UNITS = ("seconds", "frames")
DEFAULT_SCENARIO: dict[str, Any] = {  # examples/ball_story.yaml
    "model": "toyworld",
    "global_prompt": "a red ball on green grass by day",
    "events": [
        {"prompt": "the ball moves to the right", "frames": 24},
        {"prompt": "the ball jumps", "frames": 24},
        {"prompt": "the ball moves to the left", "frames": 24},
    ],
    "sampler": {"steps": 50, "guidance_scale": 6.0, "stride": 4},
    "seed": 0,
}


# ------------------------------------------------------------------------------ scenario <-> form


@dataclass
class Form:
    """What the editor shows: the timeline rows and the main options; the rest of a scenario rides along."""

    global_prompt: str
    events: list[list[Any]]  # rows [prompt, duration, unit]
    model: str = "toyworld"
    method: str = DEFAULT_METHOD
    steps: int = 50
    guidance_scale: float = 6.0
    stride: int = 0  # 0: the model's default
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # other keys of the scenario, kept as they were


MAIN_SAMPLER_KEYS = ("method", "steps", "guidance_scale", "stride")


def form_from_scenario(raw: dict[str, Any]) -> Form:
    """A scenario mapping (as in a YAML file) -> the editor's fields."""
    sampler = dict(raw.get("sampler") or {})
    rows = []
    for e in raw.get("events") or []:
        unit = "frames" if e.get("frames") is not None else "seconds"
        rows.append([e.get("prompt", ""), e.get(unit), unit])
    extra = {k: v for k, v in raw.items() if k not in ("model", "global_prompt", "events", "sampler", "seed")}
    auto = sampler.get("stride") == AUTO  # kept with the other keys; the form's number says 0
    others = {k: v for k, v in sampler.items() if k not in MAIN_SAMPLER_KEYS or (k == "stride" and auto)}
    if others:
        extra["sampler"] = others
    return Form(
        global_prompt=raw.get("global_prompt", ""),
        events=rows,
        model=raw.get("model", "toyworld"),
        method=sampler.get("method", DEFAULT_METHOD),
        steps=int(sampler.get("steps", 50)),
        guidance_scale=float(sampler.get("guidance_scale", 6.0)),
        stride=0 if auto else int(sampler.get("stride") or 0),
        seed=int(raw.get("seed", 0)),
        extra=extra,
    )


def _number(value: Any, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"{where}: expected a number, got {value!r}") from None


def scenario_from_form(form: Form) -> dict[str, Any]:
    """The editor's fields -> a scenario mapping (validated later by ``syncos.scenario``)."""
    events = []
    for i, row in enumerate(form.events):
        prompt, duration, unit = (list(row) + [None, None, None])[:3]
        if not str(prompt or "").strip() and duration in (None, ""):
            continue  # an empty row left by the table editor
        unit = unit or "seconds"
        if unit not in UNITS:
            raise UserError(f"events[{i}]: unit must be seconds or frames, got {unit!r}")
        d = _number(duration, f"events[{i}].{unit}")
        events.append({"prompt": str(prompt or ""), unit: int(d) if unit == "frames" else d})
    extra = dict(form.extra)
    sampler = {**extra.pop("sampler", {}), "method": form.method, "steps": int(form.steps)}
    sampler["guidance_scale"] = float(form.guidance_scale)
    if form.stride:
        sampler["stride"] = int(form.stride)
    return {
        "model": form.model.strip() or "toyworld",
        "global_prompt": form.global_prompt,
        "events": events,
        "sampler": sampler,
        "seed": int(form.seed),
        **extra,
    }


def to_yaml(raw: dict[str, Any]) -> str:
    return yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)


def from_yaml(text: str) -> dict[str, Any]:
    """A scenario from YAML text, validated as a file would be (UserError otherwise)."""
    try:
        raw = safe_yaml(text)
    except yaml.YAMLError as e:
        raise UserError(f"the scenario is not valid YAML: {first_line(e)}") from None
    load_scenario(raw if isinstance(raw, dict) else {"events": raw})  # raises the scenario's own errors
    return raw


def move_row(rows: list[list[Any]], index: int, delta: int) -> list[list[Any]]:
    """Rows with row ``index`` moved by ``delta`` (clamped); out-of-range indexes change nothing."""
    rows = [list(r) for r in rows]
    if 0 <= index < len(rows):
        j = min(max(index + delta, 0), len(rows) - 1)
        rows.insert(j, rows.pop(index))
    return rows


# ------------------------------------------------------------------------------ previews


def preview_frames(backend: Any, latent: torch.Tensor) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 of a latent, cheaply: the backend's ``preview`` if it has one.

    Fallback: the first three latent channels, each scaled to its own range (shape, not colour).
    """
    preview = backend.spec.preview
    if preview is not None:
        return np.asarray(preview(latent))
    z = latent.detach().float().cpu().movedim(backend.frame_axis, 0)[:, :3]  # (T, <=3, h, w)
    lo = z.amin(dim=(0, 2, 3), keepdim=True)
    hi = z.amax(dim=(0, 2, 3), keepdim=True)
    rgb = ((z - lo) / (hi - lo).clamp_min(1e-6) * 255).round().to(torch.uint8)
    if rgb.shape[1] < 3:
        rgb = rgb[:, :1].expand(-1, 3, -1, -1)
    return rgb.permute(0, 2, 3, 1).numpy()


def contact_strip(frames: np.ndarray, count: int = 6, height: int = 128) -> np.ndarray:
    """``count`` evenly spaced frames side by side, nearest-scaled to about ``height`` pixels."""
    idx = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    picked = frames[idx]
    k = max(1, height // picked.shape[1])
    picked = picked.repeat(k, axis=1).repeat(k, axis=2)
    return np.concatenate(list(picked), axis=1)


# ------------------------------------------------------------------------------ jobs


@dataclass
class Job:
    """One generation request; its fields are read by the UI while the worker updates them."""

    scenario: dict[str, Any]
    outdir: Path
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    state: str = "queued"  # queued, running, done, failed, cancelled
    step: int = 0
    total: int = 0
    message: str = ""
    preview: np.ndarray | None = None
    preview_step: int = -1
    video: Path | None = None
    record: Path | None = None
    started: float | None = None  # when sampling began (the model loaded)
    last_step_at: float | None = None  # when the latest finished step ended
    warnings: list[str] = field(default_factory=list)  # the plan's, said before the first step
    summary: str = ""  # a finished run's metrics and notes (markdown)
    cancel_requested: bool = False
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    def cancel(self) -> None:
        """Stop at the end of the current step (or before starting); the run raises Cancelled."""
        self.cancel_requested = True


# Jobs that may wait at once: 40 submitted together all run (measured, docs/ui.md); beyond the
# bound a request is refused at once instead of holding a connection and a thread for hours.
MAX_WAITING = 48


def eta_text(job: Job) -> str:
    """Time left from finished steps only, so it holds still while a step runs."""
    if not job.step or job.started is None or job.last_step_at is None:
        return "first step..."
    left = (job.last_step_at - job.started) / job.step * (job.total - job.step)
    return f"step {job.step} of {job.total}, about {left:.0f} s left"


def run_summary(record: dict[str, Any]) -> str:
    """A finished run's toyworld metrics and notes, as the page shows them (markdown)."""
    from syncos.backends.toyworld.metrics import MEANINGS

    lines = []
    if record.get("metrics"):
        lines += ["| metric | value | what it measures |", "| --- | --- | --- |"]
        lines += [f"| {k} | {v:.3f} | {MEANINGS.get(k, '')} |" for k, v in record["metrics"].items()]
    lines += [f"- note: {n}" for n in record.get("notes", [])]
    return "\n".join(lines)


class Studio:
    """One worker per device: jobs run one at a time, in order; later ones wait in a visible queue,
    ``max_waiting`` of them at most.

    Backends are loaded once per model and settings and kept for the next job.
    """

    def __init__(self, root: str | Path, preview_every: float = 1.0, max_waiting: int = MAX_WAITING):
        self.root = Path(root)
        self.preview_every = preview_every  # seconds between previews
        self.max_waiting = max_waiting
        self.queue: list[Job] = []
        self.current: Job | None = None
        self._lock = threading.Condition()
        self._backends: dict[str, Any] = {}
        self._worker = threading.Thread(target=self._work, name="syncos-studio", daemon=True)
        self._worker.start()

    # ---- the UI's side
    def submit(self, scenario: dict[str, Any]) -> Job:
        load_scenario(scenario)  # refuse a bad scenario now, not in the worker
        job = Job(scenario=scenario, outdir=Path())
        job.outdir = self.root / job.id
        with self._lock:
            if len(self.queue) >= self.max_waiting:
                raise UserError(
                    f"the studio is busy: {len(self.queue)} jobs are waiting (at most {self.max_waiting}); "
                    "submit again when one has finished"
                )
            self.queue.append(job)
            self._lock.notify_all()
        return job

    def jobs(self) -> list[Job]:
        """The running job, then the queued ones in order."""
        with self._lock:
            return ([self.current] if self.current else []) + list(self.queue)

    def position(self, job: Job) -> int:
        """0 while running or finished, else 1 + the number of jobs ahead of it."""
        with self._lock:
            if job not in self.queue:
                return 0
            return self.queue.index(job) + 1 + (self.current is not None)

    def status(self, job: Job) -> str:
        if job.state == "queued":
            ahead = self.position(job) - 1
            return f"queued: {ahead} job{'s' if ahead != 1 else ''} ahead of this one on this device"
        if job.state == "running":
            text = "loading the model" if job.started is None else f"sampling: {eta_text(job)}"
            return "\n\n".join([text, *(f"note: {w}" for w in job.warnings)])
        return job.message

    def plan(self, scenario: dict[str, Any], timed: bool = False):
        from syncos.planning import plan_scenario

        return plan_scenario(scenario, backend=self.backend(scenario), timed=timed)

    def backend(self, scenario: dict[str, Any]) -> Any:
        """The loaded backend of a scenario's model and settings (cached)."""
        from syncos.backends import load_backend

        s = load_scenario(scenario)
        key = to_yaml({"model": s.model, **s.model_settings()})
        if key not in self._backends:
            self._backends[key] = load_backend(s.model, **s.model_settings())
        return self._backends[key]

    # ---- the worker's side
    def _work(self) -> None:
        while True:
            with self._lock:
                while not self.queue:
                    self._lock.wait()
                job = self.current = self.queue.pop(0)
            try:
                self._run(job)
            finally:
                with self._lock:
                    self.current = None
                job.done.set()

    def _run(self, job: Job) -> None:
        from syncos.api import generate, prepare, save
        from syncos.planning import plan_run
        from syncos.samplers import Cancelled

        if job.cancel_requested:
            job.state, job.message = "cancelled", "cancelled before it started"
            return
        job.state = "running"
        last = [0.0]

        def callback(step) -> bool:
            now = time.monotonic()
            job.step, job.total, job.last_step_at = step.index + 1, step.total, now
            if now - last[0] >= self.preview_every or step.index + 1 == step.total:
                last[0] = now
                job.preview = contact_strip(preview_frames(backend, step.x0))
                job.preview_step = job.step
            return not job.cancel_requested

        start = time.perf_counter()
        try:
            scenario, backend, plan = prepare(job.scenario, backend=self.backend(job.scenario))
            job.warnings = plan_run(scenario, backend, plan).warnings
            job.started = time.monotonic()
            gen = generate(scenario, backend=backend, callback=callback)
            record = save(gen, job.outdir, wall_seconds=time.perf_counter() - start)
        except Cancelled as e:
            job.state, job.message = "cancelled", str(e)
            return
        except (UserError, ValueError, RuntimeError, OSError) as e:
            job.state, job.message = "failed", f"failed: {first_line(e)}"
            return
        job.video, job.record = job.outdir / "video.mp4", job.outdir / "run.json"
        job.summary = run_summary(record)
        job.state = "done"
        job.message = f"done in {time.perf_counter() - start:.1f} s: {job.video}"


__all__ = [
    "DEFAULT_SCENARIO",
    "MAX_WAITING",
    "Form",
    "Job",
    "Studio",
    "contact_strip",
    "eta_text",
    "form_from_scenario",
    "from_yaml",
    "move_row",
    "preview_frames",
    "run_summary",
    "scenario_from_form",
    "to_yaml",
]
