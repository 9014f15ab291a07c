"""The WF-VAE equals the authors' (decode and encode, strict state dicts) and loads their folder layouts."""

from __future__ import annotations

import json

import oracle
import pytest
import torch
from diffusers_tiny import relative_error
from safetensors.torch import save_file

from syncos.backends.opensora_plan.wfvae import (
    WFVAE,
    HaarWaveletTransform2D,
    HaarWaveletTransform3D,
    InverseHaarWaveletTransform2D,
    InverseHaarWaveletTransform3D,
)
from syncos.errors import UserError

# Two tiny configurations of the release's structure: the choices of the release's VAE config in
# the reference folder (scripts/causalvideovae/wfvae_4dim.json: layer norm, trilinear time
# upsampling, attention) and the class defaults' (group norm, nearest), with other block counts
# and no attention.
CONFIGS = {
    "release": dict(
        latent_dim=8,
        base_channels=8,
        encoder_energy_flow_hidden_size=8,
        decoder_energy_flow_hidden_size=16,
        norm_type="layernorm",
        t_interpolation="trilinear",
        scale=[0.5, 1.0, 1.5, 2.0, 0.25, 0.75, 1.25, 3.0],
        shift=[0.1, -0.2, 0.3, 0.0, -0.5, 0.2, 0.05, -0.1],
    ),
    "groupnorm": dict(
        latent_dim=4,
        base_channels=32,
        encoder_energy_flow_hidden_size=32,
        decoder_energy_flow_hidden_size=32,
        encoder_num_resblocks=1,
        decoder_num_resblocks=1,
        connect_res_layer_num=2,
        use_attention=False,
        scale=[1.0] * 4,
        shift=[0.0] * 4,
    ),
}


def reference_class():
    return oracle.reference("models.causalvideovae.model.vae.modeling_wfvae").WFVAEModel


def reference_vae(name: str, seed: int = 0):
    """The authors' WFVAEModel with random weights, norms' affines included (they init to 1 and 0)."""
    torch.manual_seed(seed)
    ref = reference_class()(**CONFIGS[name]).eval()
    with torch.no_grad():
        for key, p in ref.named_parameters():
            if "norm" in key:
                p.add_(0.3 * torch.randn_like(p))
    return ref


@pytest.fixture(scope="module", params=list(CONFIGS))
def pair(request):
    """(config name, reference model, ours with the reference's state dict loaded strictly)."""
    ref = reference_vae(request.param)
    mine = WFVAE(CONFIGS[request.param]).eval()
    mine.load_state_dict(ref.state_dict(), strict=True)
    return request.param, ref, mine


@torch.no_grad()
@pytest.mark.parametrize("frames", [1, 3])
def test_decode_equals_reference(pair, frames):
    name, ref, mine = pair
    z = torch.randn(2, CONFIGS[name]["latent_dim"], frames, 3, 2, generator=torch.Generator().manual_seed(1))
    out = mine.decode(z)
    assert out.shape == (2, 3, 1 + 4 * (frames - 1), 24, 16)
    assert relative_error(out, ref.decode(z)) <= 1e-5


