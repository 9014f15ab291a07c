"""The floor: non-overlapping tiles, each denoised alone under its event's prompt.

Tiles start every chunk length; when the video is not a whole number of tiles the last tile is
aligned to the end and writes only the frames the others do not, so no frame is ever an average
of two tiles (an average of two unrelated samples is a ghost, not a floor).
"""

from __future__ import annotations

from syncos.backends.base import Backend
from syncos.fusion import crop, fuse
from syncos.samplers.common import Callback, Run, SampleResult, SamplerOptions
from syncos.timeline import Plan


def sample_independent(
    backend: Backend, plan: Plan, options: SamplerOptions, seed: int, callback: Callback | None = None
) -> SampleResult:
    plan = plan.with_tiles()
    run = Run(backend, plan, options, seed, callback)
    L, F, axis = plan.chunk_length, plan.latent_frames, run.axis
    chunks, history = crop(run.randn(), plan.starts, L, axis), None  # each tile keeps its own trajectory
    start, chunks, history = run.resume(len(run.grid), chunks=chunks, history=history)
    for k in range(start, len(run.grid)):
        t, a, s, _, _ = run.coefficients(k)
        with run.stage("stage1"):
            x0, eps = run.denoiser(chunks, t, a, s, plan.chunk_prompts)
            chunks, history = run.step(k, chunks, x0, eps, history)
        run.checkpoint(k, chunks=chunks, history=history)
        run.report(k, t, fuse(x0, plan.starts, F, axis, owned=plan.owned))
    return run.result(fuse(chunks, plan.starts, F, axis, owned=plan.owned))
