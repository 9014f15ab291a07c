"""The model spec: every backend declares every field; nothing about a backend is found by
``getattr``/``hasattr`` (issue 18 section 2)."""

from __future__ import annotations

import re
from pathlib import Path

from gaussian_backend import GaussianBackend
from spec_check import check_spec
from syncos.backends.toyworld import ToyWorldBackend

SRC = Path(__file__).parents[1] / "src" / "syncos"


def test_toyworld_and_gaussian_declare_their_spec():
    toy = check_spec(ToyWorldBackend())
    assert toy.evaluate is not None and toy.per_frame_timesteps and toy.threads == 1
    gauss = check_spec(GaussianBackend())
    assert gauss.evaluate is None and not gauss.per_frame_timesteps


def test_nothing_reads_an_optional_backend_attribute():
    """Fails on the old code: the denoiser, samplers, api, threads and checkpoint read ten optional
    attributes (latent_std, solver, per_frame_timesteps, threads, evaluate, ...) with getattr/hasattr."""
    pattern = re.compile(r"(getattr|hasattr)\((self\.|gen\.|run\.)?backend\b")
    found = [
        f"{p.relative_to(SRC)}:{i}"
        for p in SRC.rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []
