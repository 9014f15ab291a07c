"""The one "denoiser returns (x0, eps)" wrapper every sampler calls.

It batches chunks into micro-batches, stacks the conditional and unconditional halves of
classifier-free guidance into one forward call, converts the backend's raw output with the
schedule, and counts network evaluations. Guidance is applied to the raw output, as diffusers
pipelines do; since the conversions are affine in the output for a fixed x_t, it is the same as
guiding x0 or eps.

Under torch.distributed it is also the one place where work is split (``syncos.distributed``):
the network passes of a call (per chunk: the conditional one and, with CFG, the unconditional
one) are sharded contiguously over the ranks, each rank runs its slice, and one all-gather of
the raw outputs gives every rank the whole batch. Sharding single passes rather than chunks
balances CFG runs to within one pass; gathering the raw output (not x0 and eps) halves the bytes
moved. Evaluation counts stay global, so they match a single-process run on every rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from syncos import distributed
from syncos.backends.base import Backend
from syncos.schedules import to_x0_eps


@dataclass
class Counter:
    """Network evaluations (one chunk through the network once; CFG counts two) and seconds, per stage."""

    nfe: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, nfe: int = 0, seconds: float = 0.0) -> None:
        self.nfe[stage] = self.nfe.get(stage, 0) + nfe
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


def rescale_guidance(guided: torch.Tensor, cond: torch.Tensor, phi: float) -> torch.Tensor:
    """Guided output brought back towards the conditional one's spread (Lin et al. 2024, sec. 3.4).

    CFG extrapolates past both estimates; where they disagree much (a frame the chunks' prompts
    leave open) the guided estimate leaves the data's range and the decoder clips it (black or
    washed-out frames). Each row is scaled to the conditional output's standard deviation and
    mixed with the plain guided one by ``phi``, as diffusers' ``rescale_noise_cfg``.
    """
    if phi == 0:
        return guided
    dims = list(range(1, guided.dim()))
    ratio = cond.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True).clamp_min(1e-12)
    return phi * guided * ratio + (1 - phi) * guided


class Denoiser:
    def __init__(
        self,
        backend: Backend,
        guidance_scale: float = 1.0,
        negative_prompt: str = "",
        micro_batch: int = 4,
        counter: Counter | None = None,
        steps: int = 0,
        guidance_rescale: float = 0.0,
    ):
        if micro_batch < 1:
            raise ValueError(f"micro_batch must be >= 1, got {micro_batch}")
        self.backend = backend
        self.guidance_scale = float(guidance_scale)
        self.negative_prompt = negative_prompt
        self.micro_batch = micro_batch
        self.counter = counter if counter is not None else Counter()
        self.stage = "stage1"
        self.steps = steps  # sampling steps of the run, for guidance schedules that depend on them
        self.spec = backend.spec  # built once: it is read on every call
        self.guidance_rescale = float(guidance_rescale)

    @property
    def cfg(self) -> bool:
        return self.guidance_scale != 1.0

    def scales(self, t: torch.Tensor, ndim: int) -> torch.Tensor | float:
        """The guidance scale of each row: the spec's ``guidance(t, default, steps)`` schedule if it has one.

        Wan 2.2 guides its low-noise expert with a second scale; CogVideoX's dynamic CFG follows a
        schedule over t. The stock pipelines switch CFG on by the default scale alone, and so does this.
        The hook takes the rows' timesteps as a tensor and answers with tensor operations (or a
        float), so nothing is read back to the host.
        """
        hook = self.spec.guidance
        if hook is None:
            return self.guidance_scale
        rows = t if t.dim() == 1 else t.amax(dim=1)  # per-frame timesteps: the row's noisiest frame
        w = hook(rows, self.guidance_scale, self.steps)
        if not isinstance(w, torch.Tensor):
            return float(w)
        return w.float().reshape(-1, *[1] * (ndim - 1))

    def _forward(
        self, x: torch.Tensor, t: torch.Tensor, prompts: list[str], negative: list[bool]
    ) -> torch.Tensor:
        """Raw float output of one micro-batch (a mix of conditional and unconditional passes)."""
        b = self.backend
        return b.forward(x, t, b.encode(prompts, negative)).float()

    def __call__(
        self,
        x: torch.Tensor,
        t: float | torch.Tensor,
        alpha: float | torch.Tensor,
        sigma: float | torch.Tensor,
        prompts: Sequence[str],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, eps) for a batch of chunks x (n, ...) at timestep t with x = alpha x0 + sigma eps.

        t is a scalar, one value per chunk (n,), or one per frame (n, L) for backends with
        ``spec.per_frame_timesteps``; alpha/sigma then come shaped to broadcast over x.
        """
        n = len(x)
        if len(prompts) != n:
            raise ValueError(f"{len(prompts)} prompts for {n} chunks")
        # t stays where it was given (a float: on the host), so a backend that must read it (Wan
        # 2.2 A14B picks an expert per row) reads host memory, not the device's; backends move it.
        tt = torch.as_tensor(t, dtype=torch.float32)
        tt = tt if tt.dim() == 2 else tt.expand(n)  # (n, L): per-frame, for backends that declare it
        # Passes chunk by chunk, (cond, uncond) side by side with CFG: any contiguous slice (a
        # rank's share, a micro-batch) then holds as many of each kind, whatever they cost.
        k = 2 if self.cfg else 1
        lo, hi = distributed.shard(k * n, distributed.rank(), distributed.world_size())
        local = [x.new_empty((0, *x.shape[1:]), dtype=torch.float32)]
        pass_t = tt.repeat_interleave(k, dim=0)  # the timesteps of each pass
        for i in range(lo, hi, k * self.micro_batch):
            passes = range(i, min(i + k * self.micro_batch, hi))
            rows = torch.arange(passes.start, passes.stop, device=x.device) // k  # made there: no copy
            texts = [self.negative_prompt if p % k else prompts[p // k] for p in passes]
            negative = [bool(p % k) for p in passes]
            local.append(self._forward(x[rows], pass_t[passes.start : passes.stop], texts, negative))
        out = distributed.gather_rows(torch.cat(local), k * n, f"the {self.stage} all-gather")
        self.counter.add(self.stage, nfe=k * n)
        if self.cfg:
            w = self.scales(tt, x.dim())
            w = w.to(out.device) if isinstance(w, torch.Tensor) else w
            guided = out[1::2] + w * (out[0::2] - out[1::2])
            out = rescale_guidance(guided, out[0::2], self.guidance_rescale)
        return to_x0_eps(out, x, alpha, sigma, self.spec.prediction, self.spec.x0_limit)
