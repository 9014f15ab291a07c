"""Train toyworld-learned: seeded, resumable, data drawn on the fly (CPU by default, `--device cuda`).

    python -m syncos.learned.train --out /work/learned-run --steps 6000
    python -m syncos.learned.train --out /work/learned-run --export src/syncos/models/toyworld-learned

The first trains the VAE (``--vae-steps``), then the transformer; ``--part`` trains one of them.
``--part transformer`` trains the Wan transformer and the UMT5 text encoder by flow matching on the
fixed patchify latent (so it needs no VAE); ``--part vae`` trains the AutoencoderKLWan to near-identity
around that latent. The two parts are independent and may run one after the other or side by side.
Batch ``i`` is drawn from a generator seeded by (seed, i), so a resumed run sees the data an
uninterrupted one would. Checkpoints (weights, EMA weights, AdamW state) are safetensors only,
written atomically every ``--every`` steps; losses go to ``loss_<part>.csv``.

``--init-from FOLDER`` starts a new run from an exported pipeline folder's weights (raw = EMA =
the export's) with a fresh optimiser: the folder stands in for the optimiser state, which is not
exported. The run's config records the folder and a digest of its weights, and step 0 is
checkpointed at once, so a later plain resume of the run is exact without the folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import time
from collections import deque
from collections.abc import Iterator
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from syncos.backends.toyworld import world as W
from syncos.learned.data import ClipSampler
from syncos.learned.pipeline import MARKER, MAX_TOKENS, build_pipeline, to_latent

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
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
    os.replace(tmp, path)


def warm_start(mods: dict[str, torch.nn.Module], folder: Path) -> dict:
    """Load ``folder``'s weights (an export, :mod:`syncos.learned.export`) into ``mods``; what the run's
    config records of it: the folder, its training steps and config, a digest of its weights files."""
    if not (folder / MARKER).is_file():
        raise SystemExit(f"--init-from {folder}: not an exported toyworld-learned folder (no {MARKER})")
    digest = hashlib.sha256()
    for name, module in mods.items():
        loaded = type(module).from_pretrained(str(folder / name)).state_dict()
        want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        if {k: tuple(v.shape) for k, v in loaded.items()} != want:
            raise SystemExit(
                f"--init-from {folder}: its {name} is not this run's architecture "
                "(syncos.learned.pipeline's config differs from the folder's config.json)"
            )
        module.load_state_dict(loaded)
        for path in sorted((folder / name).glob("*.safetensors")):
            digest.update(path.read_bytes())
    info = json.loads((folder / MARKER).read_text())
    part = "vae" if "vae" in mods else "transformer"
    return {
        "folder": str(folder.resolve()),
        "steps": info.get("steps", {}).get(part),
        "config": info.get(f"config_{part}"),
        "sha256": digest.hexdigest(),
    }


def save_checkpoint(out: Path, part: str, mods, params, opt, ema: dict[str, torch.Tensor], step: int) -> None:
    """``part``'s weights and EMA weights, then its AdamW moments (absent before the first step: zeros,
    which is what AdamW starts from), each written atomically."""
    adam = {"step": torch.tensor(step)}
    for i, q in enumerate(params):
        state = opt.state.get(q) or {"exp_avg": torch.zeros_like(q), "exp_avg_sq": torch.zeros_like(q)}
        adam[f"{i}.m"], adam[f"{i}.v"] = state["exp_avg"], state["exp_avg_sq"]
    save_atomic(adam, out / f"{part}_adam.safetensors")
    weights = flat_state(mods) | {f"ema.{k}": v for k, v in ema.items()}
    save_atomic(weights, out / f"{part}.safetensors", {"step": str(step)})


def loss_transformer(pipe, batch, gen: torch.Generator) -> torch.Tensor:
    """Flow matching: x_s = (1 - s) z + s n, target n - z, s uniform; timestep = 1000 s (shift 1).
    Draws come from ``gen`` on the CPU, so a run on another device sees the same data and noise."""
    texts, clips = batch
    device = pipe.transformer.device
    z = to_latent(torch.from_numpy(clips).float()).to(device)
    ids = pipe.tokenizer(
        texts, padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt"
    ).to(device)
    emb = pipe.text_encoder(ids.input_ids, attention_mask=ids.attention_mask).last_hidden_state
    emb = emb * ids.attention_mask[..., None]  # as WanPipeline.encode_prompt: padding embeds are zeroed
    s = torch.rand(len(z), generator=gen).to(device)
    noise = torch.randn(z.shape, generator=gen).to(device)
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
    vae = pipe.vae
    x = torch.from_numpy(clips).float().to(vae.device)
    z = to_latent(x)
    std = torch.tensor(vae.config.latents_std, device=x.device).view(1, -1, 1, 1, 1)
    mean = vae.encode(x * 2 - 1).latent_dist.mean
    rec = vae.decode(z * std).sample
    return (mean / std - z).pow(2).mean() + (rec - (x * 2 - 1)).pow(2).mean() * 10


DEFAULTS = {"transformer": {"batch": 8, "lr": 3e-4}, "vae": {"batch": 4, "lr": 1e-3}}


def draw(sampler: ClipSampler, seed: int, step: int, batch: int) -> tuple[int, tuple[list[str], np.ndarray]]:
    """Step ``step``'s torch seed and batch: a function of (seed, step) alone, wherever it is drawn."""
    g = np.random.default_rng([seed, step])
    torch_seed = int(g.integers(2**62))
    texts, clips = next(sampler.batches(batch, int(g.integers(2**62))))
    return torch_seed, (texts, clips.astype(np.float32))


_WORKER_SAMPLER: list[ClipSampler] = []  # a pool worker's sampler, passed once, not with every task


