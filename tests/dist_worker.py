"""One rank of the multi-process tests, started with torchrun's environment (RANK, WORLD_SIZE, ...).

    python dist_worker.py samplers OUT CASE...  rank 0 first runs every case alone (no process group
                                                yet: the single-process reference), then all ranks
                                                run them in the group; each saves OUT/rank{r}.pt
    python dist_worker.py cli ARG...            syncos.cli.main(ARG...), with model "gaussian" resolved
                                                to a GaussianBackend whose frames can be encoded
    python dist_worker.py bench SUITE OUT       syncos.bench.run_suite in the group, every model a
                                                GaussianBackend, log lines on stdout

$SYNCOS_TEST_FAULT="RANK:CALL:exit|hang" makes that rank exit (or hang) at its CALL-th forward pass.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from gaussian_backend import GaussianBackend
from syncos import api, distributed
from syncos.samplers import SamplerOptions, SynCoSOptions, sample
from syncos.schedules import FlowSchedule
from syncos.timeline import plan_timeline


class DecodableGaussian(GaussianBackend):
    """Frames of 12x12 pixels (H.264 wants even sizes; the Gaussian latent is 3x3)."""

    def decode(self, latent):
        for frame in super().decode(latent):
            yield np.kron(frame, np.ones((4, 4, 1), dtype=np.uint8))


def make_plan(backend: Any, frames: tuple[int, ...], global_prompt: str = "a global prompt"):
    events = [SimpleNamespace(prompt=f"event {i}", frames=n, seconds=None) for i, n in enumerate(frames)]
    return plan_timeline(
        global_prompt,
        events,
        chunk_length=backend.chunk_length,
        stride=backend.default_stride,
        fps=backend.fps,
        latent_frames=backend.latent_frames,
        video_frames=backend.video_frames,
    )


@functools.cache
def _toyworld():
    from syncos.backends.toyworld import ToyWorldBackend

    b = ToyWorldBackend()  # shared by the cases: it caches its prompt tables, slow to build
    events = [SimpleNamespace(prompt=p, frames=8, seconds=None) for p in ("the ball jumps", "night falls")]
    plan = plan_timeline(
        "a red ball on green grass", events, chunk_length=b.chunk_length, stride=b.default_stride,
        fps=b.fps, latent_frames=b.latent_frames, video_frames=b.video_frames,
    )  # fmt: skip
    return b, plan


def _cogvideox_tiny():
    sys.path.insert(0, str(Path(__file__).parent / "diffusers"))
    from diffusers_tiny import load

    b = load("cogvideox")
    return b, make_plan(b, (9, 9))


# name -> () -> (backend, plan, method, options); chunk counts in the comments (L 6, stride 2)
CASES: dict[str, Callable[[], tuple[Any, Any, str, Any]]] = {
    "codenoise": lambda: (  # 6 chunks, CFG: 12 passes a call
        (b := GaussianBackend()), make_plan(b, (8, 8)), "codenoise",
        SamplerOptions(steps=4, guidance_scale=2.0, micro_batch=2),
    ),
    "codenoise-uneven": lambda: (  # 5 chunks, no CFG: 5 passes, uneven over 2 or 3 ranks
        (b := GaussianBackend()), make_plan(b, (7, 7)), "codenoise",
        SamplerOptions(steps=4, guidance_scale=1.0),
    ),
    "codenoise-one-chunk": lambda: (  # 1 pass: more ranks than work
        (b := GaussianBackend()), make_plan(b, (6,)), "codenoise",
        SamplerOptions(steps=3, guidance_scale=1.0),
    ),
    "independent": lambda: (
        (b := GaussianBackend()), make_plan(b, (8, 6)), "independent",
        SamplerOptions(steps=3, guidance_scale=2.0),
    ),
    "syncos-minibatch": lambda: (  # stage 2: 3 of 6 chunks a CSD iteration
        (b := GaussianBackend()), make_plan(b, (8, 8)), "syncos",
        SynCoSOptions(steps=4, guidance_scale=2.0, iterations=3, t_min=500, minibatch=3, micro_batch=2),
    ),
    "syncos-flow": lambda: (  # stage 2: one chunk a CSD iteration, no CFG: 1 pass
        (b := GaussianBackend(prediction="flow", schedule=FlowSchedule(shift=3.0), layout="fchw")),
        make_plan(b, (7, 7)), "syncos",
        SynCoSOptions(steps=4, guidance_scale=1.0, iterations=2, t_min=300, minibatch=1),
    ),
    "fifo": lambda: (
        (b := GaussianBackend()), make_plan(b, (8, 6)), "fifo", None,
    ),
    "extend-flow": lambda: (  # one chunk at a time, no CFG: 1 pass, fewer than the ranks
        (b := GaussianBackend(prediction="flow", schedule=FlowSchedule(shift=3.0), layout="fchw")),
        make_plan(b, (8, 6)), "extend", None,
    ),
    "toyworld-codenoise": lambda: (*_toyworld(), "codenoise", SamplerOptions(steps=2)),
    "toyworld-syncos": lambda: (
        *_toyworld(), "syncos", SynCoSOptions(steps=2, iterations=2, t_min=0, minibatch=1),
    ),
    "cogvideox-syncos": lambda: (
        *_cogvideox_tiny(), "syncos",
        SynCoSOptions(steps=2, guidance_scale=3.0, iterations=2, t_min=0, minibatch=3, micro_batch=2),
    ),
}  # fmt: skip


def run_case(name: str) -> dict[str, Any]:
    backend, plan, method, options = CASES[name]()
    r = sample(method, backend, plan, options, seed=5)
    return {"latent": r.latent.float().cpu(), "nfe": r.nfe}


def inject_fault(backend: Any) -> Any:
    """Wrap forward() so that one rank exits or hangs at a given call ($SYNCOS_TEST_FAULT)."""
    spec = os.environ.get("SYNCOS_TEST_FAULT")
    if not spec:
        return backend
    rank, call, kind = spec.split(":")
    if int(rank) != distributed.rank():
        return backend
    forward, calls = backend.forward, [0]

    def faulty(*args: Any) -> torch.Tensor:
        calls[0] += 1
        if calls[0] == int(call):
            if kind == "exit":
                os._exit(17)
            time.sleep(3600)
        return forward(*args)

    backend.forward = faulty
    return backend


def gaussian_loader(real: Callable[..., Any]) -> Callable[..., Any]:
    """syncos.api.load_backend, with model "gaussian" resolved to a DecodableGaussian."""

    def load(model: str | None = None, **settings: Any) -> Any:
        return inject_fault(DecodableGaussian() if model == "gaussian" else real(model, **settings))

    return load


def main(argv: list[str]) -> int:
    mode, *rest = argv
    if mode == "samplers":
        out, names = Path(rest[0]), rest[1:]
        saved: dict[str, Any] = {}
        if int(os.environ["RANK"]) == 0:  # before the group exists: the single-process reference
            saved["ref"] = {n: run_case(n) for n in names}
        with distributed.launched():
            assert distributed.world_size() == int(os.environ["WORLD_SIZE"])
            saved["dist"] = {n: run_case(n) for n in names}
            torch.save(saved, out / f"rank{distributed.rank()}.pt")
        return 0
    if mode == "bench":
        from syncos.bench import load_suite, run_suite

        with distributed.launched():
            run_suite(load_suite(rest[0]), rest[1], load=lambda model, **_: GaussianBackend(), log=print)
        return 0
    if mode == "cli":
        from syncos import cli

        api.load_backend = gaussian_loader(api.load_backend)
        return cli.main(rest)
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
