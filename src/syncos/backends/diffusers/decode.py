"""Temporally tiled VAE decoding with blended overlaps, streaming frames in order.

A 4-10x long latent does not fit through a video VAE at once. We decode overlapping tiles of
latent frames and cross-fade the overlaps with linear ramps. For a causal VAE (1 + r*k frames
per 1 + k latent frames) a tile of latent frames [a, b) decodes to the video frames
[r*a, r*a + 1 + r*(b - a - 1)): its first frame is the causal VAE's "image" reconstruction of
latent frame a, which lands on video frame r*a. That frame is the least reliable one of a tile,
and the ramp gives it the smallest weight. A frame is yielded as soon as no later tile covers
it, so at most one tile of frames is held: peak memory does not depend on the video's length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch


def tile_ranges(frames: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Tiles [a, b) of latent frames covering [0, frames); the last one is aligned to the end."""
    if frames <= 0:
        raise ValueError(f"nothing to decode: {frames} latent frames")
    tile = max(1, min(tile, frames))
    overlap = max(0, min(overlap, tile - 1))
    step = tile - overlap
    out = []
    a = 0
    while True:
        b = min(a + tile, frames)
        out.append((max(0, b - tile), b))
        if b >= frames:
            break
        a += step
    return out


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """(3, T, H, W) in [-1, 1] -> (T, H, W, 3) uint8, rounded as diffusers' video processor does."""
    v = (video.float() / 2 + 0.5).clamp(0, 1)
    return (v.permute(1, 2, 3, 0) * 255).round().to(torch.uint8).cpu().numpy()


def tiled_decode(
    decode_tile: Callable[[int, int], torch.Tensor],
    latent_frames: int,
    video_frames: Callable[[int], int],
    *,
    tile: int,
    overlap: int,
) -> Iterator[np.ndarray]:
    """Yield frames (H, W, 3) uint8 of a latent, decoding latent frames [a, b) with ``decode_tile(a, b)``.

    ``decode_tile`` returns (3, T, H, W) in [-1, 1] with T = video_frames(b - a);
    ``video_frames`` is the VAE's frame count map, from which the temporal factor follows.
    """
    r = video_frames(2) - video_frames(1)
    ranges = tile_ranges(latent_frames, tile, overlap)
    starts = [r * a for a, _ in ranges]
    ends = [r * a + video_frames(b - a) for a, b in ranges]
    acc: torch.Tensor | None = None  # weighted sum of the pending frames, from frame ``base``
    wsum: torch.Tensor | None = None
    base = 0
    for k, (a, b) in enumerate(ranges):
        video = decode_tile(a, b).float().cpu()
        n = video.shape[1]
        if n != ends[k] - starts[k]:
            raise RuntimeError(
                f"VAE decoded {n} frames from {b - a} latent frames, expected {ends[k] - starts[k]}"
            )
        g0 = starts[k]
        ov_prev = max(0, ends[k - 1] - g0) if k > 0 else 0
        ov_next = max(0, ends[k] - starts[k + 1]) if k + 1 < len(ranges) else 0
        j = torch.arange(n, dtype=torch.float32)
        w = torch.ones(n)
        if ov_prev:
            w = torch.minimum(w, (j + 1) / (ov_prev + 1))
        if ov_next:
            w = torch.minimum(w, (n - j) / (ov_next + 1))
        contrib = video * w.view(1, n, 1, 1)
        # grow the pending buffer to cover [base, g0 + n)
        end = g0 + n
        if acc is None:
            base = g0
            acc = torch.zeros(video.shape[0], end - base, *video.shape[2:])
            wsum = torch.zeros(end - base)
        elif end - base > acc.shape[1]:
            extra = end - base - acc.shape[1]
            acc = torch.cat([acc, acc.new_zeros(acc.shape[0], extra, *acc.shape[2:])], dim=1)
            wsum = torch.cat([wsum, wsum.new_zeros(extra)])
        acc[:, g0 - base : end - base] += contrib
        wsum[g0 - base : end - base] += w
        # frames before the next tile's first frame are final
        final = (starts[k + 1] if k + 1 < len(ranges) else end) - base
        if final > 0:
            done = acc[:, :final] / wsum[:final].view(1, -1, 1, 1)
            yield from to_uint8(done)
            acc, wsum, base = acc[:, final:], wsum[final:], base + final
