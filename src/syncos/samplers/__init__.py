"""Samplers: plain functions ``fn(backend, plan, options, seed, callback, checkpoint, latents)``
returning a ``SampleResult``.

Each writes out one step of its method and hands it to :meth:`syncos.samplers.run.Run.loop`,
which owns the resume, the checkpoints, the progress callback and the cancel for all of them.
"""

from __future__ import annotations

from typing import Any

import torch

from syncos.checkpoint import Checkpoint
from syncos.samplers.codenoise import sample_codenoise
from syncos.samplers.extend import ExtendOptions, sample_extend
from syncos.samplers.fifo import FIFOOptions, sample_fifo
from syncos.samplers.independent import sample_independent
from syncos.samplers.options import SamplerOptions
from syncos.samplers.run import Callback, Cancelled, SampleResult, Step
from syncos.samplers.syncos import SynCoSOptions, sample_syncos

# name -> (function, its options dataclass)
SAMPLERS: dict[str, tuple[Any, type[SamplerOptions]]] = {
    "independent": (sample_independent, SamplerOptions),
    "codenoise": (sample_codenoise, SamplerOptions),
    "syncos": (sample_syncos, SynCoSOptions),
    "fifo": (sample_fifo, FIFOOptions),
    "extend": (sample_extend, ExtendOptions),
}

__all__ = [
    "SAMPLERS",
    "Callback",
    "Cancelled",
    "FIFOOptions",
    "SampleResult",
    "SamplerOptions",
    "Step",
    "SynCoSOptions",
    "sample",
]


def sample(
    method: str,
    backend,
    plan,
    options: SamplerOptions | None = None,
    seed: int = 0,
    callback: Callback | None = None,
    checkpoint: Checkpoint | None = None,
    latents: torch.Tensor | None = None,
) -> SampleResult:
    """Run the sampler called ``method``; ``options`` default to that sampler's own defaults.

    ``checkpoint``: the store a resumable run restores from and writes to (:mod:`syncos.checkpoint`);
    ``latents``: the long latent's initial noise instead of the first draw (``Run.randn``).
    """
    if method not in SAMPLERS:
        raise ValueError(f"method {method!r} is not known; use one of {', '.join(SAMPLERS)}")
    fn, options_type = SAMPLERS[method]
    options = options if options is not None else options_type()
    return fn(backend, plan, options, seed, callback, checkpoint, latents)
