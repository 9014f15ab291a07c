"""Train toyworld-learned on this machine's CPUs: seeded, resumable, data drawn on the fly.

    python -m syncos.learned.train --out /work/learned-run --steps 6000
    python -m syncos.learned.train --out /work/learned-run --export src/syncos/models/toyworld-learned

The first trains the VAE (``--vae-steps``), then the transformer; ``--part`` trains one of them.
``--part transformer`` trains the Wan transformer and the UMT5 text encoder by flow matching on the
fixed patchify latent (so it needs no VAE); ``--part vae`` trains the AutoencoderKLWan to near-identity
around that latent. The two parts are independent and may run one after the other or side by side.
Batch ``i`` is drawn from a generator seeded by (seed, i), so a resumed run sees the data an
uninterrupted one would. Checkpoints (weights, EMA weights, AdamW state) are safetensors only,
written atomically every ``--every`` steps; losses go to ``loss_<part>.csv``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from syncos.backends.toyworld import world as W
from syncos.learned.data import ClipSampler
from syncos.learned.pipeline import MAX_TOKENS, build_pipeline, to_latent

PRESETS = {"uniform": {}, "peaked": {"lighting": {"day": 0.9, "night": 0.1}}}


def modules(pipe, part: str) -> dict[str, torch.nn.Module]:
    return (
        {"transformer": pipe.transformer, "text_encoder": pipe.text_encoder}
        if part == "transformer"
        else {"vae": pipe.vae}
    )


def flat_state(mods: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    return {
        f"{n}.{k}": v.detach().clone().contiguous()
        for n, m in mods.items()
        for k, v in m.state_dict().items()
    }


def save_atomic(tensors: dict[str, torch.Tensor], path: Path, meta: dict | None = None) -> None:
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
    os.replace(tmp, path)


def loss_transformer(pipe, batch, gen: torch.Generator) -> torch.Tensor:
    """Flow matching: x_s = (1 - s) z + s n, target n - z, s uniform; timestep = 1000 s (shift 1)."""
    texts, clips = batch
    z = to_latent(torch.from_numpy(clips).float())
    ids = pipe.tokenizer(
        texts, padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt"
    )
    emb = pipe.text_encoder(ids.input_ids, attention_mask=ids.attention_mask).last_hidden_state
    emb = emb * ids.attention_mask[..., None]  # as WanPipeline.encode_prompt: padding embeds are zeroed
    s = torch.rand(len(z), generator=gen)
    noise = torch.randn(z.shape, generator=gen)
    sv = s.view(-1, 1, 1, 1, 1)
    out = pipe.transformer(
        hidden_states=(1 - sv) * z + sv * noise,
        timestep=s * 1000,
        encoder_hidden_states=emb,
        return_dict=False,
    )[0]
    return (out - (noise - z)).pow(2).mean()


def loss_vae(pipe, batch, gen: torch.Generator) -> torch.Tensor:
    """Encoder mean -> the patchify latent, decoder(latent) -> the clip (13 frames: the encoder's 1 + 4k)."""
    _, clips = batch
    x = torch.from_numpy(clips).float()
    z = to_latent(x)
    vae = pipe.vae
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    mean = vae.encode(x * 2 - 1).latent_dist.mean
    rec = vae.decode(z * std).sample
    return (mean / std - z).pow(2).mean() + (rec - (x * 2 - 1)).pow(2).mean() * 10


DEFAULTS = {"transformer": {"batch": 8, "lr": 3e-4}, "vae": {"batch": 4, "lr": 1e-3}}


def train(
    out: Path,
    part: str,
    steps: int,
    prior: W.Prior,
    *,
    batch: int,
    lr: float,
    ema_decay: float = 0.999,
    every: int = 100,
    seed: int = 0,
) -> None:
    """Train one part to ``steps`` (resuming from ``out`` where it has a checkpoint)."""
    config = {"prior": prior.as_dict(), "seed": seed, "batch": batch, "lr": lr, "ema": ema_decay}
    cfg_path = out / f"config_{part}.json"
    if cfg_path.exists() and json.loads(cfg_path.read_text()) != config:
        raise SystemExit(f"{cfg_path} holds a different configuration; use another --out")
    cfg_path.write_text(json.dumps(config, indent=1))
    pipe = build_pipeline(seed)
    mods = modules(pipe, part)
    params = [q for m in mods.values() for q in m.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    ckpt, adam_path, step = out / f"{part}.safetensors", out / f"{part}_adam.safetensors", 0
    ema = flat_state(mods)
    if ckpt.exists():
        state = load_file(str(ckpt))
        for n, m in mods.items():
            m.load_state_dict({k[len(n) + 1 :]: v for k, v in state.items() if k.startswith(n + ".")})
        ema = {k[4:]: v for k, v in state.items() if k.startswith("ema.")}
        opt_state = load_file(str(adam_path))
        step = int(opt_state.pop("step").item())
        if int(safe_open(str(ckpt), "pt").metadata()["step"]) != step:
            raise SystemExit(f"{ckpt} and {adam_path} are from different steps (interrupted while saving)")
        for i, q in enumerate(params):
            opt.state[q] = {
                "step": torch.tensor(float(step)),
                "exp_avg": opt_state[f"{i}.m"],
                "exp_avg_sq": opt_state[f"{i}.v"],
            }
        print(f"resumed {part} at step {step}", flush=True)
    frames = W.CHUNK_LENGTH + (1 if part == "vae" else 0)  # the VAE encoder takes 1 + 4k frames
    sampler = ClipSampler(prior=prior, frames=frames)
    lossf = loss_transformer if part == "transformer" else loss_vae
    log = out / f"loss_{part}.csv"
    if not log.exists():
        log.write_text("step,loss,seconds\n")
    for m in mods.values():
        m.train()
    named = {f"{n}.{k}": v for n, m in mods.items() for k, v in m.state_dict(keep_vars=True).items()}
    floats = [k for k, v in named.items() if v.is_floating_point()]
    while step < steps:
        t0 = time.perf_counter()
        g = np.random.default_rng([seed, step])
        gen = torch.Generator().manual_seed(int(g.integers(2**62)))
        data = next(sampler.batches(batch, int(g.integers(2**62))))
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 200)  # warm-up
        loss = lossf(pipe, data, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        decay = min(ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for k in floats:
                ema[k].mul_(decay).add_(named[k].detach(), alpha=1 - decay)
        with log.open("a") as f:
            f.write(f"{step},{loss.item():.5f},{time.perf_counter() - t0:.3f}\n")
        if not math.isfinite(loss.item()):
            raise SystemExit(f"loss is {loss.item()} at step {step}")
        if step % every == 0 or step == steps:
            adam = {"step": torch.tensor(step)}
            for i, q in enumerate(params):
                adam[f"{i}.m"], adam[f"{i}.v"] = opt.state[q]["exp_avg"], opt.state[q]["exp_avg_sq"]
            save_atomic(adam, adam_path)
            save_atomic(flat_state(mods) | {f"ema.{k}": v for k, v in ema.items()}, ckpt, {"step": str(step)})
            print(f"{part} step {step} loss {loss.item():.4f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument(
        "--part",
        choices=("all", "transformer", "vae"),
        default="all",
        help="all: the VAE for --vae-steps, then the transformer",
    )
    p.add_argument("--steps", type=int, default=6000, help="steps of the transformer (or of --part vae)")
    p.add_argument("--vae-steps", type=int, default=600, help="steps of the VAE with --part all")
    p.add_argument("--batch", type=int, help="default: 8 (transformer), 4 (VAE)")
    p.add_argument("--lr", type=float, help="default: 3e-4 (transformer), 1e-3 (VAE)")
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--every", type=int, default=100, help="checkpoint every N steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prior", default="peaked", help=f"a preset ({', '.join(PRESETS)}) or a JSON mapping")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--export", type=Path, help="write the pipeline folder from the run's EMA weights and stop"
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.export:
        from syncos.learned.export import export

        export(args.out, args.export)
        return
    prior = W.Prior.parse(PRESETS[args.prior] if args.prior in PRESETS else json.loads(args.prior))
    parts = {"all": (("vae", args.vae_steps), ("transformer", args.steps))}.get(
        args.part, ((args.part, args.steps),)
    )
    for part, steps in parts:
        batch, lr = args.batch or DEFAULTS[part]["batch"], args.lr or DEFAULTS[part]["lr"]
        train(
            args.out,
            part,
            steps,
            prior,
            batch=batch,
            lr=lr,
            ema_decay=args.ema,
            every=args.every,
            seed=args.seed,
        )


if __name__ == "__main__":
    main()
