"""Open-Sora Plan v1.3's denoising transformer (``OpenSoraT2V_v1_3``), written from its architecture.

A PixArt-style DiT on 2x2 patches of each latent frame: one AdaLN-single timestep embedding per
sample (so no per-frame timesteps), self-attention with 3-D RoPE, cross-attention to mT5 tokens
(with their padding mask), a GELU feed-forward. Module and parameter names are the release's
checkpoint keys, so ``from_pretrained`` loads the published ``any93x640x640`` folder as it is.

Skiparse (``sparse1d``): in blocks 2..29 self-attention runs inside token groups. Tokens (in
t, h, w order) are padded to a multiple of n^2; odd blocks group every n-th token ("single
skip"), even ones group tokens n apart inside each run of n^2 ("group skip"). Which tokens meet
therefore depends on the token count, i.e. on the latent's frame count. Cross-attention is
per query, so grouping leaves it unchanged; it runs densely here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import FeedForward
from diffusers.models.embeddings import PixArtAlphaTextProjection
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.normalization import AdaLayerNormSingle
from torch import Tensor, nn

MASKED = -10000.0  # the release's additive bias for a masked key
PADDED = -9980.0  # and for the padding Skiparse adds to reach a multiple of n^2
SPARSE_BLOCKS = range(2, 30)  # blocks whose self-attention is sparse when sparse1d is on


def rope_3d(x: Tensor, grid: tuple[int, int, int], scale: tuple[float, float, float]) -> Tensor:
    """Rotary embedding of (B, S, heads, d): d split in three, rotated by the t, y and x positions."""
    d = x.shape[-1] // 3
    inv = 1.0 / (10000.0 ** (torch.arange(0, d, 2, device=x.device).float() / d))
    axes = []
    for i, (n, s) in enumerate(zip(grid, scale, strict=True)):
        freqs = torch.outer(torch.arange(n, device=x.device, dtype=inv.dtype) / s, inv).to(x.dtype)
        freqs = torch.cat((freqs, freqs), dim=-1)  # (n, d)
        shape = [1, 1, 1]
        shape[i] = n
        freqs = freqs.reshape(*shape, d).expand(*grid, d).reshape(-1, 1, d)  # token order (t, h, w)
        part = x[..., i * d : (i + 1) * d]
        half = torch.cat((-part[..., d // 2 :], part[..., : d // 2]), dim=-1)
        axes.append(part * freqs.cos() + half * freqs.sin())
    return torch.cat(axes, dim=-1)


def skiparse(x: Tensor, n: int, group: bool) -> Tensor:
    """(B, S, C) with S a multiple of n^2 -> (B * n, S / n, C): the n token groups of Skiparse."""
    b, s, c = x.shape
    if group:  # token (j, m, k) of run j: groups by m
        return x.reshape(b, s // (n * n), n, n, c).transpose(1, 2).reshape(b * n, s // n, c)
    return x.reshape(b, s // n, n, c).transpose(1, 2).reshape(b * n, s // n, c)  # token (g, k): by k


def unskiparse(x: Tensor, n: int, group: bool) -> Tensor:
    """The inverse of :func:`skiparse`."""
    bn, g, c = x.shape
    b = bn // n
    if group:
        return x.reshape(b, n, g // n, n, c).transpose(1, 2).reshape(b, g * n, c)
    return x.reshape(b, n, g, c).transpose(1, 2).reshape(b, g * n, c)


class Attention(nn.Module):
    """Multi-head attention with the checkpoint's ``to_q/to_k/to_v/to_out.0`` layout."""

    def __init__(self, dim: int, heads: int, head_dim: int, kv_dim: int | None, bias: bool, dropout: float):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=bias)
        self.to_k = nn.Linear(kv_dim or dim, inner, bias=bias)
        self.to_v = nn.Linear(kv_dim or dim, inner, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(dropout)])

    def project(self, x: Tensor, context: Tensor | None = None, rope=None) -> tuple[Tensor, Tensor, Tensor]:
        """(q, k, v), each (B, tokens, heads * d); ``rope`` rotates q and k (self-attention)."""
        context = x if context is None else context
        q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)
        if rope is not None:
            q, k = (rope(y.unflatten(-1, (self.heads, -1))).flatten(2) for y in (q, k))
        return q, k, v

    def attend(self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None) -> Tensor:
        """Softmax attention of projected tokens, ``bias`` (B, 1, 1, keys) added to the scores; out proj."""
        q, k, v = (y.unflatten(-1, (self.heads, -1)).transpose(1, 2) for y in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias).transpose(1, 2).flatten(2)
        return self.to_out[1](self.to_out[0](out))


