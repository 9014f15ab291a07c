"""FIFO-Diffusion (Kim et al., arXiv 2405.11473) as a baseline: diagonal denoising of a frame queue.

The queue holds one latent frame per noise level, cleanest first. Each iteration denoises every
frame by one step, the front frame comes out clean and is appended to the video, the queue shifts
by one and a fresh noise frame enters at the back. A frame steps from its level exactly to the
next level of the queue (the position it moves to), and the front frame to sigma 0: it leaves
as its x0 estimate. The grid's own next points are not that: diffusers' DDIM convention steps to
t - T // steps, which for 24, 36 or 48 levels ends at t = 0, sigma 0.05, not at the clean
sample. Stepping to it made every frame leave with 5% of noise in it: grainy frames at 50 steps
(48 levels) while 12 levels, whose last step ends at sigma 0, looked clean. toyworld ``clean``
of ``syncos generate examples/ball_story.yaml -o OUT --method fifo --steps S``, S = 12 / 24 / 50:
0.53 / 0.09 / 0.09 before (shared mode), 0.73 / 0.75 / 0.76 now (per-frame).

The paper's two refinements are here:

- latent partitioning: the queue holds ``partitions * L`` noise levels (so the sampler takes
  ``partitions * L`` steps; ``partitions`` defaults to ``round(steps / L)``) and is cut into
  windows of the model's chunk length L, all denoised in one batched call;
- lookahead denoising: windows slide by about L/2 and only their back half is written, so every
  frame is denoised with cleaner frames ahead of it. ``L // 2`` context frames (the last frames
  that left, kept at the lowest noise level of the grid) sit in front of the queue.

As in the paper, the queue starts from a clip the model samples first, corrupted to each level;
the first ``N - L`` frames that leave are copies of its first frame and are dropped.
Each window is conditioned on the event of the video frames it covers (``assign_events``).

The one decision the paper leaves to the model: a window holds frames at *different* noise
levels, which a model trained with one timestep per clip cannot be told.

- ``timesteps="per-frame"`` (FIFO proper): the window is given a (n, L) timestep tensor. Only
  for backends that declare ``per_frame_timesteps = True``: toyworld (exact: its posterior
  factorises over frames), LTX-Video, Wan 2.2 TI2V-5B and SkyReels-V2 DF (per-token timesteps).
- ``timesteps="shared"`` (every other backend, e.g. CogVideoX, Wan 2.1 / A14B, the UNets): each
  window is first forward-diffused to the noise level of its noisiest frame (the less noisy
  frames get exact, seeded extra noise), so the model sees a clip that truly is at one timestep;
  then each frame takes its own DDIM step from its own x_t with the window's x0 estimate. The
  price is detail: the cleaner frames of a window are predicted from a noisier view. Latent
  partitioning is what bounds that price: a window spans L of the N = partitions * L levels,
  about 1/partitions of the noise range (``clean`` above with ``--set sampler.timesteps=shared``:
  0.53 / 0.76 / 0.76; one partition at 12 steps costs 0.2 against per-frame).
- ``timesteps="auto"`` (default) picks per-frame where the backend declares it, else shared.

The mode that ran is the result's ``fifo_mode``; run.json and the benchmark tables carry it, and
a table names a shared run "fifo (shared-timestep approx.)", never FIFO-Diffusion.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from syncos.backends.base import Backend
from syncos.checkpoint import Checkpoint
from syncos.errors import UserError
from syncos.samplers.options import SamplerOptions, check_choice, check_range
from syncos.samplers.run import Callback, Fresh, Run, SampleResult, Stepped
from syncos.schedules import Grid
from syncos.timeline import Plan, assign_events

TIMESTEP_MODES = ("auto", "per-frame", "shared")


@dataclass(frozen=True)
class FIFOOptions(SamplerOptions):
    """FIFO-Diffusion's settings. The queue holds a whole number of chunk lengths of noise levels,
    so ``steps`` is rounded to a multiple of the chunk length (or replaced by ``partitions`` times
    it); a run that does not take ``steps`` steps says so in its notes (:func:`steps_note`)."""

    partitions: int | None = None  # n: the queue holds n * L noise levels; None = round(steps / L)
    lookahead: bool = True
    timesteps: str = "auto"  # "per-frame", "shared" or "auto" (see the module docstring)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self, "timesteps", TIMESTEP_MODES)
        check_range(self, "partitions", 1, 1000)
        if self.noise != "independent":
            raise UserError(
                "sampler.noise: fifo draws one new frame per step and takes only 'independent'; "
                "'rescheduled' applies to independent, codenoise and syncos"
            )

    def levels(self, chunk_length: int) -> int:
        """Noise levels in the queue = sampling steps: ``partitions`` (default round(steps / L)) times L."""
        return (self.partitions or max(1, round(self.steps / chunk_length))) * chunk_length


def timestep_mode(backend: Backend, requested: str) -> str:
    supported = backend.spec.per_frame_timesteps
    if requested == "per-frame" and not supported:
        raise ValueError(
            f"backend {backend.name!r} takes one timestep per chunk; use fifo timesteps 'shared' or 'auto'"
        )
    return requested if requested != "auto" else ("per-frame" if supported else "shared")


def steps_note(options: FIFOOptions, chunk_length: int) -> str | None:
    """What run.json and ``syncos plan`` say when the queue's steps are not ``sampler.steps``."""
    N = options.levels(chunk_length)
    if N == options.steps:
        return None
    L, steps = chunk_length, options.steps
    if options.partitions is not None:
        why = f"sampler.partitions {options.partitions} x the chunk length {L}; sampler.steps is not used"
    else:
        nearest = sorted({max(L, steps // L * L), (steps // L + 1) * L})
        why = (
            f"the queue holds whole chunk lengths ({L}), so {steps} was rounded to {N // L} x {L}; "
            f"steps that run as given: {' or '.join(map(str, nearest))}"
        )
    return f"fifo took {N} steps, not sampler.steps {steps}: {why}"


def queue_layout(options: FIFOOptions, chunk_length: int) -> tuple[int, int, list[tuple[int, int]]]:
    """(noise levels N, context frames P in front of the queue, its windows): what the sampler
    runs and ``syncos plan`` counts."""
    N = options.levels(chunk_length)
    P = chunk_length // 2 if options.lookahead else 0
    return N, P, _windows(P + N, chunk_length, P)


def _windows(queue: int, length: int, context: int) -> list[tuple[int, int]]:
    """(start, first written position) of each window; together they write [context, queue) once."""
    width = length - context
    starts = list(range(0, queue - length + 1, width))
    if starts[-1] + length < queue:
        starts.append(queue - length)
    out, written = [], context
    for s in starts:
        out.append((s, max(s + context, written)))
        written = s + length
    return out


def sample_fifo(
    backend: Backend,
    plan: Plan,
    options: FIFOOptions,
    seed: int,
    callback: Callback | None = None,
    checkpoint: Checkpoint | None = None,
    latents: torch.Tensor | None = None,
) -> SampleResult:
    if latents is not None:
        raise UserError(
            "latents: FIFO's noise is a queue of frames at every noise level, not one long latent; "
            "latents are taken by methods independent, codenoise and syncos"
        )
    L, F = plan.chunk_length, plan.latent_frames
    N, P, windows = queue_layout(options, L)  # noise levels = queue positions = sampling steps
    run = Run(backend, plan, replace(options, steps=N), seed, callback, checkpoint)
    mode = timestep_mode(backend, options.timesteps)
    axis, g = run.axis, run.grid
    Q = P + N  # P context frames in front of the queue
    level = torch.tensor([N - 1] * P + list(range(N - 1, -1, -1)))  # grid index of each position
    idx = torch.stack([torch.arange(s0, s0 + L) for s0, _ in windows])  # (w, L) queue positions

    def shaped(v: torch.Tensor) -> torch.Tensor:
        """A (w, L) per-position table shaped to broadcast over the windows (w, *chunk_shape)."""
        shape = [len(windows)] + [1] * len(backend.latent_shape(L))
        shape[axis + 1] = L
        return v.float().reshape(shape).to(backend.device)

    lv = level[idx]  # (w, L) grid index of every window position
    alpha_to, sigma_to = _next_levels(g)
    a, s, a_next, s_next = (shaped(v[lv]) for v in (g.alpha, g.sigma, alpha_to, sigma_to))
    t = g.timesteps[lv].float()  # (w, L), on the host: a backend reading t (Wan 2.2 experts) waits on nothing
    top = shaped((lv == lv.min(dim=1, keepdim=True).values).double())  # each window's noisiest frame

    def event_prompts(first_id: int) -> list[str]:
        ids = [min(max(first_id + s0 - P, 0), F - L) for s0, _ in windows]
        return [plan.prompts[e] for e in assign_events(ids, L, plan.event_spans)]

    def base_queue() -> torch.Tensor:
        """The base clip: the first window's event, sampled plainly, then corrupted to every level."""
        with run.stage("init"):
            base = run.randn(tuple(backend.latent_shape(L)))
            prompt = plan.prompts[assign_events([0], L, plan.event_spans)[0]]
            for k in range(N):
                tk, ak, sk = float(g.timesteps[k]), float(g.alpha[k]), float(g.sigma[k])
                x0, eps = run.denoiser(base[None], tk, ak, sk, [prompt])
                base = float(alpha_to[k]) * x0[0] + float(sigma_to[k]) * eps[0]
            src = torch.tensor([max(0, p - P - (N - L)) for p in range(Q)], device=base.device)
            per_frame = [Q if d == axis else 1 for d in range(base.dim())]
            aq, sq = (v[level].float().reshape(per_frame).to(base) for v in (g.alpha, g.sigma))
            return aq * base.index_select(axis, src) + sq * run.randn(tuple(backend.latent_shape(Q)))

    def step(i: int, queue: torch.Tensor, out: torch.Tensor) -> Stepped:
        with run.stage("stage1"):
            x = queue.movedim(axis, 0)[idx].movedim(1, axis + 1)  # (w, *chunk_shape)
            prompts = event_prompts(i - (N - L))
            if mode == "per-frame":
                x0, eps = run.denoiser(x, t, a, s, prompts)
            else:  # lift every frame to its window's noisiest level: one true timestep per window
                a_w, s_w = (_pick(v, top, axis) for v in (a, s))
                ratio = a_w / a.clamp_min(1e-12) * (1 - top) + top
                extra = (s_w**2 - (ratio * s) ** 2).clamp_min(0).sqrt()
                lifted = ratio * x + extra * run.randn(tuple(x.shape))
                x0, _ = run.denoiser(lifted, t.amax(dim=1), a_w.flatten(), s_w.flatten(), prompts)
                eps = (x - a * x0) / s.clamp_min(1e-12)  # each frame steps from its own x_t
            stepped = (a_next * x0 + s_next * eps).movedim(axis + 1, 1)  # (w, L, ...)
        new = queue.movedim(axis, 0).clone()
        for w, (s0, first) in enumerate(windows):
            new[first : s0 + L] = stepped[w, first - s0 :]
        if i >= N - L:
            out.movedim(axis, 0)[i - (N - L)] = new[P]
        fresh = run.randn(tuple(backend.latent_shape(1))).movedim(axis, 0)
        # the frame that left stays in front as context, at its last (lowest) noise level
        queue = torch.cat([queue.movedim(axis, 0)[1 : P + 1], new[P + 1 :], fresh]).movedim(0, axis)
        return Stepped({"queue": queue, "out": out}, float(g.timesteps[N - 1]), out)

    # restored before the base clip is sampled: a resume skips its N network evaluations
    queue = Fresh(tuple(backend.latent_shape(Q)), base_queue)
    out = torch.zeros(run.shape, device=backend.device)
    state = run.loop(F + N - L, step, queue=queue, out=out)
    note = steps_note(options, L)
    result = run.result(state["out"], first_order="FIFO's windows mix noise levels")
    return replace(result, fifo_mode=mode, notes=(note,) if note else ())


def _next_levels(g: Grid) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha, sigma) each grid level steps to: the next level of the queue, clean after the last."""
    return torch.cat([g.alpha[1:], g.alpha.new_ones(1)]), torch.cat([g.sigma[1:], g.sigma.new_zeros(1)])


def _pick(v: torch.Tensor, mask: torch.Tensor, axis: int) -> torch.Tensor:
    """The value at each window's noisiest position, keeping the broadcast shape."""
    return (v * mask).sum(dim=axis + 1, keepdim=True) / mask.sum(dim=axis + 1, keepdim=True)
