"""HunyuanVideo: latents (C, F, H, W), flow matching, Llama + CLIP text, embedded (distilled) guidance.

The released model is guidance-distilled: the pipeline's ``guidance_scale`` is a number fed to the
network (here ``model_options.embedded_guidance_scale``), while true classifier-free guidance is
its ``true_cfg_scale`` -- what the sampler's ``guidance_scale`` does for every family. With the
distilled model the default is the pipeline's ``true_cfg_scale`` of 1: one pass per chunk, no CFG.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from syncos.backends.diffusers.common import DiffusersBackend, flow_schedule
from syncos.errors import UserError


def linspace_sigmas(steps: int) -> dict:
    """The HunyuanVideo pipelines' grid: linspace(1, 0) without its end, shifted by the scheduler."""
    return {"sigmas": np.linspace(1.0, 0.0, steps + 1)[:-1]}


class HunyuanVideoBackend(DiffusersBackend):
    family = "hunyuanvideo"
    options_help = {
        "max_sequence_length": "Llama tokens per prompt (default 256, as HunyuanVideoPipeline)",
        "embedded_guidance_scale": "guidance fed to the distilled network (default 6.0)",
        "native_frames": "video frames of the model's native clip (default 129)",
    }
    causal_vae = True
    default_fps = 24.0
    native_frames = 129
    cfg_argument = "true_cfg_scale"  # its guidance_scale is the distilled one (embedded_guidance_scale)

    def _setup(self) -> None:
        pipe = self.pipe
        tcfg = pipe.transformer.config
        self.frame_axis = 1
        self.temporal_factor = int(pipe.vae.temporal_compression_ratio)
        self.spatial_factor = int(pipe.vae.spatial_compression_ratio)
        self.latent_channels = int(tcfg.in_channels)
        self.p, self.pt = int(tcfg.patch_size), int(tcfg.patch_size_t)
        self.prediction = "flow"
        self.max_sequence_length = int(self.options.get("max_sequence_length") or 256)
        g = self.options.get("embedded_guidance_scale", 6.0)
        if isinstance(g, bool) or not isinstance(g, int | float):
            raise UserError(f"model_options.embedded_guidance_scale must be a number, got {g!r}")
        self.embedded_guidance = float(g)
        self.schedule = flow_schedule(pipe.scheduler, linspace_sigmas)

    def default_size(self) -> tuple[int, int]:
        return 720, 1280

    def size_multiple(self) -> int:
        return self.spatial_factor * self.p

    def _encode_uncached(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dtype = self.pipe.transformer.dtype
        embeds, pooled, mask = self.pipe.encode_prompt(
            prompts, max_sequence_length=self.max_sequence_length, device=self.device
        )
        return embeds.to(dtype), mask.to(dtype), pooled.to(dtype)

    def _forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        tr = self.pipe.transformer
        if x.shape[2] % self.pt:
            raise UserError(
                f"HunyuanVideo chunks need a multiple of {self.pt} latent frames, got {x.shape[2]}"
            )
        embeds, mask, pooled = cond
        guidance = torch.full((len(x),), self.embedded_guidance * 1000.0, dtype=tr.dtype, device=self.device)
        return tr(
            hidden_states=x.to(self.device, tr.dtype),
            timestep=t.to(self.device),
            encoder_hidden_states=embeds,
            encoder_attention_mask=mask,
            pooled_projections=pooled,
            guidance=guidance,
            return_dict=False,
        )[0]

    def _decode_tile(self, latent: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        z = self._vae_input(latent, None, vae.config.scaling_factor)
        return vae.decode(z.to(vae.dtype), return_dict=False)[0][0]
