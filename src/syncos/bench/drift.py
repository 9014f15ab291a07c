"""The drift curve: how similar two frames are as a function of the distance between them.

Co-denoising keeps neighbouring frames alike but lets far-apart frames drift; SynCoS claims to
keep the curve flat. Each frame becomes a feature vector (a backend's decoded attributes, an
encoder's embedding, or by default its pixels pooled to 8x8), and the curve at distance d is
the mean similarity of all frame pairs (i, i + d).
"""

from __future__ import annotations

import numpy as np
import torch


def pixel_features(frames: np.ndarray, size: int = 8) -> np.ndarray:
    """(T, 3 * size * size) average-pooled RGB in [0, 1]: colour layout, blind to fine texture."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    return torch.nn.functional.adaptive_avg_pool2d(x, size).flatten(1).numpy()


def similarity_matrix(features: np.ndarray, kind: str = "l1") -> np.ndarray:
    """(T, T) similarities: ``cosine`` for embeddings, ``l1`` = 1 - mean |a - b| for [0, 1] features."""
    f = np.asarray(features, dtype=np.float64)
    if kind == "cosine":
        f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        return f @ f.T
    if kind == "l1":
        return 1.0 - np.abs(f[:, None, :] - f[None, :, :]).mean(-1)
    raise ValueError(f"similarity {kind!r} is not known; use cosine or l1")


def drift_curve(
    features: np.ndarray, kind: str = "l1", distances: list[int] | None = None
) -> dict[int, float]:
    """Distance -> mean similarity of frame pairs that far apart (default: every distance)."""
    sim = similarity_matrix(features, kind)
    T = len(sim)
    ds = distances if distances is not None else list(range(1, T))
    return {d: float(np.diagonal(sim, offset=d).mean()) for d in ds if 0 < d < T}