def _adopt(sampler: ClipSampler) -> None:
    _WORKER_SAMPLER[:] = [sampler]


def _draw_adopted(seed: int, step: int, batch: int) -> tuple[int, tuple[list[str], np.ndarray]]:
    return draw(_WORKER_SAMPLER[0], seed, step, batch)


def stream(sampler: ClipSampler, seed: int, start: int, stop: int, batch: int, workers: int) -> Iterator:
    """Steps ``start..stop-1``'s draws in order; ``workers`` processes draw ahead (at most 2 per worker
    waiting), so the data are the same for any number of workers."""
    if workers <= 0:
        yield from (draw(sampler, seed, i, batch) for i in range(start, stop))
        return
    with get_context("fork").Pool(workers, initializer=_adopt, initargs=(sampler,)) as pool:
        pending: deque = deque()
        for i in range(start, stop):
            pending.append(pool.apply_async(_draw_adopted, (seed, i, batch)))
            if len(pending) > 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


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
    init_from: Path | None = None,
    arch: dict | None = None,
    device: str = "cpu",
    workers: int = 0,
    minutes: float | None = None,
) -> None:
    """Train one part to ``steps`` (resuming from ``out`` where it has a checkpoint; ``init_from``:
    a new run from an export's weights, see the module docstring). ``arch`` overrides the transformer's
    config (recorded); ``device``, ``workers`` and ``minutes`` (checkpoint and stop after that much wall
    time, to be resumed) change where and how long it runs, not what it computes."""
    config = {"prior": prior.as_dict(), "seed": seed, "batch": batch, "lr": lr, "ema": ema_decay}
    if arch:
        config["arch"] = arch
    cfg_path = out / f"config_{part}.json"
    ckpt, adam_path, step = out / f"{part}.safetensors", out / f"{part}_adam.safetensors", 0
    saved = json.loads(cfg_path.read_text()) if cfg_path.exists() else None
    if init_from is not None and ckpt.exists():
        raise SystemExit(
            f"--init-from starts a new run, but {ckpt} exists; use another --out, or resume it "
            "without --init-from"
        )
    if init_from is None and saved is not None and "init_from" in saved and not ckpt.exists():
        init_from = Path(saved["init_from"]["folder"])  # stopped before its step 0 was written: start again
    pipe = build_pipeline(seed, arch)
    mods = modules(pipe, part)
    if init_from is not None:
        config["init_from"] = warm_start(mods, init_from)
    elif saved is not None and "init_from" in saved:
        config["init_from"] = saved["init_from"]  # a plain resume of a warm-started run
    if saved is not None and saved != config:
        raise SystemExit(f"{cfg_path} holds a different configuration; use another --out")
    cfg_path.write_text(json.dumps(config, indent=1))
    for m in mods.values():
        m.to(device)
    params = [q for m in mods.values() for q in m.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    ema = flat_state(mods)
    if init_from is not None:
        save_checkpoint(out, part, mods, params, opt, ema, 0)  # the warm start, resumable without the folder
        print(f"{part} starts from {init_from} (fresh optimiser)", flush=True)
    if ckpt.exists():
        state = load_file(str(ckpt), device=device)
        for n, m in mods.items():
            m.load_state_dict({k[len(n) + 1 :]: v for k, v in state.items() if k.startswith(n + ".")})
        ema = {k[4:]: v for k, v in state.items() if k.startswith("ema.")}
        opt_state = load_file(str(adam_path), device=device)
        step = int(opt_state.pop("step").item())
        if int(safe_open(str(ckpt), "pt").metadata()["step"]) != step:
            raise SystemExit(f"{ckpt} and {adam_path} are from different steps (interrupted while saving)")
        for i, q in enumerate(params):
            opt.state[q] = {
                "step": torch.tensor(float(step)),  # AdamW keeps its step count on the CPU
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
    start = time.perf_counter()
    draws = stream(sampler, seed, step, steps, batch, workers)
    t0 = time.perf_counter()
    for torch_seed, data in draws:
        gen = torch.Generator().manual_seed(torch_seed)
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
        value, now = loss.item(), time.perf_counter()
        with log.open("a") as f:
            f.write(f"{step},{value:.5f},{now - t0:.3f}\n")
        t0 = now
        if not math.isfinite(value):
            raise SystemExit(f"loss is {value} at step {step}")
        out_of_time = minutes is not None and now - start > minutes * 60
        if step % every == 0 or step == steps or out_of_time:
            save_checkpoint(out, part, mods, params, opt, ema, step)
            print(f"{part} step {step} loss {value:.4f}", flush=True)
        if out_of_time:
            print(f"{part} stopped at step {step} after {minutes} minutes (rerun to resume)", flush=True)
            break


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
    p.add_argument("--device", default="cpu", help="where to train (cpu, cuda); data are drawn on the CPU")
    p.add_argument("--workers", type=int, default=0, help="processes drawing batches ahead (0: in line)")
    p.add_argument("--minutes", type=float, help="checkpoint and stop after this much wall time")
    p.add_argument(
        "--arch", type=json.loads, help="JSON overrides of the transformer's config: '{\"num_layers\": 8}'"
    )
    p.add_argument(
        "--export", type=Path, help="write the pipeline folder from the run's EMA weights and stop"
    )
    p.add_argument(
        "--init-from",
        type=Path,
        help="start a new run from an exported pipeline folder's weights, with a fresh optimiser",
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
            init_from=args.init_from,
            arch=args.arch if part == "transformer" else None,
            device=args.device,
            workers=args.workers,
            minutes=args.minutes,
        )


if __name__ == "__main__":
    main()
