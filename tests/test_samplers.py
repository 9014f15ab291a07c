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
    from syncos.samplers.codenoise import codenoise_estimate
    from syncos.samplers.run import Run

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
    from syncos.samplers.options import DEFAULT_METHOD
    from syncos.scenario import load_scenario

    raw = {"global_prompt": "a red ball", "events": [{"prompt": "jumps", "frames": 24}]}
    sc = load_scenario({**raw, "sampler": {"preset": "paper", "iterations": 3}})
    assert sc.sampler_options() == SynCoSOptions.from_preset("paper", iterations=3)
    # one word from the default: the preset alone is SynCoS, whatever the default method is
    assert sc.method == "syncos" and load_scenario(raw).method == DEFAULT_METHOD != "syncos"
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


def _csd_step(opts: SynCoSOptions, x0_seed: int = 5, k: int = 1):
    """One stage-2 call at grid step k on a 6-chunk plan, with every denoiser call recorded:
    (run, plan, x0, (t, alpha, sigma), theta, eps_base, calls)."""
    from syncos.samplers.run import Run
    from syncos.samplers.syncos import synchronise

    b = GaussianBackend()
    plan = make_plan(b, frames=(8, 8))
    run = Run(b, plan, opts, 0, None)
    real, calls = run.denoiser, []

    def recording(x, t, a, s, prompts):
        x0_hat, eps_hat = real(x, t, a, s, prompts)
        calls.append(dict(x_t=x.clone(), t=t, alpha=a, sigma=s, prompts=list(prompts), eps=eps_hat))
        return x0_hat, eps_hat

    run.denoiser = recording
    t, a, s = (float(c[k]) for c in (run.grid.timesteps, run.grid.alpha, run.grid.sigma))
    x0 = torch.randn(b.latent_shape(plan.latent_frames), generator=torch.Generator().manual_seed(x0_seed))
    theta, eps_base = synchronise(run, x0, t, a, s, opts)
    return run, plan, x0, (t, a, s), theta, eps_base, calls


@pytest.mark.parametrize("kind", ["fixed", "fresh"])
def test_baseline_noise_is_one_draw_per_step_or_per_iteration(kind):
    """The noise inside each CSD iteration's x_t = alpha theta_i + sigma noise_i: one draw for the
    whole step ("fixed", and it is the returned baseline), a new one each iteration ("fresh", the
    last of which is returned). Kills: ``fresh`` ignored; ``fixed`` redrawn per iteration; a
    baseline returned that is not the one the iterations used."""
    from syncos.fusion import crop

    opts = SynCoSOptions(steps=10, iterations=2, baseline_noise=kind, lr_units="absolute", lr=0.3)
    _, plan, x0, (t, a, s), _, eps_base, calls = _csd_step(opts)
    theta1 = _csd_step(replace_opts(opts, iterations=1))[4]  # theta after the first iteration
    starts, L = plan.starts, plan.chunk_length
    noise = [(c["x_t"] - a * crop(th, starts, L, 1)) / s for c, th in zip(calls, (x0, theta1), strict=True)]
    torch.testing.assert_close(noise[-1], crop(eps_base, starts, L, 1), rtol=1e-4, atol=1e-4)
    if kind == "fixed":
        torch.testing.assert_close(noise[0], noise[1], rtol=1e-4, atol=1e-4)
    else:
        assert (noise[0] - noise[1]).abs().max() > 0.5


def replace_opts(opts: SynCoSOptions, **changes) -> SynCoSOptions:
    return SynCoSOptions(**{**opts.__dict__, **changes})


