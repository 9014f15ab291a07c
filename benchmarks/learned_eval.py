"""toyworld-learned against the exact model: quality floor, sample sheet, loss curve, calibration.

    python benchmarks/learned_eval.py --run /work/learned-run [--model FOLDER] [--prompts 24] [--seeds 2]

Exports the run's EMA weights (unless --model names a pipeline folder), then on single native-length
clips (one chunk, 12 frames) over the toyworld suites' prompts ("{global}. {first event}") samples
both judges with the same sampler settings and scores the decoded frames with toyworld's metrics;
the exact model uses the prior the run was trained under. Writes to docs/learned/: quality.json,
samples.png (CFG samples, learned beside exact), loss.png (from the run's CSVs) and calibration.png
(per timestep: distance of the learned x0 estimate from the exact posterior mean on the same noisy
input, and how often each judge's x0 estimate already shows the clean clip's colour and scene,
for unconditional clips: when each attribute is decided under each judge).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from syncos import api
from syncos.backends import load_backend
from syncos.backends.toyworld import metrics as M
from syncos.backends.toyworld import world as W
from syncos.backends.toyworld.model import posterior_mean
from syncos.learned import pipeline as L
from syncos.learned.data import ClipSampler
from syncos.learned.export import export
from syncos.scenario import read_scenario_file

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "learned"
SUITES = ("toyworld", "toyworld-heldout")
FLOOR = ("clean", "global_fidelity", "subject_consistency")


def suite_prompts(limit: int) -> list[tuple[str, str]]:
    """(global prompt, first event's prompt) of each scenario of the toyworld suites, in file order."""
    out = []
    for suite in SUITES:
        for path in sorted((ROOT / "benchmarks" / "suites" / suite).glob("*.yaml")):
            raw = read_scenario_file(path)
            if raw.get("events"):
                out.append((raw.get("global_prompt", ""), raw["events"][0]["prompt"]))
    return list(dict.fromkeys(out))[:limit]


def clip(
    model: str, prior: dict, prompt: tuple[str, str], seed: int, steps: int, cfg: float
) -> tuple[np.ndarray, dict]:
    """Decoded uint8 frames (12, 32, 32, 3) and toyworld metrics of one native clip."""
    options = {"model_options": {"prior": prior, "display_scale": 1}} if model == "toyworld" else {}
    scenario = {
        "model": model,
        "global_prompt": prompt[0],
        "events": [{"prompt": prompt[1], "frames": W.CHUNK_LENGTH}],
        "sampler": {"method": "independent", "steps": steps, "guidance_scale": cfg},
        "seed": seed,
        **options,
    }
    gen = api.generate(scenario)
    frames = np.stack(list(gen.frames()))  # uint8 (12, 32, 32, 3): both judges decode at 32 x 32
    return frames, api.evaluate_frames(gen, frames)


def quality(model: str, prior: dict, prompts, seeds: int, steps: int, cfg: float):
    rows, sheet = [], []
    for i, p in enumerate(prompts):
        for s in range(seeds):
            frames, m = clip(model, prior, p, s, steps, cfg)
            rows.append(m)
            if s == 0:
                sheet.append(frames)
        print(f"  {model if model == 'toyworld' else 'learned'} {i + 1}/{len(prompts)}", flush=True)
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}, sheet


