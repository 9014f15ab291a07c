"""Extension: the plan's chunks sampled one after another, each continuing the one before.

Chunk j sits where the plan puts it (every ``stride`` frames, as co-denoising's chunks do) and
holds the frames it shares with chunk j - 1, already clean; only its new frames are sampled,
conditioned through the network's attention on what came before. No frame is ever an average of
two chunks (no ghost), and each chunk sees where the last one left the subject (no restart where
tiles meet). It costs co-denoising's network evaluations, run in sequence rather than in a batch.

How the held frames are shown to the network (``held``):

- ``clean``: at timestep 0, the others at the step's (per-frame timesteps: the conditioning LTX-Video,
  SkyReels-V2's diffusion forcing and Wan 2.2's image-to-video use). The model's posterior is then
  conditioned on the clean frames themselves. Only for backends with ``per_frame_timesteps``.
- ``noised``: at the step's noise level, each made again from the clean frames and the chunk's
  own noise (the replacement method, Song et al. 2021; Ho et al. 2022 show its weakness: noised
  context is weak evidence, and the new frames may commit to another explanation early on).
- ``auto`` (default): ``clean`` where the backend takes per-frame timesteps, else ``noised``.

Either way the held frames are made again from the clean ones at every step; what the step makes
of them is never used.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from syncos.backends.base import Backend
from syncos.checkpoint import Checkpoint
from syncos.errors import UserError
from syncos.fusion import crop
from syncos.samplers.options import SamplerOptions, check_choice
from syncos.samplers.run import Callback, Run, SampleResult, Stepped
from syncos.solvers import History
from syncos.timeline import Plan

HELD_MODES = ("auto", "clean", "noised")


@dataclass(frozen=True)
class ExtendOptions(SamplerOptions):
    held: str = "auto"  # how the frames a chunk shares with the one before are shown (module docstring)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self, "held", HELD_MODES)


def held_mode(backend: Backend, requested: str) -> str:
    supported = backend.spec.per_frame_timesteps
    if requested == "clean" and not supported:
        raise UserError(
            f"sampler.held: model {backend.name!r} takes one timestep per chunk, so held frames "
            "cannot be shown clean; use 'noised' or 'auto'"
        )
    return requested if requested != "auto" else ("clean" if supported else "noised")


def sample_extend(
    backend: Backend,
    plan: Plan,
    options: ExtendOptions,
    seed: int,
    callback: Callback | None = None,
    checkpoint: Checkpoint | None = None,
    latents: torch.Tensor | None = None,
) -> SampleResult:
    plan = plan.extended()
    run = Run(backend, plan, options, seed, callback, checkpoint, latents)
    L, steps, fa = plan.chunk_length, len(run.grid), run.axis + 1  # fa: the chunks' frame axis
    clean = held_mode(backend, options.held) == "clean"
    a0, s0 = (float(v) for v in backend.schedule.coefficients(torch.tensor(0.0)))  # timestep 0
    assert plan.owned is not None

    def per_frame(held_value: float, value: float, c: int, like: torch.Tensor) -> torch.Tensor:
        """One value per frame of the chunk, shaped to broadcast over ``like`` (1, ...)."""
        v = torch.full((L,), value, dtype=torch.float64)
        v[:c] = held_value
        shape = [L if d == fa else 1 for d in range(like.dim())]
        return v.reshape(shape).to(like)

    def write(latent: torch.Tensor, chunk: torch.Tensor, j: int) -> torch.Tensor:
        """``latent`` with the frames chunk j owns written from ``chunk`` (1, ...)."""
        (a, b), start = plan.owned[j], plan.starts[j]
        out = latent.clone()
        out.narrow(run.axis, a, b - a).copy_(chunk[0].narrow(run.axis, a - start, b - a))
        return out

    def step(i: int, noise: torch.Tensor, latent: torch.Tensor, x: torch.Tensor, history: History | None):
        j, k = divmod(i, steps)
        start = plan.starts[j]
        c = plan.owned[j][0] - start  # frames held: written by the chunks before
        eps0 = crop(noise, [start], L, run.axis)  # the chunk's own noise, fixed over its steps
        known = crop(latent, [start], L, run.axis).narrow(fa, 0, c)
        if k == 0:
            x, history = eps0, None  # as every sampler starts: the initial noise itself
        t, a, s, _, _ = run.coefficients(k)
        with run.stage("stage1"):
            if clean and c:
                shown = x.clone()  # x itself keeps the step's values of the held frames
                shown.narrow(fa, 0, c).copy_(a0 * known + s0 * eps0.narrow(fa, 0, c))
                tt = torch.full((1, L), t)
                tt[:, :c] = 0.0
                aa, ss = per_frame(a0, a, c, x), per_frame(s0, s, c, x)
                x0, eps = run.denoiser(shown, tt, aa, ss, [plan.chunk_prompts[j]])
            else:
                x = x.clone()  # the state the last step returned is not written into
                x.narrow(fa, 0, c).copy_(a * known + s * eps0.narrow(fa, 0, c))
                x0, eps = run.denoiser(x, t, a, s, [plan.chunk_prompts[j]])
        x, history = run.step(k, x, x0, eps, history)
        if k == steps - 1:  # the chunk is done: its new frames join the video
            x0, latent = x, write(latent, x, j)
        state = {"noise": noise, "latent": latent, "x": x, "history": history}
        return Stepped(state, t, write(latent, x0, j).narrow(run.axis, 0, plan.latent_frames))

    # the last chunk may run past the video's end: its frames there get noise of their own
    past = max(s + L for s in plan.starts) - plan.latent_frames
    noise = run.randn()
    if past:
        noise = torch.cat([noise, run.randn(tuple(backend.latent_shape(past)))], dim=run.axis)
    state = run.loop(
        plan.num_chunks * steps,
        step,
        noise=noise,
        latent=torch.zeros_like(noise),
        x=crop(noise, [0], L, run.axis),
        history=None,
    )
    result = run.result(state["latent"].narrow(run.axis, 0, plan.latent_frames).contiguous())
    how = (
        "clean, at timestep 0 (the model takes one timestep per frame)"
        if clean
        else "noised to each step's level (replacement: the model takes one timestep per chunk)"
    )
    return replace(result, notes=(f"extend: the frames a chunk shares with the one before are held {how}",))