def test_kernel_sees_the_noisy_or_the_clean_chunks(monkeypatch):
    """The RBF kernel's features: the noisy chunks x_t (CSD) or theta's clean chunks ("clean").
    Kills: ``kernel`` ignored (the same features either way)."""
    import syncos.samplers.syncos as syncos_module
    from syncos.fusion import crop

    real, seen = syncos_module.stein_direction, []

    def recording(x, g, *args, **kwargs):
        seen.append(kwargs.get("features", x))
        return real(x, g, *args, **kwargs)

    monkeypatch.setattr(syncos_module, "stein_direction", recording)
    for kernel in ("noisy", "clean"):
        seen.clear()
        opts = SynCoSOptions(steps=10, iterations=1, kernel=kernel)
        _, plan, x0, _, _, _, calls = _csd_step(opts)
        want = calls[0]["x_t"] if kernel == "noisy" else crop(x0, plan.starts, plan.chunk_length, 1)
        assert len(seen) == 1 and torch.equal(seen[0], want), kernel


def test_grounded_and_random_csd_timesteps():
    """``grounded``: every CSD forward at the step's own t; ``random``: each iteration at its own
    t in [0.02 T, 0.98 T), with that t's alpha and sigma. Kills: ``timestep`` ignored; a random t
    passed with the step's alpha and sigma (x_t noised at one level, labelled another)."""
    grounded = _csd_step(SynCoSOptions(steps=10, iterations=4))
    t, a, s = grounded[3]
    assert [(c["t"], c["alpha"], c["sigma"]) for c in grounded[6]] == [(t, a, s)] * 4
    run, *_, calls = _csd_step(SynCoSOptions(steps=10, iterations=4, timestep="random"))
    ts = [c["t"] for c in calls]
    assert len(set(ts)) == 4 and all(20 <= v < 980 for v in ts)
    for c in calls:
        a_i, s_i = run.backend.schedule.coefficients(torch.tensor(c["t"]))
        assert (c["alpha"], c["sigma"]) == (float(a_i), float(s_i))


def test_minibatch_is_the_number_of_chunks_per_csd_iteration():
    """minibatch m: each iteration evaluates m of the chunks (a random, sorted subset, each with its
    own prompt) and moves only the frames they cover. Kills: ``minibatch`` ignored; always the
    first m chunks; prompts not those of the picked chunks; a gradient outside the picked chunks."""
    from syncos.fusion import crop

    opts = SynCoSOptions(steps=10, iterations=4, minibatch=2, optimizer="sgd", lr=0.5)
    _, plan, x0, (t, a, s), _, eps_base, calls = _csd_step(opts)
    L, starts = plan.chunk_length, plan.starts
    every = a * crop(x0, starts, L, 1) + s * crop(eps_base, starts, L, 1)  # iteration 0's candidates
    assert all(len(c["x_t"]) == len(c["prompts"]) == 2 for c in calls)
    first = [j for row in calls[0]["x_t"] for j in range(plan.num_chunks) if torch.allclose(row, every[j])]
    assert len(first) == 2 and first == sorted(first)
    assert calls[0]["prompts"] == [plan.chunk_prompts[j] for j in first]
    one, four = _csd_step(replace_opts(opts, iterations=1))[4], _csd_step(opts)[4]
    covered = torch.zeros(plan.latent_frames, dtype=torch.bool)
    for j in first:
        covered[starts[j] : starts[j] + L] = True
    assert torch.equal((one - x0).abs().amax(dim=(0, 2, 3)) > 0, covered)  # only the picked frames move
    # later iterations pick other chunks (seeded, so this is deterministic): more frames move
    assert ((four - x0).abs().amax(dim=(0, 2, 3)) > 0).sum() > covered.sum()


