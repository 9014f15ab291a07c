"""How the diffusers backends scale with video length, measured on this machine with the tiny models.

For every family: seconds per denoising step and peak resident memory of sampling + tiled decoding
at 1x, 4x and 10x the native clip (each measurement in a fresh subprocess so peaks do not mix),
and the network evaluations per stage of a 4x video at the *real* models' settings (50 steps,
guidance 6, SynCoS defaults), counted by running the real samplers on a shape-only stand-in.

    HF_HUB_OFFLINE=1 python benchmarks/diffusers_scaling.py [--steps 3] [--families wan,ltx]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(HERE, "..", "tests", "diffusers")
FAMILIES = ("cogvideox", "wan", "ltx", "animatediff", "modelscope")
# the real models' native clip (latent frames), stride, temporal factor (0 = per-frame VAE)
REAL = {
    "cogvideox": (13, 4, 4, 49),
    "wan": (21, 6, 4, 81),
    "ltx": (21, 6, 8, 161),
    "animatediff": (16, 4, 0, 16),
    "modelscope": (16, 4, 0, 16),
}


def measure(family: str, mult: int, steps: int, method: str) -> dict:
    """One run in this process: sample a mult-x video with ``method`` and decode it."""
    sys.path.insert(0, TESTS)
    import torch
    from diffusers_tiny import load, make_plan

    from syncos.samplers import SamplerOptions, SynCoSOptions, sample

    torch.set_num_threads(1)
    backend = load(family)
    plan = make_plan(backend, [backend.video_frames(backend.chunk_length)] * mult)
    if method == "syncos":
        opts = SynCoSOptions(steps=steps, guidance_scale=6.0, iterations=5, t_min=0.0)
    else:
        opts = SamplerOptions(steps=steps, guidance_scale=6.0)
    start = time.perf_counter()
    res = sample(method, backend, plan, opts, seed=0)
    sampling = time.perf_counter() - start
    start = time.perf_counter()
    frames = sum(1 for _ in backend.decode(res.latent))
    decoding = time.perf_counter() - start
    return {
        "family": family,
        "mult": mult,
        "method": method,
        "latent_frames": plan.latent_frames,
        "chunks": plan.num_chunks,
        "frames": frames,
        "s_per_step": sampling / steps,
        "decode_s": decoding,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


class _ShapeOnly:
    """A backend with a real model's frame bookkeeping and a 1x1-pixel random 'network' (counts NFE)."""

    def __init__(self, family: str):
        import torch

        from syncos.schedules import FlowSchedule, VPSchedule

        L, s, r, _ = REAL[family]
        self.name, self.prediction = family, ("v" if family == "cogvideox" else "eps")
        self.schedule = VPSchedule.cogvideox() if family == "cogvideox" else VPSchedule.stable_diffusion()
        if family in ("wan", "ltx"):
            self.prediction, self.schedule = "flow", FlowSchedule(shift=3.0)
        self.chunk_length, self.default_stride, self.r = L, s, r
        self.frame_axis, self.fps, self.device = 1, 8.0, torch.device("cpu")
        self._g = torch.Generator().manual_seed(0)

    def latent_shape(self, n):
        return (1, n, 1, 1)

    def latent_frames(self, v):
        return v if not self.r else 1 + -(-(v - 1) // self.r)

    def video_frames(self, n):
        return n if not self.r else 1 + self.r * (n - 1)

    def encode(self, prompts):
        return list(prompts)

    def forward(self, x, t, cond):
        import torch

        return torch.randn(x.shape, generator=self._g)

    def decode(self, latent):
        return iter(())


def nfe_4x(family: str) -> dict:
    from types import SimpleNamespace

    from syncos.samplers import SamplerOptions, SynCoSOptions, sample
    from syncos.timeline import plan_timeline

    b = _ShapeOnly(family)
    native = REAL[family][3]
    events = [SimpleNamespace(prompt=f"event {i}", frames=native, seconds=None) for i in range(4)]
    plan = plan_timeline(
        "g",
        events,
        chunk_length=b.chunk_length,
        stride=b.default_stride,
        fps=8.0,
        latent_frames=b.latent_frames,
        video_frames=b.video_frames,
    )
    out = {"latent_frames": plan.latent_frames, "chunks": plan.num_chunks}
    for method in ("independent", "codenoise", "syncos"):
        opts = SynCoSOptions(guidance_scale=6.0) if method == "syncos" else SamplerOptions(guidance_scale=6.0)
        out[method] = sample(method, b, plan, opts, seed=0).nfe
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--methods", default="codenoise,syncos")
    ap.add_argument("--mults", default="1,4,10")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # family:mult:method, run in a subprocess
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.one:
        fam, mult, method = args.one.split(":")
        print(json.dumps(measure(fam, int(mult), args.steps, method)))
        return
    rows = []
    for fam in args.families.split(","):
        for method in args.methods.split(","):
            for mult in map(int, args.mults.split(",")):
                cmd = [
                    sys.executable,
                    __file__,
                    "--one",
                    f"{fam}:{mult}:{method}",
                    "--steps",
                    str(args.steps),
                ]
                p = subprocess.run(
                    cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
                )
                if p.returncode:
                    print(p.stderr[-2000:], file=sys.stderr)
                    continue
                row = json.loads(p.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(
                    f"{fam:12s} {method:10s} {mult:3d}x  F={row['latent_frames']:4d} "
                    f"chunks={row['chunks']:3d} {row['s_per_step']:.3f} s/step  "
                    f"decode {row['decode_s']:.2f} s  peak {row['peak_mb']:.0f} MB",
                    flush=True,
                )
    nfe = {fam: nfe_4x(fam) for fam in args.families.split(",")}
    for fam, d in nfe.items():
        print(f"NFE 4x {fam}: {json.dumps(d)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": rows, "nfe_4x": nfe}, f, indent=2)


if __name__ == "__main__":
    main()
