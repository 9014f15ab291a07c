"""Memory that is measured, not guessed: the first forward's peak picks ``micro_batch``.

A run holds the long latent with its working copies (estimated per latent frame, ``syncos.api``)
and, while the network runs, the activations of ``micro_batch`` chunks (twice that many passes
with CFG). The activations are what a constant calibrated on one model cannot know, so on CUDA
one forward call of one chunk is run before sampling and its peak is read with
``torch.cuda.max_memory_allocated``: the largest ``micro_batch`` whose activations fit in the
free memory with a margin is taken (unless the scenario sets it), and a run where even one chunk
does not fit is refused before sampling. On the CPU there is no peak counter of the allocator
(the process's peak RSS never goes down, so it cannot isolate one call), so the check is CUDA-only
there and the latent estimate of ``syncos.api.check_fits`` stands alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch

from syncos.backends.base import Backend
from syncos.denoiser import Counter, Denoiser
from syncos.errors import UserError
from syncos.samplers import SamplerOptions
from syncos.timeline import Plan

MARGIN = 0.8  # of the free memory a run may use: the allocator fragments, other processes grow

# (backend, plan, options) -> (free bytes before the call, peak bytes one chunk's passes add), or None
Probe = Callable[[Backend, Plan, SamplerOptions], "tuple[int, int] | None"]


@dataclass(frozen=True)
class MemoryCheck:
    """The figures of the check, as ``syncos plan`` prints them."""

    device: str
    free: int  # bytes free on the device with the model loaded
    resident: int  # the long latent and its working copies (estimated)
    per_chunk: int  # measured: peak bytes one chunk's forward adds (both passes with CFG)
    micro_batch: int
    chosen: bool  # picked here; False: the scenario set sampler.micro_batch

    def format(self) -> str:
        gib = 2**30
        how = "picked: the largest that fits" if self.chosen else "sampler.micro_batch, as set"
        need = self.resident + self.micro_batch * self.per_chunk
        return (
            f"memory on {self.device}: {self.free / gib:.2f} GiB free with the model loaded; a forward adds "
            f"{self.per_chunk / gib:.3f} GiB per chunk (measured), the long latent and its copies "
            f"{self.resident / gib:.3f} GiB; micro_batch {self.micro_batch} ({how}) needs "
            f"{need / gib:.2f} GiB of the {MARGIN:.0%} usable"
        )


def pick_micro_batch(free: int, resident: int, per_chunk: int, given: int | None, chunks: int) -> int:
    """The largest micro-batch (at most ``chunks``) that fits in ``MARGIN * free``, or ``given``;
    refuses when even one chunk does not fit."""
    room = MARGIN * free - resident
    fits = int(room // per_chunk) if per_chunk > 0 else chunks
    if fits < 1:
        raise UserError(
            f"not even one chunk fits: a forward of one chunk adds {per_chunk / 2**30:.2f} GiB (measured) to "
            f"{resident / 2**30:.2f} GiB for the long latent, of {MARGIN * free / 2**30:.2f} GiB usable "
            f"({free / 2**30:.2f} GiB free); lower the resolution or the chunk length, or use cpu_offload"
        )
    if given is not None:
        if given > fits:
            raise UserError(
                f"sampler.micro_batch: {given} chunks per call need about "
                f"{(resident + given * per_chunk) / 2**30:.2f} GiB, {MARGIN * free / 2**30:.2f} GiB usable; "
                f"at most {fits} fit (leave sampler.micro_batch out to have it picked)"
            )
        return given
    return max(1, min(fits, chunks))


def measure(backend: Backend, plan: Plan, options: SamplerOptions) -> tuple[int, int] | None:
    """Free bytes and the peak one chunk's forward adds, on CUDA; None elsewhere (module docstring)."""
    device = torch.device(backend.device)
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    free, _ = torch.cuda.mem_get_info(device)
    x = torch.randn((1, *backend.latent_shape(plan.chunk_length))).to(device)
    grid = backend.schedule.grid(options.steps)
    t, a, s = (float(v[0]) for v in (grid.timesteps, grid.alpha, grid.sigma))
    den = Denoiser(
        backend, options.guidance_scale, options.negative_prompt, 1, Counter(), steps=options.steps
    )
    den(x, t, a, s, [plan.chunk_prompts[0]])  # the prompts are encoded outside the measured call
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    with torch.no_grad():
        den(x, t, a, s, [plan.chunk_prompts[0]])
    torch.cuda.synchronize(device)
    return int(free), int(torch.cuda.max_memory_allocated(device) - base)


def check(
    backend: Backend,
    plan: Plan,
    options: SamplerOptions,
    resident: int,
    given: bool,
    probe: Probe | None = None,
) -> tuple[SamplerOptions, MemoryCheck | None]:
    """The options with ``micro_batch`` picked from a measured forward, and the check's figures;
    the options unchanged and None where nothing can be measured (CPU)."""
    figures = (probe or measure)(backend, plan, options)
    if figures is None:
        return options, None
    free, per_chunk = figures
    m = pick_micro_batch(free, resident, per_chunk, options.micro_batch if given else None, plan.num_chunks)
    result = MemoryCheck(str(backend.device), free, resident, per_chunk, m, not given)
    return dataclasses.replace(options, micro_batch=m), result


__all__ = ["MARGIN", "MemoryCheck", "check", "measure", "pick_micro_batch"]