def test_sgd_is_one_plain_gradient_step_and_adamw_is_adam():
    """One iteration with SGD: theta = x0 - lr (D + wd x0), D independent of lr (so the move is
    linear in lr) and pointing where AdamW's first step does; AdamW's first step moves every
    element by lr (Adam's normalised update). Kills: ``optimizer`` ignored either way; weight
    decay dropped or not applied to theta."""
    base = dict(steps=10, iterations=1, lr_units="absolute")

    def moved(**o):
        return _csd_step(SynCoSOptions(**base, **o))[4] - _csd_step(SynCoSOptions(**base, **o))[2]

    sgd1, sgd2 = moved(optimizer="sgd", lr=0.1), moved(optimizer="sgd", lr=0.2)
    torch.testing.assert_close(sgd2, 2 * sgd1)
    assert sgd1.abs().std() > 0.1 * sgd1.abs().mean()  # not a constant-magnitude move
    adam = moved(optimizer="adamw", lr=0.1)
    nonzero = sgd1 != 0
    assert nonzero.float().mean() > 0.9
    torch.testing.assert_close(adam[nonzero].abs(), torch.full_like(adam[nonzero], 0.1), rtol=1e-3, atol=1e-6)
    assert torch.equal(torch.sign(adam), torch.sign(sgd1))
    x0 = _csd_step(SynCoSOptions(**base))[2]
    decayed = moved(optimizer="sgd", lr=0.1, weight_decay=0.5)
    torch.testing.assert_close(decayed, sgd1 - 0.1 * 0.5 * x0)


def _synced_steps(monkeypatch, opts: SynCoSOptions) -> list[float]:
    """The timesteps at which a 10-step SynCoS run called stage 2."""
    import syncos.samplers.syncos as syncos_module

    real, seen = syncos_module.synchronise, []

    def recording(run, x0, t, *args, **kwargs):
        seen.append(t)
        return real(run, x0, t, *args, **kwargs)

    monkeypatch.setattr(syncos_module, "synchronise", recording)
    b = GaussianBackend()
    sample("syncos", b, make_plan(b, frames=(8, 8)), opts, seed=0)
    return seen


def test_the_sync_window_picks_the_steps_it_names(monkeypatch):
    """t_min = -1: every step with signal (alpha > 0); t_min = 500: t > 500 only; a log-SNR window:
    the steps with sync_from < 2 log(alpha / sigma) <= sync_until, computed here by hand.
    Kills: t_min ignored; the log-SNR bounds ignored or compared on t; alpha = 0 steps synced."""
    import math

    g = GaussianBackend().schedule.grid(10)
    pts = [(float(t), float(a), float(s)) for t, a, s in zip(g.timesteps, g.alpha, g.sigma, strict=True)]
    assert pts[0][1] == 0.0  # CogVideoX's zero terminal SNR: the first step has no signal
    opts = dict(steps=10, iterations=1)
    assert _synced_steps(monkeypatch, SynCoSOptions(**opts, t_min=-1)) == [t for t, a, _ in pts if a > 0]
    assert _synced_steps(monkeypatch, SynCoSOptions(**opts, t_min=500)) == [
        t for t, a, _ in pts if a > 0 and t > 500
    ]
    lam = [2 * math.log(a / s) if a > 0 else -math.inf for _, a, s in pts]
    want = [t for (t, _, _), v in zip(pts, lam, strict=True) if -4.0 < v <= 1.0]
    assert 0 < len(want) < 9
    assert _synced_steps(monkeypatch, SynCoSOptions(**opts, sync_from=-4.0, sync_until=1.0)) == want


def _hand_fuse(chunks, starts, frames, weights, owned=None):
    """Per-frame weighted average of the chunks covering it, by loops (frame axis 1 of each chunk)."""
    out = torch.zeros(chunks.shape[1], frames, *chunks.shape[3:])
    for f in range(frames):
        total, norm = 0.0, 0.0
        for c, s0 in enumerate(starts):
            i = f - s0
            if 0 <= i < len(weights) and (owned is None or owned[c][0] <= f < owned[c][1]):
                total, norm = total + weights[i] * chunks[c, :, i], norm + weights[i]
        out[:, f] = total / norm
    return out


