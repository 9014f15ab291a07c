"""Long videos for every family: what the samplers compute over many chunks, checked against
one-chunk runs of the same model (which tests/diffusers/test_diffusers_equivalence.py shows equal
to the stock pipeline), not only shapes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers_tiny import BUILDERS, load, make_plan, relative_error

from syncos.fusion import crop
from syncos.samplers import SamplerOptions, SynCoSOptions, sample
from syncos.samplers.run import Run

PROMPTS = ["walks through puddle", "watches fireworks at night", "sits on beach"]


def _start_from(monkeypatch, noise: dict[int, torch.Tensor]) -> None:
    """Runs start from ``noise[latent frames]`` instead of the seeded draw (other draws unchanged)."""
    draw = Run.randn

    def randn(self, shape=None):
        if shape is None:
            return noise[self.plan.latent_frames].to(self.backend.device)
        return draw(self, shape)

    monkeypatch.setattr(Run, "randn", randn)


def _one_chunk(backend, opts, prompt: str, noise: torch.Tensor, monkeypatch, first_x0: bool = False):
    """Co-denoising of a single chunk conditioned on ``prompt``, from ``noise``: the final latent,
    or (``first_x0``) the first step's clean estimate."""
    one = make_plan(backend, [backend.video_frames(backend.chunk_length)])
    assert one.num_chunks == 1 and one.latent_frames == backend.chunk_length
    return _run(backend, "codenoise", opts, replace(one, prompts=(prompt,)), noise, monkeypatch, first_x0)


def _run(backend, method: str, opts, plan, noise: torch.Tensor, monkeypatch, first_x0: bool = False):
    _start_from(monkeypatch, {plan.latent_frames: noise})
    seen: list[torch.Tensor] = []
    latent = sample(method, backend, plan, opts, seed=1, callback=lambda step: seen.append(step.x0)).latent
    return seen[0] if first_x0 else latent


@pytest.mark.parametrize("family", list(BUILDERS))
def test_independent_tiles_are_one_chunk_runs(family, monkeypatch):
    """``independent`` over three events: every tile's frames are the one-chunk run of its own
    event's prompt from that tile's noise, through a whole 2-step trajectory. Kills: a tile given
    another chunk's prompt; tiles cut or written back on the wrong axis or at the wrong frames; a
    tile's trajectory that sees another tile (batch rows mixed up)."""
    backend = load(family)
    L, axis = backend.chunk_length, backend.frame_axis
    native = backend.video_frames(L)
    plan = make_plan(backend, [native] * 3, prompts=PROMPTS)
    tiles = plan.with_tiles()
    assert len(set(tiles.chunk_prompts)) >= 2 and tiles.num_chunks >= 3
    noise = torch.randn(backend.latent_shape(plan.latent_frames), generator=torch.Generator().manual_seed(2))
    opts = SamplerOptions(steps=2, guidance_scale=3.0, micro_batch=8)
    long = _run(backend, "independent", opts, plan, noise, monkeypatch)
    for c, (s0, (a, b)) in enumerate(zip(tiles.starts, tiles.owned, strict=True)):
        prompt = tiles.prompts[tiles.chunk_events[c]]
        ref = _one_chunk(backend, opts, prompt, crop(noise, [s0], L, axis)[0], monkeypatch)
        got = long.narrow(axis, a, b - a)
        assert relative_error(got, ref.narrow(axis, a - s0, b - a)) < 1e-4, (family, c)


@pytest.mark.parametrize("family", list(BUILDERS))
def test_co_denoising_averages_the_overlapping_chunks(family, monkeypatch):
    """The first step's fused clean estimate: every frame is the average, over the chunks covering
    it, of that chunk's estimate in a one-chunk run (its prompt, its noise crop). Kills: fusion
    along the wrong axis or at the wrong offsets; a chunk given another chunk's prompt; overlaps
    summed or overwritten instead of averaged."""
    backend = load(family)
    L, axis = backend.chunk_length, backend.frame_axis
    plan = make_plan(backend, [backend.video_frames(L)] * 2, prompts=PROMPTS)
    assert plan.stride < L and plan.num_chunks >= 3 and len(set(plan.chunk_prompts)) == 2
    noise = torch.randn(backend.latent_shape(plan.latent_frames), generator=torch.Generator().manual_seed(3))
    opts = SamplerOptions(steps=2, guidance_scale=3.0, micro_batch=8)
    long = _run(backend, "codenoise", opts, plan, noise, monkeypatch, first_x0=True)
    total = torch.zeros_like(long)
    count = torch.zeros(plan.latent_frames)
    for s0, prompt in zip(plan.starts, plan.chunk_prompts, strict=True):
        ref = _one_chunk(backend, opts, prompt, crop(noise, [s0], L, axis)[0], monkeypatch, first_x0=True)
        total.narrow(axis, s0, L).add_(ref)
        count[s0 : s0 + L] += 1
    shape = [1] * long.dim()
    shape[axis] = plan.latent_frames
    assert relative_error(long, total / count.reshape(shape)) < 1e-4


@pytest.mark.parametrize("family", list(BUILDERS))
def test_syncos_long_video_runs_and_decodes(family):
    """SynCoS over four events synchronises (stage 2 runs and moves the result away from plain
    co-denoising) and the tiled decoder gives every video frame. Kills: an empty sync window on
    this family's schedule; a decoder that drops or repeats frames."""
    backend = load(family)
    native = backend.video_frames(backend.chunk_length)
    plan = make_plan(backend, [native] * 4)
    assert plan.num_chunks > 4 and plan.latent_frames >= 3 * backend.chunk_length
    opts = SynCoSOptions(steps=2, guidance_scale=3.0, micro_batch=8, iterations=2, t_min=-1.0)
    res = sample("syncos", backend, plan, opts, seed=1)
    plain = sample("codenoise", backend, plan, opts, seed=1)
    assert res.nfe["stage2"] > 0 and torch.isfinite(res.latent).all()
    assert relative_error(res.latent, plain.latent) > 1e-3
    frames = list(backend.decode(res.latent))
    assert len(frames) == plan.video_frames == backend.video_frames(plan.latent_frames)
    assert all(f.dtype == np.uint8 and f.shape == (backend.height, backend.width, 3) for f in frames)
