"""Samplers: plain functions ``fn(backend, plan, options, seed, callback) -> SampleResult``."""

from __future__ import annotations

from typing import Any

from syncos.samplers.codenoise import sample_codenoise
from syncos.samplers.common import Callback, Cancelled, SampleResult, SamplerOptions, Step
from syncos.samplers.fifo import FIFOOptions, sample_fifo
from syncos.samplers.independent import sample_independent
from syncos.samplers.syncos import SynCoSOptions, sample_syncos

# name -> (function, its options dataclass)
SAMPLERS: dict[str, tuple[Any, type[SamplerOptions]]] = {
    "independent": (sample_independent, SamplerOptions),
    "codenoise": (sample_codenoise, SamplerOptions),
    "syncos": (sample_syncos, SynCoSOptions),
    "fifo": (sample_fifo, FIFOOptions),
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
) -> SampleResult:
    """Run the sampler called ``method``; ``options`` default to that sampler's own defaults."""
    if method not in SAMPLERS:
        raise ValueError(f"method {method!r} is not known; use one of {', '.join(SAMPLERS)}")
    fn, options_type = SAMPLERS[method]
    return fn(backend, plan, options if options is not None else options_type(), seed, callback)
