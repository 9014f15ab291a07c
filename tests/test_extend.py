"""Extension (``method: extend``): chunks sampled one after another, each holding the frames it
shares with the chunks before; the layout, what the network is shown, and the demo it makes."""

from __future__ import annotations

import random

import pytest
import torch

from dist_worker import make_plan
from gaussian_backend import GaussianBackend
from syncos import api
from syncos.errors import UserError
from syncos.samplers import SAMPLERS, sample
from syncos.samplers.extend import ExtendOptions
from syncos.timeline import Plan


def timeline(lengths: list[int], chunk_length: int, stride: int) -> Plan:
    edges = [0]
    for n in lengths:
        edges.append(edges[-1] + n)
    spans = tuple(zip(edges[:-1], edges[1:], strict=True))
    return Plan(
        latent_frames=edges[-1],
        video_frames=edges[-1],
        chunk_length=chunk_length,
        stride=stride,
        starts=(0,),
        chunk_events=(0,),
        event_spans=spans,
        video_spans=spans,
        prompts=tuple(f"event {i}" for i in range(len(lengths))),
    )


def test_the_chain_by_hand():
    """Events of 9, 4 and 8 frames, chunks of 6 at stride 3: an event's first chunk starts one
    frame before it; the others every 3 frames; each writes only its own event's frames."""
    p = timeline([9, 4, 8], 6, 3).extended()
    assert p.starts == (0, 3, 8, 12, 15)
    assert p.chunk_events == (0, 0, 1, 2, 2)
    assert p.owned == ((0, 6), (6, 9), (9, 13), (13, 18), (18, 21))
    # an event's last chunk writes what is left of it; the video's last runs past the end
    q = timeline([10, 12], 6, 3).extended()
    assert q.starts == (0, 3, 6, 9, 12, 15, 18)
    assert q.owned[2] == (9, 10) and q.owned[-1] == (21, 22) and q.starts[-1] + 6 > 22


@pytest.mark.parametrize("case", range(200))
def test_the_chain_covers_every_frame_once_within_its_event(case):
    rng = random.Random(case)
    L = rng.randint(1, 9)
    stride = rng.randint(1, L)
    p = timeline([rng.randint(1, 20) for _ in range(rng.randint(1, 5))], L, stride).extended()
    assert p.owned is not None and p.owned[0][0] == 0 and p.owned[-1][1] == p.latent_frames
    for j, ((a, b), s, e) in enumerate(zip(p.owned, p.starts, p.chunk_events, strict=True)):
        assert s <= a < b <= s + L  # inside its window, at least one new frame
        ea, eb = p.event_spans[e]
        assert ea <= a and b <= eb  # only its own event's frames
        if j:
            assert a == p.owned[j - 1][1]  # no gap, no frame written twice
            first = p.chunk_events[j - 1] != e
            assert a - s == (min(1, L - 1) if first else L - stride)  # one frame at an event's start


class PerFrame(GaussianBackend):
    """The Gaussian backend taking one timestep per frame, recording what the network is shown."""

    per_frame_timesteps = True

    def __init__(self):
        super().__init__()
        self.shown: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x, t, cond):
        self.calls.append(len(x))
        t = t.expand(len(x), x.shape[2]) if t.dim() == 1 else t  # (n, L)
        self.shown.append((x.clone(), t.clone()))
        a, s = (v.float()[:, None, :, None, None] for v in self.schedule.coefficients(t))
        x0 = cond + a * self.tau**2 * (x - a * cond) / (a**2 * self.tau**2 + s**2)
        eps = (x - a * x0) / s.clamp_min(1e-8)
        return a * eps - s * x0  # v


@pytest.mark.parametrize("held", ["clean", "noised"])
def test_held_frames_are_the_videos_own_frames_under_one_noise(held):
    """Every network call of chunk j shows its held frames as the finished video's frames under one
    fixed noise: at timestep 0 (``clean``), or at the step's own level (``noised``).

    Kills: held frames taken from the wrong place or time, new noise drawn at each step, a level
    that is not the step's, or held frames written over later."""
    b = PerFrame()
    plan = make_plan(b, (8, 8))  # chunk length 6, stride 2
    out = sample("extend", b, plan, ExtendOptions(steps=5, guidance_scale=1.0, held=held), seed=3)
    ext = plan.extended()
    grid = b.schedule.grid(5)
    assert len(b.shown) == ext.num_chunks * 5
    for j in range(1, ext.num_chunks):
        start, c = ext.starts[j], ext.owned[j][0] - ext.starts[j]
        final = out.latent[:, start : start + c]
        noises = []
        for k in range(5):
            x, t = b.shown[j * 5 + k]
            a, s = (float(v) for v in b.schedule.coefficients(t[0, 0]))
            want_t = 0.0 if held == "clean" else float(grid.timesteps[k])
            assert float(t[0, 0]) == pytest.approx(want_t) and torch.all(t[0, c:] == grid.timesteps[k])
            noises.append((x[0, :, :c] - a * final) / s)
        for n in noises[1:]:
            torch.testing.assert_close(n, noises[0])


def test_clean_is_refused_where_the_model_takes_one_timestep_per_chunk():
    b = GaussianBackend()
    with pytest.raises(UserError, match="sampler.held: model 'gaussian' takes one timestep per chunk"):
        sample("extend", b, make_plan(b, (8,)), ExtendOptions(steps=2, held="clean"))
    with pytest.raises(UserError, match="sampler.held: must be one of auto, clean, noised"):
        ExtendOptions(held="sharp")
    assert SAMPLERS["extend"][1] is ExtendOptions


def test_one_event_one_chunk_is_codenoise():
    """A video of one chunk: nothing is held, so extension is the plain sampler."""
    b = GaussianBackend()
    plan = make_plan(b, (6,))
    o = ExtendOptions(steps=6)
    torch.testing.assert_close(
        sample("extend", b, plan, o, 2).latent, sample("codenoise", b, plan, o, 2).latent
    )


def test_the_demo_story_extended_has_no_ghost_cut_repeat_or_blank_frame():
    """On the exact model, the demo's story with every event shown once, in order, continuous
    where chunks meet (the tiles it is compared with cut at every tile boundary)."""
    gen = api.generate("examples/ball_story.yaml", overrides=["sampler.method=extend", "sampler.steps=20"])
    m = api.evaluate_frames(gen, gen.frames())
    assert m["cuts"] == m["repeats"] == m["blank_frames"] == m["ghost_frames"] == 0, m
    assert m["local_fidelity"] == 1.0 and m["global_fidelity"] == 1.0
    assert any("held clean" in n for n in gen.notes)
