"""LTX-Video: flow matching; the core sees latents (C, F, H, W), packing to tokens happens only here.

The transformer takes one timestep per token (LTX's image-to-video pipeline conditions that way),
so FIFO's windows, one noise level per frame, go in as they are: ``per_frame_timesteps``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from syncos.backends.diffusers.common import DiffusersBackend, flow_schedule
from syncos.errors import UserError


def pack(x: torch.Tensor, p: int, pt: int) -> torch.Tensor:
    """(B, C, F, H, W) -> (B, F/pt * H/p * W/p, C*pt*p*p), the token order of LTXPipeline."""
    b, c, f, h, w = x.shape
    x = x.reshape(b, c, f // pt, pt, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 6, 1, 3, 5, 7).flatten(4, 7).flatten(1, 3)


def unpack(x: torch.Tensor, f: int, h: int, w: int, p: int, pt: int) -> torch.Tensor:
    """Inverse of :func:`pack`; f, h, w count patches."""
    b = x.size(0)
    x = x.reshape(b, f, h, w, -1, pt, p, p)
    return x.permute(0, 4, 1, 5, 2, 6, 3, 7).flatten(6, 7).flatten(4, 5).flatten(2, 3)


def calculate_shift(seq_len: int, base_seq: int, max_seq: int, base_shift: float, max_shift: float) -> float:
    """Resolution-dependent shift mu, as LTXPipeline computes it from the latent token count."""
    m = (max_shift - base_shift) / (max_seq - base_seq)
    return seq_len * m + base_shift - m * base_seq


def ltx_schedule(scheduler: Any, tokens: int) -> Any:
    """LTXPipeline's grid: sigmas linspace(1, 1/steps), shifted by mu from the token count (dynamic
    shifting: mu = 3.23 at 512x704x161) and stretched to the scheduler's terminal value."""
    cfg = dict(scheduler.config)
    mu = calculate_shift(
        tokens,
        cfg.get("base_image_seq_len", 256),
        cfg.get("max_image_seq_len", 4096),
        cfg.get("base_shift", 0.5),
        cfg.get("max_shift", 1.15),
    )
    kwargs = {"mu": mu} if cfg.get("use_dynamic_shifting") else {}
    return flow_schedule(scheduler, lambda steps: {"sigmas": np.linspace(1.0, 1 / steps, steps), **kwargs})


class LTXBackend(DiffusersBackend):
    family = "ltx"
    options_help = {
        "max_sequence_length": "T5 tokens per prompt (default 128, as LTXPipeline)",
        "native_frames": "video frames of the model's native clip (default 161)",
        "decode_timestep": "timestep the VAE decodes at (0.9.1+ VAEs; default 0.0)",
        "decode_noise_scale": "noise mixed into the latent before decoding (default: decode_timestep)",
    }
    causal_vae = True
    default_fps = 25.0  # LTXPipeline's frame_rate default, used for its RoPE scale
    native_frames = 161

    def _setup(self) -> None:
        pipe = self.pipe
        tcfg = pipe.transformer.config
        self.frame_axis = 1
        self.temporal_factor = int(pipe.vae.temporal_compression_ratio)
        self.spatial_factor = int(pipe.vae.spatial_compression_ratio)
        self.latent_channels = int(tcfg.in_channels)
        self.p, self.pt = int(tcfg.patch_size), int(tcfg.patch_size_t)
        self.per_frame_timesteps = self.pt == 1  # a token spanning frames would need one level for them
        self.prediction = "flow"
        self.max_sequence_length = int(self.options.get("max_sequence_length") or 128)
        self.decode_timestep = float(self.options.get("decode_timestep") or 0.0)
        dns = self.options.get("decode_noise_scale")
        self.decode_noise_scale = self.decode_timestep if dns is None else float(dns)
        self.schedule = None  # needs the chunk's token count: built in _finish()

    def _finish(self) -> None:
        h, w = self.latent_hw
        self.schedule = ltx_schedule(self.pipe.scheduler, self.chunk_length * h * w)

    def default_size(self) -> tuple[int, int]:
        return 512, 704

    def size_multiple(self) -> int:
        return self.spatial_factor * self.p

    def _encode_uncached(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        embeds, mask, _, _ = self.pipe.encode_prompt(
            prompts,
            do_classifier_free_guidance=False,
            max_sequence_length=self.max_sequence_length,
            device=self.device,
        )
        return embeds.to(self.pipe.transformer.dtype), mask

    def _forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        tr = self.pipe.transformer
        embeds, mask = cond
        n, _, f, h, w = x.shape
        if f % self.pt:
            raise UserError(f"LTX chunks need a multiple of {self.pt} latent frames, got {f}")
        fp, hp, wp = f // self.pt, h // self.p, w // self.p
        if t.dim() == 2:  # one timestep per frame -> per token; pack() orders tokens (frame, row, column)
            if not self.per_frame_timesteps or t.shape[1] != f:
                raise ValueError(
                    f"per-frame timesteps {tuple(t.shape)} for {f} frames, patch_size_t {self.pt}"
                )
            t = t.repeat_interleave(hp * wp, dim=1)
        scale = (self.temporal_factor / self.fps, self.spatial_factor, self.spatial_factor)
        out = tr(
            hidden_states=pack(x.to(self.device, tr.dtype), self.p, self.pt),
            encoder_hidden_states=embeds,
            timestep=t.to(self.device),
            encoder_attention_mask=mask,
            num_frames=fp,
            height=hp,
            width=wp,
            rope_interpolation_scale=scale,
            return_dict=False,
        )[0]
        return unpack(out, fp, hp, wp, self.p, self.pt)

    def _decode_tile(self, latent: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        z = self._vae_input(latent, (vae.latents_mean, vae.latents_std), vae.config.scaling_factor)
        temb = None
        if vae.config.timestep_conditioning:
            if self.decode_noise_scale:
                g = torch.Generator().manual_seed(0)
                noise = torch.randn(z.shape, generator=g).to(z.device)  # seeded on the host, as before
                z = (1 - self.decode_noise_scale) * z + self.decode_noise_scale * noise
            temb = torch.tensor([self.decode_timestep], device=self.device, dtype=vae.dtype)
        return vae.decode(z.to(vae.dtype), temb, return_dict=False)[0][0]
