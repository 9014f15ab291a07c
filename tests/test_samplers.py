from dataclasses import dataclass

import pytest
import torch

from gaussian_backend import GaussianBackend
from syncos.samplers import Cancelled, SamplerOptions, SynCoSOptions, sample
from syncos.schedules import FlowSchedule, to_x0_eps
from syncos.timeline import plan_timeline


@dataclass
class Ev:
    prompt: str
    frames: int | None = None
    seconds: float | None = None


def make_plan(backend, frames=(6,), stride=2):
    events = [Ev(f"event {i}", frames=n) for i, n in enumerate(frames)]
    return plan_timeline(
        "a global prompt",
        events,
        chunk_length=backend.chunk_length,
        stride=stride,
        fps=8,
        latent_frames=backend.latent_frames,
        video_frames=backend.video_frames,
    )


def reference_loop(backend, scheduler, steps, guidance, prompt, seed, shape):
    """A one-clip sampler written against diffusers' own scheduler.step, as its pipelines do."""
    x = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))[None]
    scheduler.set_timesteps(steps)
    for t in scheduler.timesteps:
        tt = t.float().reshape(1)
        cond = backend.encode([prompt, ""])
        out = backend.forward(torch.cat([x, x]), torch.cat([tt, tt]), cond)
        out = out[1:] + guidance * (out[:1] - out[1:])
        x = scheduler.step(out, t, x).prev_sample
    return x[0]


def test_one_chunk_codenoise_is_cogvideox_ddim():
    diffusers = pytest.importorskip("diffusers")
    b = GaussianBackend(prediction="v")
    plan = make_plan(b, frames=(6,))
    got = sample("codenoise", b, plan, SamplerOptions(steps=20, guidance_scale=4.0), seed=3).latent
    sched = diffusers.CogVideoXDDIMScheduler(
        beta_schedule="scaled_linear",
        rescale_betas_zero_snr=True,
        snr_shift_scale=3.0,
        timestep_spacing="trailing",
        prediction_type="v_prediction",
        set_alpha_to_one=True,
    )
    ref = reference_loop(b, sched, 20, 4.0, plan.prompts[0], 3, b.latent_shape(6))
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


def test_one_chunk_codenoise_is_flow_euler():
    diffusers = pytest.importorskip("diffusers")
    b = GaussianBackend(prediction="flow", schedule=FlowSchedule(shift=3.0), layout="fchw")
    plan = make_plan(b, frames=(6,))
    got = sample("codenoise", b, plan, SamplerOptions(steps=12, guidance_scale=3.0), seed=1).latent
    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    ref = reference_loop(b, sched, 12, 3.0, plan.prompts[0], 1, b.latent_shape(6))
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


def test_gaussian_data_is_recovered():
    """A deterministic sampler on exact Gaussian data ends near the prompt's mean (tau small)."""
    from syncos.schedules import VPSchedule

    # eps prediction needs alpha > 0 everywhere: a schedule without zero terminal SNR
    b = GaussianBackend(prediction="eps", tau=0.05, schedule=VPSchedule.from_betas(spacing="trailing"))
    plan = make_plan(b, frames=(6,))
    x = sample("codenoise", b, plan, SamplerOptions(steps=30, guidance_scale=1.0), seed=0).latent
    assert (x - b.mean(plan.prompts[0])).abs().max() < 0.2


@pytest.mark.parametrize("method", ["independent", "codenoise", "syncos"])
def test_determinism_and_batching(method):
    b = GaussianBackend()
    plan = make_plan(b, frames=(8, 8))
    opts = dict(steps=6, guidance_scale=2.0)
    if method == "syncos":
        opts_a = SynCoSOptions(**opts, iterations=3, t_min=500, micro_batch=1)
        opts_b = SynCoSOptions(**opts, iterations=3, t_min=500, micro_batch=5)
    else:
        opts_a, opts_b = SamplerOptions(**opts, micro_batch=1), SamplerOptions(**opts, micro_batch=5)
    r1 = sample(method, b, plan, opts_a, seed=7)
    r2 = sample(method, b, plan, opts_a, seed=7)
    assert torch.equal(r1.latent, r2.latent)
    torch.testing.assert_close(sample(method, b, plan, opts_b, seed=7).latent, r1.latent)
    assert not torch.equal(sample(method, b, plan, opts_a, seed=8).latent, r1.latent)
    assert torch.isfinite(r1.latent).all() and r1.latent.shape == b.latent_shape(16)


