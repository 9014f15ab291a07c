"""The protocol between the samplers and a model: an explicit :class:`ModelSpec` and three calls.

A backend is a thin adapter around one model. What the core needs to know about the model is
declared once, in full, in its ``spec`` (a frozen :class:`ModelSpec` whose every field is set by
every backend: nothing is discovered with ``getattr``/``hasattr``); what it does is three calls:
``encode(prompts, negative)``, ``forward(x, t, cond)`` (the *raw* network output: the core,
``syncos.denoiser``, applies classifier-free guidance and converts to (x0, eps) with
``syncos.schedules.to_x0_eps``) and ``decode(latent)`` (frames, streamed).

Latents handled by the samplers have no batch axis: one long latent has ``latent_shape(F)``
with its frames on ``frame_axis``. Chunks are stacked on a new leading axis. The attributes
the samplers read on every step (``prediction``, ``schedule``, ``chunk_length``, ...) are also
on the backend itself; they equal the spec's (a test checks it for every backend).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from syncos.errors import UserError
from syncos.schedules import Schedule, X0Limit
from syncos.solvers import Solver

# (t of each row, the run's scale, the run's steps) -> the scale of each row, with tensor operations
# (or a float), so that nothing is read back from the device (Wan 2.2's second expert scale).
GuidanceSchedule = Callable[[torch.Tensor, float, int], "torch.Tensor | float"]
# (decoded frames, global prompt, [(first frame, end frame, local prompt)]) -> metrics (toyworld)
Evaluate = Callable[[np.ndarray, str, list[tuple[int, int, str]]], dict[str, float]]


@dataclass(frozen=True)
class CallDefaults:
    """The model's own call settings (the stock pipeline's ``__call__`` defaults); None: the sampler's.

    A scenario or a ``SynCoSPipeline`` call that leaves a setting out gets these, and run.json
    records the value used.
    """

    steps: int | None
    guidance_scale: float | None
    negative_prompt: str | None

    def sampler_keys(self) -> dict[str, Any]:
        """As sampler options (``steps``, ``guidance_scale``, ``negative_prompt``), unset ones left out."""
        keys = {
            "steps": self.steps,
            "guidance_scale": self.guidance_scale,
            "negative_prompt": self.negative_prompt,
        }
        return {k: v for k, v in keys.items() if v is not None}


@dataclass(frozen=True)
class Clip:
    """The native clip: its length and default stride in latent frames, where frames lie, and how
    latent frames map to video frames (``temporal_factor``; a causal VAE's first latent frame is one
    video frame)."""

    chunk_length: int
    default_stride: int
    frame_axis: int
    temporal_factor: int
    causal: bool

    def latent_frames(self, video_frames: int) -> int:
        r = self.temporal_factor
        if video_frames < 1:
            raise UserError(f"a video needs at least 1 frame, got {video_frames}")
        return 1 + math.ceil((video_frames - 1) / r) if self.causal else math.ceil(video_frames / r)

    def video_frames(self, latent_frames: int) -> int:
        r = self.temporal_factor
        return 1 + r * (latent_frames - 1) if self.causal else r * latent_frames


@dataclass(frozen=True)
class ModelSpec:
    """Everything the core knows about a model; every field is set (None only where it means "none").

    ``latent_std`` is the standard deviation of clean latents (the unit SynCoS's step size is given
    in); ``guidance`` the per-row CFG scale (None: the run's one scale); ``threads`` the CPU thread
    count the model runs best with (None: torch's choice; ``syncos.threads``); ``evaluate`` the
    model's own metrics of a decoded video (None: it has none; toyworld has), which also makes
    ``save`` hold the whole video to score it; ``preview`` cheap frames of a latent for progress
    displays (None: the UI shows latent channels); ``identity`` what run.json and a checkpoint
    fingerprint record about which model ran (a handed-in pipeline's class and ``name_or_path``).
    """

    name: str
    prediction: str  # "eps" | "v" | "x0" | "flow": what forward() returns
    schedule: Schedule
    solver: Solver
    x0_limit: X0Limit | None
    latent_std: float
    per_frame_timesteps: bool  # forward() also takes t (n, L), one per frame (FIFO's diagonal denoising)
    guidance: GuidanceSchedule | None
    defaults: CallDefaults
    clip: Clip
    fps: float
    height: int  # decoded frame size in pixels
    width: int
    threads: int | None
    evaluate: Evaluate | None
    preview: Callable[[torch.Tensor], np.ndarray] | None  # cheap frames (T, h, w, 3) of a latent (the UI)
    ignored_words: (
        Callable[[str], list[str]] | None
    )  # a prompt's words the model does not read (None: all read)
    identity: Mapping[str, str]


@runtime_checkable
class Backend(Protocol):
    name: str
    prediction: str
    schedule: Schedule
    chunk_length: int  # the model's native clip, in latent frames
    default_stride: int  # in latent frames
    frame_axis: int  # frame axis of an unbatched latent
    fps: float
    device: torch.device

    @property
    def spec(self) -> ModelSpec:
        """The model's full description (see :class:`ModelSpec`)."""

    def latent_shape(self, latent_frames: int) -> tuple[int, ...]:
        """Shape of one unbatched latent with this many latent frames."""

    def latent_frames(self, video_frames: int) -> int:
        """Latent frames that hold a video of this many frames (e.g. 1 + (n - 1) // 4 for causal VAEs)."""

    def video_frames(self, latent_frames: int) -> int:
        """Frames a latent of this many latent frames decodes to."""

    def encode(self, prompts: Sequence[str], negative: bool | Sequence[bool] = False) -> Any:
        """Conditioning for a batch of prompts, row i for prompts[i]; cached per prompt.

        ``negative`` (one flag, or one per row) marks negative prompts, encoded as the stock
        pipeline encodes its negative prompt (Sana-Video leaves its instruction off them).
        """

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        """Raw network output for a batch of chunk latents x (n, *chunk_shape) at timesteps t (n,).

        With ``spec.per_frame_timesteps`` it also takes t (n, L), one per frame (FIFO).
        t comes on the host (so reading it costs no device sync): move it where the network runs.
        """

    def decode(self, latent: torch.Tensor) -> Iterator[np.ndarray]:
        """Frames (H, W, 3) uint8 of one long latent, yielded in order so writers can stream."""


def negative_flags(prompts: Sequence[str], negative: bool | Sequence[bool]) -> list[bool]:
    """One negative flag per prompt from ``encode``'s ``negative`` argument."""
    if isinstance(negative, bool):
        return [negative] * len(prompts)
    flags = [bool(v) for v in negative]
    if len(flags) != len(prompts):
        raise ValueError(f"{len(flags)} negative flags for {len(prompts)} prompts")
    return flags
