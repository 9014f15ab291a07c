"""Mochi 1: latents (C, F, H, W), flow matching with inverted time, T5 text, a causal VAE (x6 in time).

The released checkpoint's scheduler runs with ``invert_sigmas``: the network is given
``1000 * (1 - sigma)`` and predicts ``x0 - eps``. The grid here keeps sigma as the noise level
(so ``t_min`` and the samplers read it as for every flow model) and the adapter converts at the
network's door. The setting is read from the folder's scheduler config, not assumed: without it
the scheduler's grid already is noise levels, and the network gets the scheduler's timesteps
and output sign as MochiPipeline gives them (a plain flow model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers.pipelines.mochi.pipeline_mochi import linear_quadratic_schedule

from syncos.backends.diffusers.common import DiffusersBackend, PipelineFlowSchedule


@dataclass(frozen=True)
class NoiseLevelSchedule(PipelineFlowSchedule):
    """The scheduler's grid with its inversion undone: sigma = 1 is pure noise again."""

    def _from_scheduler(self, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        inverted, _ = super()._from_scheduler(steps)  # steps + 1 points, the last one clean
        sigmas = 1.0 - inverted
        return sigmas, sigmas[:steps] * self.num_train_timesteps


class MochiBackend(DiffusersBackend):
    family = "mochi"
    options_help = {
        "max_sequence_length": "T5 tokens per prompt (default 256, as MochiPipeline)",
        "native_frames": "video frames of the model's native clip (default 163)",
    }
    causal_vae = True
    default_fps = 30.0
    native_frames = 163

    def _setup(self) -> None:
        pipe = self.pipe
        tcfg, vcfg = pipe.transformer.config, pipe.vae.config
        self.frame_axis = 1
        self.temporal_factor = int(np.prod(vcfg.temporal_expansions))
        self.spatial_factor = int(np.prod(vcfg.spatial_expansions))
        self.latent_channels = int(tcfg.in_channels)
        self.p = int(tcfg.patch_size)
        self.prediction = "flow"
        self.max_sequence_length = int(self.options.get("max_sequence_length") or 256)
        cfg = dict(pipe.scheduler.config)
        self.inverted = bool(cfg.get("invert_sigmas", False))
        schedule = NoiseLevelSchedule if self.inverted else PipelineFlowSchedule
        self.schedule = schedule(
            shift=float(cfg.get("shift") or 1.0),
            num_train_timesteps=int(cfg.get("num_train_timesteps", 1000)),
            scheduler=pipe.scheduler,
            # the pipeline's grid: linear then quadratic, switching at sigma 0.025
            timesteps_kwargs=lambda steps: {"sigmas": np.array(linear_quadratic_schedule(steps, 0.025))},
        )

    def default_size(self) -> tuple[int, int]:
        return 480, 848

    def size_multiple(self) -> int:
        return self.spatial_factor * self.p

    def _encode_uncached(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        # one prompt per call: with force_zeros_for_empty_prompt the pipeline zeroes a whole batch
        # whose last prompt is empty
        rows = [
            self.pipe.encode_prompt(
                [p],
                do_classifier_free_guidance=False,
                max_sequence_length=self.max_sequence_length,
                device=self.device,
            )[:2]
            for p in prompts
        ]
        embeds = torch.cat([r[0] for r in rows]).to(self.pipe.transformer.dtype)
        return embeds, torch.cat([r[1] for r in rows])

    def _forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        tr = self.pipe.transformer
        embeds, mask = cond
        t = t.to(self.device)
        out = tr(
            hidden_states=x.to(self.device, tr.dtype),
            encoder_hidden_states=embeds,
            timestep=self.schedule.num_train_timesteps - t if self.inverted else t,
            encoder_attention_mask=mask,
            return_dict=False,
        )[0]
        return -out if self.inverted else out  # x0 - eps -> the usual flow velocity eps - x0

    def _decode_tile(self, latent: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        mean, std = vae.config.latents_mean, vae.config.latents_std
        stats = None if mean is None or std is None else (mean, std)
        z = self._vae_input(latent, stats, vae.config.scaling_factor)
        return vae.decode(z.to(vae.dtype), return_dict=False)[0][0]
