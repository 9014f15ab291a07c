"""The ancestral Euler rule equals diffusers' EulerAncestralDiscreteScheduler, step by step, and the
SynCoS window treats its zero-SNR stand-in as alpha = 0. Needs no oracle: runs everywhere."""

from __future__ import annotations

import math

import torch

from diffusers import EulerAncestralDiscreteScheduler
from syncos.backends.diffusers.common import PipelineVPSchedule
from syncos.backends.opensora_plan.backend import RELEASE_SCHEDULER
from syncos.samplers.syncos import SynCoSOptions, in_window
from syncos.schedules import to_x0_eps
from syncos.solvers import EULER_ANCESTRAL, History, step


def _schedule() -> tuple[EulerAncestralDiscreteScheduler, PipelineVPSchedule]:
    sched = EulerAncestralDiscreteScheduler(**RELEASE_SCHEDULER)
    return sched, PipelineVPSchedule(sched.alphas_cumprod.double(), "trailing", scheduler=sched)


def test_steps_equal_the_scheduler():
    """A random v-model through 6 steps: the scheduler (VE sample, its generator) against our VP rule."""
    sched, schedule = _schedule()
    grid = schedule.grid(6)
    sched.set_timesteps(6)
    assert torch.equal(grid.timesteps.float(), sched.timesteps.float())
    g_ref, g_ours = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    shape = (2, 3, 4, 4)
    sample = torch.randn(shape, generator=g_ref) * sched.init_noise_sigma
    x = torch.randn(shape, generator=g_ours)
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 3, 1)
    for k, t in enumerate(sched.timesteps):
        v_ref = model(sched.scale_model_input(sample, t)).detach()
        sample = sched.step(v_ref, t, sample, generator=g_ref).prev_sample
        x0, eps = to_x0_eps(model(x).detach(), x, float(grid.alpha[k]), float(grid.sigma[k]), "v")
        x, history = step(EULER_ANCESTRAL, grid, k, x, x0, eps, History(), generator=g_ours)
        scale = math.sqrt(float(sched.sigmas[k + 1]) ** 2 + 1)  # VE sample -> VP latent
        err = float(((sample / scale) - x).abs().max() / x.abs().max())
        # the scheduler's float32 VE sample starts at sigma = 4096 (absolute rounding ~2e-4 there):
        # its first steps carry ~1e-5 of its own rounding, which later steps shrink (~5e-7 at the end)
        assert err < (3e-5 if k < 2 else 1e-5), (k, err)
        assert history == History()
    # the same draws in the same order; the scheduler also draws at its last step (times sigma_up = 0)
    torch.randn(shape, generator=g_ours)
    assert torch.equal(g_ref.get_state(), g_ours.get_state())


def test_off_the_ode_it_stays_ancestral():
    """SynCoS's re-noised steps (ode=False) take the same ancestral step, fresh noise included."""
    _, schedule = _schedule()
    grid = schedule.grid(4)
    x0, eps = torch.randn(3, 5), torch.randn(3, 5)
    on, _ = step(EULER_ANCESTRAL, grid, 1, None, x0, eps, generator=torch.Generator().manual_seed(1))
    off, _ = step(
        EULER_ANCESTRAL, grid, 1, None, x0, eps, ode=False, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(on, off)
    plain = float(grid.alpha_next[1]) * x0 + float(grid.sigma_next[1]) * eps  # DDIM's
    assert float((on - plain).abs().max()) > 0.1


def test_zero_snr_first_step_is_outside_the_sync_window():
    """The scheduler's first point is alpha = 2^-12 (alphas_cumprod clamped to 2^-24), not 0: the
    window still skips it by default, as it skips CogVideoX's alpha = 0, and takes it with zero_snr."""
    _, schedule = _schedule()
    grid = schedule.grid(100)
    a0 = float(grid.alpha[0])
    assert a0 > 0 and abs(a0 - 2**-12) < 1e-9
    default, zero = SynCoSOptions(), SynCoSOptions(zero_snr=True)
    first = (float(grid.timesteps[0]), a0, float(grid.sigma[0]))
    assert not in_window(default, *first) and in_window(zero, *first)
    synced = [int(grid.timesteps[k]) for k in range(100) if in_window(default, *(float(v[k]) for v in
              (grid.timesteps, grid.alpha, grid.sigma)))]  # fmt: skip
    assert synced == list(range(989, 800, -10))  # log-SNR -14.6 .. -7.0: 19 of the 100 steps
