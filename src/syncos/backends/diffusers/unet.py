"""UNet video models: AnimateDiff (UNetMotionModel) and ModelScope TextToVideoSD (UNet3DConditionModel).

Latents (C, F, H, W), eps-prediction on a DDIM-style VP schedule, and a per-frame Stable Diffusion
VAE: one latent frame per video frame, so decoding tiles need no overlap.

No per-frame timesteps (FIFO runs its shared-timestep approximation): both UNets broadcast one
timestep per clip to every frame (``timesteps.expand(batch)`` then ``repeat_interleave(frames)``),
and their public forward has no argument that sets the time embedding per frame.
"""

from __future__ import annotations

from typing import Any

import torch

from syncos.backends.diffusers.common import PREDICTION_TYPES, DiffusersBackend, vp_schedule_from_config


class UNetBackend(DiffusersBackend):
    family = "unet"
    options_help = {"native_frames": "frames of the model's native clip (default 16)"}
    causal_vae = False
    frames_as_batch = True  # an image VAE: a tile's frames are one batch, which vae_slicing splits
    default_fps = 8.0
    native_frames = 16

    def _setup(self) -> None:
        pipe = self.pipe
        self.name = "animatediff" if type(pipe).__name__.startswith("AnimateDiff") else "modelscope"
        self.frame_axis = 1
        self.temporal_factor = 1
        self.spatial_factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
        self.latent_channels = int(pipe.unet.config.in_channels)
        self.prediction = PREDICTION_TYPES[pipe.scheduler.config.get("prediction_type", "epsilon")]
        self.schedule = vp_schedule_from_config(pipe.scheduler.config)

    def default_size(self) -> tuple[int, int]:
        s = self.pipe.unet.config.sample_size
        s = s if isinstance(s, int) else s[0]
        return s * self.spatial_factor, s * self.spatial_factor

    def size_multiple(self) -> int:
        return self.spatial_factor * 2 ** (len(self.pipe.unet.config.down_block_types) - 1)

    def native_stride(self, chunk_length: int) -> int:
        return max(1, chunk_length // 4)  # 16-frame windows with stride 4, as Gen-L-Video / FreeNoise

    def _encode_uncached(self, prompts: list[str]) -> torch.Tensor:
        embeds, _ = self.pipe.encode_prompt(prompts, self.device, 1, False)
        return embeds.to(self.pipe.unet.dtype)

    def _forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        unet = self.pipe.unet
        if self.name == "animatediff":  # UNetMotionModel wants one text row per frame, as its pipeline passes
            cond = cond.repeat_interleave(x.shape[2], dim=0)
        return unet(
            x.to(self.device, unet.dtype),
            t.to(self.device),
            encoder_hidden_states=cond,
            return_dict=False,
        )[0]

    def _decode_tile(self, latent: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        z = latent.permute(1, 0, 2, 3) / vae.config.scaling_factor  # frames as a batch of images
        return vae.decode(z.to(self.device, vae.dtype)).sample.permute(1, 0, 2, 3)
