"""Resumable runs: a sampler's state after a step, kept in one file in the output folder.

``OUTDIR/checkpoint.safetensors`` holds the sampler's loop state and the noise generator's state
(a uint8 tensor) as tensors and, in its header's metadata (key ``syncos.checkpoint``, JSON), the
step, the loop's length, the network evaluation counts so far and the fingerprint a resume must
match: the resolved scenario, the versions of Python, syncos, torch, numpy, diffusers and
transformers ("absent" if not installed), and the device and dtype the model resolved to. One
file, so the step cannot come from another write than the tensors. It is written beside itself,
fsync'd, renamed over the old one and the folder fsync'd (``syncos.io.atomic_path``): a crash at
any moment leaves the previous checkpoint or the new one. A resume refuses with one line
(:class:`Refused`) a file that is truncated or corrupt, lacks the metadata, names a step outside
the loop, tensors that are not there or not described, or a state the sampler does not hold; no
pickle. Step -1 is the state before the loop's first step, when building it was costly work worth
keeping (FIFO's base clip).

When: every ``minutes`` of sampling (a 10x Wan-1.3B video's state is about 400 MB: writing it
every step would cost more than it saves), every ``every`` steps if asked, at the end of a stage
(FIFO's base clip, the last step), and when the run stops early: SIGINT, SIGTERM, a cancel from
the progress callback or any error write the newest completed step, kept in memory in between.

``checkpoint.json`` beside the tensors is what syncos 0.1 wrote before this format (format 1, two
files that a crash between their writes left disagreeing): a resume refuses it with one line; a
run without --resume replaces it.

The samplers' one loop (:meth:`syncos.samplers.run.Run.loop`) restores the loop state before
its first step, offers the state after each step, and flushes the newest one when an error
stops the run. Everything else the samplers draw comes from the run's one generator, so
restoring it makes the rest of the run bit-identical.

The store is passed explicitly, ``generate(..., checkpoint=store)`` or ``sample(...,
checkpoint=store)``; runs without one (the bench, the API by default) pay nothing. Whoever makes
the store also decides what a signal does: :meth:`Checkpoint.on_signals`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from syncos import distributed
from syncos.errors import UserError, first_line

FILE, LEGACY = "checkpoint.safetensors", "checkpoint.json"
KEY = "syncos.checkpoint"  # the header metadata entry that holds the JSON part
FORMAT = 2
DEFAULT_MINUTES = 5.0
RUNTIME = ("device", "dtype", "model")  # fingerprint entries known once the model is loaded (resolve())
_RNG = "rng"  # tensor name of the generator state; the loop's tensors are "state.<name>[.<field>...]"
START_OVER = "rerun without --resume to start over"


class Refused(UserError):
    """A checkpoint that cannot be resumed by this run; it is left in place."""


@dataclass
class State:
    """What a run needs to continue after ``step``: its loop values, generator, counts and notes."""

    step: int  # the last completed step; -1: the loop's initial state (see the module docstring)
    total: int
    values: dict[str, Any]  # tensors, None, numbers, lists/tuples and dataclasses of them (History)
    rng: torch.Tensor
    nfe: dict[str, int]
    seconds: dict[str, float]
    first_order: list[int] = field(default_factory=list)
    fingerprint: dict[str, Any] = field(default_factory=dict)  # the run's that wrote it (load() only)


def progress(step: int, total: int) -> str:
    """What a saved step means to the user: 'step 4 of 12', or the loop's setup (step -1)."""
    return f"step {step + 1} of {total}" if step >= 0 else f"the setup before step 1 of {total}"