@pytest.mark.parametrize(
    "blend,layout", [("pyramid", "overlap"), ("uniform", "overlap"), ("uniform", "shifted")]
)
def test_stage1_fusion_weights_and_layout(blend, layout):
    """The first step's fused x0 (the progress callback's) against a hand fusion of the chunks'
    estimates: pyramid weights [1, 2, 3, 3, 2, 1] / 3 toward chunk middles, uniform, or shifted
    tiles where each frame is its owner's alone. Kills: ``blend`` ignored; ``layout`` ignored
    (overlaps averaged); a tile's frames taken from another chunk."""
    from syncos.samplers.codenoise import denoise_chunks
    from syncos.samplers.run import Run

    b = GaussianBackend()
    plan = make_plan(b, frames=(8, 8))
    opts = SynCoSOptions(steps=6, t_min=1000, blend=blend, layout=layout)
    seen = []
    sample("syncos", b, plan, opts, seed=3, callback=lambda step: seen.append(step.x0.clone()))
    run = Run(b, plan, opts, 3, None)
    chunk_plan = plan if layout == "overlap" else plan.with_tiles(0)  # step 0: offset 0
    t, a, s = (float(c[0]) for c in (run.grid.timesteps, run.grid.alpha, run.grid.sigma))
    x0_chunks, _ = denoise_chunks(run, run.randn(), t, a, s, chunk_plan)
    weights = [1 / 3, 2 / 3, 1, 1, 2 / 3, 1 / 3] if blend == "pyramid" else [1] * 6
    want = _hand_fuse(x0_chunks, chunk_plan.starts, plan.latent_frames, weights, chunk_plan.owned)
    torch.testing.assert_close(seen[0], want)
    if layout == "shifted":
        assert chunk_plan.owned is not None and len(chunk_plan.starts) < plan.num_chunks


def test_lr_in_latent_units_scales_by_the_backends_latent_std():
    b = GaussianBackend()
    b.latent_std = 0.25
    plan = make_plan(b, frames=(8, 8))
    base = dict(steps=5, iterations=3, t_min=500)
    latent = sample("syncos", b, plan, SynCoSOptions(**base, lr=0.4), seed=0).latent
    absolute = sample("syncos", b, plan, SynCoSOptions(**base, lr=0.1, lr_units="absolute"), seed=0).latent
    assert torch.equal(latent, absolute)
    b.latent_std = 1.0  # unit latents: latent and absolute units agree
    unit = sample("syncos", b, plan, SynCoSOptions(**base, lr=0.4), seed=0).latent
    assert torch.equal(
        unit, sample("syncos", b, plan, SynCoSOptions(**base, lr=0.4, lr_units="absolute"), 0).latent
    )
    assert not torch.equal(unit, latent)


def test_implied_baseline_noise_makes_the_first_csd_iteration_free():
    """theta = x0 re-noised with the implied noise is x itself: stage 1's forward is the first CSD one."""
    from syncos.samplers.codenoise import denoise_chunks
    from syncos.samplers.run import Run
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
    from syncos.samplers.run import Run
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


@pytest.mark.parametrize("prediction", ["v", "flow", "eps", "x0"])
def test_to_x0_eps_inverts_each_prediction(prediction):
    """x = alpha x0 + sigma eps and the model's output for (x0, eps) give back (x0, eps); v and
    flow also against their definitions (v = alpha eps - sigma x0; flow: eps - x0).
    Kills: a sign or a coefficient swapped in any branch of to_x0_eps / from_x0_eps."""
    from syncos.schedules import from_x0_eps

    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    sigma = torch.tensor([0.2, 0.5, 0.9])
    alpha = 1 - sigma if prediction == "flow" else (1 - sigma**2).sqrt()
    x = alpha[:, None] * x0 + sigma[:, None] * eps
    out = from_x0_eps(x0, eps, alpha, sigma, prediction)
    by_hand = {"v": alpha[:, None] * eps - sigma[:, None] * x0, "flow": eps - x0, "eps": eps, "x0": x0}
    torch.testing.assert_close(out, by_hand[prediction])
    got_x0, got_eps = to_x0_eps(out, x, alpha, sigma, prediction)
    torch.testing.assert_close(got_x0, x0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_eps, eps, rtol=1e-5, atol=1e-5)


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
    from syncos.samplers.run import Run

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
