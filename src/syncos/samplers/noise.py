"""The long latent's starting noise, rescheduled as FreeNoise does (``SamplerOptions.noise``)."""

from __future__ import annotations

import torch


def reschedule(noise: torch.Tensor, axis: int, length: int, stride: int, generator: torch.Generator):
    """FreeNoise's noise rescheduling: frame f >= ``length`` takes the noise of frame f - length,
    the ``stride`` frames of each block in a random order (so all of it is the first chunk's)."""
    F = noise.shape[axis]
    index = torch.arange(F)
    for start in range(length, F, stride):
        n = min(stride, F - start)
        index[start : start + n] = index[start - length : start - length + n][
            torch.randperm(n, generator=generator)
        ]
    return noise.index_select(axis, index)