class Block(nn.Module):
    """Self-attention (RoPE, maybe Skiparse), cross-attention, feed-forward; AdaLN-single modulation."""

    def __init__(self, cfg, sparse: bool, group: bool):
        super().__init__()
        dim = cfg.num_attention_heads * cfg.attention_head_dim
        self.sparse, self.group, self.n = sparse, group, int(cfg.sparse_n)
        self.norm1 = nn.LayerNorm(dim, eps=cfg.norm_eps, elementwise_affine=cfg.norm_elementwise_affine)
        heads, hd, bias, drop = (
            cfg.num_attention_heads,
            cfg.attention_head_dim,
            cfg.attention_bias,
            cfg.dropout,
        )
        self.attn1 = Attention(dim, heads, hd, None, bias, drop)
        self.norm2 = nn.LayerNorm(dim, eps=cfg.norm_eps, elementwise_affine=cfg.norm_elementwise_affine)
        self.attn2 = Attention(dim, heads, hd, cfg.cross_attention_dim, bias, drop)
        self.ff = FeedForward(dim, dropout=drop, activation_fn=cfg.activation_fn)
        self.scale_shift_table = nn.Parameter(torch.randn(6, dim) / dim**0.5)

    def forward(
        self, x: Tensor, text: Tensor, mod: Tensor, self_bias: Tensor, text_bias: Tensor | None, rope
    ):
        """x (B, S, dim); mod (B, 6, dim); self_bias (B, 1, 1, S + padding); text_bias (B, 1, 1, L)."""
        shift_sa, scale_sa, gate_sa, shift_ff, scale_ff, gate_ff = (self.scale_shift_table[None] + mod).chunk(
            6, dim=1
        )
        x = x + gate_sa * self._self_attention(self.norm1(x) * (1 + scale_sa) + shift_sa, self_bias, rope)
        x = x + self.attn2.attend(*self.attn2.project(x, text), text_bias)
        return x + gate_ff * self.ff(self.norm2(x) * (1 + scale_ff) + shift_ff)

    def _self_attention(self, h: Tensor, bias: Tensor, rope) -> Tensor:
        s, n = h.shape[1], self.n
        q, k, v = self.attn1.project(h, rope=rope)  # RoPE by position, before any regrouping
        if not self.sparse:
            return self.attn1.attend(q, k, v, bias[..., :s])
        pad = (-s) % (n * n)
        q, k, v = (skiparse(F.pad(y, (0, 0, 0, pad)), n, self.group) for y in (q, k, v))
        bias = skiparse(bias[:, 0, 0, :, None], n, self.group)[..., 0][:, None, None]
        return unskiparse(self.attn1.attend(q, k, v, bias), n, self.group)[:, :s]


