"""CogVideoX 2B / 5B / 1.5: latents (F, C, H, W), v-prediction, DDIM schedule with SNR shift."""

from __future__ import annotations

import math
from typing import Any

import torch
from diffusers.models.embeddings import get_3d_rotary_pos_embed

from syncos.backends.base import GuidanceSchedule
from syncos.backends.diffusers.common import PREDICTION_TYPES, DiffusersBackend, vp_schedule_from_config
from syncos.errors import UserError


def _crop_region(src: tuple[int, int], tw: int, th: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The resize-crop region CogVideoX 1.0 uses to place its rotary grid (as in its pipeline)."""
    h, w = src
    if h / w > th / tw:
        rh, rw = th, int(round(th / h * w))
    else:
        rw, rh = tw, int(round(tw / w * h))
    top, left = int(round((th - rh) / 2.0)), int(round((tw - rw) / 2.0))
    return (top, left), (top + rh, left + rw)


class CogVideoXBackend(DiffusersBackend):
    family = "cogvideox"
    options_help = {
        "max_sequence_length": "T5 tokens per prompt (default: the transformer's max_text_seq_length)",
        "use_dynamic_cfg": "true: CogVideoXPipeline's cosine guidance schedule (for 5B; default false)",
    }
    causal_vae = True
    default_fps = 8.0

    def _setup(self) -> None:
        pipe = self.pipe
        tcfg, vcfg = pipe.transformer.config, pipe.vae.config
        self.frame_axis = 0
        self.temporal_factor = int(vcfg.temporal_compression_ratio)
        self.spatial_factor = 2 ** (len(vcfg.block_out_channels) - 1)
        self.latent_channels = int(tcfg.in_channels)
        self.patch_size = int(tcfg.patch_size)
        self.patch_size_t = tcfg.patch_size_t  # None for 1.0; 2 for 1.5
        pred = pipe.scheduler.config.get("prediction_type", "v_prediction")
        self.prediction = PREDICTION_TYPES[pred]
        self.schedule = vp_schedule_from_config(pipe.scheduler.config)
        self.max_sequence_length = int(self.options.get("max_sequence_length") or tcfg.max_text_seq_length)
        if self.patch_size_t is not None:  # 1.5 was trained at 16 fps
            self.default_fps = 16.0
        self._rotary: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.dynamic_cfg = self.options.get("use_dynamic_cfg", False)
        if not isinstance(self.dynamic_cfg, bool):
            raise UserError(f"model_options.use_dynamic_cfg must be true or false, got {self.dynamic_cfg!r}")

    def default_size(self) -> tuple[int, int]:
        c = self.pipe.transformer.config
        return c.sample_height * self.spatial_factor, c.sample_width * self.spatial_factor

    def size_multiple(self) -> int:
        return self.spatial_factor * self.patch_size

    def native_chunk_length(self) -> int:
        frames = (self.pipe.transformer.config.sample_frames - 1) // self.temporal_factor + 1
        p_t = self.patch_size_t or 1
        return -(-frames // p_t) * p_t  # 1.5 pads 21 latent frames to 22, as its pipeline does

    def _check_chunk(self, frames: int) -> None:
        if self.patch_size_t and frames % self.patch_size_t:
            raise UserError(
                f"CogVideoX 1.5 takes chunks of a multiple of {self.patch_size_t} latent frames, got {frames}"
            )

    def _encode_uncached(self, prompts: list[str]) -> torch.Tensor:
        embeds, _ = self.pipe.encode_prompt(
            prompts,
            do_classifier_free_guidance=False,
            max_sequence_length=self.max_sequence_length,
            device=self.device,
            dtype=self.pipe.transformer.dtype,
        )
        return embeds

    def rotary(self, frames: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """3D RoPE tables (5B and 1.5), cached per chunk length."""
        cfg = self.pipe.transformer.config
        if not cfg.use_rotary_positional_embeddings:
            return None
        if frames not in self._rotary:
            p = self.patch_size
            gh, gw = self.height // (self.spatial_factor * p), self.width // (self.spatial_factor * p)
            bw, bh = cfg.sample_width // p, cfg.sample_height // p
            if self.patch_size_t is None:
                self._rotary[frames] = get_3d_rotary_pos_embed(
                    embed_dim=cfg.attention_head_dim,
                    crops_coords=_crop_region((gh, gw), bw, bh),
                    grid_size=(gh, gw),
                    temporal_size=frames,
                    device=self.device,
                )
            else:
                self._rotary[frames] = get_3d_rotary_pos_embed(
                    embed_dim=cfg.attention_head_dim,
                    crops_coords=None,
                    grid_size=(gh, gw),
                    temporal_size=(frames + self.patch_size_t - 1) // self.patch_size_t,
                    grid_type="slice",
                    max_size=(bh, bw),
                    device=self.device,
                )
        return self._rotary[frames]

    def guidance(self) -> GuidanceSchedule | None:
        return self.guidance_scale if self.dynamic_cfg else None

    def guidance_scale(self, t: torch.Tensor, default: float, steps: int) -> torch.Tensor | float:
        """With use_dynamic_cfg, CogVideoXPipeline's schedule (its formula, t on the 0..1000 scale)."""
        if not self.dynamic_cfg:
            return default
        return 1 + default * ((1 - torch.cos(math.pi * ((steps - t.double()) / steps) ** 5.0)) / 2)

    def _forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        tr = self.pipe.transformer
        self._check_chunk(x.shape[1])
        return tr(
            hidden_states=x.to(self.device, tr.dtype),
            encoder_hidden_states=cond,
            timestep=t.to(self.device),
            image_rotary_emb=self.rotary(x.shape[1]),
            return_dict=False,
        )[0]

    def _decode_tile(self, latent: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        z = latent.permute(1, 0, 2, 3).unsqueeze(0) / vae.config.scaling_factor
        return vae.decode(z.to(self.device, vae.dtype)).sample[0]
