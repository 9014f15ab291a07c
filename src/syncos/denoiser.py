"""The one "denoiser returns (x0, eps)" wrapper every sampler calls.

It batches chunks into micro-batches, stacks the conditional and unconditional halves of
classifier-free guidance into one forward call, converts the backend's raw output with the
schedule, and counts network evaluations. Guidance is applied after conversion; since the
conversions are affine in the output for a fixed x_t, this equals guiding the raw output, as
diffusers pipelines do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

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


class Denoiser:
    def __init__(
        self,
        backend: Backend,
        guidance_scale: float = 1.0,
        negative_prompt: str = "",
        micro_batch: int = 4,
        counter: Counter | None = None,
    ):
        if micro_batch < 1:
            raise ValueError(f"micro_batch must be >= 1, got {micro_batch}")
        self.backend = backend
        self.guidance_scale = float(guidance_scale)
        self.negative_prompt = negative_prompt
        self.micro_batch = micro_batch
        self.counter = counter if counter is not None else Counter()
        self.stage = "stage1"

    @property
    def cfg(self) -> bool:
        return self.guidance_scale != 1.0

    def _forward(self, x: torch.Tensor, t: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        """Guided raw output of one micro-batch (guiding here is exact: the conversions are affine)."""
        b = self.backend
        if self.cfg:
            cond = b.encode(list(prompts) + [self.negative_prompt] * len(prompts))
            out = b.forward(torch.cat([x, x]), torch.cat([t, t]), cond).float()
            out_c, out_u = out.chunk(2)
            out = out_u + self.guidance_scale * (out_c - out_u)
        else:
            out = b.forward(x, t, b.encode(list(prompts))).float()
        self.counter.add(self.stage, nfe=len(x) * (2 if self.cfg else 1))
        return out

    def __call__(
        self,
        x: torch.Tensor,
        t: float | torch.Tensor,
        alpha: float | torch.Tensor,
        sigma: float | torch.Tensor,
        prompts: Sequence[str],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, eps) for a batch of chunks x (n, ...) at timestep t with x = alpha x0 + sigma eps."""
        n = len(x)
        if len(prompts) != n:
            raise ValueError(f"{len(prompts)} prompts for {n} chunks")
        tt = torch.as_tensor(t, dtype=torch.float32, device=x.device).expand(n)
        m = self.micro_batch
        out = torch.cat(
            [self._forward(x[i : i + m], tt[i : i + m], list(prompts[i : i + m])) for i in range(0, n, m)]
        )
        a = torch.as_tensor(alpha, dtype=torch.float32, device=x.device)
        s = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
        return to_x0_eps(out, x, a, s, self.backend.prediction)
