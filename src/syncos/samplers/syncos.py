"""SynCoS: local co-denoising, global CSD synchronisation, reversion (method.md, three stages)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from syncos.backends.base import Backend
from syncos.fusion import crop, fuse
from syncos.samplers.common import (
    Callback,
    Run,
    SampleResult,
    SamplerOptions,
    check_choice,
    check_range,
    codenoise_step,
)
from syncos.samplers.csd import stein_direction
from syncos.timeline import Plan

CHOICES = {
    "optimizer": ("adamw", "sgd"),
    "timestep": ("grounded", "random"),
    "baseline_noise": ("fixed", "fresh"),
    "reversion": ("baseline", "predicted"),
    "init": ("stage1", "noise"),
    "kernel": ("noisy", "clean"),
}


@dataclass(frozen=True)
class SynCoSOptions(SamplerOptions):
    """The paper's switches; the defaults are the paper's (CogVideoX: t_min 800-900, 20-50 iterations)."""

    iterations: int = 20  # CSD optimiser steps per denoising step
    lr: float = 0.5
    optimizer: str = "adamw"
    weight_decay: float = 0.0  # torch's AdamW default (0.01) would shrink the latent by ~lr*0.01 a step
    t_min: float = 900.0  # stage 2 runs while t > t_min (timesteps on the model's 0..1000 scale)
    minibatch: int | None = None  # chunks per CSD iteration, None = all
    timestep: str = "grounded"  # CSD at the sampling timestep, or a random one (ablation)
    baseline_noise: str = "fixed"  # one noise for all iterations and the reversion, or fresh each time
    reversion: str = "baseline"  # stage 3 re-noises with the baseline noise or the fused predicted noise
    init: str = "stage1"  # stage 2 starts from the stage-1 estimate, or from noise (stage-2-only ablation)
    kernel: str = "noisy"  # the RBF kernel sees the noisy chunks (CSD) or the clean chunks of theta
    # Multiply the CSD gradient by d x_t / d theta = alpha. Adam ignores a constant scale, so this
    # changes one thing: at alpha = 0 (t = 999 under zero terminal SNR) the paper's update is pure
    # repulsion between noise crops, which Adam inflates to lr-sized steps (docs/syncos.md).
    chain_rule: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, allowed in CHOICES.items():
            check_choice(self, name, allowed)
        check_range(self, "iterations", 0, 1000)
        check_range(self, "lr", 0.0, 10.0, open_lo=True)
        check_range(self, "weight_decay", 0.0, 1.0)
        check_range(self, "t_min", -1.0, 1000.0)  # -1: CSD at every step
        check_range(self, "minibatch", 1, 1_000_000)


def synchronise(
    run: Run, x0: torch.Tensor, t: float, alpha: float, sigma: float, opts: SynCoSOptions
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 2: optimise the whole long latent with CSD over its chunks; returns (x0', baseline noise)."""
    plan, L, axis = run.plan, run.plan.chunk_length, run.axis
    eps_base = run.randn()
    theta = (x0 if opts.init == "stage1" else run.randn()).clone().requires_grad_(True)
    if opts.optimizer == "adamw":
        optim = torch.optim.AdamW([theta], lr=opts.lr, weight_decay=opts.weight_decay)
    else:
        optim = torch.optim.SGD([theta], lr=opts.lr, weight_decay=opts.weight_decay)
    n = plan.num_chunks
    m = n if opts.minibatch is None else min(opts.minibatch, n)
    for _ in range(opts.iterations):
        if m < n:
            pick = torch.randperm(n, generator=run.generator)[:m].sort().values.tolist()
        else:
            pick = list(range(n))
        if opts.baseline_noise == "fresh":
            eps_base = run.randn()
        t_i, a_i, s_i = t, alpha, sigma
        if opts.timestep == "random":
            T = run.backend.schedule.num_train_timesteps
            t_i = float(torch.randint(int(0.02 * T), int(0.98 * T), (), generator=run.generator))
            a_t, s_t = run.backend.schedule.coefficients(torch.tensor(t_i))
            a_i, s_i = float(a_t), float(s_t)
        starts = [plan.starts[i] for i in pick]
        prompts = [plan.chunk_prompts[i] for i in pick]
        with torch.no_grad():
            theta_i = crop(theta.detach(), starts, L, axis)
            noise_i = crop(eps_base, starts, L, axis)
            x_t = a_i * theta_i + s_i * noise_i
            _, eps_hat = run.denoiser(x_t, t_i, a_i, s_i, prompts)
            weight = s_i**2 * (a_i if opts.chain_rule else 1.0)
            grad_i = stein_direction(
                x_t, eps_hat - noise_i, weight=weight, features=x_t if opts.kernel == "noisy" else theta_i
            )
            theta.grad = fuse(grad_i, starts, plan.latent_frames, axis)
        optim.step()
    return theta.detach(), eps_base


def sample_syncos(
    backend: Backend, plan: Plan, options: SynCoSOptions, seed: int, callback: Callback | None = None
) -> SampleResult:
    run = Run(backend, plan, options, seed, callback)
    x, history = run.randn(), None
    for k in range(len(run.grid)):
        t, a, s, _, _ = run.coefficients(k)
        x0, eps = codenoise_step(run, x, t, a, s)
        synced = t > options.t_min and options.iterations > 0
        if synced:
            with run.stage("stage2"):
                x0, eps_base = synchronise(run, x0, t, a, s, options)
            if options.reversion == "baseline":
                eps = eps_base
        with run.stage("stage3"):
            x, history = run.step(k, x, x0, eps, history, ode=not synced)  # re-noising: first order
        run.report(k, t, x0)
    return run.result(x)
