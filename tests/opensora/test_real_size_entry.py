"""benchmarks/configs/real_size.json's Open-Sora Plan v1.3 entry builds the released sizes (meta device)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "real_size.py"


def test_the_entry_is_the_2_7b_release():
    spec = importlib.util.spec_from_file_location("real_size", SCRIPT)
    real_size = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(real_size)
    backend = real_size.build_real("opensora-plan-v1.3", "meta", torch.bfloat16)
    params = sum(p.numel() for p in backend.pipe.transformer.parameters())
    assert params == pytest.approx(2.77e9, rel=0.01)  # the report's "2.7B"
    assert sum(b.sparse for b in backend.pipe.transformer.transformer_blocks) == 28  # blocks 2..29
    assert (backend.height, backend.width, backend.chunk_length) == (352, 640, 24)  # 93 frames
    assert backend.latent_shape(24) == (8, 24, 44, 80)
    assert backend.solver.name == "euler_ancestral" and backend.prediction == "v"
    with pytest.raises(SystemExit):  # no tiny stand-in: the real config, shrunk, is the quick check
        real_size.main(["--tiny", "--models", "opensora-plan-v1.3"])
