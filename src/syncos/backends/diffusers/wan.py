"""Wan 2.1 / 2.2: latents (C, F, H, W), flow matching; Wan 2.2 A14B switches experts at a boundary.

Wan 2.2 TI2V-5B (``expand_timesteps``) is trained with one timestep per token, so it also takes one
per frame (``per_frame_timesteps``: FIFO's diagonal denoising). Wan 2.1 and A14B take one per
clip: their transformer would accept per-token timesteps too, but they never saw them in training.
"""

from __future__ import annotations

from typing import Any

import torch

from syncos.backends.base import GuidanceSchedule
from syncos.backends.diffusers.common import DiffusersBackend, flow_schedule
from syncos.errors import UserError


class WanBackend(DiffusersBackend):
    family = "wan"
    options_help = {
        "max_sequence_length": "T5 tokens per prompt (default 512, as the Wan pipeline)",
        "boundary_ratio": "Wan 2.2 A14B: fraction of T below which transformer_2 runs (default: pipeline's)",
        "native_frames": "video frames of the model's native clip (default 81)",
        "guidance_scale_2": "Wan 2.2 A14B: guidance scale of the low-noise expert (default: guidance_scale)",
    }
    causal_vae = True
    default_fps = 16.0
    native_frames = 81

    def _setup(self) -> None:
        pipe = self.pipe
        main = pipe.transformer if pipe.transformer is not None else pipe.transformer_2
        vcfg = pipe.vae.config
        self.frame_axis = 1
        self.temporal_factor = int(vcfg.scale_factor_temporal)
        self.spatial_factor = int(vcfg.scale_factor_spatial)
        self.latent_channels = int(main.config.in_channels)
        self.patch = tuple(main.config.patch_size)
        self.prediction = "flow"
        self.schedule = flow_schedule(pipe.scheduler)
        self.max_sequence_length = int(self.options.get("max_sequence_length") or 512)
        ratio = self.options.get("boundary_ratio", pipe.config.get("boundary_ratio"))
        if ratio is not None and pipe.transformer_2 is None:
            raise UserError("model_options.boundary_ratio needs a pipeline with two experts (Wan 2.2 A14B)")
        self.boundary = None if ratio is None else float(ratio) * self.schedule.num_train_timesteps
        g2 = self.options.get("guidance_scale_2")
        if g2 is not None and (self.boundary is None or type(g2) not in (int, float)):
            raise UserError(
                f"model_options.guidance_scale_2 must be a number, for two experts (Wan 2.2 A14B); got {g2!r}"
            )
        self.guidance_scale_2 = None if g2 is None else float(g2)
        self.expand_timesteps = bool(pipe.config.get("expand_timesteps", False))
        self._dtype = main.dtype

    @property
    def per_frame_timesteps(self) -> bool:
        return self.expand_timesteps and self.patch[0] == 1

    def default_size(self) -> tuple[int, int]:
        return 480, 832

    def size_multiple(self) -> int:
        return self.spatial_factor * max(self.patch[1], self.patch[2])

    def _encode_uncached(self, prompts: list[str]) -> torch.Tensor:
        embeds, _ = self.pipe.encode_prompt(
            prompts,
            do_classifier_free_guidance=False,
            max_sequence_length=self.max_sequence_length,
            device=self.device,
        )
        return embeds.to(self._dtype)

    def experts(self, t: torch.Tensor) -> list[tuple[Any, torch.Tensor | None]]:
        """(network, its rows or None for all) for timesteps t: transformer for high noise
        (t >= boundary), transformer_2 below it, as WanPipeline does. One expert reads nothing of
        t; two read it on the host (the denoiser keeps t there, so this is no device sync)."""
        pipe = self.pipe
        if self.boundary is None:
            return [(pipe.transformer, None)]
        rows = t if t.dim() == 1 else t.amax(dim=1)  # per-frame: the expert of the noisiest frame
        high = rows.cpu() >= self.boundary
        picks = [(pipe.transformer, high), (pipe.transformer_2, ~high)]
        return [(m, mask.nonzero().flatten()) for m, mask in picks if bool(mask.any())]

    def guidance(self) -> GuidanceSchedule | None:
        return None if self.guidance_scale_2 is None else self.guidance_scale

    def guidance_scale(self, t: torch.Tensor, default: float, steps: int) -> torch.Tensor | float:
        """guidance_scale_2 where the low-noise expert runs, as WanPipeline does."""
        if self.guidance_scale_2 is None:
            return default
        return torch.where(t < self.boundary, self.guidance_scale_2, default)

    def _forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        out = None
        for model, idx in self.experts(t):  # rows may sit on either side of the boundary
            xi, ti, ci = (v if idx is None else v[idx] for v in (x, t, cond))
            xi, ti = xi.to(self.device, model.dtype), ti.to(self.device)
            if self.expand_timesteps:  # Wan 2.2 TI2V: a timestep per token, ordered (frame, row, column)
                f, h, w = (xi.shape[2 + d] // self.patch[d] for d in range(3))
                ti = (ti if ti.dim() == 2 else ti[:, None].expand(-1, f)).repeat_interleave(h * w, dim=1)
            elif ti.dim() == 2:
                raise ValueError("per-frame timesteps need Wan 2.2 TI2V (expand_timesteps)")
            y = model(hidden_states=xi, timestep=ti, encoder_hidden_states=ci, return_dict=False)[0]
            if idx is None:
                return y.to(self._dtype)
            out = y.new_empty((len(x), *y.shape[1:])) if out is None else out
            out[idx] = y
        return out

    def _decode_tile(self, latent: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        z = self._vae_input(latent, (vae.config.latents_mean, vae.config.latents_std))
        return vae.decode(z.to(vae.dtype), return_dict=False)[0][0]