def test_one_chunk_independent_equals_codenoise():
    b = GaussianBackend()
    plan = make_plan(b, frames=(6,))
    o = SamplerOptions(steps=8)
    torch.testing.assert_close(
        sample("independent", b, plan, o, 2).latent, sample("codenoise", b, plan, o, 2).latent
    )


def test_syncos_with_an_empty_window_is_codenoise():
    b = GaussianBackend()
    plan = make_plan(b, frames=(8, 6))
    base = sample("codenoise", b, plan, SamplerOptions(steps=8), seed=4).latent
    empty = (SynCoSOptions(steps=8, t_min=1000), SynCoSOptions(steps=8, sync_from=-40, sync_until=-39))
    for o in empty:
        r = sample("syncos", b, plan, o, seed=4)
        torch.testing.assert_close(r.latent, base)
        assert "stage2" not in r.nfe
        assert "held none of the 8 steps" in r.notes[0]  # said, not silent


def test_renoise_control_is_ddim_with_fresh_noise_in_the_window():
    """iterations 0: no CSD call; in the window the step re-noises with one fresh draw per step."""
    b = GaussianBackend()
    plan = make_plan(b, frames=(8, 6))
    o = SynCoSOptions(steps=6, iterations=0, t_min=500)
    r = sample("syncos", b, plan, o, seed=2)
    assert r.nfe["stage2"] == 0
    from syncos.samplers.common import Run, codenoise_estimate

    run = Run(b, plan, o, 2, None)
    x = run.randn()
    for k in range(6):
        t, a, s, a_next, s_next = run.coefficients(k)
        x0, eps = codenoise_estimate(run, x, t, a, s)
        if t > 500 and a > 0:  # alpha = 0 steps are never synchronised
            eps = run.randn()
        x = a_next * x0 + s_next * eps
    torch.testing.assert_close(r.latent, x)
    assert torch.equal(sample("syncos", b, plan, SynCoSOptions(steps=6, lr=0.0, t_min=500), seed=2).latent, x)


def test_zero_snr_steps_are_not_synchronised_unless_asked():
    from syncos.backends.toyworld import ToyWorldBackend

    b = ToyWorldBackend()  # CogVideoX's schedule: alpha = 0 at t = 999
    assert float(b.schedule.grid(10).alpha[0]) == 0.0
    from syncos.samplers.syncos import in_window

    g = b.schedule.grid(10)
    args = (float(g.timesteps[0]), float(g.alpha[0]), float(g.sigma[0]))
    assert not in_window(SynCoSOptions(t_min=900), *args)
    assert in_window(SynCoSOptions(t_min=900, zero_snr=True), *args)
    assert not in_window(SynCoSOptions(), *args)


def test_log_snr_window_means_the_same_on_every_schedule():
    """A log-SNR window picks the same noise levels whatever t a schedule calls them."""
    from syncos.samplers.syncos import in_window, log_snr
    from syncos.schedules import VPSchedule

    for schedule in (VPSchedule.cogvideox(), FlowSchedule(shift=3.0), FlowSchedule(shift=5.0)):
        g = schedule.grid(50)
        lam = [log_snr(float(a), float(s)) for a, s in zip(g.alpha, g.sigma, strict=True)]
        assert lam == sorted(lam)  # monotone along the grid
        inside = [k for k in range(50) if in_window(SynCoSOptions(sync_until=-2.25), *_coeffs(g, k))]
        assert inside and all(-30 < lam[k] <= -2.25 for k in inside)
        assert all(lam[k] > -2.25 or lam[k] <= -30 for k in range(50) if k not in inside)


