"""Gen-L-Video-style temporal co-denoising: stage 1 and a plain DDIM step on the long latent."""

from __future__ import annotations

from syncos.backends.base import Backend
from syncos.samplers.common import Callback, Run, SampleResult, SamplerOptions, codenoise_step


def sample_codenoise(
    backend: Backend, plan, options: SamplerOptions, seed: int, callback: Callback | None = None
) -> SampleResult:
    run = Run(backend, plan, options, seed, callback)
    x = run.randn()
    for k in range(len(run.grid)):
        t, a, s, a_next, s_next = run.coefficients(k)
        x0, eps = codenoise_step(run, x, t, a, s)
        x = a_next * x0 + s_next * eps  # DDIM, eta = 0 (the Euler step for flow models)
        run.report(k, t, x0)
    return run.result(x)
