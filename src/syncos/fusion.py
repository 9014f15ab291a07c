"""Chunks of a long latent along its frame axis: crop them out, and average them back in."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch


@functools.lru_cache(maxsize=256)
def _on_device(values: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """A small index built once per device: a host-to-device copy every step may wait on the device."""
    return torch.tensor(values, dtype=torch.long, device=device)


def _frame_index(starts: Sequence[int], length: int, device: torch.device) -> torch.Tensor:
    s = _on_device(tuple(starts), device)
    return s[:, None] + torch.arange(length, device=device)[None, :]


def crop(x: torch.Tensor, starts: Sequence[int], length: int, axis: int) -> torch.Tensor:
    """Stack the chunks [s, s + length) of an unbatched latent along a new leading axis."""
    idx = _frame_index(starts, length, x.device)  # (n, L)
    chunks = x.movedim(axis, 0)[idx]  # (n, L, *rest)
    return chunks.movedim(1, axis + 1)


def fuse(
    chunks: torch.Tensor,
    starts: Sequence[int],
    frames: int,
    axis: int,
    window: torch.Tensor | None = None,
    owned: Sequence[tuple[int, int]] | None = None,
) -> torch.Tensor:
    """Overlap-average of chunks (n, *chunk_shape) into one latent of ``frames`` frames.

    ``window`` (length L) weights each chunk position; uniform by default, as in the paper.
    ``owned`` gives the [start, end) frames each chunk writes (disjoint spans: no averaging).
    Frames no chunk covers come out as zeros (a partial minibatch leaves them untouched).
    """
    n, length = chunks.shape[0], chunks.shape[axis + 1]
    idx = _frame_index(starts, length, chunks.device)
    per_frame = chunks.movedim(axis + 1, 1)  # (n, L, *rest)
    rest = per_frame.shape[2:]
    w = torch.ones(length, dtype=chunks.dtype, device=chunks.device) if window is None else window.to(chunks)
    w = w.repeat(n, 1)  # (n, L)
    if owned is not None:
        lo, hi = (_on_device(v, chunks.device)[:, None] for v in zip(*owned, strict=True))
        w = w * ((idx >= lo) & (idx < hi))
    idx, w = idx.reshape(-1), w.reshape(-1)
    flat = per_frame.reshape(n * length, -1) * w[:, None]
    total = torch.zeros(frames, flat.shape[1], dtype=chunks.dtype, device=chunks.device).index_add_(
        0, idx, flat
    )
    count = torch.zeros(frames, dtype=chunks.dtype, device=chunks.device).index_add_(0, idx, w)
    out = total / count.clamp_min(torch.finfo(chunks.dtype).tiny)[:, None]
    return out.reshape(frames, *rest).movedim(0, axis)
