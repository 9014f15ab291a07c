"""The protocol between the samplers and a model.

A backend is a thin adapter around one model: it encodes prompts, runs the network on a batch
of chunk latents and decodes a long latent to frames. It returns the *raw* network output; the
core (``syncos.denoiser``) applies classifier-free guidance and converts the output to
(x0, eps) with ``syncos.schedules.to_x0_eps``, so no backend repeats that arithmetic.

Latents handled by the samplers have no batch axis: one long latent has ``latent_shape(F)``
with its frames on ``frame_axis``. Chunks are stacked on a new leading axis.

Optional attributes: ``latent_std`` (the standard deviation of clean latents, 1.0 if absent: the
unit SynCoS's step size is given in), ``per_frame_timesteps``, ``threads``, ``solver``,
``sampler_defaults`` (sampler keys, e.g. steps, a scenario gets unless it sets them), and
``guidance_scale(t, default, steps)``: the CFG scale of each row from its timesteps t (a tensor),
computed with tensor operations (or a float), so that nothing is read back from the device.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from syncos.schedules import Schedule


@runtime_checkable
class Backend(Protocol):
    name: str
    prediction: str  # "eps" | "v" | "x0" | "flow": what forward() returns
    schedule: Schedule
    chunk_length: int  # the model's native clip, in latent frames
    default_stride: int  # in latent frames
    frame_axis: int  # frame axis of an unbatched latent
    fps: float
    device: torch.device

    def latent_shape(self, latent_frames: int) -> tuple[int, ...]:
        """Shape of one unbatched latent with this many latent frames."""

    def latent_frames(self, video_frames: int) -> int:
        """Latent frames that hold a video of this many frames (e.g. 1 + (n - 1) // 4 for causal VAEs)."""

    def video_frames(self, latent_frames: int) -> int:
        """Frames a latent of this many latent frames decodes to."""

    def encode(self, prompts: Sequence[str]) -> Any:
        """Conditioning for a batch of prompts, row i for prompts[i]. Should cache per prompt."""

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        """Raw network output for a batch of chunk latents x (n, *chunk_shape) at timesteps t (n,).

        A backend that sets ``per_frame_timesteps = True`` also takes t (n, L), one per frame (FIFO).
        t comes on the host (so reading it costs no device sync): move it where the network runs.
        """

    def decode(self, latent: torch.Tensor) -> Iterator[np.ndarray]:
        """Frames (H, W, 3) uint8 of one long latent, yielded in order so writers can stream."""
