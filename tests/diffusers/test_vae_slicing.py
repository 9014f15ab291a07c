"""vae_slicing acts where it can (image VAEs, a tile's frames as a batch) and is refused elsewhere."""

from __future__ import annotations

import pytest
import torch
from diffusers_tiny import load

from syncos.errors import UserError


@pytest.mark.parametrize("family", ["wan", "cogvideox", "ltx", "mochi", "hunyuanvideo"])
def test_refused_for_video_vaes(family):
    """Fails on the old code, which called enable_slicing() and decoded every tile as a batch of
    one all the same (a setting that did nothing)."""
    with pytest.raises(UserError, match=r"^vae_slicing: .*batch of one.*decode_tile") as e:
        load(family, vae_slicing=True)
    assert "\n" not in str(e.value)


def test_image_vaes_decode_frame_by_frame(monkeypatch):
    """AnimateDiff's image VAE decodes a tile's frames one at a time with vae_slicing (the frames
    are equal), all at once without it."""
    out = {}
    for slicing in (False, True):
        b = load("animatediff", vae_slicing=slicing)
        batches: list[int] = []

        def counted(z, *args, _decode=b.pipe.vae._decode, _batches=batches, **kwargs):
            _batches.append(len(z))
            return _decode(z, *args, **kwargs)

        monkeypatch.setattr(b.pipe.vae, "_decode", counted)
        latent = torch.randn(b.latent_shape(b.chunk_length), generator=torch.Generator().manual_seed(0))
        out[slicing] = list(b.decode(latent))
        assert batches == ([1] * b.chunk_length if slicing else [b.chunk_length]), batches
    assert all((x == y).all() for x, y in zip(out[False], out[True], strict=True))
