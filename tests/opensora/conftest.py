"""Open-Sora Plan tests: ``import oracle`` (and the diffusers tests' ``diffusers_tiny``) work from here,
offline, on one thread (tiny models)."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(1, os.path.join(os.path.dirname(os.path.dirname(__file__)), "diffusers"))

import pytest  # noqa: E402

pytest.importorskip("diffusers")
pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def _one_thread():
    """The tiny models are dominated by per-op overhead: one thread is faster than contended several."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
