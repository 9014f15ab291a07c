"""The sampling loop makes no host synchronisation per step (issue 21, section 4), on toyworld.

``host_sync.counting`` simulates a device on the CPU and records every host read of a device
tensor and every upload of host data (``torch.tensor``/``as_tensor`` to a device) made outside
toyworld's own analytic model. Each method runs at S and 2S steps with a progress callback
that, like the command line's, reads only ``step.timestep`` (a python float): the report costs
no read. Reads must be zero; uploads must not grow with the steps (a cached index is made once).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from host_sync import counting, upload_count
from syncos.backends.toyworld import ToyWorldBackend
from syncos.samplers import FIFOOptions, SamplerOptions, SynCoSOptions, sample
from syncos.samplers.csd import stein_direction
from syncos.timeline import plan_timeline


@dataclass
class Ev:
    prompt: str
    frames: int


def two_events(backend):
    events = [Ev("the ball bounces", 6), Ev("the ball rests", 6)]
    return plan_timeline(
        "a red ball on the beach",
        events,
        chunk_length=backend.chunk_length,
        stride=2,
        fps=8,
        latent_frames=backend.latent_frames,
        video_frames=backend.video_frames,
    )


METHODS = {
    "independent": SamplerOptions,
    "codenoise": SamplerOptions,
    # every step synchronised (t_min -1), stop_below 0: the CSD loop must not read its norm
    "syncos": lambda steps: SynCoSOptions(steps=steps, iterations=2, t_min=-1.0),
    "fifo": FIFOOptions,
}


def counted_run(monkeypatch, backend, plan, method, steps):
    seen = []
    with counting(monkeypatch) as reads:
        opts = METHODS[method](steps=steps) if isinstance(METHODS[method], type) else METHODS[method](steps)
        sample(method, backend, plan, opts, seed=0, callback=lambda s: seen.append(s.timestep) and None)
    monkeypatch.undo()
    assert seen, "the progress callback was never called"
    return reads


def assert_no_sync_per_step(monkeypatch, backend, plan, method, steps):
    short = counted_run(monkeypatch, backend, plan, method, steps)
    long = counted_run(monkeypatch, backend, plan, method, 2 * steps)
    assert [r for r in short + long if not r.startswith("upload")] == []
    assert upload_count(long) <= upload_count(short), long


@pytest.mark.parametrize("method", list(METHODS))
def test_toyworld_sampling_loop_reads_nothing_back(monkeypatch, method):
    """Fails on the old code for syncos (rbf_kernel's .item(), synchronise's float(norm) at
    stop_below 0) and for every method (the denoiser's torch.tensor(rows, device=) per micro-batch)."""
    b = ToyWorldBackend(chunk_length=4)
    assert_no_sync_per_step(monkeypatch, b, two_events(b), method, 4)


def test_csd_direction_reads_nothing_back(monkeypatch):
    """rbf_kernel's median stays a tensor; kills the old ``torch.quantile(...).item()``."""
    with counting(monkeypatch) as reads:
        x, g = (torch.randn(5, 3, 8).to(torch.device("cpu")) for _ in range(2))
        stein_direction(x, g)
    assert reads == []


def test_the_hook_sees_a_read(monkeypatch):
    """The counter itself: a device tensor read is recorded, a host one is not."""
    with counting(monkeypatch) as reads:
        host = torch.ones(2)
        float(host.sum())
        dev = host.to(torch.device("cpu"))
        float(dev.sum())
        dev.tolist()
        torch.tensor([1, 2], device=dev.device)
    assert [r.split(" at ")[0] for r in reads] == ["__float__", "tolist", "upload"]
