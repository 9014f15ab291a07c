"""SynCoS: local co-denoising, global CSD synchronisation, reversion (method.md, three stages).

One denoising step t -> t':

1. Stage 1 (skipped by the ``stage1: false`` ablation): every chunk is denoised under its own
   prompt and (x0, eps) are fused. ``layout: overlap`` is the paper's (chunks every ``stride``
   frames, overlaps averaged); ``layout: shifted`` cuts the video into non-overlapping tiles
   whose boundaries move every step, so no frame is an average of chunks that disagree (an
   average of two different balls is two ghosted balls) while every boundary is crossed by a
   tile one step later.
2. Stage 2, only on the steps inside the sync window: the whole long latent ``theta`` starts
   from the stage-1 estimate and takes ``iterations`` CSD steps with one baseline noise, drawn
   once per step, at the grounded timestep (``samplers/csd.py``).
3. Reversion: inside the window ``x_t' = alpha' theta + sigma' eps_base`` (the baseline noise:
   a fresh draw each step); outside it the plain DDIM step with the fused predicted noise.

With ``iterations: 0`` (or ``lr: 0``) stage 2 makes no network call and moves nothing, and the
window only re-noises the trajectory with fresh noise: the *re-noise control*, which separates
what the CSD move earns from what stochastic re-noising alone earns.

The window. ``t_min`` (the paper's rule, t > t_min on the model's 0..1000 scale) does not mean
the same on every model: a flow model's t = 500 is log-SNR 0, CogVideoX's is -2.3, and the
paper's t_min = 900 runs CSD at 4 of CogVideoX's 50 steps but at 12 on a shift-3 flow model.
By default the window is given in log-SNR, log(alpha^2 / sigma^2), which a model's decisions
depend on whatever its schedule calls the step; the default bound is the paper's t_min = 900 on
CogVideoX's schedule, so on CogVideoX the default is the paper's window exactly. (A resolution
term, + log(h w) for h x w latent positions, was measured and not adopted: docs/syncos.md.)

Steps with alpha = 0 (t = 999 under zero terminal SNR, or diffusers' Euler schedulers' stand-in
alpha = 2^-12 there: ``schedules.no_signal``) are never synchronised unless ``zero_snr: true``:
there the model's score carries no signal and the update is pure repulsion between noise crops;
the paper's reported 2.6x cost equals 50 steps plus four (not five) CSD steps of 20 iterations,
i.e. it skipped that step too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from syncos.backends.base import Backend
from syncos.checkpoint import Checkpoint
from syncos.errors import UserError
from syncos.fusion import crop, fuse
from syncos.samplers.codenoise import blend_window, denoise_chunks, fuse_chunks
from syncos.samplers.csd import stein_direction
from syncos.samplers.options import SamplerOptions, check_choice, check_range
from syncos.samplers.run import Callback, Run, SampleResult, Stepped
from syncos.schedules import no_signal
from syncos.solvers import History
from syncos.timeline import Plan

CHOICES = {
    "optimizer": ("adamw", "sgd"),
    "timestep": ("grounded", "random"),
    "baseline_noise": ("fixed", "fresh", "implied"),
    "lr_units": ("latent", "absolute"),
    "reversion": ("baseline", "predicted"),
    "kernel": ("noisy", "clean"),
    "layout": ("overlap", "shifted"),
    "blend": ("uniform", "pyramid"),
}
GOLDEN = (math.sqrt(5) - 1) / 2  # tile offsets k * GOLDEN mod 1 spread the boundaries evenly


@dataclass(frozen=True)
class SynCoSOptions(SamplerOptions):
    """SynCoS's switches. ``PRESETS["paper"]`` holds the paper's CogVideoX settings."""

    iterations: int = 20  # CSD optimiser steps per synchronised step; 0 = the re-noise control
    lr: float = 0.5
    # lr in units of the backend's latent_std (1 for unit-variance VAE latents, 0.25 for toyworld),
    # so one value means the same step on every family; "absolute": raw latent units.
    lr_units: str = "latent"
    optimizer: str = "adamw"
    weight_decay: float = 0.0  # torch's AdamW default (0.01) would shrink the latent by ~lr*0.01 a step
    t_min: float | None = None  # the paper's window, t > t_min (0..1000); None: the log-SNR window
    # The window in log-SNR: sync_from < lambda <= sync_until. -6.96 is the paper's t_min = 900 on
    # CogVideoX's schedule: the same window, said in a quantity every schedule shares.
    sync_from: float = -30.0
    sync_until: float = -6.96
    zero_snr: bool = False  # also synchronise where alpha = 0 (no signal; the paper skipped it)
    minibatch: int | None = None  # chunks per CSD iteration, None = all
    timestep: str = "grounded"  # CSD at the sampling timestep, or a random one (ablation)
    # one noise drawn per step for all iterations and the reversion ("fixed"), a fresh one every
    # iteration ("fresh"), or the noise the current latent implies, (x_t - alpha x0) / sigma
    # ("implied"): then the first CSD forward is stage 1's own, so it costs nothing, and the
    # reversion adds no new noise
    baseline_noise: str = "fixed"
    # stop a step's CSD iterations once the update (how far the optimiser step moved theta) falls
    # below this fraction of the first update's norm; measured only when above 0
    stop_below: float = 0.0
    # stage 3 re-noises with the baseline noise or the fused predicted noise ("predicted" needs stage 1)
    reversion: str = "baseline"
    stage1: bool = True  # False: the paper's "stage 2 only" ablation (no co-denoising at any step)
    layout: str = "overlap"  # stage 1's chunks: the paper's overlapping ones, or shifted tiles
    blend: str = "uniform"  # overlap weights: uniform (the paper's) or pyramid (chunk middles count most)
    kernel: str = "noisy"  # the RBF kernel sees the noisy chunks (CSD) or the clean chunks of theta
    # Multiply the CSD gradient by d x_t / d theta = alpha: only with optimizer sgd, like the
    # score-distillation weight sigma^2. AdamW's step does not change when the gradient is scaled by
    # a constant and its state starts afresh every step, so there neither would do anything: they
    # are not applied under adamw and chain_rule is refused there (docs/syncos.md).
    chain_rule: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, allowed in CHOICES.items():
            check_choice(self, name, allowed)
        check_range(self, "iterations", 0, 1000)
        check_range(self, "lr", 0.0, 10.0)  # 0: the re-noise control
        check_range(self, "weight_decay", 0.0, 1.0)
        check_range(self, "stop_below", 0.0, 1.0)
        check_range(self, "t_min", -1.0, 1000.0)  # -1: CSD at every step
        check_range(self, "minibatch", 1, 1_000_000)
        check_range(self, "sync_from", -100.0, 100.0)
        check_range(self, "sync_until", -100.0, 100.0)
        if self.chain_rule and self.optimizer != "sgd":
            raise UserError(
                "sampler.chain_rule: scales the CSD gradient by alpha, which AdamW's step ignores; "
                "use it with sampler.optimizer: sgd, or leave it false"
            )
        if self.reversion == "predicted" and not self.stage1:
            raise UserError(
                "sampler.reversion: 'predicted' re-noises with stage 1's predicted noise, and "
                "sampler.stage1 is false; use reversion: baseline there"
            )
        if not self.sync_from < self.sync_until:
            raise UserError(
                f"sampler.sync_from: must be below sampler.sync_until ({self.sync_until:g}), "
                f"got {self.sync_from:g}"
            )

    @classmethod
    def from_preset(cls, preset: str = "default", **overrides) -> SynCoSOptions:
        """Options of a preset, with ``overrides`` on top (what ``sampler: {preset: paper}`` does)."""
        return cls(**preset_values(preset, overrides))


def preset_values(preset: str, given: dict) -> dict:
    """A preset's option values under the ones ``given`` explicitly."""
    if preset not in PRESETS:
        raise UserError(f"sampler.preset: must be one of {', '.join(PRESETS)}, got {preset!r}")
    return {**PRESETS[preset], **given}