class OpenSoraPlanTransformer(ModelMixin, ConfigMixin):
    """``OpenSoraT2V_v1_3``: its config fields, its checkpoint keys, its forward.

    ``forward(x (B, C, T, H, W), timestep (B,), text (B, L, caption_channels) or (B, 1, L, ...),
    text_mask (B, L) of 1/0, video_mask (B, T, H, W) of 1/0 or None)`` returns the raw output
    (v-prediction for the release) of x's shape.
    """

    @register_to_config
    def __init__(
        self,
        num_attention_heads: int = 16,
        attention_head_dim: int = 88,
        in_channels: int | None = None,
        out_channels: int | None = None,
        num_layers: int = 1,
        dropout: float = 0.0,
        cross_attention_dim: int | None = None,
        attention_bias: bool = True,
        sample_size_h: int | None = None,
        sample_size_w: int | None = None,
        sample_size_t: int | None = None,
        patch_size: int | None = None,
        patch_size_t: int | None = None,
        activation_fn: str = "geglu",
        only_cross_attention: bool = False,
        double_self_attention: bool = False,
        upcast_attention: bool = False,
        norm_elementwise_affine: bool = False,
        norm_eps: float = 1e-6,
        caption_channels: int | None = None,
        interpolation_scale_h: float = 1.0,
        interpolation_scale_w: float = 1.0,
        interpolation_scale_t: float = 1.0,
        sparse1d: bool = False,
        sparse_n: int = 2,
    ):
        super().__init__()
        cfg = self.config
        unsupported = {
            "patch_size_t != 1": patch_size_t != 1,
            "only_cross_attention": only_cross_attention,
            "double_self_attention": double_self_attention,
            "attention_head_dim not a multiple of 6 (3-D RoPE)": attention_head_dim % 6 != 0,
        }
        bad = [k for k, v in unsupported.items() if v]
        if bad:
            raise ValueError(f"Open-Sora Plan v1.3 transformer config not supported: {', '.join(bad)}")
        dim = num_attention_heads * attention_head_dim
        out = in_channels if out_channels is None else out_channels
        self.caption_projection = PixArtAlphaTextProjection(in_features=caption_channels, hidden_size=dim)
        self.pos_embed = nn.Module()
        self.pos_embed.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.transformer_blocks = nn.ModuleList(
            [Block(cfg, sparse=sparse1d and i in SPARSE_BLOCKS, group=i % 2 == 1) for i in range(num_layers)]
        )
        self.norm_out = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.scale_shift_table = nn.Parameter(torch.randn(2, dim) / dim**0.5)
        self.proj_out = nn.Linear(dim, patch_size * patch_size * out)
        self.adaln_single = AdaLayerNormSingle(dim)

    def forward(
        self,
        x: Tensor,
        timestep: Tensor,
        text: Tensor,
        text_mask: Tensor | None = None,
        video_mask: Tensor | None = None,
    ) -> Tensor:
        cfg = self.config
        b, _, t, hh, ww = x.shape
        p = cfg.patch_size
        h, w = hh // p, ww // p
        tokens = self.pos_embed.proj(x.to(self.dtype).transpose(1, 2).flatten(0, 1))  # (B T, D, h, w)
        tokens = tokens.flatten(2).transpose(1, 2).reshape(b, t * h * w, -1)
        mod, embedded = self.adaln_single(
            timestep, {"resolution": None, "aspect_ratio": None}, batch_size=b, hidden_dtype=self.dtype
        )
        mod = mod.reshape(b, 6, -1)
        text = self.caption_projection(text.reshape(b, -1, text.shape[-1]))

        s = t * h * w
        pad = (-s) % (cfg.sparse_n**2) if cfg.sparse1d else 0
        self_bias = torch.zeros(b, s + pad, dtype=self.dtype, device=x.device)
        if video_mask is not None:
            kept = F.max_pool3d(video_mask[:, None].to(self.dtype), kernel_size=(1, p, p), stride=(1, p, p))
            self_bias[:, :s] = (1 - kept.flatten(1).bool().to(self.dtype)) * MASKED
        self_bias[:, s:] = PADDED
        self_bias = self_bias[:, None, None]
        text_bias = None
        if text_mask is not None:
            text_bias = ((1 - text_mask.reshape(b, -1).to(self.dtype)) * MASKED)[:, None, None]

        grid = (t, h, w)
        scale = (cfg.interpolation_scale_t, cfg.interpolation_scale_h, cfg.interpolation_scale_w)

        def rope(y: Tensor) -> Tensor:
            return rope_3d(y, grid, scale)

        for block in self.transformer_blocks:
            tokens = block(tokens, text, mod, self_bias, text_bias, rope)

        shift, scale_out = (self.scale_shift_table[None] + embedded[:, None]).chunk(2, dim=1)
        out = self.proj_out(self.norm_out(tokens) * (1 + scale_out) + shift)  # (B, S, p p C)
        out = out.reshape(b, t, h, w, p, p, -1).permute(0, 6, 1, 2, 4, 3, 5)
        return out.reshape(b, -1, t, hh, ww)