@torch.no_grad()
@pytest.mark.parametrize("frames", [1, 9])
def test_encode_equals_reference_mean(pair, frames):
    _, ref, mine = pair
    x = torch.randn(2, 3, frames, 16, 24, generator=torch.Generator().manual_seed(2))
    out = mine.encode(x)
    assert out.shape == (2, mine.latent_channels, 1 + (frames - 1) // 4, 2, 3)
    assert relative_error(out, ref.encode(x).mode()) <= 1e-5


@torch.no_grad()
def test_from_save_pretrained_folder_decodes_as_the_release_wrapper(tmp_path):
    """A folder from the reference's save_pretrained; the wrapper's decode denormalises first."""
    wrapper_class = oracle.reference("models.causalvideovae").WFVAEModelWrapper
    reference_vae("release").save_pretrained(tmp_path)
    assert (tmp_path / "config.json").is_file() and list(tmp_path.glob("*.safetensors"))
    mine = WFVAE.from_folder(tmp_path)
    wrapper = wrapper_class(str(tmp_path), low_cpu_mem_usage=False).eval()  # its Haar init needs real tensors
    z = torch.randn(1, 8, 3, 2, 2, generator=torch.Generator().manual_seed(3))
    expect = wrapper.decode(z).transpose(1, 2)  # the wrapper returns (B, T, C, H, W)
    assert relative_error(mine.decode(mine.denormalize(z)), expect) <= 1e-5
    assert mine.config["norm_type"] == "layernorm" and mine.config["scale"] == CONFIGS["release"]["scale"]
    scale = torch.tensor(CONFIGS["release"]["scale"]).view(1, -1, 1, 1, 1)
    shift = torch.tensor(CONFIGS["release"]["shift"]).view(1, -1, 1, 1, 1)
    assert torch.allclose(mine.normalize(z), (z - shift) * scale)
    assert torch.allclose(mine.normalize(mine.denormalize(z)), z, atol=1e-6)


def write_ckpt(folder, layout: str, sd: dict, other: dict) -> None:
    """config.json + a .ckpt holding ``sd`` as the release's checkpoints nest it (``other``: a decoy)."""
    (folder / "config.json").write_text(json.dumps({"_class_name": "WFVAEModel", **CONFIGS["release"]}))
    payload = {
        "plain": sd,
        "state_dict": {"state_dict": sd},
        "gen_model": {"state_dict": {"gen_model": sd, "dics": {}}},
        "ema": {"ema_state_dict": {f"module.{k}": v for k, v in sd.items()}, "state_dict": other},
    }[layout]
    torch.save(payload, folder / "checkpoint.ckpt")


@torch.no_grad()
@pytest.mark.parametrize("layout", ["plain", "state_dict", "gen_model", "ema"])
def test_from_ckpt_folder(tmp_path, layout):
    """A .ckpt read with weights_only=True; a training checkpoint's EMA weights win over its others."""
    ref = reference_vae("release", seed=4)
    write_ckpt(tmp_path, layout, ref.state_dict(), reference_vae("release", seed=5).state_dict())
    mine = WFVAE.from_folder(tmp_path, dtype=torch.float64)
    assert next(mine.parameters()).dtype == torch.float64
    z = torch.randn(1, 8, 2, 2, 2, generator=torch.Generator().manual_seed(6))
    assert relative_error(mine.decode(z.double()).float(), ref.decode(z)) <= 1e-5


class NotAWeight:
    """Pickled by reference: a weights_only load must refuse it rather than run arbitrary code."""


def test_ckpt_with_objects_is_refused_in_one_line(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(CONFIGS["release"]))
    torch.save({"state_dict": {}, "trainer": NotAWeight()}, tmp_path / "last.ckpt")
    with pytest.raises(UserError, match="cannot read .*last.ckpt as plain weights") as e:
        WFVAE.from_folder(tmp_path)
    assert "\n" not in str(e.value)


def _no_config(folder):
    save_file({"x": torch.zeros(1)}, folder / "diffusion_pytorch_model.safetensors")


def _other_class(folder):
    (folder / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKLCogVideoX"}))


def _no_weights(folder):
    (folder / "config.json").write_text(json.dumps(CONFIGS["release"]))


def _wrong_weights(folder):
    _no_weights(folder)
    sd = WFVAE(CONFIGS["groupnorm"]).state_dict()  # another architecture: norm keys differ
    save_file({k: v.contiguous() for k, v in sd.items()}, folder / "diffusion_pytorch_model.safetensors")


def _bad_option(folder):
    (folder / "config.json").write_text(json.dumps({**CONFIGS["release"], "norm_type": "batchnorm"}))


def _short_scale(folder):
    (folder / "config.json").write_text(json.dumps({**CONFIGS["release"], "scale": [1.0, 2.0]}))


def _groupnorm_width(folder):
    (folder / "config.json").write_text(json.dumps({**CONFIGS["groupnorm"], "base_channels": 48}))


def _not_json(folder):
    (folder / "config.json").write_text("{not json")


@pytest.mark.parametrize(
    "make, message",
    [
        (_no_config, "has no config.json"),
        (_other_class, "describes 'AutoencoderKLCogVideoX', not a WFVAEModel"),
        (_no_weights, r"has no weights \(\*.safetensors or \*.ckpt\)"),
        (_wrong_weights, "lack .* keys"),
        (_bad_option, "norm_type is 'batchnorm'; allowed: groupnorm, layernorm"),
        (_short_scale, r"scale is \[1.0, 2.0\]; allowed: 8 numbers"),
        (_groupnorm_width, "base_channels is 48; group norm needs a multiple of 32"),
        (_not_json, "is not JSON"),
    ],
)
def test_not_a_wfvae_folder_is_one_line(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(UserError, match=message) as e:
        WFVAE.from_folder(tmp_path)
    assert "\n" not in str(e.value)


def test_wrong_latent_is_one_line():
    vae = WFVAE(CONFIGS["groupnorm"])
    with pytest.raises(UserError, match=r"a latent must be \(B, 4, T, H, W\); got \(1, 8, 2, 2, 2\)"):
        vae.decode(torch.zeros(1, 8, 2, 2, 2))
    with pytest.raises(UserError, match="1 \\+ 4k frames"):
        vae.encode(torch.zeros(1, 3, 4, 16, 16))


def test_fresh_wavelet_filters_equal_the_releases():
    """The fixed Haar filters (stored in checkpoints, but built here too) equal the release's, key by key."""
    ref = reference_class()(**CONFIGS["release"]).state_dict()
    mine = {k: v for k, v in WFVAE(CONFIGS["release"]).state_dict().items() if "wavelet" in k}
    assert len(mine) == 2 * (8 + 4 + 8)  # encoder and decoder: a 3-D, a 2-D and a 3-D transform each
    for key, value in mine.items():
        assert torch.equal(value, ref[key]), key


def test_haar_transforms_invert():
    """Analysis then synthesis gives the input back (3-D: up to the release's rounded 0.3536**2 * 8)."""
    x = torch.randn(2, 3, 5, 8, 12, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(InverseHaarWaveletTransform2D()(HaarWaveletTransform2D()(x)), x, atol=1e-6)
    assert torch.allclose(
        InverseHaarWaveletTransform3D()(HaarWaveletTransform3D()(x)), x * 0.3536**2 * 8, atol=1e-6
    )
