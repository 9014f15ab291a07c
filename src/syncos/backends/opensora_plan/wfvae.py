"""WF-VAE, the wavelet-flow video VAE of Open-Sora Plan v1.3 (``WFVAEModel_D8_4x8x8``): 4x8x8, causal.

Written from the architecture and checkpoint layout of the authors' release: every module and
parameter is named as in their state dict, so a released checkpoint loads with ``strict=True``.
A video of 1 + 4k frames maps to 1 + k latent frames at 1/8 of the height and width; the first
frame is coded on its own (causal convolutions pad time with copies of the first frame).

The encoder runs a 3-D Haar transform on the video, then adds two "energy flow" paths from the
low band's further 2-D and 3-D Haar transforms into the main path; the decoder mirrors it and
adds its flows' coefficients back before each inverse transform.

Decoding runs the whole latent at once, as the release's sampling does (its temporally chunked,
cached decode is opt-in there, ``--enable_tiling``, and not reproduced here).

The transformer works on normalised latents: ``normalize`` and ``denormalize`` are the release's
``WFVAEModelWrapper`` maps, ``(z - shift) * scale`` and back, with the config's per-channel
``scale`` and ``shift``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from syncos.errors import UserError, first_line, shown

DEFAULTS: dict = {
    "latent_dim": 8,
    "base_channels": 128,
    "encoder_num_resblocks": 2,
    "encoder_energy_flow_hidden_size": 64,
    "decoder_num_resblocks": 2,
    "decoder_energy_flow_hidden_size": 128,
    "attention_type": "AttnBlock3DFix",
    "use_attention": True,
    "dropout": 0.0,
    "norm_type": "groupnorm",
    "t_interpolation": "nearest",
    "connect_res_layer_num": 1,
    "scale": [0.18215] * 8,
    "shift": [0.0] * 8,
    "l1_dowmsample_block": "Downsample",
    "l1_downsample_wavelet": "HaarWaveletTransform2D",
    "l2_dowmsample_block": "Spatial2xTime2x3DDownsample",
    "l2_downsample_wavelet": "HaarWaveletTransform3D",
    "l1_upsample_block": "Upsample",
    "l1_upsample_wavelet": "InverseHaarWaveletTransform2D",
    "l2_upsample_block": "Spatial2xTime2x3DUpsample",
    "l2_upsample_wavelet": "InverseHaarWaveletTransform3D",
}
"""The authors' ``WFVAEModel`` constructor defaults; a config.json overrides them field by field."""

_CHOICES = {
    "norm_type": ("groupnorm", "layernorm"),
    "t_interpolation": ("nearest", "trilinear"),
    "attention_type": ("AttnBlock3DFix",),
}
# The block and wavelet fields name classes; this architecture is the one the release builds.
_CHOICES.update({k: (v,) for k, v in DEFAULTS.items() if k.startswith(("l1_", "l2_"))})

_HAAR3D = 0.3536  # the release's rounded 1/(2*sqrt 2): the filters are stored in its checkpoints


def _silu(x: Tensor) -> Tensor:
    return x * torch.sigmoid(x)


def _per_frame(fn, x: Tensor) -> Tensor:
    """Apply an image op to each frame of a (B, C, T, H, W) video."""
    b, _, t = x.shape[:3]
    y = fn(x.transpose(1, 2).flatten(0, 1))
    return y.unflatten(0, (b, t)).transpose(1, 2)


def _first_frame_pad(x: Tensor, n: int) -> Tensor:
    """Prepend n copies of the first frame: what makes a temporal convolution causal."""
    return torch.cat([x[:, :, :1].expand(-1, -1, n, -1, -1), x], dim=2) if n else x


