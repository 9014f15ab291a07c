"""The floor: non-overlapping tiles, each denoised alone under its event's prompt.

Tiles start every chunk length; when the video is not a whole number of tiles the last tile is
aligned to the end and writes only the frames the others do not, so no frame is ever an average
of two tiles (an average of two unrelated samples is a ghost, not a floor).
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


def sample_independent(
    backend: Backend,
    plan: Plan,
    options: SamplerOptions,
    seed: int,
    callback: Callback | None = None,
    checkpoint: Checkpoint | None = None,
    latents: torch.Tensor | None = None,
) -> SampleResult:
    plan = plan.with_tiles()
    run = Run(backend, plan, options, seed, callback, checkpoint, latents)
    L, F, axis = plan.chunk_length, plan.latent_frames, run.axis

    def step(k: int, chunks: torch.Tensor, history: History | None) -> Stepped:
        t, a, s, _, _ = run.coefficients(k)
        with run.stage("stage1"):
            x0, eps = run.denoiser(chunks, t, a, s, plan.chunk_prompts)
            chunks, history = run.step(k, chunks, x0, eps, history)
        return Stepped(
            {"chunks": chunks, "history": history}, t, fuse(x0, plan.starts, F, axis, owned=plan.owned)
        )

    # each tile keeps its own trajectory
    state = run.loop(len(run.grid), step, chunks=crop(run.randn(), plan.starts, L, axis), history=None)
    return run.result(fuse(state["chunks"], plan.starts, F, axis, owned=plan.owned))
