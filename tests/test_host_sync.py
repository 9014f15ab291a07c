"""The sampling loop makes no host synchronisation per step (issue 21, section 4), on toyworld.

``host_sync.counting`` simulates a device on the CPU and records every host read of a device
tensor and every upload of host data (``torch.tensor``/``as_tensor`` to a device) made outside
toyworld's own analytic model. Each method runs at S and 2S steps with a progress callback
that, like the command line's, reads only ``step.timestep`` (a python float): the report costs
no read. No read or upload may grow with the steps (a cached index is uploaded once per
run), and on toyworld there must be no read at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from host_sync import METHODS, assert_no_sync_per_step, counting
from syncos.backends.toyworld import ToyWorldBackend
from syncos.samplers import SynCoSOptions, sample
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


@pytest.mark.parametrize("method", list(METHODS))
def test_toyworld_sampling_loop_reads_nothing_back(monkeypatch, method):
    """Fails on the old code for syncos (rbf_kernel's .item(), synchronise's float(norm) at
    stop_below 0) and for every method (the denoiser's torch.tensor(rows, device=) per micro-batch)."""
    b = ToyWorldBackend(chunk_length=4)
    once = assert_no_sync_per_step(monkeypatch, b, two_events(b), method, 4)
    assert [r for r in once if not r.startswith("upload")] == []  # toyworld encodes on the host


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


def test_stop_below_is_the_one_read_and_only_when_asked(monkeypatch):
    """With stop_below > 0 the CSD loop reads the update's norm once per iteration (its early stop
    needs the number on the host), and nothing else reads."""
    b = ToyWorldBackend(chunk_length=4)
    opts = SynCoSOptions(steps=4, iterations=3, t_min=-1.0, stop_below=0.5)
    with counting(monkeypatch) as reads:
        res = sample("syncos", b, two_events(b), opts, seed=0)
    monkeypatch.undo()
    csd_passes = res.nfe["stage2"] // (2 * two_events(b).num_chunks)  # CFG: two passes per chunk
    assert reads and all(r.startswith("__float__ at ") and "samplers/syncos.py" in r for r in reads), reads
    assert len(reads) == csd_passes
