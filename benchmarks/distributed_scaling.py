"""Speed-up of chunk-parallel sampling: one process against N processes (torchrun, gloo on CPU).

    python benchmarks/distributed_scaling.py                     # examples/ball_story.yaml, 10 steps
    python benchmarks/distributed_scaling.py --configs 1x1 2x1 --steps 10 --repeat 2

A config PxT samples the scenario on P processes with T threads each (P > 1 through
``python -m torch.distributed.run --standalone``), exactly as ``syncos generate`` does
(``syncos.api.generate`` inside ``syncos.distributed.launched``), without decoding, after a
one-step warm-up run (one-time imports and model tables are not timed). Per config it
reports the sampling wall time on rank 0 (best of --repeat), the speed-up over the first config,
the CPU seconds of the busiest rank (what a rank would take on a core of its own: the speed-up a
machine that is not shared would show), whether the latent is bitwise the first config's, and the
bytes one rank receives per stage-1 all-gather.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(scenario: str, overrides: list[str], out: str) -> None:
    """One rank: sample, then rank 0 writes every rank's (wall, cpu) seconds and the latent's hash."""
    import torch.distributed as dist

    from syncos import distributed
    from syncos.api import generate
    from syncos.scenario import load_scenario

    with distributed.launched():
        sc = load_scenario(scenario, overrides)
        generate(load_scenario(scenario, [*overrides, "sampler.steps=1"]))  # one-time imports, tables
        wall, cpu = time.perf_counter(), time.process_time()
        gen = generate(sc)
        times = (time.perf_counter() - wall, time.process_time() - cpu)
        every = [times]
        if distributed.world_size() > 1:
            every = [None] * distributed.world_size()
            dist.all_gather_object(every, times)
        if distributed.is_main():
            sha = hashlib.sha256(gen.latent.contiguous().numpy().tobytes()).hexdigest()
            Path(out).write_text(json.dumps({"times": every, "sha": sha, "nfe": gen.nfe}))


def gather_bytes(scenario: str, overrides: list[str], world: int) -> tuple[int, int, int]:
    """(chunks, passes of one stage-1 call, bytes one rank receives per stage-1 all-gather)."""
    from syncos.api import make_plan
    from syncos.backends import load_backend
    from syncos.scenario import load_scenario

    sc = load_scenario(scenario, overrides)
    backend = load_backend(sc.model, **sc.model_settings())
    plan = make_plan(sc, backend)
    numel = math.prod(backend.latent_shape(plan.chunk_length))
    passes = plan.num_chunks * (2 if sc.sampler_options().guidance_scale != 1.0 else 1)
    return plan.num_chunks, passes, (world - 1) * -(-passes // world) * numel * 4  # float32 outputs


def run(config: str, scenario: str, overrides: list[str]) -> dict:
    procs, threads = (int(v) for v in config.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable]
        if procs > 1:
            cmd += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"]
        cmd += [__file__, "--worker", out.as_posix(), "--scenario", scenario]
        cmd += [a for o in overrides for a in ("--set", o)]
        subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)}, cwd=ROOT)
        result = json.loads(out.read_text())
    walls, cpus = zip(*result["times"], strict=True)
    return {"config": config, "procs": procs, "wall": walls[0], "cpu": max(cpus), **result}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default="examples/ball_story.yaml")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--configs", nargs="+", default=["1x1", "2x1"], help="PROCSxTHREADS")
    p.add_argument("--repeat", type=int, default=1, help="runs per config; the fastest is reported")
    p.add_argument("--set", action="append", default=[], help="extra scenario overrides")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.scenario, args.set, args.worker)
    overrides = [f"sampler.steps={args.steps}", *args.set]
    rows = []
    for config in args.configs:
        runs = [run(config, args.scenario, overrides) for _ in range(args.repeat)]
        rows.append(min(runs, key=lambda r: r["wall"]))
    base = rows[0]
    print(f"\n{args.scenario}, {' '.join(overrides)}; NFE {base['nfe']}; best of {args.repeat}\n")
    head = (
        "procs x threads | sampling s (rank 0) | speed-up | CPU s, busiest rank | CPU speed-up | same latent"
    )
    print(f"| {head} | recv MB / stage-1 gather |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        chunks, passes, nbytes = gather_bytes(args.scenario, overrides, r["procs"])
        print(
            f"| {r['config']} | {r['wall']:.1f} | {base['wall'] / r['wall']:.2f}x | {r['cpu']:.1f} "
            f"| {base['cpu'] / r['cpu']:.2f}x | {'yes' if r['sha'] == base['sha'] else 'NO'} "
            f"| {nbytes / 1e6:.2f} ({chunks} chunks, {passes} passes) |"
        )


if __name__ == "__main__":
    main()
