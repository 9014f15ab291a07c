"""Counting host reads of device tensors on a CPU-only machine (tests/test_host_sync.py, its diffusers twin).

A read of a device tensor (``.item()``, ``.tolist()``, ``float(t)``, ``if t:``, ``.cpu()``,
``.numpy()``) makes the host wait for the device. A CPU run has no device, so one is simulated:
every tensor moved ``.to`` a device, or made by a factory given ``device=`` (a torch.device, as
code gets it from a tensor or a backend; the string "cpu" says host), becomes an
:class:`OnDevice` tensor, and so does every result computed from one (torch's subclass
propagation). The grid, the CPU generator's draws and python floats stay plain host tensors,
which may be read freely. Reads made inside ``syncos/backends/toyworld`` are not counted:
toyworld is an analytic CPU model (it declares ``device = cpu``) whose posterior is meant to be
computed on the host; what is counted is the samplers, the denoiser and the diffusers adapters.
"""

from __future__ import annotations

import os
import traceback
from collections import Counter
from contextlib import contextmanager

import torch

from syncos.samplers import FIFOOptions, SamplerOptions, SynCoSOptions, sample

READS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__")
FACTORIES = ("tensor", "as_tensor", "zeros", "ones", "empty", "full", "arange", "randn", "rand")
UPLOADS = ("tensor", "as_tensor")  # host data copied to the device: a copy from pageable memory may wait
EXEMPT = (os.path.join("syncos", "backends", "toyworld"),)


class OnDevice(torch.Tensor):
    """A CPU tensor standing for one on an accelerator (results of ops on it are OnDevice too)."""


def _where() -> str | None:
    """file:line of the innermost caller outside torch and this module, or None if toyworld made the read."""
    frames = traceback.extract_stack()[:-2]
    if any(e in f.filename for f in frames for e in EXEMPT):
        return None
    for f in reversed(frames):
        if f"{os.sep}torch{os.sep}" not in f.filename and f.filename != __file__:
            return f"{os.path.relpath(f.filename)}:{f.lineno}"
    return "?"


@contextmanager
def counting(monkeypatch):
    """Yield a list of 'what at file:line': one per host read of a device tensor, and one
    'upload at ...' per ``torch.tensor``/``as_tensor`` of host data onto the device.

    The patches stay until ``monkeypatch.undo()`` (called by :func:`counted_run`)."""
    reads: list[str] = []

    inside = []  # torch's subclass dispatch calls the patched method again: count the outer call

    def read(name, original):
        def wrapper(self, *args, **kwargs):
            if not inside and isinstance(self, OnDevice) and (where := _where()):
                reads.append(f"{name} at {where}")
            inside.append(name)
            try:
                out = original(self, *args, **kwargs)
            finally:
                inside.pop()
            return out.as_subclass(torch.Tensor) if isinstance(out, OnDevice) else out  # .cpu(): on the host

        return wrapper

    def device_of(args, kwargs):
        return kwargs.get("device", next((a for a in args if isinstance(a, (str, torch.device))), None))

    def mark(out, device):
        """A torch.device (what code gets from a tensor or a backend) is the device; "cpu" is the host."""
        if device is None or isinstance(out, OnDevice):
            return out
        return out if isinstance(device, str) and device.startswith("cpu") else out.as_subclass(OnDevice)

    def moved(original):
        def to(self, *args, **kwargs):
            device = device_of(args, kwargs)
            if isinstance(self, OnDevice) and isinstance(device, str) and device.startswith("cpu"):
                if where := _where():
                    reads.append(f"to('cpu') at {where}")
                return original(self, *args, **kwargs).as_subclass(torch.Tensor)
            return mark(original(self, *args, **kwargs), device)

        return to

    def factory(name, original):
        def make(*args, **kwargs):
            out = mark(original(*args, **kwargs), kwargs.get("device"))
            host_data = not (args and isinstance(args[0], OnDevice))
            if name in UPLOADS and isinstance(out, OnDevice) and host_data and (where := _where()):
                reads.append(f"upload at {where}")
            return out

        return make

    for name in READS:
        monkeypatch.setattr(torch.Tensor, name, read(name, getattr(torch.Tensor, name)))
    monkeypatch.setattr(torch.Tensor, "to", moved(torch.Tensor.to))
    for name in FACTORIES:
        monkeypatch.setattr(torch, name, factory(name, getattr(torch, name)))
    yield reads


METHODS = {
    "independent": lambda steps, **kw: SamplerOptions(steps=steps, **kw),
    "codenoise": lambda steps, **kw: SamplerOptions(steps=steps, **kw),
    # every step synchronised (t_min -1), stop_below 0: the CSD loop must not read its norm
    "syncos": lambda steps, **kw: SynCoSOptions(steps=steps, iterations=2, t_min=-1.0, **kw),
    "fifo": lambda steps, **kw: FIFOOptions(steps=steps, **kw),
}


def counted_run(monkeypatch, backend, plan, method, steps, **options):
    """The records of one sampler run (and every monkeypatch undone after it)."""
    seen = []
    with counting(monkeypatch) as reads:
        opts = METHODS[method](steps, **options)
        sample(method, backend, plan, opts, seed=0, callback=lambda s: seen.append(s.timestep) and None)
    monkeypatch.undo()
    assert seen, "the progress callback was never called"
    return reads


def assert_no_sync_per_step(monkeypatch, backend, plan, method, steps, **options):
    """Each method's sampling loop at ``steps`` and twice as many, with a progress callback that reads
    only ``step.timestep``: no host read or upload at a site that makes more of them with more
    steps. Returns the longer run's records (reads made once, e.g. encoding a prompt, remain)."""
    short = counted_run(monkeypatch, backend, plan, method, steps, **options)
    long = counted_run(monkeypatch, backend, plan, method, 2 * steps, **options)
    grew = sorted(site for site, n in Counter(long).items() if n > Counter(short)[site])
    assert not grew, f"host reads or uploads that grow with the steps: {grew}"
    return long
