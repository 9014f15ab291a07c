"""Tiny random Open-Sora Plan v1.3 parts for the tests: configs, the reference model, a text encoder."""

from __future__ import annotations

import torch

TRANSFORMER = dict(
    num_attention_heads=2,
    attention_head_dim=24,  # a multiple of 6: 3-D RoPE
    in_channels=8,
    out_channels=8,
    num_layers=4,  # blocks 2 and 3 are the sparse ones: one single-skip, one group-skip
    cross_attention_dim=48,
    caption_channels=16,
    patch_size=2,
    patch_size_t=1,
    activation_fn="gelu-approximate",
    sample_size_h=4,
    sample_size_w=4,
    sample_size_t=3,
    interpolation_scale_h=0.5,
    interpolation_scale_w=0.5,
    interpolation_scale_t=1.0,
)


def transformer_config(sparse: bool) -> dict:
    """Skiparse with the release's n = 4, or off; off needs n = 1 in the reference (it takes block
    2..29's mask by n even when sparse1d is false, and only prepares masks for n = 1 and 4)."""
    return {**TRANSFORMER, "sparse1d": sparse, "sparse_n": 4 if sparse else 1}


def reference_transformer(sparse: bool, seed: int = 0):
    """The authors' OpenSoraT2V_v1_3 with random weights (every table non-trivial)."""
    import oracle

    cls = oracle.reference("models.diffusion.opensora_v1_3.modeling_opensora").OpenSoraT2V_v1_3
    torch.manual_seed(seed)
    model = cls(**transformer_config(sparse)).eval()
    with torch.no_grad():
        for p in model.parameters():  # zero-initialised tables would hide mistakes
            p.add_(torch.randn_like(p) * 0.05)
    return model
