"""Sana-Video: latents (C, F, H, W) of Wan's VAE, flow matching, Gemma 2 text with an instruction.

SanaVideoPipeline prefixes every prompt with its "complex human instruction" but encodes the
negative prompt without it; the adapter does the same for every negative prompt (``encode(...,
negative=True)``), so one chunk equals the stock pipeline whatever the negative prompt.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from syncos.backends.diffusers.common import DiffusersBackend, flow_schedule
from syncos.backends.diffusers.wan import WanBackend
from syncos.errors import UserError


class SanaVideoBackend(DiffusersBackend):
    family = "sana-video"
    options_help = {
        "max_sequence_length": "Gemma tokens per prompt (default 300, as SanaVideoPipeline)",
        "native_frames": "video frames of the model's native clip (default 81)",
        "complex_human_instruction": "prefix prompts with the pipeline's instruction (default true)",
    }
    causal_vae = True
    default_fps = 16.0
    native_frames = 81

    def _setup(self) -> None:
        pipe = self.pipe
        tcfg, vcfg = pipe.transformer.config, pipe.vae.config
        if type(pipe.vae).__name__ != "AutoencoderKLWan":
            raise UserError(
                f"sana-video is supported with Wan's VAE (AutoencoderKLWan), not {type(pipe.vae).__name__}"
            )
        self.frame_axis = 1
        self.temporal_factor = int(vcfg.scale_factor_temporal)
        self.spatial_factor = int(vcfg.scale_factor_spatial)
        self.latent_channels = int(tcfg.in_channels)
        self.patch = tuple(tcfg.patch_size)
        self.learned_sigma = tcfg.out_channels // 2 == self.latent_channels  # output carries a variance half
        self.prediction = "flow"
        self.schedule = flow_schedule(pipe.scheduler)
        self.max_sequence_length = int(self.options.get("max_sequence_length") or 300)
        use = self.options.get("complex_human_instruction", True)
        if not isinstance(use, bool):
            raise UserError(f"model_options.complex_human_instruction must be true or false, got {use!r}")
        # the instruction is the default of the pipeline's __call__ argument: read it from there
        default = inspect.signature(type(pipe).__call__).parameters["complex_human_instruction"].default
        self.instruction = list(default) if use else None

    def default_size(self) -> tuple[int, int]:
        return 480, 832

    def size_multiple(self) -> int:
        return max(32, self.spatial_factor * max(self.patch[1:]))  # SanaVideoPipeline checks multiples of 32

    def _encode(self, texts: list[str], instruction: list[str] | None) -> tuple[torch.Tensor, torch.Tensor]:
        rows = []
        for text in texts:  # one at a time: the instruction's token selection is per prompt
            embeds, mask, _, _ = self.pipe.encode_prompt(
                [text],
                do_classifier_free_guidance=False,
                device=self.device,
                max_sequence_length=self.max_sequence_length,
                complex_human_instruction=instruction,
            )
            rows.append((embeds.to(self.pipe.transformer.dtype), mask))
        return torch.cat([r[0] for r in rows]), torch.cat([r[1] for r in rows])

    def _encode_uncached(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self._encode(prompts, self.instruction)

    def _encode_negative(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """As SanaVideoPipeline encodes its negative prompt: without the instruction."""
        return self._encode(prompts, None)

    def _forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        tr = self.pipe.transformer
        embeds, mask = cond
        out = tr(
            x.to(self.device, tr.dtype),
            encoder_hidden_states=embeds,
            encoder_attention_mask=mask,
            timestep=t.to(self.device),
            return_dict=False,
        )[0]
        return out[:, : self.latent_channels] if self.learned_sigma else out

    _decode_tile = WanBackend._decode_tile  # the same VAE, decoded the same way
