import numpy as np
import pytest
import torch

from gaussian_backend import GaussianBackend
from syncos import api
from syncos.samplers import FIFOOptions, sample
from syncos.samplers.fifo import _windows, timestep_mode
from test_samplers import make_plan


class PerFrameGaussian(GaussianBackend):
    """GaussianBackend that also takes one timestep per frame, t of shape (n, L)."""

    per_frame_timesteps = True

    def forward(self, x, t, cond):
        if t.dim() == 1:
            return super().forward(x, t, cond)
        a, s = self.schedule.coefficients(t)  # (n, L)
        shape = [len(x)] + [1] * (x.dim() - 1)
        shape[self.frame_axis + 1] = x.shape[self.frame_axis + 1]
        a, s = a.float().reshape(shape), s.float().reshape(shape)
        x0 = cond + a * self.tau**2 * (x - a * cond) / (a**2 * self.tau**2 + s**2)
        eps = (x - a * x0) / s.clamp_min(1e-8)
        from syncos.schedules import from_x0_eps

        return from_x0_eps(x0, eps, a, s, self.prediction)


@pytest.mark.parametrize("lookahead", [True, False])
def test_windows_write_every_position_once(lookahead):
    for L in (6, 7, 13):
        P = L // 2 if lookahead else 0
        for n in (1, 2, 3):
            Q = P + n * L
            written = [p for s, first in _windows(Q, L, P) for p in range(first, s + L)]
            assert written == list(range(P, Q))


@pytest.mark.parametrize("backend_type", [GaussianBackend, PerFrameGaussian])
@pytest.mark.parametrize("lookahead", [True, False])
def test_fifo_runs_deterministically(backend_type, lookahead):
    b = backend_type()
    plan = make_plan(b, frames=(8, 10))
    opts = FIFOOptions(steps=12, guidance_scale=2.0, lookahead=lookahead)
    r1 = sample("fifo", b, plan, opts, seed=3)
    assert r1.latent.shape == b.latent_shape(18) and torch.isfinite(r1.latent).all()
    assert r1.fifo_mode == ("per-frame" if backend_type is PerFrameGaussian else "shared")
    assert torch.equal(r1.latent, sample("fifo", b, plan, opts, seed=3).latent)
    assert not torch.equal(r1.latent, sample("fifo", b, plan, opts, seed=4).latent)
    frames = r1.latent.movedim(b.frame_axis, 0)
    assert (frames.flatten(1).abs().sum(1) > 0).all()  # every frame of the long video was produced
    # queue steps: F + N - L iterations of (windows) chunk evaluations, plus the base clip
    windows = 4 if lookahead else 2
    assert r1.nfe == {"init": 12 * 2, "stage1": (18 + 12 - 6) * windows * 2}


@pytest.mark.parametrize("backend_type", [GaussianBackend, PerFrameGaussian])
def test_fifo_events_switch(backend_type):
    """With near-deterministic data every frame lands on its own event's mean."""
    from syncos.schedules import VPSchedule

    # eps prediction needs alpha > 0 everywhere: a schedule without zero terminal SNR
    b = backend_type(
        tau=0.02, static=True, prediction="eps", schedule=VPSchedule.from_betas(spacing="trailing")
    )
    plan = make_plan(b, frames=(12, 12))
    x = sample("fifo", b, plan, FIFOOptions(steps=30, guidance_scale=1.0), seed=0).latent
    frames = x.movedim(b.frame_axis, 0)
    for e, (lo, hi) in enumerate(plan.event_spans):
        mu = b.mean(plan.prompts[e]).movedim(b.frame_axis, 0)[0]
        other = b.mean(plan.prompts[1 - e]).movedim(b.frame_axis, 0)[0]
        inner = frames[lo + 3 : hi - 3]  # away from the switch, where windows straddle both events
        assert (inner - mu).abs().max() < 0.15
        assert (inner - other).abs().max() > 0.5


def test_per_frame_needs_support():
    with pytest.raises(ValueError, match="one timestep per chunk"):
        timestep_mode(GaussianBackend(), "per-frame")
    assert timestep_mode(PerFrameGaussian(), "auto") == "per-frame"
    assert timestep_mode(GaussianBackend(), "auto") == "shared"
    with pytest.raises(ValueError, match="timesteps: must be one of"):
        FIFOOptions(timesteps="diagonal")


@pytest.mark.parametrize(
    "timesteps,steps", [("per-frame", 12), ("per-frame", 24), ("per-frame", 50), ("shared", 24)]
)
def test_fifo_frames_are_clean_at_any_step_count(timesteps, steps):
    """The frame that leaves the queue is clean (sigma 0) whatever the grid; at 24 or 48 queue
    levels the grid's own last step (diffusers' t - T // steps) stops at sigma 0.05: grainy frames."""
    scenario = {
        "model": "toyworld",
        "global_prompt": "a red ball on green grass",
        "events": [{"prompt": "the ball moves to the right", "frames": 12}],
        "sampler": {"method": "fifo", "steps": steps, "guidance_scale": 1.0, "timesteps": timesteps},
    }
    gen = api.generate(scenario)
    assert api.run_record(gen, 0.0, 12)["fifo_mode"] == timesteps
    assert api.evaluate_frames(gen, np.stack(list(gen.frames())))["clean"] > 0.8


@pytest.mark.parametrize(
    "options, note",
    [
        ({"steps": 12}, None),  # 2 x 6: as given
        (
            {"steps": 8},
            "fifo took 6 steps, not sampler.steps 8: the queue holds whole chunk lengths (6), "
            "so 8 was rounded to 1 x 6; steps that run as given: 6 or 12",
        ),
        (
            {"steps": 4},
            "fifo took 6 steps, not sampler.steps 4: the queue holds whole chunk lengths (6), "
            "so 4 was rounded to 1 x 6; steps that run as given: 6",
        ),
        (
            {"steps": 12, "partitions": 3},
            "fifo took 18 steps, not sampler.steps 12: sampler.partitions 3 "
            "x the chunk length 6; sampler.steps is not used",
        ),
    ],
)
def test_fifo_says_when_it_does_not_take_the_steps_given(options, note):
    """The queue holds whole chunk lengths; a run that rounds ``steps`` says so in run.json's notes
    and in ``syncos plan``. Fails on the old code, which rounded without a word."""
    from syncos.planning import plan_scenario

    data = {
        "model": "toyworld",
        "model_options": {"chunk_length": 6},
        "global_prompt": "a red ball on green grass",
        "events": [{"prompt": "the ball moves to the right", "frames": 8}],
        "sampler": {"method": "fifo", "guidance_scale": 1.0, **options},
    }
    gen = api.generate(data)
    levels = 18 if "partitions" in options else max(6, round(options["steps"] / 6) * 6)
    assert gen.nfe["init"] == levels  # the base clip: one forward per step actually taken
    assert api.run_record(gen, 0.0, 8).get("notes", []) == ([note] if note else [])
    said = [n for n in plan_scenario(data).notes if n.startswith("fifo took")]
    assert said == ([note] if note else [])
