"""Resumable runs: a sampler's state after a step, kept in the output folder.

``OUTDIR/checkpoint.safetensors`` holds the tensors (the sampler's loop state and the noise
generator's state, a uint8 tensor); ``OUTDIR/checkpoint.json`` holds the step, the network
evaluation counts so far, and the fingerprint of the run (its resolved scenario and the syncos
and torch versions) that a resume must match. Both are replaced atomically; no pickle.

A sampler needs two hooks, both on :class:`syncos.samplers.common.Run`: ``run.resume(**state)``
before its loop (returns the first step and the state, restored if a checkpoint matched) and
``run.checkpoint(k, **state)`` at the end of step k. Everything else the samplers draw comes
from the run's one generator, so restoring it makes the rest of the run bit-identical.

The store is handed to the run through a context variable (:func:`active`), so the samplers'
signatures stay plain and runs without a store (the bench, the API) pay nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import math
import signal
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from syncos import distributed
from syncos.errors import UserError, first_line

TENSORS, META = "checkpoint.safetensors", "checkpoint.json"
DEFAULT_EVERY = 1  # steps; a write costs milliseconds, a real model's step seconds to minutes
FORMAT = 1
_RNG = "rng"  # tensor name of the generator state; the loop's tensors are "state.<name>[.<field>...]"


@dataclass
class State:
    """What a run needs to continue after ``step``: its loop values, generator, counts and notes."""

    step: int  # the last completed step
    total: int
    values: dict[str, Any]  # tensors, None, numbers, lists/tuples and dataclasses of them (History)
    rng: torch.Tensor
    nfe: dict[str, int]
    seconds: dict[str, float]
    first_order: list[int] = field(default_factory=list)


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


def _unflatten(node: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if "tensor" in node:
        return tensors[node["tensor"]]
    if "type" in node:
        from syncos.solvers import History

        types = {"History": History}  # the state types a sampler carries
        return types[node["type"]](**{k: _unflatten(v, tensors) for k, v in node["fields"].items()})
    if "items" in node:
        return tuple(_unflatten(v, tensors) for v in node["items"])
    if "list" in node:
        return [_unflatten(v, tensors) for v in node["list"]]
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
    """What must not change between a run and its resume: the resolved scenario and the versions."""
    from importlib import metadata

    import syncos

    try:
        version = metadata.version("syncos")
    except metadata.PackageNotFoundError:
        version = syncos.__version__
    return {"scenario": dict(scenario_dict), "syncos": version, "torch": torch.__version__}


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
    """The checkpoint of one run in ``folder``; only rank 0 of a process group writes it."""

    def __init__(self, folder: str | Path, fingerprint: dict[str, Any], every: int = DEFAULT_EVERY):
        if every < 1:
            raise UserError(f"--checkpoint-every must be >= 1 step, got {every}")
        self.folder, self.fingerprint, self.every = Path(folder), fingerprint, every
        self.saved: State | None = None  # what the run restores
        self.written: int | None = None  # the step on disk
        self._pending: State | None = None  # newer than the one on disk, for an interrupt
        self._writing = self._interrupted = False
        self._created: list[Path] = []

    @property
    def paths(self) -> tuple[Path, Path]:
        return self.folder / TENSORS, self.folder / META

    def exists(self) -> bool:
        return self.paths[1].is_file()

    def load(self) -> State | None:
        """Read the checkpoint for a resume; refuses (UserError) one from another run. None if absent."""
        tensors_path, meta_path = self.paths
        if not meta_path.is_file():
            return None
        try:
            from safetensors.torch import load_file

            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            raw = load_file(str(tensors_path))
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, this syncos reads {FORMAT}")
        except (OSError, ValueError, KeyError) as e:
            raise UserError(
                f"checkpoint in {str(self.folder)!r} cannot be read ({first_line(e)}); "
                "rerun without --resume to start over"
            ) from None
        diff = _difference(meta.get("fingerprint"), self.fingerprint)
        if diff:
            raise UserError(f"cannot resume: {diff}; rerun without --resume to start over")
        self.saved = State(
            step=int(meta["step"]),
            total=int(meta["total"]),
            values={k: _unflatten(v, raw) for k, v in meta["values"].items()},
            rng=raw[_RNG],
            nfe=dict(meta["nfe"]),
            seconds=dict(meta["seconds"]),
            first_order=list(meta["first_order"]),
        )
        self.written = self.saved.step
        return self.saved

    def offer(self, state: State) -> None:
        """A step has ended: write it if it is due (every ``every`` steps and the last), else keep it."""
        if not distributed.is_main():
            return
        if (state.step + 1) % self.every == 0 or state.step + 1 == state.total:
            self._pending = None
            self._write(state)
        else:  # the loop may change its tensors in place: keep a copy for an interrupt
            state.values = {k: _copy(v) for k, v in state.values.items()}
            self._pending = state

    def flush(self) -> None:
        """Write the newest state not yet on disk (on an interrupt)."""
        if self._pending is not None and distributed.is_main():
            state, self._pending = self._pending, None
            self._write(state)

    def remove(self) -> None:
        """The checkpoint has served (the video is written) or cannot (the input was wrong).

        Folders its first write created go too, if nothing else was put in them.
        """
        if distributed.is_main():
            for p in self.paths:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
            for folder in self._created:  # deepest first
                with contextlib.suppress(OSError):
                    folder.rmdir()

    def _write(self, state: State) -> None:
        from syncos.io import write_json, write_tensors

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
            write_tensors(tensors, self.paths[0])
            write_json(meta, self.paths[1])  # after the tensors: a JSON on disk names tensors on disk
            self.written = state.step
        finally:
            self._writing = False
        if self._interrupted:
            raise KeyboardInterrupt


_active: contextvars.ContextVar[Checkpoint | None] = contextvars.ContextVar("syncos_checkpoint", default=None)


def current() -> Checkpoint | None:
    """The checkpoint of the run being sampled in this context, if any."""
    return _active.get()


@contextlib.contextmanager
def active(store: Checkpoint | None) -> Iterator[None]:
    """Sample with ``store``: runs started in the block restore from and write to it.

    In the main thread, SIGINT and SIGTERM first write the newest state, then stop the run with
    KeyboardInterrupt (a write in progress finishes first).
    """
    token = _active.set(store)
    handlers: dict[int, Any] = {}
    if store is not None and threading.current_thread() is threading.main_thread():

        def stop(signum, frame):
            if store._writing:
                store._interrupted = True
                return
            store.flush()
            raise KeyboardInterrupt

        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, stop)
    try:
        yield
    finally:
        for sig, h in handlers.items():
            signal.signal(sig, h)
        _active.reset(token)


__all__ = ["DEFAULT_EVERY", "Checkpoint", "State", "active", "current", "fingerprint", "to_device"]
