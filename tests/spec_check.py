"""Shared check of a backend's ModelSpec (test_model_spec.py, diffusers/test_diffusers_spec.py)."""

from __future__ import annotations

import dataclasses

from syncos.backends.base import Backend, ModelSpec


def check_spec(backend) -> ModelSpec:
    """All fields set, and the attributes the samplers read equal the spec's."""
    spec = backend.spec
    assert isinstance(backend, Backend) and isinstance(spec, ModelSpec)
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(ModelSpec))  # none optional
    assert (spec.name, spec.prediction, spec.schedule, spec.fps) == (
        backend.name,
        backend.prediction,
        backend.schedule,
        backend.fps,
    )
    clip = spec.clip
    assert (clip.chunk_length, clip.default_stride, clip.frame_axis) == (
        backend.chunk_length,
        backend.default_stride,
        backend.frame_axis,
    )
    for n in (1, 2, 5, 9):
        assert clip.video_frames(n) == backend.video_frames(n)
        assert (
            clip.latent_frames(backend.video_frames(n)) == backend.latent_frames(backend.video_frames(n)) == n
        )
    assert spec.latent_std > 0 and spec.height > 0 and spec.width > 0
    assert set(spec.identity) == {"family", "pipeline", "name_or_path", "dtype"}
    return spec
