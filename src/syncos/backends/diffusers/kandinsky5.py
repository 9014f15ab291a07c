"""Kandinsky 5 T2V: flow matching, Qwen2.5-VL + CLIP text, HunyuanVideo's VAE, channels-last network.

The core sees latents (C, F, H, W); the transformer takes (F, H, W, C) plus, with
``visual_cond``, zero condition channels and a zero mask channel, as the pipeline builds them.
Its text tokens carry no padding mask (the pipeline pads a batch to its longest prompt and
encodes one prompt per call), so each prompt is encoded alone and rows run grouped by text length.
"""

from __future__ import annotations

from typing import Any

import torch

from syncos.backends.diffusers.common import DiffusersBackend, flow_schedule
from syncos.backends.diffusers.hunyuan_video import HunyuanVideoBackend
from syncos.errors import UserError


class Kandinsky5Backend(DiffusersBackend):
    family = "kandinsky5"
    options_help = {
        "max_sequence_length": "Qwen tokens per prompt (default 512, as Kandinsky5T2VPipeline)",
        "native_frames": "video frames of the model's native clip (default 121)",
    }
    causal_vae = True
    default_fps = 24.0
    native_frames = 121

    def _setup(self) -> None:
        pipe = self.pipe
        tcfg = pipe.transformer.config
        self.frame_axis = 1
        self.temporal_factor = int(pipe.vae.config.temporal_compression_ratio)
        self.spatial_factor = int(pipe.vae.config.spatial_compression_ratio)
        self.latent_channels = int(tcfg.in_visual_dim)
        self.patch = tuple(tcfg.patch_size)
        self.prediction = "flow"
        self.schedule = flow_schedule(pipe.scheduler)
        self.max_sequence_length = int(self.options.get("max_sequence_length") or 512)
        if self.max_sequence_length >= 1024:
            raise UserError(
                f"model_options.max_sequence_length must be below 1024, got {self.max_sequence_length}"
            )

    def default_size(self) -> tuple[int, int]:
        return 512, 768

    def size_multiple(self) -> int:
        return max(16, self.spatial_factor * max(self.patch[1:]))  # the pipeline checks multiples of 16

    def _encode_uncached(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dtype, width = self.pipe.transformer.dtype, self.max_sequence_length
        rows, lengths, pooled = [], [], []
        for p in prompts:  # alone: a batch would pad every prompt to the longest, unmasked
            qwen, clip, cu = self.pipe.encode_prompt(
                [p], max_sequence_length=width, device=self.device, dtype=dtype
            )
            n = int(cu[-1])
            rows.append(torch.nn.functional.pad(qwen[:, :n], (0, 0, 0, width - n)))
            lengths.append(n)
            pooled.append(clip)
        return torch.cat(rows), torch.tensor(lengths), torch.cat(pooled)  # lengths on the host: read per call

    def scale_factor(self) -> tuple[float, float, float]:
        """RoPE scale by resolution, as Kandinsky5T2VPipeline picks it: 480p-sized or larger."""
        small = all(480 <= v <= 854 for v in (self.height, self.width))
        return (1.0, 2.0, 2.0) if small else (1.0, 3.16, 3.16)

    def _forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        pipe, tr = self.pipe, self.pipe.transformer
        embeds, lengths, pooled = cond
        n, c, f, h, w = x.shape
        z = x.to(self.device, tr.dtype).permute(0, 2, 3, 4, 1)  # (n, F, H, W, C)
        if tr.visual_cond:  # text-to-video: zero condition latents and mask
            z = torch.cat([z, torch.zeros_like(z), z.new_zeros(n, f, h, w, 1)], dim=-1)
        rope = [
            torch.arange(size, device=self.device)
            for size in (f // self.patch[0], h // self.patch[1], w // self.patch[2])
        ]
        sparse = pipe.get_sparse_params(z, self.device)
        out = torch.empty(n, f, h, w, c, dtype=tr.dtype, device=self.device)
        for length in lengths.unique().tolist():
            rows = (lengths == length).nonzero().flatten()
            out[rows] = tr(
                hidden_states=z[rows],
                encoder_hidden_states=embeds[rows, :length],
                pooled_projections=pooled[rows],
                timestep=t.to(self.device, tr.dtype)[rows],
                visual_rope_pos=rope,
                text_rope_pos=torch.arange(length, device=self.device),
                scale_factor=self.scale_factor(),
                sparse_params=sparse,
                return_dict=False,
            )[0][..., :c]
        return out.permute(0, 4, 1, 2, 3)

    _decode_tile = HunyuanVideoBackend._decode_tile  # the same VAE: latent / scaling_factor