def _coeffs(g, k):
    return float(g.timesteps[k]), float(g.alpha[k]), float(g.sigma[k])


def test_default_window_is_the_papers_on_cogvideox():
    """The default log-SNR window is t > 900 on CogVideoX's schedule (four of 50 steps with signal)."""
    from syncos.samplers.syncos import in_window
    from syncos.schedules import VPSchedule

    g = VPSchedule.cogvideox().grid(50)
    default = [k for k in range(50) if in_window(SynCoSOptions(), *_coeffs(g, k))]
    assert default == [k for k in range(50) if in_window(SynCoSOptions(t_min=900), *_coeffs(g, k))]
    assert len(default) == 4  # 979, 959, 939, 919: the paper's (50 + 4 x 20) / 50 = 2.6x


def test_stage2_only_runs_no_co_denoising():
    b = GaussianBackend()
    plan = make_plan(b, frames=(8, 8))
    r = sample("syncos", b, plan, SynCoSOptions(steps=5, iterations=2, stage1=False), seed=0)
    assert "stage1" not in r.nfe and r.nfe["stage2"] > 0
    assert torch.isfinite(r.latent).all()


def test_shifted_tiles_never_average_chunks():
    b = GaussianBackend()
    plan = make_plan(b, frames=(8, 8))
    from syncos.samplers.syncos import stage1_plan

    o = SynCoSOptions(layout="shifted")
    for k in range(6):
        p = stage1_plan(plan, o, k)
        covered = sorted(f for a, e in p.owned for f in range(a, e))
        assert covered == list(range(plan.latent_frames))  # every frame written exactly once
        assert all(s <= a and e <= s + plan.chunk_length for s, (a, e) in zip(p.starts, p.owned, strict=True))
    r = sample("syncos", b, plan, SynCoSOptions(steps=5, iterations=1, t_min=500, layout="shifted"), seed=0)
    assert torch.isfinite(r.latent).all()


def test_paper_preset():
    from syncos.errors import UserError

    o = SynCoSOptions.from_preset("paper")
    assert (o.t_min, o.iterations, o.lr, o.layout) == (900.0, 20, 0.5, "overlap")
    assert SynCoSOptions.from_preset("paper", lr=0.3).lr == 0.3
    from syncos.scenario import load_scenario

    raw = {"global_prompt": "a red ball", "events": [{"prompt": "jumps", "frames": 24}]}
    sc = load_scenario({**raw, "sampler": {"preset": "paper", "iterations": 3}})
    assert sc.sampler_options() == SynCoSOptions.from_preset("paper", iterations=3)
    with pytest.raises(UserError, match="sampler.preset: must be one of default, paper"):
        load_scenario({**raw, "sampler": {"preset": "fast"}})


def test_nfe_counts():
    b = GaussianBackend()
    plan = make_plan(b, frames=(8, 8))  # 16 frames, L 6, stride 2 -> 6 chunks
    assert plan.num_chunks == 6
    r = sample("syncos", b, plan, SynCoSOptions(steps=10, iterations=3, minibatch=4, t_min=800), seed=0)
    g = b.schedule.grid(10)
    stage2_steps = sum(1 for t, a in zip(g.timesteps, g.alpha, strict=True) if t > 800 and a > 0)
    assert r.nfe["stage1"] == 10 * 6 * 2
    assert r.nfe["stage2"] == stage2_steps * 3 * 4 * 2
    assert set(r.seconds) == {"stage1", "stage2", "stage3"}
    r = sample("codenoise", b, plan, SamplerOptions(steps=10, guidance_scale=1.0), seed=0)
    assert r.nfe == {"stage1": 60}


