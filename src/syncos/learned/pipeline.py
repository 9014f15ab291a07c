"""The toyworld-learned pipeline: a diffusers ``WanPipeline`` at a small config, built from configs only.

Latent: Wan 2.2's own VAE patchify of the pixels (a lossless 2x2 space-to-depth, 12 channels at
16x16), normalised by ``latents_mean``/``latents_std``; the ``AutoencoderKLWan`` around it (no
further down-sampling, no temporal compression) is trained to near-identity on toyworld frames
(:mod:`.train`, ``--part vae``). The transformer's 1x2x2 patch makes a token of 4x4 pixels: 768
tokens for a native 12-frame clip, which is what one CPU core can train in hours (docs/learned.md).
Text: a word-level tokenizer over toyworld's vocabulary and a tiny UMT5 encoder trained jointly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from syncos.backends.toyworld import world as W
from syncos.errors import UserError

# Words a prompt may use beside toyworld's own (the rest map to <unk>).
FILLER = (
    "a an the on in at by it is its and then to of with one small big moves move goes rolls across through "
    "into under over back up down slowly thing"
).split()
MAX_TOKENS = 32
PIXEL_MEAN, PIXEL_STD_LATENT = 0.5, 0.25  # latent = (2 * pixel - 1 - (2 * 0.5 - 1)) / (2 * 0.25)

TRANSFORMER = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=4,
    attention_head_dim=32,
    in_channels=12,
    out_channels=12,
    text_dim=64,
    freq_dim=256,
    ffn_dim=256,
    num_layers=4,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    rope_max_seq_len=32,
)
TEXT = dict(
    d_model=64,
    d_kv=16,
    d_ff=128,
    num_layers=2,
    num_heads=4,
    relative_attention_num_buckets=8,
    dropout_rate=0.0,
    decoder_start_token_id=0,
)
VAE = dict(
    base_dim=16,
    z_dim=12,
    dim_mult=[1],
    num_res_blocks=1,
    temperal_downsample=[],
    patch_size=2,
    in_channels=12,
    out_channels=12,
    scale_factor_spatial=2,
    scale_factor_temporal=1,
    # the latent is the patchified pixels in [-1, 1] scaled to unit spread (see to_latent)
    latents_mean=[0.0] * 12,
    latents_std=[2 * PIXEL_STD_LATENT] * 12,
)


def words() -> list[str]:
    """The tokenizer's vocabulary: toyworld's words (phrases split) and a few fillers."""
    vocab = {w for ws in W.vocabulary().values() for phrase in ws for w in phrase.split()}
    return sorted(vocab | set(FILLER) | {"white"})


def make_tokenizer() -> Any:
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.normalizers import Lowercase
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<unk>": 1, "</s>": 2, ".": 3, ",": 4}
    for w in words():
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = Lowercase()
    tok.pre_tokenizer = Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="</s>",
        model_max_length=MAX_TOKENS,
    )


def build_pipeline(seed: int = 0, arch: dict | None = None) -> Any:
    """A freshly initialised (seeded) toyworld-learned WanPipeline; ``arch`` overrides entries of
    :data:`TRANSFORMER` (a run records it in its config, and the export's config.json holds it)."""
    from transformers import UMT5Config, UMT5EncoderModel

    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )

    tokenizer = make_tokenizer()
    torch.manual_seed(seed)
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), **TEXT))
    transformer = WanTransformer3DModel(**(TRANSFORMER | (arch or {})))
    vae = AutoencoderKLWan(**VAE)
    pipe = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0),
    )
    for m in (text_encoder, transformer, vae):
        m.eval()
    return pipe


def to_latent(pixels: torch.Tensor) -> torch.Tensor:
    """Normalised latents (B, 12, F, H/2, W/2) of clips (B, 3, F, H, W) in [0, 1]: the VAE's patchify."""
    from diffusers.models.autoencoders.autoencoder_kl_wan import patchify

    return patchify(pixels * 2 - 1, 2) / (2 * PIXEL_STD_LATENT)


def from_latent(latent: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 1] of normalised latents: the exact inverse of :func:`to_latent` (the VAE's target)."""
    from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

    return unpatchify(latent * (2 * PIXEL_STD_LATENT), 2) / 2 + 0.5


MARKER = "toyworld.json"  # in a pipeline folder: its frames live in toyworld's world (and its training)
SHIPPED = Path(__file__).resolve().parent.parent / "models" / "toyworld-learned"
NAME = "toyworld-learned"


def learned_folder(model: str | None) -> Path | None:
    """The pipeline folder of ``toyworld-learned`` or of a folder holding a toyworld-learned export."""
    if model == NAME:
        if not (SHIPPED / MARKER).exists():
            raise UserError(
                f"model {NAME!r} has no shipped weights in {SHIPPED}; export a trained run there "
                "(python -m syncos.learned.train --out RUN --export FOLDER, docs/learned.md)"
            )
        return SHIPPED
    folder = Path(model) if model else None
    return folder if folder is not None and (folder / MARKER).is_file() else None


def load(folder: Path, loader: Any, **settings: Any) -> Any:
    """The Wan backend of a toyworld-learned folder, at its training size, scored by toyworld's metrics."""
    from syncos.backends.toyworld.metrics import evaluate

    info = json.loads((folder / MARKER).read_text())
    for key, native in (("height", W.HEIGHT), ("width", W.WIDTH), ("fps", W.FPS)):
        if settings.get(key) not in (None, native):
            raise UserError(
                f"{NAME} renders {W.HEIGHT}x{W.WIDTH} frames at {W.FPS} fps; {key} must be {native}"
            )
        settings[key] = native
    options = dict(settings.pop("model_options", None) or {})
    options.setdefault("native_frames", W.CHUNK_LENGTH)
    options.setdefault("max_sequence_length", info.get("max_sequence_length", MAX_TOKENS))
    backend = loader(str(folder), model_options=options, **settings)
    backend.metrics = evaluate  # its frames are toyworld frames: the same metrics as the exact model's
    return backend
