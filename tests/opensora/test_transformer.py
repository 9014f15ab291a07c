"""The transformer equals the authors' OpenSoraT2V_v1_3 on the same weights (Skiparse on and off)."""

from __future__ import annotations

import oracle
import pytest
import torch
from osp_tiny import reference_transformer

from syncos.backends.opensora_plan.transformer import OpenSoraPlanTransformer


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("frames", [3, 5])  # 48 and 80 tokens: Skiparse pads to 64 and 80 (no pad)
def test_equals_reference_module(sparse: bool, frames: int):
    ref = reference_transformer(sparse)
    ours = OpenSoraPlanTransformer.from_config(ref.config).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)  # the checkpoint keys are the release's
    g = torch.Generator().manual_seed(1)
    b, L = 2, 7
    x = torch.randn(b, 8, frames, 8, 8, generator=g)
    text = torch.randn(b, 1, L, 16, generator=g)
    text_mask = torch.ones(b, 1, L)
    text_mask[0, 0, 4:] = 0  # a padded prompt
    video_mask = torch.ones(b, frames, 8, 8)
    video_mask[1, -1] = 0  # a padded last frame
    video_mask[0, :, :2, :2] = 0  # and a padded patch
    t = torch.tensor([999.0, 321.0])
    with torch.no_grad(), oracle.cpu_attention():
        want = ref(x, timestep=t, encoder_hidden_states=text, attention_mask=video_mask,
                   encoder_attention_mask=text_mask, return_dict=False)[0]  # fmt: skip
    with torch.no_grad():
        got = ours(x, t, text, text_mask[:, 0], video_mask)
        unmasked = ours(x, t, text)
    assert got.shape == x.shape
    assert _rel(got, want) <= 1e-5
    assert _rel(unmasked, want) > 1e-3  # the masks matter, so the comparison above tests them


def test_sparse_grouping_depends_on_frames():
    """Skiparse is not a no-op: the sparse model differs from the dense one on the same weights."""
    dense = reference_transformer(False)
    ours = OpenSoraPlanTransformer.from_config({**dense.config, "sparse1d": True, "sparse_n": 4}).eval()
    ours.load_state_dict(dense.state_dict())
    ref = OpenSoraPlanTransformer.from_config(dense.config).eval()
    ref.load_state_dict(dense.state_dict())
    x, text = torch.randn(1, 8, 3, 8, 8), torch.randn(1, 5, 16)
    with torch.no_grad():
        assert _rel(ours(x, torch.tensor([500.0]), text), ref(x, torch.tensor([500.0]), text)) > 1e-3


def test_loads_reference_save_pretrained(tmp_path):
    ref = reference_transformer(True)
    ref.save_pretrained(tmp_path)
    ours = OpenSoraPlanTransformer.from_pretrained(tmp_path).eval()
    assert ours.config.sparse1d and ours.config.sparse_n == 4
    x, text = torch.randn(1, 8, 3, 8, 8), torch.randn(1, 1, 5, 16)
    mask = torch.ones(1, 3, 8, 8)
    with torch.no_grad(), oracle.cpu_attention():
        want = ref(x, timestep=torch.tensor([10.0]), encoder_hidden_states=text, attention_mask=mask,
                   encoder_attention_mask=torch.ones(1, 1, 5), return_dict=False)[0]  # fmt: skip
        got = ours(x, torch.tensor([10.0]), text)
    assert _rel(got, want) <= 1e-5