@pytest.mark.parametrize(
    "switch",
    [
        dict(timestep="random"),
        dict(baseline_noise="fresh"),
        dict(baseline_noise="implied"),
        dict(lr_units="absolute", lr=0.1),
        dict(reversion="predicted"),  # stop_below: tests/test_syncos_options.py
        dict(stage1=False),
        dict(layout="shifted"),
        dict(kernel="clean"),
        dict(optimizer="sgd", lr=0.1),
        dict(minibatch=2),
        dict(t_min=-1),
    ],
)
def test_syncos_switches_run(switch):
    b = GaussianBackend()
    plan = make_plan(b, frames=(8, 8))
    base = SynCoSOptions(steps=5, iterations=2, t_min=500)
    r = sample("syncos", b, plan, SynCoSOptions(**{**base.__dict__, **switch}), seed=0)
    assert torch.isfinite(r.latent).all()
    assert not torch.equal(r.latent, sample("syncos", b, plan, base, seed=0).latent)


def test_lr_in_latent_units_scales_by_the_backends_latent_std():
    b = GaussianBackend()
    b.latent_std = 0.25
    plan = make_plan(b, frames=(8, 8))
    base = dict(steps=5, iterations=3, t_min=500)
    latent = sample("syncos", b, plan, SynCoSOptions(**base, lr=0.4), seed=0).latent
    absolute = sample("syncos", b, plan, SynCoSOptions(**base, lr=0.1, lr_units="absolute"), seed=0).latent
    assert torch.equal(latent, absolute)
    del b.latent_std  # a backend without latent_std has unit latents
    unit = sample("syncos", b, plan, SynCoSOptions(**base, lr=0.4), seed=0).latent
    assert torch.equal(
        unit, sample("syncos", b, plan, SynCoSOptions(**base, lr=0.4, lr_units="absolute"), 0).latent
    )
    assert not torch.equal(unit, latent)


def test_implied_baseline_noise_makes_the_first_csd_iteration_free():
    """theta = x0 re-noised with the implied noise is x itself: stage 1's forward is the first CSD one."""
    from syncos.samplers.common import Run, denoise_chunks
    from syncos.samplers.syncos import synchronise

    b = GaussianBackend()
    plan = make_plan(b, frames=(8, 8))
    opts = SynCoSOptions(steps=10, iterations=3, t_min=800, baseline_noise="implied")
    run = Run(b, plan, opts, 0, None)
    k = 1
    t, a, s = (float(c[k]) for c in (run.grid.timesteps, run.grid.alpha, run.grid.sigma))
    x = run.randn()
    x0_i, eps_i = denoise_chunks(run, x, t, a, s, plan)
    from syncos.fusion import fuse

    x0 = fuse(x0_i, plan.starts, plan.latent_frames, run.axis)
    before = run.counter.nfe["stage1"]
    reused, noise = synchronise(run, x0, t, a, s, opts, x=x, chunk_eps=eps_i)
    assert sum(run.counter.nfe.values()) - before == 2 * 6 * 2  # 2 of 3 iterations, 6 chunks, cond+uncond
    assert torch.allclose(noise, (x - a * x0) / s)
    computed, _ = synchronise(run, x0, t, a, s, opts, x=x)  # the first forward made by the network
    assert torch.allclose(reused, computed, atol=1e-5)
    r = sample("syncos", b, plan, opts, seed=0)
    g = b.schedule.grid(10)
    synced = sum(1 for t, a in zip(g.timesteps, g.alpha, strict=True) if t > 800 and a > 0)
    assert r.nfe["stage2"] == synced * 2 * 6 * 2