class CausalConv3d(nn.Module):
    """3-D convolution padded in time by repeating the first frame (spatial padding as usual)."""

    def __init__(self, cin: int, cout: int, kernel: int, *, stride: int = 1, padding: int = 0, bias=True):
        super().__init__()
        self.pad_t = kernel - 1
        self.conv = nn.Conv3d(cin, cout, kernel, stride=stride, padding=(0, padding, padding), bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(_first_frame_pad(x, self.pad_t))


class FrameConv2d(nn.Conv2d):
    """A 2-D convolution applied to each frame of a video."""

    def forward(self, x: Tensor) -> Tensor:
        return _per_frame(super().forward, x)


class LayerNorm(nn.Module):
    """LayerNorm over channels of a (B, C, ...) tensor (the release's ``norm_type: layernorm``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


def _norm(channels: int, norm_type: str) -> nn.Module:
    if norm_type == "groupnorm":
        return nn.GroupNorm(32, channels, eps=1e-6)
    return LayerNorm(channels)


class ResnetBlock3D(nn.Module):
    """norm, SiLU, conv, norm, SiLU, conv, plus a 1x1x1 projection of the input when widths differ."""

    def __init__(self, cin: int, cout: int, norm_type: str):
        super().__init__()
        self.norm1 = _norm(cin, norm_type)
        self.conv1 = self._conv(cin, cout, 3, 1)
        self.norm2 = _norm(cout, norm_type)
        self.conv2 = self._conv(cout, cout, 3, 1)
        if cin != cout:
            self.nin_shortcut = self._conv(cin, cout, 1, 0)

    @staticmethod
    def _conv(cin: int, cout: int, kernel: int, padding: int) -> nn.Module:
        return CausalConv3d(cin, cout, kernel, padding=padding)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv2(_silu(self.norm2(self.conv1(_silu(self.norm1(x))))))
        shortcut = getattr(self, "nin_shortcut", None)
        return (x if shortcut is None else shortcut(x)) + h


class ResnetBlock2D(ResnetBlock3D):
    """The same block on each frame alone: 2-D convolutions, and a group norm's statistics per frame."""

    @staticmethod
    def _conv(cin: int, cout: int, kernel: int, padding: int) -> nn.Module:
        return nn.Conv2d(cin, cout, kernel, padding=padding)

    def forward(self, x: Tensor) -> Tensor:
        return _per_frame(super().forward, x)


class AttnBlock3D(nn.Module):
    """Single-head self-attention over the positions of each frame (the release's ``AttnBlock3DFix``)."""

    def __init__(self, channels: int, norm_type: str):
        super().__init__()
        self.norm = _norm(channels, norm_type)
        self.q, self.k, self.v, self.proj_out = (CausalConv3d(channels, channels, 1) for _ in range(4))

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(x)
        b, c, t, hh, ww = x.shape

        def tokens(y: Tensor) -> Tensor:  # (B, C, T, H, W) -> (B*T, 1, H*W, C)
            return y.permute(0, 2, 3, 4, 1).reshape(b * t, 1, hh * ww, c)

        out = F.scaled_dot_product_attention(tokens(self.q(h)), tokens(self.k(h)), tokens(self.v(h)))
        out = out.reshape(b, t, hh, ww, c).permute(0, 4, 1, 2, 3)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Per-frame 2x spatial downsampling: pad right/bottom by one, 3x3 convolution of stride 2."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return _per_frame(lambda y: self.conv(F.pad(y, (0, 1, 0, 1))), x)


class Upsample(nn.Module):
    """Per-frame 2x nearest spatial upsampling, then a 3x3 convolution."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return _per_frame(lambda y: self.conv(F.interpolate(y, scale_factor=2.0, mode="nearest")), x)


class Spatial2xTime2x3DDownsample(nn.Module):
    """2x in time and space: pad right/bottom by one, causal 3x3x3 convolution of stride 2."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = CausalConv3d(cin, cout, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Spatial2xTime2x3DUpsample(nn.Module):
    """1 + k frames -> 1 + 2k: the first frame only grows in space, the rest also doubles in time."""

    def __init__(self, cin: int, cout: int, t_interpolation: str):
        super().__init__()
        self.t_interpolation = t_interpolation
        self.conv = CausalConv3d(cin, cout, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        def space(y: Tensor) -> Tensor:
            return F.interpolate(y, scale_factor=(1, 2, 2), mode="trilinear")

        first = space(x[:, :, :1])
        if x.shape[2] > 1:
            rest = F.interpolate(x[:, :, 1:], scale_factor=(2, 1, 1), mode=self.t_interpolation)
            first = torch.cat([first, space(rest)], dim=2)
        return self.conv(first)


def _haar3d_filters() -> list[Tensor]:
    """The eight 2x2x2 Haar filters (t, h, w) in the release's band order, low-low-low first."""
    lo, hi = torch.tensor([1.0, 1.0]), torch.tensor([1.0, -1.0])
    return [
        torch.einsum("i,j,k->ijk", t, h, w) * _HAAR3D for t in (lo, hi) for h in (lo, hi) for w in (lo, hi)
    ]


def _haar2d_filters() -> list[Tensor]:
    """The four 2x2 Haar filters (h, w) in the release's band order: aa, ad, da, dd."""
    lo, hi = torch.tensor([1.0, 1.0]), torch.tensor([1.0, -1.0])
    return [torch.outer(h, w) / 2 for h, w in ((lo, lo), (hi, lo), (lo, hi), (hi, hi))]


_HAAR3D_NAMES = ("h", "g", "hh", "gh", "h_v", "g_v", "hh_v", "gh_v")
_HAAR2D_NAMES = ("aa", "ad", "da", "dd")


def _analysis(x: Tensor, filters: Tensor, conv) -> Tensor:
    """Each channel through every filter: (B, C, ...) -> (B, F*C, ...), band-major as the release."""
    b, c = x.shape[:2]
    y = conv(x.reshape(b * c, 1, *x.shape[2:]), filters)
    return y.reshape(b, c, filters.shape[0], *y.shape[2:]).transpose(1, 2).flatten(1, 2)


def _synthesis(coeffs: Tensor, filters: Tensor, conv_transpose) -> Tensor:
    """Inverse of ``_analysis``: (B, F*C, ...) -> (B, C, ...), summing the bands' transposed filters."""
    b, n = coeffs.shape[0], filters.shape[0]
    c = coeffs.shape[1] // n
    y = coeffs.reshape(b, n, c, *coeffs.shape[2:]).transpose(1, 2).reshape(b * c, n, *coeffs.shape[2:])
    y = conv_transpose(y, filters)
    return y.reshape(b, c, *y.shape[2:])


class HaarWaveletTransform3D(nn.Module):
    """3-D Haar analysis of each channel, causal in time: 1 + 2k frames -> 1 + k, 8 bands."""

    def __init__(self):
        super().__init__()
        for name, f in zip(_HAAR3D_NAMES, _haar3d_filters(), strict=True):
            conv = CausalConv3d(1, 1, 2, stride=2, bias=False)
            conv.conv.weight.data.copy_(f.view(1, 1, 2, 2, 2))
            conv.requires_grad_(False)
            setattr(self, f"{name}_conv", conv)

    def forward(self, x: Tensor) -> Tensor:
        filters = torch.cat([getattr(self, f"{n}_conv").conv.weight for n in _HAAR3D_NAMES])
        return _analysis(_first_frame_pad(x, 1), filters, lambda y, w: F.conv3d(y, w, stride=2))


class InverseHaarWaveletTransform3D(nn.Module):
    """3-D Haar synthesis: 8 bands of 1 + k frames -> 1 + 2k frames (the padded first one dropped)."""

    def __init__(self):
        super().__init__()
        for name, f in zip(_HAAR3D_NAMES, _haar3d_filters(), strict=True):
            self.register_buffer(name, f.view(1, 1, 2, 2, 2))

    def forward(self, coeffs: Tensor) -> Tensor:
        filters = torch.cat([getattr(self, n) for n in _HAAR3D_NAMES])
        y = _synthesis(coeffs, filters, lambda y, w: F.conv_transpose3d(y, w, stride=2))
        return y[:, :, 1:]


class HaarWaveletTransform2D(nn.Module):
    """2-D Haar analysis of each frame and channel: 4 bands at half the height and width."""

    def __init__(self):
        super().__init__()
        for name, f in zip(_HAAR2D_NAMES, _haar2d_filters(), strict=True):
            self.register_buffer(name, f.view(1, 1, 2, 2))

    def forward(self, x: Tensor) -> Tensor:
        filters = torch.cat([getattr(self, n) for n in _HAAR2D_NAMES])
        return _per_frame(lambda y: _analysis(y, filters, lambda z, w: F.conv2d(z, w, stride=2)), x)


class InverseHaarWaveletTransform2D(HaarWaveletTransform2D):
    """2-D Haar synthesis of each frame: 4 bands -> twice the height and width."""

    def forward(self, coeffs: Tensor) -> Tensor:
        filters = torch.cat([getattr(self, n) for n in _HAAR2D_NAMES])
        synth = lambda z, w: F.conv_transpose2d(z, w, stride=2)
        return _per_frame(lambda y: _synthesis(y, filters, synth), coeffs)


def _mid(cin: int, width: int, cout: int, cfg: dict) -> nn.Sequential:
    """Two residual blocks, with attention between them where the config uses it."""
    layers = [ResnetBlock3D(cin, width, cfg["norm_type"]), ResnetBlock3D(width, cout, cfg["norm_type"])]
    if cfg["use_attention"]:
        layers.insert(1, AttnBlock3D(width, cfg["norm_type"]))
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """Video (B, 3, 1 + 4k, H, W) -> latent moments (B, 2 * latent_dim, 1 + k, H/8, W/8)."""

    def __init__(self, cfg: dict):
        super().__init__()
        base, flow, norm = cfg["base_channels"], cfg["encoder_energy_flow_hidden_size"], cfg["norm_type"]
        n = cfg["encoder_num_resblocks"]
        self.down1 = nn.Sequential(
            FrameConv2d(24, base, 3, padding=1),
            *(ResnetBlock2D(base, base, norm) for _ in range(n)),
            Downsample(base, base),
        )
        self.down2 = nn.Sequential(
            FrameConv2d(base + flow, 2 * base, 3, padding=1),
            *(ResnetBlock3D(2 * base, 2 * base, norm) for _ in range(n)),
            Spatial2xTime2x3DDownsample(2 * base, 2 * base),
        )
        self.connect_l1 = FrameConv2d(12, flow, 3, padding=1)
        self.connect_l2 = FrameConv2d(24, flow, 3, padding=1)
        self.mid = _mid(2 * base + flow, 4 * base, 4 * base, cfg)
        self.norm_out = _norm(4 * base, norm)
        self.conv_out = CausalConv3d(4 * base, 2 * cfg["latent_dim"], 3, padding=1)
        self.wavelet_transform_in = HaarWaveletTransform3D()
        self.wavelet_transform_l1 = HaarWaveletTransform2D()
        self.wavelet_transform_l2 = HaarWaveletTransform3D()

    def forward(self, x: Tensor) -> Tensor:
        coeffs = self.wavelet_transform_in(x)
        l1_coeffs = self.wavelet_transform_l1(coeffs[:, :3])
        l2_coeffs = self.wavelet_transform_l2(l1_coeffs[:, :3])
        h = torch.cat([self.down1(coeffs), self.connect_l1(l1_coeffs)], dim=1)
        h = torch.cat([self.down2(h), self.connect_l2(l2_coeffs)], dim=1)
        return self.conv_out(_silu(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    """Latent (B, latent_dim, 1 + k, h, w) -> video (B, 3, 1 + 4k, 8h, 8w)."""

    def __init__(self, cfg: dict):
        super().__init__()
        base, flow, norm = cfg["base_channels"], cfg["decoder_energy_flow_hidden_size"], cfg["norm_type"]
        n = cfg["decoder_num_resblocks"]
        self.flow = flow
        self.conv_in = CausalConv3d(cfg["latent_dim"], 4 * base, 3, padding=1)
        self.mid = _mid(4 * base, 4 * base, 4 * base + flow, cfg)
        self.up2 = nn.Sequential(
            *(ResnetBlock3D(4 * base, 4 * base, norm) for _ in range(n)),
            Spatial2xTime2x3DUpsample(4 * base, 4 * base, cfg["t_interpolation"]),
            ResnetBlock3D(4 * base, 4 * base + flow, norm),
        )
        self.up1 = nn.Sequential(
            *(ResnetBlock3D(4 * base if i == 0 else 2 * base, 2 * base, norm) for i in range(n)),
            Upsample(2 * base, 2 * base),
            ResnetBlock3D(2 * base, 2 * base, norm),
        )
        self.layer = nn.Sequential(ResnetBlock3D(2 * base, base, norm), ResnetBlock3D(base, base, norm))
        self.connect_l1 = self._connect(flow, 12, cfg)
        self.connect_l2 = self._connect(flow, 24, cfg)
        self.norm_out = _norm(base, norm)
        self.conv_out = FrameConv2d(base, 24, 3, padding=1)
        self.inverse_wavelet_transform_out = InverseHaarWaveletTransform3D()
        self.inverse_wavelet_transform_l1 = InverseHaarWaveletTransform2D()
        self.inverse_wavelet_transform_l2 = InverseHaarWaveletTransform3D()

    @staticmethod
    def _connect(flow: int, bands: int, cfg: dict) -> nn.Sequential:
        blocks = (ResnetBlock3D(flow, flow, cfg["norm_type"]) for _ in range(cfg["connect_res_layer_num"]))
        return nn.Sequential(*blocks, FrameConv2d(flow, bands, 3, padding=1))

    def _split(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """The main path's channels and the energy flow's (the last ``flow`` channels)."""
        return h[:, : -self.flow], h[:, -self.flow :]

    @staticmethod
    def _add_low(coeffs: Tensor, low: Tensor) -> Tensor:
        """Add a finer level's reconstruction to the low band (the first 3 channels) of ``coeffs``."""
        return torch.cat([coeffs[:, :3] + low, coeffs[:, 3:]], dim=1)

    def forward(self, z: Tensor) -> Tensor:
        h, flow2 = self._split(self.mid(self.conv_in(z)))
        l2 = self.inverse_wavelet_transform_l2(self.connect_l2(flow2))
        h, flow1 = self._split(self.up2(h))
        l1 = self.inverse_wavelet_transform_l1(self._add_low(self.connect_l1(flow1), l2))
        h = self.conv_out(_silu(self.norm_out(self.layer(self.up1(h)))))
        return self.inverse_wavelet_transform_out(self._add_low(h, l1))


def check_config(config: dict) -> dict:
    """The defaults updated by ``config`` (keys starting with '_' ignored); one-line error if unusable."""
    cfg = {**DEFAULTS, **{k: v for k, v in config.items() if not k.startswith("_")}}
    for key, allowed in _CHOICES.items():
        if cfg[key] not in allowed:
            raise UserError(f"WF-VAE config: {key} is {cfg[key]!r}; allowed: {', '.join(allowed)}")
    for key, default in DEFAULTS.items():
        least = 0 if key == "connect_res_layer_num" else 1
        if type(default) is int and (type(cfg[key]) is not int or cfg[key] < least):
            raise UserError(f"WF-VAE config: {key} is {cfg[key]!r}; allowed: an integer >= {least}")
    for key in ("scale", "shift"):
        values = cfg[key]
        if not isinstance(values, list) or len(values) != cfg["latent_dim"]:
            raise UserError(f"WF-VAE config: {key} is {shown(values)}; allowed: {cfg['latent_dim']} numbers")
    if cfg["norm_type"] == "groupnorm":
        widths = ("base_channels", "encoder_energy_flow_hidden_size", "decoder_energy_flow_hidden_size")
        for key in widths:
            if cfg[key] % 32:
                raise UserError(f"WF-VAE config: {key} is {cfg[key]}; group norm needs a multiple of 32")
    return cfg


class WFVAE(nn.Module):
    """The WF-VAE: ``decode`` and ``encode`` in the VAE's own latent space, ``normalize``/``denormalize``
    to and from the transformer's."""

    temporal_factor = 4
    spatial_factor = 8

    def __init__(self, config: dict | None = None):
        super().__init__()
        self.config = check_config(config or {})
        self.latent_channels = self.config["latent_dim"]
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)
        # not in the checkpoints (they live in config.json): non-persistent, so strict loading holds
        for key in ("scale", "shift"):
            value = torch.tensor(self.config[key], dtype=torch.float32).view(1, -1, 1, 1, 1)
            self.register_buffer(key, value, persistent=False)

    def _check(self, x: Tensor, channels: int, what: str) -> None:
        if x.dim() != 5 or x.shape[1] != channels:
            raise UserError(f"WF-VAE: {what} must be (B, {channels}, T, H, W); got {tuple(x.shape)}")

    def decode(self, z: Tensor) -> Tensor:
        """Latent (B, C, T, h, w), unnormalised -> video (B, 3, 1 + 4(T - 1), 8h, 8w), about [-1, 1]."""
        self._check(z, self.latent_channels, "a latent")
        return self.decoder(z)

    def encode(self, x: Tensor) -> Tensor:
        """Video (B, 3, 1 + 4k, H, W) in [-1, 1] -> the posterior's mean (B, C, 1 + k, H/8, W/8).

        The mean, not a sample: deterministic, and what a caller wants for a reference latent.
        """
        self._check(x, 3, "a video")
        if (x.shape[2] - 1) % self.temporal_factor or x.shape[3] % 8 or x.shape[4] % 8:
            raise UserError(
                f"WF-VAE: a video needs 1 + 4k frames and sides divisible by 8; got {tuple(x.shape)}"
            )
        return self.encoder(x)[:, : self.latent_channels]

    def normalize(self, z: Tensor) -> Tensor:
        """VAE latent -> the transformer's latent: ``(z - shift) * scale`` per channel."""
        return (z - self.shift.to(z)) * self.scale.to(z)

    def denormalize(self, z: Tensor) -> Tensor:
        """The transformer's latent -> VAE latent: ``z / scale + shift`` per channel."""
        return z / self.scale.to(z) + self.shift.to(z)

    @classmethod
    def from_folder(cls, path, *, dtype: torch.dtype = torch.float32, device="cpu") -> WFVAE:
        """A WF-VAE folder as released: config.json and weights (``*.safetensors``, or a ``*.ckpt``)."""
        folder = Path(path)
        config_file = folder / "config.json"
        if not config_file.is_file():
            raise UserError(
                f"WF-VAE: {folder} has no config.json (a WF-VAE folder holds config.json + weights)"
            )
        try:
            config = json.loads(config_file.read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"WF-VAE: {config_file} is not JSON: {first_line(e)}") from None
        if not isinstance(config, dict) or config.get("_class_name", "WFVAEModel") != "WFVAEModel":
            found = config.get("_class_name") if isinstance(config, dict) else type(config).__name__
            raise UserError(f"WF-VAE: {config_file} describes {found!r}, not a WFVAEModel")
        model = cls(config)
        state = _read_weights(folder)
        state = {k: v for k, v in state.items() if k.startswith(("encoder.", "decoder."))}
        _check_keys(model.state_dict(), state, folder)
        model.load_state_dict(state, strict=True)
        return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def _check_keys(expected: dict[str, Tensor], state: dict[str, Tensor], folder: Path) -> None:
    """One line naming the first keys a state dict lacks, has unexpectedly, or holds in another shape."""
    problems = {
        "lack": [k for k in expected if k not in state],
        "have unexpected": [k for k in state if k not in expected],
        "have differently shaped": [
            k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
        ],
    }
    for kind, keys in problems.items():
        if keys:
            shown = ", ".join(keys[:3])
            raise UserError(
                f"WF-VAE: the weights in {folder} {kind} {len(keys)} keys ({shown}) for its config.json"
            )


def _read_weights(folder: Path) -> dict[str, Tensor]:
    """The state dict in a folder: its safetensors (diffusers' file, or shards) or else its ``.ckpt``.

    A ``.ckpt`` is read with ``weights_only=True``. Training checkpoints nest the weights: the
    EMA weights under ``ema_state_dict`` (keys prefixed ``module.``) are taken first, as the
    release's loader does, else ``state_dict`` (or its ``gen_model``).
    """
    from safetensors.torch import load_file

    shards = sorted(folder.glob("*.safetensors"))
    if shards:
        preferred = folder / "diffusion_pytorch_model.safetensors"
        files = [preferred] if preferred in shards else shards
        return {k: v for f in files for k, v in load_file(str(f)).items()}
    ckpts = sorted(folder.glob("*.ckpt"))
    if not ckpts:
        raise UserError(f"WF-VAE: {folder} has no weights (*.safetensors or *.ckpt)")
    try:
        sd = torch.load(ckpts[-1], map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"WF-VAE: cannot read {ckpts[-1]} as plain weights: {first_line(e)}") from None
    if isinstance(sd, dict) and sd.get("ema_state_dict"):
        sd = {k.removeprefix("module."): v for k, v in sd["ema_state_dict"].items()}
    elif isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"].get("gen_model", sd["state_dict"])
    if not isinstance(sd, dict):
        raise UserError(f"WF-VAE: {ckpts[-1]} holds no state dict")
    return sd
