"""Step time, network share and peak memory of codenoise and syncos at real model sizes, no weights.

Timing and memory do not depend on the weights' values, so the transformer and VAE of each
family are built at their published configurations (benchmarks/configs/real_size.json, which
names its source) with random weights. Text encoding is left out (random embeddings of the
encoder's shape stand in: it runs once per prompt, outside the steps). For each family, method
and length (1x, 4x, 10x the native clip) one run of a few steps reports seconds per step,
network evaluations per second, the share of step time spent outside ``forward()`` (fusion,
CSD, solver, noise: the goal is < 5 %), and with CUDA the peak memory of sampling plus tiled
decoding next to the size of the long latent itself.

    python benchmarks/real_size.py --device cuda [--dtype bfloat16] [--compile]   # real size
    python benchmarks/real_size.py --tiny                                         # tiny models, CPU

Without CUDA the default is --tiny: the test fixtures' tiny random pipelines of the same
families (tests/diffusers/diffusers_tiny.py), so the script runs in CI and cannot rot.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "configs" / "real_size.json"
TINY = {"cogvideox-2b": "cogvideox", "wan2.1-1.3b": "wan-unipc", "ltx-video": "ltx"}
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def _fake_encode(family: str, dim: int, dtype: torch.dtype, device: str):
    """encode_prompt of the family's pipeline, returning random embeddings of the encoder's shape."""

    def encode(prompts, *args, max_sequence_length=128, **kwargs):
        g = torch.Generator().manual_seed(len(prompts))
        e = torch.randn(len(prompts), max_sequence_length, dim, generator=g).to(device, dtype)
        if family == "ltx-video":
            return e, torch.ones(e.shape[:2], dtype=torch.long, device=device), None, None
        return e, None

    return encode


def build_real(name: str, device: str, dtype: torch.dtype, layers: int | None = None, size=None):
    """A pipeline with the published transformer / VAE / scheduler config of ``name``, random weights.

    ``layers`` / ``size`` shrink it (fewer transformer blocks, smaller frames) for a quick check.
    """
    import diffusers
    from syncos.backends.diffusers import load_diffusers_backend

    cfg = json.loads(CONFIGS.read_text())[name]
    if cfg["pipeline"] == "OpenSoraPlan":
        return build_opensora_plan(cfg, device, dtype, layers, size)

    def make(part: str):
        c = {k: v for k, v in cfg[part].items() if k != "_class_name"}
        if part == "transformer" and layers:
            c["num_layers"] = layers
        cls = getattr(diffusers, cfg[part]["_class_name"])
        return cls.from_config(c) if part == "scheduler" else cls(**c)

    def cast(model):
        """To ``dtype``, keeping the modules diffusers keeps in float32 when it loads in that dtype."""
        model.to(dtype)
        keep = getattr(model, "_keep_in_fp32_modules", None) or []
        for path, module in model.named_modules():
            if any(k in path.split(".") for k in keep):
                module.float()
        return model.eval()

    with torch.device(device):
        transformer, vae = cast(make("transformer")), cast(make("vae"))
    pipe = getattr(diffusers, cfg["pipeline"])(
        tokenizer=None, text_encoder=None, vae=vae, transformer=transformer, scheduler=make("scheduler")
    )
    pipe.encode_prompt = _fake_encode(name, cfg["text"]["dim"], dtype, device)
    h, w = size or cfg["size"]
    options = {**cfg["model_options"], "native_frames": cfg["native_frames"]}
    if name == "cogvideox-2b":
        options.pop("native_frames")  # CogVideoX reads it from the transformer config
    return load_diffusers_backend(None, pipe=pipe, height=h, width=w, model_options=options)


def build_opensora_plan(cfg: dict, device: str, dtype: torch.dtype, layers: int | None, size):
    """Open-Sora Plan v1.3 from its configs (not a diffusers pipeline), random weights and embeddings."""
    import diffusers
    from syncos.backends.opensora_plan.backend import OpenSoraPlanBackend, OpenSoraPlanModules
    from syncos.backends.opensora_plan.transformer import OpenSoraPlanTransformer
    from syncos.backends.opensora_plan.wfvae import WFVAE

    config = {k: v for k, v in cfg["transformer"].items() if k != "_class_name"}
    if layers:
        config["num_layers"] = layers
    with torch.device(device):
        transformer = OpenSoraPlanTransformer.from_config(config).to(dtype).eval()
        vae = WFVAE({k: v for k, v in cfg["vae"].items() if k != "_class_name"}).to(dtype).eval()
    sched = cfg["scheduler"]
    scheduler = getattr(diffusers, sched["_class_name"])(**{k: v for k, v in sched.items() if k[0] != "_"})
    h, w = size or cfg["size"]
    options = {**cfg["model_options"], "native_frames": cfg["native_frames"]}
    modules = OpenSoraPlanModules(transformer, vae, None, None, scheduler)
    backend = OpenSoraPlanBackend(modules, height=h, width=w, fps=None, model_options=options)
    dim = cfg["text"]["dim"]

    def encode(prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(len(prompts))
        states = torch.randn(len(prompts), backend.max_sequence_length, dim, generator=g).to(device, dtype)
        return states, torch.ones(states.shape[:2], dtype=torch.long, device=device)

    backend._encode_uncached = encode
    return backend


def build_tiny(name: str):
    sys.path.insert(0, str(HERE.parent / "tests" / "diffusers"))
    from diffusers_tiny import load

    return load(TINY[name])


def measure(
    backend, name: str, mult: int, method: str, steps: int, iterations: int, decode: bool = True
) -> dict:
    """One run: ``steps`` steps of a mult-x video, then tiled decoding; forward() timed apart."""
    sys.path.insert(0, str(HERE.parent / "tests" / "diffusers"))
    from diffusers_tiny import make_plan

    from syncos.samplers import SamplerOptions, SynCoSOptions, sample

    cuda = backend.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    forward, net = backend.forward, [0.0]

    def timed(x, t, cond):
        sync()
        start = time.perf_counter()
        out = forward(x, t, cond)
        sync()
        net[0] += time.perf_counter() - start
        return out

    backend.forward = timed
    plan = make_plan(backend, [backend.video_frames(backend.chunk_length)] * mult)
    if method == "syncos":  # t_min = 0: every step pays stage 2, the method's full per-step cost
        opts = SynCoSOptions(steps=steps, guidance_scale=6.0, iterations=iterations, t_min=0.0)
    else:
        opts = SamplerOptions(steps=steps, guidance_scale=6.0)
    backend.encode(list(plan.prompts) + [""])  # text encoding is not part of a step
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    sync()
    start = time.perf_counter()
    try:
        res = sample(method, backend, plan, opts, seed=0)
        sync()
        seconds = time.perf_counter() - start
        frames = sum(1 for _ in backend.decode(res.latent)) if decode else 0
    finally:
        backend.forward = forward
    nfe = sum(res.nfe.values())
    return {
        "model": name,
        "mult": mult,
        "method": method,
        "latent_frames": plan.latent_frames,
        "chunks": plan.num_chunks,
        "frames": frames,
        "s_per_step": seconds / steps,
        "nfe_per_s": nfe / seconds,
        "outside_net": 1 - net[0] / seconds,
        "peak_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "latent_gb": res.latent.numel() * res.latent.element_size() / 2**30,
    }


def table(rows: list[dict]) -> str:
    out = [
        "| model | method | length | latent frames | chunks | s/step | NFE/s | outside forward() "
        "| peak GPU GB (latent) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        peak = "-" if r["peak_gb"] is None else f"{r['peak_gb']:.2f} ({r['latent_gb']:.3f})"
        out.append(
            f"| {r['model']} | {r['method']} | {r['mult']}x | {r['latent_frames']} | {r['chunks']} | "
            f"{r['s_per_step']:.3f} | {r['nfe_per_s']:.1f} | {100 * r['outside_net']:.1f} % | {peak} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tiny", action="store_true", help="the tiny test models (default without CUDA)")
    names = list(json.loads(CONFIGS.read_text()))
    p.add_argument("--models", nargs="+", default=list(TINY), choices=names)
    p.add_argument("--methods", nargs="+", default=["codenoise", "syncos"])
    p.add_argument("--mults", nargs="+", type=int, default=[1, 4, 10], help="lengths, in native clips")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--iterations", type=int, default=2, help="syncos CSD iterations per step")
    p.add_argument("--dtype", choices=list(DTYPES), default=None, help="default bfloat16 on CUDA")
    p.add_argument("--compile", action="store_true", help="torch.compile the transformer")
    p.add_argument(
        "--layers", type=int, help="real configs with this many transformer blocks (a quick check)"
    )
    p.add_argument("--size", help="real configs at HxW instead of the published size (a quick check)")
    p.add_argument("--no-decode", action="store_true", help="skip the tiled decoding")
    p.add_argument("--json", help="also write the rows to this file")
    args = p.parse_args(argv)
    tiny = args.tiny or (args.device == "cpu" and not (args.layers or args.size))
    dtype = DTYPES[args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if tiny and set(args.models) - set(TINY):
        p.error(f"no tiny model for {', '.join(sorted(set(args.models) - set(TINY)))}; use --layers / --size")
    rows = []
    for name in args.models:
        size = tuple(int(v) for v in args.size.split("x")) if args.size else None
        backend = build_tiny(name) if tiny else build_real(name, args.device, dtype, args.layers, size)
        if args.compile:
            backend.pipe.transformer = torch.compile(backend.pipe.transformer)
        for method in args.methods:  # warm-up (lazy initialisation, kernel selection), not reported
            measure(backend, name, min(args.mults), method, 2, 1, decode=False)  # LTX needs 2 steps
        for mult in args.mults:
            for method in args.methods:
                rows.append(
                    measure(backend, name, mult, method, args.steps, args.iterations, not args.no_decode)
                )
                print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
        del backend
    what = "tiny random models" if tiny else "published configurations, random weights, " + str(dtype)[6:]
    if not tiny and (args.layers or args.size):
        what += f" (shrunk: {args.layers or 'all'} blocks, {args.size or 'published size'})"
    print(f"{args.steps} steps, CFG 6, syncos {args.iterations} CSD iterations at every step; {what}")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
