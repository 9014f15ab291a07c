"""SkyReels-V2 text-to-video and its diffusion-forcing (DF) variant: Wan's VAE and text encoder.

Only the network call differs from Wan. The DF transformer takes one timestep per latent frame
(``per_frame_timesteps``: FIFO's per-frame mode gives it each frame's own noise level); its
pipeline always runs it that way, with integer timesteps and an fps flag, and so does the adapter.
"""

from __future__ import annotations

from typing import Any

import torch

from syncos.backends.diffusers.wan import WanBackend
from syncos.errors import UserError


class SkyReelsV2Backend(WanBackend):
    family = "skyreels-v2"
    options_help = {
        "max_sequence_length": "UMT5 tokens per prompt (default 512, as the SkyReels-V2 pipelines)",
        "native_frames": "video frames of the model's native clip (default 97)",
    }
    default_fps = 24.0
    native_frames = 97

    def default_size(self) -> tuple[int, int]:
        return 544, 960

    def _call(self, x: torch.Tensor, t: torch.Tensor, cond: Any, **kw: Any) -> torch.Tensor:
        tr = self.pipe.transformer
        return tr(
            hidden_states=x.to(self.device, tr.dtype),
            timestep=t.to(self.device),
            encoder_hidden_states=cond,
            return_dict=False,
            **kw,
        )[0]

    def _forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        return self._call(x, t, cond)


class SkyReelsV2DFBackend(SkyReelsV2Backend):
    family = "skyreels-v2-df"
    per_frame_timesteps = True  # shadows Wan's property: this transformer always takes them

    def __init__(self, pipe: Any, **kw: Any):
        super().__init__(pipe, **kw)
        self._check_frames(self.chunk_length)

    def _check_frames(self, frames: int) -> None:
        block = int(self.pipe.transformer.config.num_frame_per_block)
        if frames % block:
            raise UserError(
                f"SkyReels-V2 DF denoises causal blocks of {block} latent frames: "
                f"the chunk length must be a multiple of {block}, got {frames}"
            )

    def _forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        """t: per chunk (n,) or per latent frame (n, F); truncated to integers as the pipeline does."""
        n, frames = len(x), x.shape[2]
        self._check_frames(frames)
        t = t if t.dim() == 2 else t[:, None].expand(n, frames)
        if t.shape != (n, frames):
            raise ValueError(
                f"per-frame timesteps of shape {tuple(t.shape)} for {n} chunks of {frames} frames"
            )
        t = t.long()
        # One call for the batch. The transformer adds the fps embedding repeated over frames,
        # (F, 6, D), to a (n, F, 6, D) projection: one fps for the batch broadcasts over its rows,
        # which is right because they all have the same (n of them would not broadcast for n > 1).
        fps = 0 if self.fps == 16 else 1  # the fps embedding's two classes: 16 fps or 24 fps
        return self._call(x, t, cond, enable_diffusion_forcing=True, fps=[fps])