PRESETS: dict[str, dict] = {
    "default": {},
    # The paper (CogVideoX-2B): AdamW lr 0.5, 20 iterations, t_min 900, overlap averaging.
    "paper": {"iterations": 20, "lr": 0.5, "t_min": 900.0, "layout": "overlap", "kernel": "noisy"},
}
assert all(k in {f.name for f in fields(SynCoSOptions)} for p in PRESETS.values() for k in p)


def log_snr(alpha: float, sigma: float) -> float:
    """log(alpha^2 / sigma^2): -inf at alpha = 0, +inf at sigma = 0."""
    if alpha <= 0:
        return -math.inf
    return math.inf if sigma <= 0 else 2 * math.log(alpha / sigma)


def in_window(opts: SynCoSOptions, t: float, alpha: float, sigma: float) -> bool:
    """Whether stage 2 runs at this step (zero-SNR steps only with ``zero_snr``)."""
    if no_signal(alpha):
        return opts.zero_snr
    if opts.t_min is not None:
        return t > opts.t_min
    return opts.sync_from < log_snr(alpha, sigma) <= opts.sync_until


def synced_step(opts: SynCoSOptions, t: float, alpha: float, sigma: float) -> bool:
    """Whether stage 2 runs at this step: inside the window, or, stage 2 only, wherever there is signal."""
    return in_window(opts, t, alpha, sigma) if opts.stage1 else not no_signal(alpha) or opts.zero_snr


