"""Tiny random Open-Sora Plan v1.3 parts for the tests: configs, the reference model, a text encoder."""

from __future__ import annotations

import torch
from diffusers_tiny import _t5, make_tokenizer

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


VAE = dict(  # the WF-VAE's structure at its smallest: 8 latent channels, as released
    latent_dim=8,
    base_channels=8,
    encoder_energy_flow_hidden_size=8,
    decoder_energy_flow_hidden_size=8,
    encoder_num_resblocks=1,
    decoder_num_resblocks=1,
    use_attention=False,
    norm_type="layernorm",  # the release's (group norm needs 32 groups)
    t_interpolation="trilinear",
    scale=[0.5, 1.0, 1.5, 2.0, 0.25, 0.75, 1.25, 3.0],
    shift=[0.1, -0.2, 0.3, 0.0, -0.5, 0.2, 0.05, -0.1],
)
TOKENS = 16  # mT5 tokens per prompt in the tests (the release: 512)


def text_parts():
    """A tiny T5 encoder (caption_channels wide) and a word-level tokenizer, as the diffusers tests build."""
    torch.manual_seed(3)
    return _t5(d_model=TRANSFORMER["caption_channels"]).eval(), make_tokenizer(TOKENS)


def modules(sparse: bool):
    """Our backend's modules around the reference transformer's weights (and a tiny WF-VAE)."""
    from syncos.backends.opensora_plan.backend import RELEASE_SCHEDULER, OpenSoraPlanModules
    from syncos.backends.opensora_plan.transformer import OpenSoraPlanTransformer
    from syncos.backends.opensora_plan.wfvae import WFVAE

    ref = reference_transformer(sparse)
    ours = OpenSoraPlanTransformer.from_config(ref.config).eval()
    ours.load_state_dict(ref.state_dict())
    encoder, tokenizer = text_parts()
    from diffusers import EulerAncestralDiscreteScheduler

    torch.manual_seed(4)
    vae = WFVAE(VAE).eval()
    scheduler = EulerAncestralDiscreteScheduler(**RELEASE_SCHEDULER)
    return ref, OpenSoraPlanModules(ours, vae, encoder, tokenizer, scheduler)
