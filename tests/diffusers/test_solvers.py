"""syncos.solvers against diffusers' own UniPCMultistepScheduler, and on an exactly solvable model."""

from __future__ import annotations

import pytest
import torch

from syncos.schedules import FlowSchedule
from syncos.solvers import DDIM, History, Solver, step


def fake_x0(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A smooth nonlinear 'model' in data-prediction form."""
    return 0.6 * torch.tanh(x) + 0.3 * sigma * x.roll(1, dims=-1)


@pytest.mark.parametrize(
    "order,variant,lower_order_final,disable_corrector",
    [
        (2, "bh2", True, ()),
        (3, "bh2", True, ()),
        (2, "bh1", False, ()),
        (2, "bh2", True, (1,)),
        (1, "bh2", True, ()),
    ],
)
def test_unipc_matches_the_diffusers_scheduler(order, variant, lower_order_final, disable_corrector):
    from diffusers import UniPCMultistepScheduler

    steps = 7
    sched = UniPCMultistepScheduler(
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=3.0,
        solver_order=order,
        solver_type=variant,
        lower_order_final=lower_order_final,
        disable_corrector=list(disable_corrector),
    )
    sched.set_timesteps(steps)
    sigmas = sched.sigmas.double()
    grid = FlowSchedule().grid_from_sigmas(sigmas[:steps], sched.timesteps, final=float(sigmas[steps]))
    solver = Solver(
        "unipc", order, variant, lower_order_final=lower_order_final, disable_corrector=disable_corrector
    )
    x0_noise = torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(0))
    ref, mine, history = x0_noise.clone(), x0_noise.clone(), None
    for k, t in enumerate(sched.timesteps):
        s_ref = float(sched.sigmas[k])
        v = (ref - fake_x0(ref, s_ref)) / s_ref  # flow output whose x0 is fake_x0
        ref = sched.step(v, t, ref, return_dict=False)[0]
        s = float(grid.sigma[k])
        x0 = fake_x0(mine, s)
        mine, history = step(solver, grid, k, mine, x0, (mine - float(grid.alpha[k]) * x0) / s, history)
    torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-5)


def test_unipc_is_more_accurate_than_ddim_on_gaussian_data():
    """Gaussian data has an exact probability-flow ODE: on Wan's UniPC grid UniPC lands far closer to it."""
    from diffusers import UniPCMultistepScheduler
    from gaussian_backend import GaussianBackend
    from syncos.backends.diffusers.common import flow_schedule
    from syncos.samplers import SamplerOptions, sample
    from syncos.timeline import plan_timeline

    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
    )

    def run(solver, steps):
        b = GaussianBackend(prediction="flow", schedule=flow_schedule(scheduler))
        b.solver = solver
        plan = plan_timeline(
            "g", [type("E", (), {"prompt": "a", "frames": 6, "seconds": None})()], chunk_length=6, stride=2,
            fps=8.0, latent_frames=b.latent_frames, video_frames=b.video_frames,
        )  # fmt: skip
        return sample("codenoise", b, plan, SamplerOptions(steps=steps, guidance_scale=1.0)).latent

    exact = run(DDIM, 999)
    unipc, ddim = run(Solver("unipc", order=2), 24), run(DDIM, 24)
    err_unipc, err_ddim = (unipc - exact).abs().max(), (ddim - exact).abs().max()
    assert err_unipc < 0.2 * err_ddim, (err_unipc, err_ddim)


def test_not_an_ode_step_is_ddim_and_restarts_the_history():
    grid = FlowSchedule(shift=2.0).grid(5)
    x, x0, eps = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    solver = Solver("unipc", order=2)
    _, h = step(solver, grid, 0, x, x0, eps)
    out, h2 = step(solver, grid, 1, x, x0, eps, h, ode=False)
    torch.testing.assert_close(out, float(grid.alpha_next[1]) * x0 + float(grid.sigma_next[1]) * eps)
    assert h2 == History()


@pytest.mark.parametrize(
    "scheduler,kwargs,what",
    [
        ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}, "an algorithm other than"),
        ("DPMSolverMultistepScheduler", {"solver_order": 3}, "an algorithm other than"),
        ("EulerDiscreteScheduler", {}, "its step rule"),
        ("DDPMScheduler", {}, "its step rule"),
    ],
)
def test_schedulers_that_differ_are_refused_in_one_line(scheduler, kwargs, what):
    from diffusers_tiny import TINY_SETTINGS, tiny_pipe

    import diffusers
    from syncos.backends.diffusers import load_diffusers_backend
    from syncos.errors import UserError

    pipe = tiny_pipe("animatediff")
    pipe.scheduler = getattr(diffusers, scheduler).from_config(pipe.scheduler.config, **kwargs)
    with pytest.raises(
        UserError, match=f"{scheduler} is not reproduced \\({what}.*model_options.solver: ddim"
    ) as e:
        load_diffusers_backend(None, pipe=pipe, **TINY_SETTINGS["animatediff"])
    assert "\n" not in str(e.value)
    opts = {**TINY_SETTINGS["animatediff"]["model_options"], "solver": "ddim"}
    backend = load_diffusers_backend(
        None, pipe=pipe, **{**TINY_SETTINGS["animatediff"], "model_options": opts}
    )
    assert backend.solver == DDIM  # the explicit choice loads and is what run.json records


