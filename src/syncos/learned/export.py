"""Write a toyworld-learned pipeline folder from a training run's EMA weights (safetensors only)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from safetensors.torch import load_file

from syncos.learned.pipeline import MARKER, MAX_TOKENS, build_pipeline


def export(run: Path, folder: Path) -> dict:
    """Pipeline folder from ``run``'s transformer.safetensors and vae.safetensors; returns what it wrote."""
    config = run / "config_transformer.json"
    arch = json.loads(config.read_text()).get("arch") if config.exists() else None
    pipe = build_pipeline(arch=arch)
    info: dict = {"max_sequence_length": MAX_TOKENS, "run": str(run), "steps": {}}
    for part, names in (("transformer", ("transformer", "text_encoder")), ("vae", ("vae",))):
        path = run / f"{part}.safetensors"
        if not path.exists():
            raise SystemExit(f"{path} does not exist: train --part {part} first")
        state = load_file(str(path))
        for name in names:
            prefix = f"ema.{name}."
            getattr(pipe, name).load_state_dict(
                {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            )
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            info["steps"][part] = int(f.metadata()["step"])
        config = run / f"config_{part}.json"
        if config.exists():
            info[f"config_{part}"] = json.loads(config.read_text())
    info["prior"] = info.get("config_transformer", {}).get("prior", {})
    if folder.exists():
        shutil.rmtree(folder)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    (folder / MARKER).write_text(json.dumps(info, indent=1) + "\n")
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    print(f"wrote {folder} ({size / 1e6:.1f} MB): steps {info['steps']}")
    return info
