"""HunyuanVideo 1.5: latents (C, F, H, W), flow matching, Qwen2.5-VL + ByT5 (glyph) text, x16 VAE.

Its transformer is shared by text- and image-to-video: the input carries C condition channels
and a mask channel, and image tokens, all zero for text-to-video, as the pipeline passes them.
Guidance goes through the pipeline's ``guider``; plain classifier-free guidance is what the
samplers do, so any other guider setting is refused rather than silently replaced.
"""

from __future__ import annotations

from typing import Any

import torch

from syncos.backends.base import CallDefaults
from syncos.backends.diffusers.common import DiffusersBackend, flow_schedule
from syncos.backends.diffusers.hunyuan_video import HunyuanVideoBackend, linspace_sigmas
from syncos.errors import UserError


def check_guider(guider: Any) -> None:
    """Only plain CFG (the samplers' ``guidance_scale``) is reproduced; say what differs otherwise."""
    if guider is None:
        return
    cfg = dict(guider.config)
    name = type(guider).__name__
    plain = (
        name == "ClassifierFreeGuidance"
        and not cfg.get("guidance_rescale")
        and not cfg.get("use_original_formulation")
        and cfg.get("start", 0.0) == 0.0
        and cfg.get("stop", 1.0) == 1.0
    )
    if not plain:
        raise UserError(
            f"the pipeline's guider {name}({cfg}) is not reproduced: syncos applies plain classifier-free "
            "guidance with the sampler's guidance_scale; load the pipeline with ClassifierFreeGuidance()"
        )


class HunyuanVideo15Backend(DiffusersBackend):
    family = "hunyuanvideo15"
    options_help = {"native_frames": "video frames of the model's native clip (default 121)"}
    causal_vae = True
    default_fps = 24.0
    native_frames = 121

    def _setup(self) -> None:
        pipe = self.pipe
        tcfg = pipe.transformer.config
        check_guider(getattr(pipe, "guider", None))
        self.frame_axis = 1
        self.temporal_factor = int(pipe.vae.temporal_compression_ratio)
        self.spatial_factor = int(pipe.vae.spatial_compression_ratio)
        self.latent_channels = int(pipe.vae.config.latent_channels)
        self.p, self.pt = int(tcfg.patch_size), int(tcfg.patch_size_t)
        self.prediction = "flow"
        self.schedule = flow_schedule(pipe.scheduler, linspace_sigmas)

    def call_defaults(self) -> CallDefaults:
        """The guider holds the stock CFG scale (its __call__ has no guidance_scale argument)."""
        stock = super().call_defaults()
        guider = getattr(self.pipe, "guider", None)
        scale = None if guider is None else guider.config.get("guidance_scale")
        return CallDefaults(stock.steps, None if scale is None else float(scale), stock.negative_prompt)

    def default_size(self) -> tuple[int, int]:
        # the pipeline's default: 16:9 at the transformer's target size
        h, w = self.pipe.video_processor.calculate_default_height_width(9, 16, self.pipe.target_size)
        return int(h), int(w)

    def size_multiple(self) -> int:
        return self.spatial_factor * self.p

    def _encode_uncached(self, prompts: list[str]) -> tuple[torch.Tensor, ...]:
        return self.pipe.encode_prompt(
            prompts, device=self.device, dtype=self.pipe.transformer.dtype, batch_size=len(prompts)
        )

    def _forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        pipe, tr = self.pipe, self.pipe.transformer
        if x.shape[2] % self.pt:
            raise UserError(
                f"HunyuanVideo 1.5 chunks need a multiple of {self.pt} latent frames, got {x.shape[2]}"
            )
        n, c, f, h, w = x.shape
        x = x.to(self.device, tr.dtype)
        # text-to-video: zero condition latents, zero mask, zero image tokens
        inputs = torch.cat([x, torch.zeros_like(x), x.new_zeros(n, 1, f, h, w)], dim=1)
        image = x.new_zeros(n, pipe.vision_num_semantic_tokens, pipe.vision_states_dim)
        embeds, mask, embeds_2, mask_2 = cond
        return tr(
            hidden_states=inputs,
            image_embeds=image,
            timestep=t.to(self.device, tr.dtype),
            encoder_hidden_states=embeds,
            encoder_attention_mask=mask,
            encoder_hidden_states_2=embeds_2,
            encoder_attention_mask_2=mask_2,
            return_dict=False,
        )[0]

    _decode_tile = HunyuanVideoBackend._decode_tile  # the same decoding: latent / scaling_factor