@pytest.mark.parametrize(
    "flow,variant,lower_order_final,euler_at_final",
    [(True, "midpoint", True, False), (True, "heun", False, False), (True, "midpoint", False, True),
     (False, "midpoint", True, False), (False, "heun", False, False)],
)  # fmt: skip
def test_dpmsolver_matches_the_diffusers_scheduler(flow, variant, lower_order_final, euler_at_final):
    from diffusers import DPMSolverMultistepScheduler
    from syncos.backends.diffusers.common import PipelineVPSchedule, flow_schedule

    steps = 7
    kw = dict(solver_type=variant, lower_order_final=lower_order_final, euler_at_final=euler_at_final)
    if flow:
        kw.update(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    sched = DPMSolverMultistepScheduler(**kw)
    vp = PipelineVPSchedule(torch.as_tensor(sched.alphas_cumprod).double(), scheduler=sched)
    grid = (flow_schedule(sched) if flow else vp).grid(steps)
    sched.set_timesteps(steps)
    solver = Solver(
        "dpmsolver++", 2, variant, lower_order_final=lower_order_final, euler_at_final=euler_at_final
    )
    x = torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(0))
    ref, mine, history = x.clone(), x.clone(), None
    for k, t in enumerate(sched.timesteps):
        a, s = float(grid.alpha[k]), float(grid.sigma[k])
        x0_ref = fake_x0(ref, s)
        out = (ref - x0_ref) / s if flow else (ref - a * x0_ref) / s  # velocity / eps of x0 = fake_x0
        ref = sched.step(out, t, ref, return_dict=False)[0]
        x0 = fake_x0(mine, s)
        mine, history = step(solver, grid, k, mine, x0, (mine - a * x0) / s, history)
    torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-5)


def test_shipped_dpmsolver_of_sana_video_equals_stock():
    """Sana-Video ships DPM-Solver++ 2M on flow sigmas: one chunk equals the stock pipeline."""
    from diffusers_tiny import TINY_SETTINGS, one_chunk, relative_error, tiny_pipe

    from diffusers import DPMSolverMultistepScheduler
    from syncos.backends.diffusers import load_diffusers_backend

    def pipe():
        p = tiny_pipe("sana-video")
        p.scheduler = DPMSolverMultistepScheduler(
            prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=8.0, solver_order=2
        )
        return p

    b = load_diffusers_backend(None, pipe=pipe(), **TINY_SETTINGS["sana-video"])
    assert b.solver.name == "dpmsolver++"
    mine, noise, prompt = one_chunk(b, 4, 6.0)
    ref = pipe()(
        prompt=prompt, negative_prompt="", height=b.height, width=b.width,
        frames=b.video_frames(b.chunk_length), num_inference_steps=4, guidance_scale=6.0,
        max_sequence_length=b.max_sequence_length, use_resolution_binning=False, latents=noise[None],
        output_type="latent",
    ).frames[0]  # fmt: skip
    assert relative_error(mine, ref) < 1e-5
    euler = load_diffusers_backend(None, pipe=pipe(), **{**TINY_SETTINGS["sana-video"], "model_options": {
        **TINY_SETTINGS["sana-video"].get("model_options", {}), "solver": "ddim"}})  # fmt: skip
    assert relative_error(one_chunk(euler, 4, 6.0)[0], ref) > 1e-3  # the step rule matters here


def test_syncos_records_its_first_order_steps():
    from diffusers_tiny import load, make_plan

    from syncos.samplers import FIFOOptions, SynCoSOptions, sample

    backend = load("wan-unipc")
    plan = make_plan(backend, [9, 9])
    opts = SynCoSOptions(steps=4, guidance_scale=2.0, iterations=1, t_min=800.0)
    res = sample("syncos", backend, plan, opts)
    stage2_steps = sum(1 for t in backend.schedule.grid(4).timesteps if t > 800)
    assert res.solver == f"unipc-bh2 order 2; first order at {stage2_steps} of 4 steps (re-noised there)"
    assert 0 < stage2_steps < 4
    res = sample("codenoise", backend, plan, opts)
    assert res.solver == "unipc-bh2 order 2"
    res = sample("fifo", backend, make_plan(backend, [9]), FIFOOptions(steps=3, guidance_scale=1.0))
    assert res.solver.startswith("ddim (FIFO's windows mix noise levels; the model's solver is unipc-bh2")