def _flatten(value: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON description of ``value``; its tensors go into ``tensors`` under names derived from key."""
    if isinstance(value, torch.Tensor):
        tensors[key] = value
        return {"tensor": key}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {
            f.name: _flatten(getattr(value, f.name), f"{key}.{f.name}", tensors)
            for f in dataclasses.fields(value)
        }
        return {"type": type(value).__name__, "fields": fields}
    if isinstance(value, (tuple, list)):
        kind = "items" if isinstance(value, tuple) else "list"
        return {kind: [_flatten(v, f"{key}.{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}  # log-SNRs reach -inf / inf; JSON has no such numbers
    return {"value": value}  # None, numbers, strings


def _unflatten(node: Any, tensors: Mapping[str, torch.Tensor], used: set[str]) -> Any:
    """The value ``_flatten`` described; the tensor names it takes are added to ``used``."""
    if "tensor" in node:
        if node["tensor"] not in tensors:
            raise ValueError(f"tensor {node['tensor']!r} is described but not stored")
        used.add(node["tensor"])
        return tensors[node["tensor"]]
    if "type" in node:
        from syncos.solvers import History

        types = {"History": History}  # the state types a sampler carries
        if node["type"] not in types:
            raise ValueError(f"unknown state type {node['type']!r}")
        return types[node["type"]](**{k: _unflatten(v, tensors, used) for k, v in node["fields"].items()})
    if "items" in node:
        return tuple(_unflatten(v, tensors, used) for v in node["items"])
    if "list" in node:
        return [_unflatten(v, tensors, used) for v in node["list"]]
    if "float" in node:
        return float(node["float"])
    return node["value"]


def to_device(value: Any, device: torch.device) -> Any:
    """A restored value with its tensors moved to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(
            value, **{f.name: to_device(getattr(value, f.name), device) for f in dataclasses.fields(value)}
        )
    if isinstance(value, tuple):
        return tuple(to_device(v, device) for v in value)
    return value


def _copy(value: Any) -> Any:
    """A copy whose tensors the loop cannot change in place."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, list):  # e.g. the steps stage 2 ran at, appended to in place
        return [_copy(v) for v in value]
    return value  # History is frozen and holds tensors the loop replaces, never edits


def fingerprint(scenario_dict: Mapping[str, Any]) -> dict[str, Any]:
    """What must not change between a run and its resume: the resolved scenario and the versions.

    :meth:`Checkpoint.resolve` adds the device and dtype once the model is loaded.
    """
    from syncos.api import versions

    return {"scenario": dict(scenario_dict), **versions(absent="absent")}


def runtime(backend: Any) -> dict[str, Any]:
    """The device (type and GPU name, not its index: ranks differ there), the network's dtype and
    which model ran (a handed-in pipeline's class and name_or_path: the scenario may not say)."""
    device = torch.device(backend.device)
    where = device.type
    if device.type == "cuda":
        where += f" ({torch.cuda.get_device_name(device)})"
    identity = dict(backend.spec.identity)
    return {"device": where, "dtype": identity.pop("dtype"), "model": identity}


def _difference(saved: Any, now: Any, path: str = "") -> str | None:
    """The first key path at which two JSON-like values differ, described in words."""
    if isinstance(saved, Mapping) and isinstance(now, Mapping):
        for key in list(saved) + [k for k in now if k not in saved]:
            sub = f"{path}.{key}" if path else str(key)
            d = _difference(saved.get(key), now.get(key), sub)
            if d:
                return d
        return None
    if saved != now:
        return f"{path.removeprefix('scenario.') or 'the run'} differs (checkpoint {saved!r}, now {now!r})"
    return None


class Checkpoint:
    """The checkpoint of one run in ``folder``; only rank 0 of a process group writes it.

    ``clock`` (seconds, monotonic) is injectable so that tests of ``minutes`` need not sleep.
    """

    def __init__(
        self,
        folder: str | Path,
        fingerprint: dict[str, Any],
        every: int | None = None,
        minutes: float = DEFAULT_MINUTES,
        clock: Callable[[], float] = time.monotonic,
    ):
        if every is not None and every < 1:
            raise UserError(f"--checkpoint-every must be >= 1 step, got {every}")
        if not minutes > 0:
            raise UserError(f"--checkpoint-minutes must be > 0, got {minutes}")
        self.folder, self.fingerprint = Path(folder), fingerprint
        self.every, self.seconds, self.clock = every, 60.0 * minutes, clock
        self.saved: State | None = None  # what the run restores
        self.written: int | None = None  # the step on disk
        self.total = 0  # steps of the sampler's loop, set by begin()
        self._last: float | None = None  # clock at the last write, or at the loop's start
        self._pending: State | None = None  # newer than the one on disk, for an interrupt
        self._writing = self._interrupted = False
        self._created: list[Path] = []

    @property
    def path(self) -> Path:
        return self.folder / FILE

    def exists(self) -> bool:
        return self.path.is_file() or (self.folder / LEGACY).is_file()

    def load(self) -> State | None:
        """Read the checkpoint for a resume; refuses (:class:`Refused`) one that is damaged or from
        another run (the device and dtype are checked by :meth:`resolve`). None if there is none."""
        legacy = (self.folder / LEGACY).is_file()
        if not self.path.is_file() and not legacy:
            return None
        try:
            from safetensors import SafetensorError, safe_open

            try:
                with safe_open(str(self.path), framework="pt", device="cpu") as f:
                    text = (f.metadata() or {}).get(KEY)
                    raw = {k: f.get_tensor(k) for k in f.keys()}
            except FileNotFoundError:  # only the older format's JSON is there
                text, raw = None, {}
            if text is None and legacy:
                raise Refused(
                    f"{str(self.folder / LEGACY)!r} was written by an older syncos (checkpoint format 1), "
                    f"which this version cannot resume; {START_OVER}"
                )
            if text is None:
                raise ValueError(f"no {KEY!r} metadata in its header")
            self.saved = _state(json.loads(text), raw)
        except (OSError, ValueError, LookupError, TypeError, AttributeError, SafetensorError) as e:
            if isinstance(e, Refused):
                raise
            raise Refused(
                f"checkpoint {str(self.path)!r} cannot be read ({first_line(e)}); {START_OVER}"
            ) from None
        saved = {k: v for k, v in self.saved.fingerprint.items() if k not in RUNTIME}
        diff = _difference(saved, {k: v for k, v in self.fingerprint.items() if k not in RUNTIME})
        if diff:
            raise Refused(f"cannot resume: {diff}; {START_OVER}")
        self.written = self.saved.step
        return self.saved

    def resolve(self, backend: Any) -> None:
        """The model is loaded: add its device and dtype to the fingerprint; refuse a checkpoint
        written with others (a different arithmetic would not continue the run bit for bit)."""
        self.fingerprint.update(runtime(backend))
        if self.saved is not None:
            saved = {k: self.saved.fingerprint.get(k) for k in RUNTIME}
            diff = _difference(saved, {k: self.fingerprint[k] for k in RUNTIME})
            if diff:
                raise Refused(f"cannot resume: {diff}; {START_OVER}")

    def begin(self, total: int) -> State | None:
        """A sampler's loop of ``total`` steps starts: what to restore, if anything; the clock starts."""
        self._last, self.total = self.clock(), total
        if self.saved is not None and self.saved.total != total:
            raise Refused(
                f"cannot resume: the checkpoint's loop has {self.saved.total} steps, this run's {total}; "
                f"{START_OVER}"
            )
        return self.saved

    def offer(self, state: State, boundary: bool = False) -> None:
        """A step has ended: write it if it is due, else keep a copy for an interrupt.

        Due: at a stage's end (``boundary``, the last step), every ``every`` steps if set, and once
        ``minutes`` have passed since the last write.
        """
        if not distributed.is_main():
            return
        due = (
            boundary
            or state.step + 1 == state.total
            or (self.every is not None and (state.step + 1) % self.every == 0)
            or (self._last is not None and self.clock() - self._last >= self.seconds)
        )
        if due:
            self._pending = None
            self._write(state)
        else:  # the loop may change its tensors in place: keep a copy for an interrupt
            state.values = {k: _copy(v) for k, v in state.values.items()}
            self._pending = state

    def flush(self) -> None:
        """Write the newest state not yet on disk (the run is stopping)."""
        if self._pending is not None and distributed.is_main():
            state, self._pending = self._pending, None
            self._write(state)

    def remove(self) -> None:
        """The checkpoint has served (the video is written) or cannot (the input was wrong).

        Folders its first write created go too, if nothing else was put in them.
        """
        from syncos.io import partial_path

        if distributed.is_main():
            for p in (self.path, partial_path(self.path), self.folder / LEGACY):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
            for folder in self._created:  # deepest first
                with contextlib.suppress(OSError):
                    folder.rmdir()

    @contextlib.contextmanager
    def on_signals(self) -> Iterator[Checkpoint]:
        """In the block, SIGINT and SIGTERM write the newest completed step and then stop the run
        with KeyboardInterrupt (a write in progress finishes first). Only the main thread can take
        signals: elsewhere (the studio's worker threads) the block changes nothing."""
        handlers: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():

            def stop(signum, frame):
                if self._writing:
                    self._interrupted = True
                    return
                self.flush()
                raise KeyboardInterrupt

            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, stop)
        try:
            yield self
        finally:
            for sig, h in handlers.items():
                signal.signal(sig, h)

    def _write(self, state: State) -> None:
        from syncos.io import write_tensors

        tensors = {_RNG: state.rng}
        meta = {
            "format": FORMAT,
            "step": state.step,
            "total": state.total,
            "values": {k: _flatten(v, f"state.{k}", tensors) for k, v in state.values.items()},
            "nfe": state.nfe,
            "seconds": state.seconds,
            "first_order": state.first_order,
            "fingerprint": self.fingerprint,
        }
        self._writing = True
        try:
            if not self.folder.is_dir():  # the first write creates OUTDIR
                self._created = [p for p in (self.folder, *self.folder.parents) if not p.exists()]
                self.folder.mkdir(parents=True, exist_ok=True)
            write_tensors(tensors, self.path, metadata={KEY: json.dumps(meta, allow_nan=False)})
            with contextlib.suppress(FileNotFoundError):  # an older syncos's, now superseded
                (self.folder / LEGACY).unlink()
            self.written, self._last = state.step, self.clock()
        finally:
            self._writing = False
        if self._interrupted:
            raise KeyboardInterrupt


def _state(meta: Any, raw: Mapping[str, torch.Tensor]) -> State:
    """The State a checkpoint's metadata and tensors describe; ValueError where they disagree."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else meta
        raise ValueError(f"format {found!r}, this syncos reads {FORMAT}")
    step, total = meta["step"], meta["total"]
    if (
        not all(isinstance(v, int) and not isinstance(v, bool) for v in (step, total))
        or not -1 <= step < total
    ):
        raise ValueError(f"step {step!r} is outside the run's {total!r} steps")
    used = {_RNG}
    values = {k: _unflatten(v, raw, used) for k, v in dict(meta["values"]).items()}
    if set(raw) != used:
        raise ValueError(f"tensors {sorted(set(raw) ^ used)} are missing or not described")
    rng = raw[_RNG]
    if rng.dtype != torch.uint8 or rng.shape != torch.Generator().get_state().shape:
        raise ValueError(f"the generator state is {rng.dtype} {tuple(rng.shape)}, not a CPU generator's")
    nfe, seconds, first_order = dict(meta["nfe"]), dict(meta["seconds"]), list(meta["first_order"])
    numbers = [*nfe.values(), *seconds.values(), *first_order]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
        raise ValueError("its counts are not numbers")
    return State(step, total, values, rng, nfe, seconds, first_order, dict(meta["fingerprint"]))


__all__ = [
    "DEFAULT_MINUTES",
    "Checkpoint",
    "Refused",
    "State",
    "fingerprint",
    "progress",
    "runtime",
    "to_device",
]