def first_forward_free(opts: SynCoSOptions, sigma: float, all_chunks: bool) -> bool:
    """Whether stage 2's first forward is stage 1's own: the implied noise re-noises theta = x0 to x
    itself, so on stage 1's chunks (all of them, at the grounded timestep) x_t is stage 1's input."""
    return (
        opts.baseline_noise == "implied"
        and sigma > 0
        and all_chunks
        and opts.timestep == "grounded"
        and opts.stage1
        and opts.layout == "overlap"
    )


def synchronise(
    run: Run,
    x0: torch.Tensor,
    t: float,
    alpha: float,
    sigma: float,
    opts: SynCoSOptions,
    x: torch.Tensor | None = None,
    chunk_eps: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 2: optimise the whole long latent with CSD over its chunks; returns (x0', baseline noise).

    With ``baseline_noise: implied`` the baseline noise is the one the current latent ``x``
    implies, so theta = x0 re-noised is ``x`` itself and ``chunk_eps`` (stage 1's per-chunk
    predictions at ``x`` on the run's own chunks) is the first iteration's forward, for free.
    """
    plan, L, axis = run.plan, run.plan.chunk_length, run.axis
    implied = opts.baseline_noise == "implied" and x is not None and sigma > 0
    eps_base = (x - alpha * x0) / sigma if implied else run.randn()
    if opts.iterations == 0 or opts.lr == 0:  # the re-noise control: nothing can move theta
        return x0, eps_base
    lr = opts.lr * (run.spec.latent_std if opts.lr_units == "latent" else 1.0)
    theta = x0.clone().requires_grad_(True)
    if opts.optimizer == "adamw":
        optim = torch.optim.AdamW([theta], lr=lr, weight_decay=opts.weight_decay)
    else:
        optim = torch.optim.SGD([theta], lr=lr, weight_decay=opts.weight_decay)
    n = plan.num_chunks
    m = n if opts.minibatch is None else min(opts.minibatch, n)
    first_norm: float | None = None
    for it in range(opts.iterations):
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
            if it == 0 and implied and chunk_eps is not None and first_forward_free(opts, sigma, m == n):
                eps_hat = chunk_eps  # theta is x0 and the noise is implied: x_t is stage 1's input
            else:
                _, eps_hat = run.denoiser(x_t, t_i, a_i, s_i, prompts)
            grad_i = stein_direction(
                x_t,
                eps_hat - noise_i,
                weight=sd_weight(opts, a_i, s_i),
                features=x_t if opts.kernel == "noisy" else theta_i,
            )
            theta.grad = fuse(grad_i, starts, plan.latent_frames, axis)
            before = theta.detach().clone() if opts.stop_below > 0 else None
        optim.step()
        if before is not None:  # the update's norm: what the optimiser step moved theta by
            norm = float((theta.detach() - before).norm())
            first_norm = norm if first_norm is None else first_norm
            if norm < opts.stop_below * first_norm:
                break  # the update has stopped moving theta
    return theta.detach(), eps_base


def sd_weight(opts: SynCoSOptions, alpha: float, sigma: float) -> float:
    """The score-distillation weight w(t) = sigma^2 (times alpha with ``chain_rule``) under SGD.

    Under AdamW it is 1: Adam's step is the same for any constant scale of the gradient, and its
    state starts afresh at every synchronised step, so a weight there would only pretend to act.
    """
    if opts.optimizer != "sgd":
        return 1.0
    return sigma**2 * (alpha if opts.chain_rule else 1.0)


def stage1_plan(plan: Plan, opts: SynCoSOptions, k: int) -> Plan:
    """Stage 1's chunks at step k: the plan's own, or tiles shifted by a golden-ratio offset."""
    if opts.layout == "overlap":
        return plan
    return plan.with_tiles(int(((k * GOLDEN) % 1.0) * plan.chunk_length))


def sample_syncos(
    backend: Backend,
    plan: Plan,
    options: SynCoSOptions,
    seed: int,
    callback: Callback | None = None,
    checkpoint: Checkpoint | None = None,
    latents: torch.Tensor | None = None,
) -> SampleResult:
    run = Run(backend, plan, options, seed, callback, checkpoint, latents)
    window = blend_window(options.blend, plan.chunk_length)

    def step(
        k: int, x: torch.Tensor, history: History | None, x0: torch.Tensor, synced_at: list[int]
    ) -> Stepped:
        t, a, s, _, _ = run.coefficients(k)
        synced = synced_step(options, t, a, s)
        chunks = None
        if options.stage1:
            chunk_plan = stage1_plan(plan, options, k)
            chunks = denoise_chunks(run, x, t, a, s, chunk_plan)
            x0, eps = fuse_chunks(run, chunks, chunk_plan, window)
            if chunk_plan is not plan:
                chunks = None  # shifted tiles are not the CSD's chunks: nothing to reuse
        if synced:
            synced_at.append(round(t))
            with run.stage("stage2"):
                chunk_eps = chunks[1] if chunks is not None else None
                x0, eps_base = synchronise(run, x0, t, a, s, options, x=x, chunk_eps=chunk_eps)
            if options.reversion == "baseline":  # "predicted" needs stage 1 (refused without it)
                eps = eps_base
        elif not options.stage1:  # nothing to synchronise yet: keep theta, re-noise
            eps = run.randn()
        with run.stage("stage3"):  # a re-noised step is not on the ODE: first order there
            x, history = run.step(k, x, x0, eps, history, ode=options.stage1 and not synced)
        # the progress callback is shown the estimate the next latent is built from
        return Stepped({"x": x, "history": history, "x0": x0, "synced_at": synced_at}, t, x0)

    x = run.randn()
    x0 = torch.zeros_like(x)  # the stage-2-only ablation starts theta here
    state = run.loop(len(run.grid), step, x=x, history=None, x0=x0, synced_at=[])
    result = run.result(state["x"])
    result.notes = (window_note(options, state["synced_at"], len(run.grid)),)
    return result


def window_note(opts: SynCoSOptions, synced_at: list[int], steps: int) -> str:
    """Where stage 2 ran, in words; an empty window makes this run plain co-denoising, say so."""
    if opts.t_min is not None:
        rule, widen = f"t > {opts.t_min:g}", "lower sampler.t_min"
    else:
        rule, widen = f"log-SNR <= {opts.sync_until:g}", "raise sampler.sync_until"
    if not synced_at:
        return (
            f"the sync window ({rule}) held none of the {steps} steps: this run is plain "
            f"co-denoising; {widen} or use more steps"
        )
    what = "re-noising only (no CSD move)" if opts.iterations == 0 or opts.lr == 0 else "CSD"
    where = ", ".join(map(str, synced_at))
    return f"stage 2 ({what}) ran at {len(synced_at)} of {steps} steps (t = {where}; {rule})"