def plot_sheet(prompts, learned, exact, title: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    n, cols = min(len(prompts), 8), (0, 3, 6, 9, 11)
    fig, axes = plt.subplots(n, 1, figsize=(10, 1.25 * n))
    for ax, p, a, b in zip(np.atleast_1d(axes), prompts, learned, exact, strict=False):
        gap = np.full((32, 4, 3), 255, np.uint8)
        row = [a[c] for c in cols] + [gap] + [b[c] for c in cols]
        ax.imshow(np.concatenate(row, axis=1).astype(np.uint8), interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(f"{p[0]}. {p[1]}", fontsize=7, loc="left")
    fig.suptitle(f"{title}\nleft: toyworld-learned, right: exact model (frames 0, 3, 6, 9, 11)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_loss(run: Path, path: Path) -> dict:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    info = {}
    for part in ("transformer", "vae"):
        csv = run / f"loss_{part}.csv"
        if not csv.exists() or len(csv.read_text().splitlines()) < 2:
            continue
        data = np.loadtxt(csv, delimiter=",", skiprows=1, ndmin=2)
        k = max(1, min(50, len(data) // 10))
        smooth = np.convolve(data[:, 1], np.ones(k) / k, mode="valid")
        ax.plot(data[k - 1 :, 0], smooth, label=f"{part} (mean of {k})")
        info[part] = {"steps": int(data[-1, 0]), "median_seconds_per_step": float(np.median(data[:, 2]))}
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return info


def calibration(folder: Path, prior: W.Prior, samples: int, path: Path) -> dict:
    """Learned vs exact x0 estimates on the same noisy inputs, per flow timestep."""
    import matplotlib.pyplot as plt

    backend = load_backend(str(folder))
    g = np.random.default_rng(0)
    # unconditional, as docs/open-questions.md Q4: every attribute is decided by the noise alone
    texts = [""] * samples
    sampler = ClipSampler(prior=prior)
    x0 = torch.from_numpy(np.stack([sampler.clip("", g) for _ in range(samples)])).float()
    emb = backend.encode(texts)
    region = torch.from_numpy(W.regions())
    ts = np.linspace(980, 20, 13)
    out = {
        "t": ts.tolist(),
        "rmse": [],
        "colour": {"learned": [], "exact": []},
        "scene": {"learned": [], "exact": []},
    }
    clean_labels = [M.frame_labels(M.decode_frames(_u8(c))) for c in x0]
    for t in ts:
        s = float(t) / 1000
        noise = torch.from_numpy(g.normal(size=L.to_latent(x0).shape)).float()
        xt = (1 - s) * L.to_latent(x0) + s * noise
        v = backend.forward(xt, torch.full((samples,), float(t)), emb)
        learned = L.from_latent(xt - s * v).clamp(0, 1).double()
        # the same input in the exact model's units: latent = pixel - 0.5 = to_latent / 4 (after unpatchify)
        xe = L.from_latent(xt).double() - 0.5
        exact = (
            torch.stack(
                [
                    posterior_mean(
                        xe[i : i + 1],
                        torch.tensor([1 - s]).double(),
                        torch.tensor([s / 4]).double(),
                        0.02,
                        sampler.exact.mixture(texts[i]),
                        region,
                    )[0][0]
                    for i in range(samples)
                ]
            )
            + 0.5
        )
        out["rmse"].append(float((learned - exact).pow(2).mean().sqrt()))
        for name, est in (("learned", learned), ("exact", exact)):
            for attr in ("colour", "scene"):
                hits = [
                    np.mean(M.frame_labels(M.decode_frames(_u8(e)))[attr] == lab[attr])
                    for e, lab in zip(est, clean_labels, strict=True)
                ]
                out[attr][name].append(float(np.mean(hits)))
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot(ts, out["rmse"], "o-")
    a.set_xlabel("t (flow, 1000 = pure noise)")
    a.set_ylabel("RMSE learned x0 - exact E[x0|x_t] (pixels)")
    for attr, style in (("colour", "-"), ("scene", "--")):
        for name in ("learned", "exact"):
            b.plot(ts, out[attr][name], style, label=f"{attr}, {name}")
    b.set_xlabel("t")
    b.set_ylabel("frames whose x0 estimate shows the clean value")
    b.legend(fontsize=7)
    for ax in (a, b):
        ax.invert_xaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return out


def restore(folder: Path, prior: W.Prior, prompts, samples: int) -> dict:
    """How much of a prompted clip one denoising step gets back from flow time s: the x0 estimate's
    MSE (normalised latent) and how many frames show the clean clip's subject colour, per s. Tells
    "cannot draw a subject" apart from "does not commit to one from pure noise"."""
    backend = load_backend(str(folder))
    g = np.random.default_rng(1)
    sampler = ClipSampler(prior=prior)
    texts = [f"{glob}. {event}" for glob, event in prompts[:samples]]
    x0 = torch.from_numpy(np.stack([sampler.clip(t, g) for t in texts])).float()
    z, emb = L.to_latent(x0), backend.encode(texts)
    clean = [M.frame_labels(M.decode_frames(_u8(c)))["colour"] for c in x0]
    out: dict = {"s": [0.2, 0.4, 0.6, 0.8, 0.95], "mse": [], "colour": []}
    for s in out["s"]:
        zs = (1 - s) * z + s * torch.from_numpy(g.normal(size=z.shape)).float()
        est = zs - s * backend.forward(zs, torch.full((len(z),), s * 1000), emb)
        out["mse"].append(float((est - z).pow(2).mean()))
        frames = L.from_latent(est).clamp(0, 1)
        labels = [M.frame_labels(M.decode_frames(_u8(e)))["colour"] for e in frames]
        hits = [np.mean(got == want) for got, want in zip(labels, clean, strict=True)]
        out["colour"].append(float(np.mean(hits)))
    return out


def _u8(x: torch.Tensor) -> np.ndarray:
    """(3, F, H, W) pixels in [0, 1] -> (F, H, W, 3) uint8."""
    return np.clip(x.double().numpy() * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 3, 0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--model", type=Path, help="a toyworld-learned pipeline folder (default: export --run)")
    p.add_argument("--prompts", type=int, default=24)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=4.0)
    p.add_argument("--calibration-samples", type=int, default=8)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    folder = args.model or Path(tempfile.mkdtemp()) / "toyworld-learned"
    info = json.loads((folder / L.MARKER).read_text()) if args.model else export(args.run, folder)
    prior = info.get("prior", {})
    prompts = suite_prompts(args.prompts)
    learned, sheet_l = quality(str(folder), prior, prompts, args.seeds, args.steps, args.cfg)
    exact, sheet_e = quality("toyworld", prior, prompts, args.seeds, args.steps, args.cfg)
    ratio = {k: learned[k] / exact[k] if exact[k] else float("nan") for k in FLOOR}
    steps = info["steps"]
    title = f"toyworld-learned at transformer step {steps['transformer']}, VAE step {steps['vae']} (EMA)"
    plot_sheet(prompts, sheet_l, sheet_e, title, args.out / "samples.png")
    loss = plot_loss(args.run, args.out / "loss.png")
    calib = (
        calibration(folder, W.Prior.parse(prior), args.calibration_samples, args.out / "calibration.png")
        if args.calibration_samples
        else None  # --calibration-samples 0: the floor and the sheets only
    )
    restored = restore(folder, W.Prior.parse(prior), prompts, min(len(prompts), 8))
    record = {
        "steps": steps,
        "prior": prior,
        "sampler": {
            "method": "independent",
            "steps": args.steps,
            "guidance_scale": args.cfg,
            "seeds": args.seeds,
        },
        "prompts": [f"{g}. {e}" for g, e in prompts],
        "learned": learned,
        "exact": exact,
        "learned_over_exact": ratio,
        "floor_met": all(r >= 0.8 for r in ratio.values()),
        "training": loss,
        "calibration": calib,
        "restore_from_s": restored,
    }
    (args.out / "quality.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"{title}\n{'metric':22s} learned  exact  ratio")
    for k in FLOOR:
        print(f"{k:22s} {learned[k]:.3f}  {exact[k]:.3f}  {ratio[k]:.2f}")
    print(
        "one step from s:",
        {s: round(m, 4) for s, m in zip(restored["s"], restored["mse"], strict=True)},
        "subject colour right:",
        [round(c, 2) for c in restored["colour"]],
    )


if __name__ == "__main__":
    main()
