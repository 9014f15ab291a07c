"""Chunk-parallel sampling over ``torch.distributed``: each rank evaluates a slice of the chunks.

Every rank holds the whole long latent and replays the cheap coupling math (fusion, CSD kernel,
optimiser, DDIM update) itself, drawing the same numbers from the same CPU generator; only the
network evaluations, which cost seconds per chunk, are split. So one collective per coupling
point suffices (an all-gather of the evaluated outputs, inside :class:`syncos.denoiser.Denoiser`),
the noise never depends on the number of ranks, and every sampler is parallel without changes.

Without a process group everything here is a no-op of world size 1.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
from collections.abc import Iterator

import torch
import torch.distributed as dist

from syncos.errors import DistributedError, UserError, first_line

TIMEOUT_ENV = "SYNCOS_DIST_TIMEOUT"
# Long enough for a rank that loads its model or runs a 14B forward pass late; a dead peer is
# usually noticed at once (its sockets close), the timeout bounds the wait for a hung one.
DEFAULT_TIMEOUT = 600.0
_timeout_set: float | None = None  # what launched() gave the group it made, for error messages

__all__ = [
    "DEFAULT_TIMEOUT",
    "TIMEOUT_ENV",
    "active",
    "alone",
    "gather_objects",
    "gather_rows",
    "is_main",
    "launched",
    "rank",
    "shard",
    "timeout_seconds",
    "world_size",
]


_alone = False  # inside alone(): this rank works by itself


def active() -> bool:
    """Whether a default process group exists (set up by :func:`launched` or by the caller) and is in use."""
    return not _alone and dist.is_available() and dist.is_initialized()


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """This rank works by itself for the block (a whole benchmark row): world size 1, no collectives."""
    global _alone
    before, _alone = _alone, True
    try:
        yield
    finally:
        _alone = before


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0: the one that shows progress and writes outputs."""
    return rank() == 0


def shard(n: int, rank: int, world: int) -> tuple[int, int]:
    """Rows [lo, hi) of n for ``rank``: contiguous, and sizes differ by at most one across ranks.

    The first ``n % world`` ranks take one extra row; ranks beyond ``n`` get an empty slice.
    """
    base, extra = divmod(n, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def gather_rows(local: torch.Tensor, n: int, what: str = "all-gather") -> torch.Tensor:
    """All ranks' slices (rows :func:`shard` assigns of n) concatenated in order, on every rank.

    One collective: slices are padded to the largest one (ceil(n / world) rows), gathered into
    one tensor, and the padding is dropped. A failed or timed-out collective (a peer died or
    hangs) raises :class:`DistributedError`, so callers get one clear message, not a hang.
    """
    w = world_size()
    if w == 1:
        return local
    size = -(-n // w)
    padded = local.new_zeros((size, *local.shape[1:]))
    padded[: len(local)] = local
    out = local.new_empty((w * size, *local.shape[1:]))
    all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor  # torch < 2.13
    try:
        all_gather(out, padded)
    except RuntimeError as e:  # DistBackendError / DistNetworkError / gloo errors are RuntimeErrors
        wait = f"after {_timeout_set:g} s" if _timeout_set else "at the process group's timeout"
        raise DistributedError(
            f"rank {rank()} of {w}: {what} failed ({_first_line(e)}); a peer rank probably exited or "
            f"hung (collectives time out {wait})"
        ) from None
    spans = (shard(n, r, w) for r in range(w))
    keep = torch.cat([torch.arange(r * size, r * size + hi - lo) for r, (lo, hi) in enumerate(spans)])
    return out.index_select(0, keep.to(out.device))


# Ranks that take whole benchmark rows finish them at different times; waiting for the slowest
# is expected there, so that one exchange uses its own gloo group with this timeout.
PATIENT_TIMEOUT = datetime.timedelta(days=7)


def gather_objects(obj: object, what: str = "exchange") -> list:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; waits as long as peers need.

    A peer that died is noticed at once (its sockets close) and raises :class:`DistributedError`.
    """
    if world_size() == 1:
        return [obj]
    out: list = [None] * world_size()
    try:
        group = dist.new_group(backend="gloo", timeout=PATIENT_TIMEOUT)
        dist.all_gather_object(out, obj, group=group)
        dist.destroy_process_group(group)
    except RuntimeError as e:
        raise DistributedError(
            f"rank {rank()} of {world_size()}: {what} failed ({_first_line(e)}); a peer rank probably exited"
        ) from None
    return out


def timeout_seconds(timeout: float | None = None) -> float:
    """The collective timeout: the argument, else $SYNCOS_DIST_TIMEOUT, else :data:`DEFAULT_TIMEOUT`."""
    if timeout is None:
        raw = os.environ.get(TIMEOUT_ENV)
        try:
            timeout = float(raw) if raw else DEFAULT_TIMEOUT
        except ValueError:
            raise UserError(f"${TIMEOUT_ENV} must be a number of seconds, got {raw!r}") from None
    if not timeout > 0:
        raise UserError(f"the distributed timeout must be > 0 seconds, got {timeout}")
    return float(timeout)


@contextlib.contextmanager
def launched(timeout: float | None = None) -> Iterator[None]:
    """Join the process group that torchrun describes (WORLD_SIZE > 1) for the duration of the block.

    A no-op for one process or when the caller already set up a group (theirs is used and left
    alone). CPU tensors go over gloo and CUDA tensors over NCCL; a CUDA rank uses GPU LOCAL_RANK.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or active():
        yield
        return
    seconds = timeout_seconds(timeout)
    backend = "gloo"
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise UserError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPUs are visible")
        torch.cuda.set_device(local)  # so device "cuda" means this rank's GPU
        # Blocking waits make a failed NCCL collective raise in Python (a clear message) instead of
        # the watchdog aborting the process, or a later host sync hanging until it does.
        os.environ.setdefault("TORCH_NCCL_BLOCKING_WAIT", "1")
        backend = "cpu:gloo,cuda:nccl"
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=seconds))
    except RuntimeError as e:
        raise DistributedError(f"could not join the process group: {_first_line(e)}") from None
    global _timeout_set
    _timeout_set = seconds
    try:
        yield
    finally:
        _timeout_set = None
        with contextlib.suppress(Exception):  # a broken group may not tear down cleanly; we exit anyway
            dist.destroy_process_group()


def _first_line(e: BaseException) -> str:
    """The gist of a c10d/gloo error: its first sentence, without the C++ source location."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", first_line(e))
    return text.split(". ")[0].rstrip(".") or type(e).__name__