def test_stage2_pulls_chunks_toward_the_model():
    """With the baseline noise fixed, CSD drives every chunk to the score-distillation fixed point.

    For Gaussian data N(mu, tau^2) that point is theta = mu + (alpha tau^2 / sigma) eps_base.
    """
    b = GaussianBackend(tau=0.3, static=True)
    plan = make_plan(b, frames=(10,))
    from syncos.fusion import crop
    from syncos.samplers.common import Run
    from syncos.samplers.syncos import synchronise

    run = Run(b, plan, SynCoSOptions(guidance_scale=1.0), 0, None)
    t, a, s = 500.0, *(float(c) for c in b.schedule.coefficients(torch.tensor(500.0)))
    x0 = torch.zeros(b.latent_shape(10))
    theta, eps_base = synchronise(
        run, x0, t, a, s, SynCoSOptions(iterations=100, lr=0.05, guidance_scale=1.0)
    )
    target = b.mean(plan.prompts[0]) + a * 0.3**2 / s * crop(eps_base, plan.starts, 6, 1)
    before = (crop(x0, plan.starts, 6, 1) - target).norm()
    after = (crop(theta, plan.starts, 6, 1) - target).norm()
    assert after < 0.1 * before


def test_callback_progress_and_cancel():
    b = GaussianBackend()
    plan = make_plan(b, frames=(8,))
    seen = []
    sample(
        "codenoise", b, plan, SamplerOptions(steps=4), 0, callback=lambda s: seen.append((s.index, s.total))
    )
    assert seen == [(0, 4), (1, 4), (2, 4), (3, 4)]
    with pytest.raises(Cancelled, match="after step 2 of 4"):
        sample("codenoise", b, plan, SamplerOptions(steps=4), 0, callback=lambda s: s.index < 1)


def test_unknown_method_and_bad_options():
    b = GaussianBackend()
    with pytest.raises(ValueError, match="independent, codenoise, syncos"):
        sample("fifo2", b, make_plan(b), None, 0)
    with pytest.raises(ValueError, match="timestep: must be one of grounded, random"):
        SynCoSOptions(timestep="uniform")
    assert to_x0_eps  # conversions are exercised above through the denoiser


def test_eps_prediction_at_zero_terminal_snr_is_refused():
    from syncos.backends.toyworld import ToyWorldBackend
    from syncos.errors import UserError

    b = ToyWorldBackend(prediction="eps", schedule="cogvideox")  # alpha = 0 at t = 999
    plan = make_plan(b, frames=(12,), stride=4)
    with pytest.raises(UserError, match="alpha = 0"):
        sample("codenoise", b, plan, SamplerOptions(steps=2), seed=0)
    with pytest.raises(ValueError, match="alpha = 0"):
        to_x0_eps(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1), torch.ones(1), "eps")


def test_rescheduled_noise_gives_every_chunk_the_first_chunks_noise_in_another_order():
    from syncos.errors import UserError
    from syncos.samplers.common import Run

    b = GaussianBackend()
    plan = make_plan(b, frames=(9, 9))  # 18 frames, L 6, stride 2
    run = Run(b, plan, SamplerOptions(noise="rescheduled"), 0, None)
    noise = run.randn()
    L, axis = plan.chunk_length, 1
    first = sorted(noise.select(axis, f).sum().item() for f in range(L))
    for s in range(0, plan.latent_frames - L + 1, plan.stride):
        window = sorted(noise.select(axis, f).sum().item() for f in range(s, s + L))
        assert window == first
    assert not torch.equal(noise.narrow(axis, L, L), noise.narrow(axis, 0, L))  # shuffled, not tiled
    iid = Run(b, plan, SamplerOptions(), 0, None).randn()
    assert torch.equal(iid.narrow(axis, 0, L), noise.narrow(axis, 0, L))
    r = sample("codenoise", b, plan, SamplerOptions(steps=4, noise="rescheduled"), seed=0)
    assert not torch.equal(r.latent, sample("codenoise", b, plan, SamplerOptions(steps=4), seed=0).latent)
    with pytest.raises(UserError, match="sampler.noise: must be one of independent, rescheduled"):
        SamplerOptions(noise="shuffled")
    from syncos.samplers import FIFOOptions

    with pytest.raises(UserError, match="fifo draws one new frame per step"):
        FIFOOptions(noise="rescheduled")
