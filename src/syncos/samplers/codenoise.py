"""Gen-L-Video-style temporal co-denoising: stage 1 and the model's solver step on the long latent.

Stage 1 (every chunk denoised under its own prompt, the estimates fused onto the long latent) is
also SynCoS's first stage: :func:`denoise_chunks`, :func:`fuse_chunks` and the overlap weights
(:func:`blend_window`) live here and serve both.
"""

from __future__ import annotations

import torch

from syncos.backends.base import Backend
from syncos.checkpoint import Checkpoint
from syncos.fusion import crop, fuse
from syncos.samplers.options import SamplerOptions
from syncos.samplers.run import Callback, Run, SampleResult, Stepped
from syncos.solvers import History
from syncos.timeline import Plan


def sample_codenoise(
    backend: Backend,
    plan,
    options: SamplerOptions,
    seed: int,
    callback: Callback | None = None,
    checkpoint: Checkpoint | None = None,
    latents: torch.Tensor | None = None,
) -> SampleResult:
    run = Run(backend, plan, options, seed, callback, checkpoint, latents)

    def step(k: int, x: torch.Tensor, history: History | None) -> Stepped:
        t, a, s, _, _ = run.coefficients(k)
        x0, eps = codenoise_estimate(run, x, t, a, s)
        x, history = run.step(k, x, x0, eps, history)  # the model's solver on the fused latent
        return Stepped({"x": x, "history": history}, t, x0)

    state = run.loop(len(run.grid), step, x=run.randn(), history=None)
    return run.result(state["x"])


def blend_window(kind: str, length: int) -> torch.Tensor | None:
    """Weights of a chunk's positions when overlaps are averaged: None (uniform, the paper's) or a
    pyramid that favours each chunk's middle, where it sees the most context on both sides."""
    if kind == "uniform":
        return None
    i = torch.arange(length, dtype=torch.float64)
    return (torch.minimum(i + 1, length - i) / ((length + 1) // 2)).float()


def denoise_chunks(
    run: Run, x: torch.Tensor, t: float, alpha: float, sigma: float, plan: Plan
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every chunk of ``plan`` denoised under its own prompt: per-chunk (x0, eps), stacked."""
    with run.stage("stage1"):
        return run.denoiser(
            crop(x, plan.starts, plan.chunk_length, run.axis), t, alpha, sigma, plan.chunk_prompts
        )


def fuse_chunks(
    run: Run, chunks: tuple[torch.Tensor, torch.Tensor], plan: Plan, window: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-chunk (x0, eps) fused onto the long latent: overlaps averaged, or each frame's owner."""
    F = plan.latent_frames
    return tuple(fuse(c, plan.starts, F, run.axis, window=window, owned=plan.owned) for c in chunks)


def codenoise_estimate(
    run: Run,
    x: torch.Tensor,
    t: float,
    alpha: float,
    sigma: float,
    plan: Plan | None = None,
    window: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 1's estimate: every chunk denoised under its own prompt, (x0, eps) fused (``plan``: the
    run's). An estimate, not a step: ``Run.step`` takes the step."""
    plan = plan or run.plan
    return fuse_chunks(run, denoise_chunks(run, x, t, alpha, sigma, plan), plan, window)
