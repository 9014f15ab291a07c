"""Gen-L-Video-style temporal co-denoising: stage 1 and the model's solver step on the long latent."""

from __future__ import annotations

from syncos.backends.base import Backend
from syncos.samplers.common import Callback, Run, SampleResult, SamplerOptions, codenoise_estimate


def sample_codenoise(
    backend: Backend, plan, options: SamplerOptions, seed: int, callback: Callback | None = None
) -> SampleResult:
    run = Run(backend, plan, options, seed, callback)
    x, history = run.randn(), None
    start, x, history = run.resume(len(run.grid), x=x, history=history)
    for k in range(start, len(run.grid)):
        t, a, s, _, _ = run.coefficients(k)
        x0, eps = codenoise_estimate(run, x, t, a, s)
        x, history = run.step(k, x, x0, eps, history)  # the model's solver on the fused latent
        run.checkpoint(k, x=x, history=history)
        run.report(k, t, x0)
    return run.result(x)
