"""Weight-based metrics for real-model videos, VBench-style, from a local folder of weights.

``FOLDER/dino`` holds a transformers vision model (DINO ViT, as VBench's subject consistency)
and ``FOLDER/clip`` a transformers CLIP model with its tokenizer; both must be safetensors
(``use_safetensors=True``: pickled .bin weights are refused) and nothing is downloaded.

- subject_consistency: DINO CLS features; per frame the mean cosine to the previous and to the
  first frame, averaged (VBench's definition);
- background_consistency: the same with CLIP image features;
- global_pf: mean CLIP cosine between every frame and the global prompt;
- local_pf: per event, mean CLIP cosine between its frames and its local prompt, averaged over
  events (the paper's CLIP-style prompt fidelity).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from syncos.errors import UserError

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
CLIP_NORM = ([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711])


def _norm_of(folder: Path, default: tuple[list[float], list[float]]) -> tuple[list[float], list[float]]:
    cfg = folder / "preprocessor_config.json"
    if cfg.is_file():
        d = json.loads(cfg.read_text())
        return d.get("image_mean", default[0]), d.get("image_std", default[1])
    return default


def _pixels(frames: np.ndarray, size: int, norm: tuple[list[float], list[float]]) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    x = torch.nn.functional.interpolate(
        x, size=(size, size), mode="bicubic", antialias=True, align_corners=False
    )
    mean, std = (torch.tensor(v).reshape(1, 3, 1, 1) for v in norm)
    return (x.clamp(0, 1) - mean) / std


def _unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float(), dim=-1)


def consistency(features: torch.Tensor) -> float:
    """VBench: mean over frames i >= 1 of (cos(f_i, f_{i-1}) + cos(f_i, f_0)) / 2, negatives clipped."""
    f = _unit(features)
    if len(f) < 2:
        return 1.0
    prev = (f[1:] * f[:-1]).sum(-1).clamp_min(0)
    first = (f[1:] * f[:1]).sum(-1).clamp_min(0)
    return float(((prev + first) / 2).mean())


class FeatureScorer:
    def __init__(
        self, clip=None, tokenizer=None, dino=None, clip_norm=CLIP_NORM, dino_norm=IMAGENET, batch: int = 16
    ):
        if clip is None and dino is None:
            raise UserError("feature metrics need a clip/ or a dino/ model")
        self.clip, self.tokenizer, self.dino = clip, tokenizer, dino
        self.clip_norm, self.dino_norm, self.batch = clip_norm, dino_norm, batch

    @classmethod
    def from_folder(cls, folder: str | Path, device: str = "cpu") -> FeatureScorer:
        from transformers import AutoModel, AutoTokenizer, CLIPModel

        root = Path(folder)
        if not root.is_dir():
            raise UserError(f"feature weights {str(root)!r} is not a folder (expected clip/ and dino/ in it)")
        clip = tok = dino = None
        try:
            if (root / "clip").is_dir():
                clip = CLIPModel.from_pretrained(root / "clip", use_safetensors=True, local_files_only=True)
                tok = AutoTokenizer.from_pretrained(root / "clip", local_files_only=True)
            if (root / "dino").is_dir():
                dino = AutoModel.from_pretrained(root / "dino", use_safetensors=True, local_files_only=True)
        except OSError as e:
            raise UserError(
                f"feature weights in {str(root)!r} cannot be loaded (safetensors only): {e}"
            ) from None
        return cls(
            clip.to(device).eval() if clip else None,
            tok,
            dino.to(device).eval() if dino else None,
            _norm_of(root / "clip", CLIP_NORM),
            _norm_of(root / "dino", IMAGENET),
        )

    def _batched(self, fn, frames: np.ndarray) -> torch.Tensor:
        return torch.cat([fn(frames[i : i + self.batch]) for i in range(0, len(frames), self.batch)])

    @torch.no_grad()
    def dino_features(self, frames: np.ndarray) -> torch.Tensor:
        size = self.dino.config.image_size
        dev = next(self.dino.parameters()).device
        run = lambda f: self.dino(pixel_values=_pixels(f, size, self.dino_norm).to(dev)).last_hidden_state[
            :, 0
        ]
        return self._batched(run, frames).cpu()

    @torch.no_grad()
    def clip_image_features(self, frames: np.ndarray) -> torch.Tensor:
        size = self.clip.config.vision_config.image_size
        dev = next(self.clip.parameters()).device
        run = lambda f: _as_tensor(
            self.clip.get_image_features(pixel_values=_pixels(f, size, self.clip_norm).to(dev))
        )
        return self._batched(run, frames).cpu()

    @torch.no_grad()
    def clip_text_features(self, texts: Sequence[str]) -> torch.Tensor:
        dev = next(self.clip.parameters()).device
        enc = self.tokenizer(
            list(texts),
            padding="max_length",
            truncation=True,
            return_tensors="pt",
            max_length=self.clip.config.text_config.max_position_embeddings,
        )
        enc = {k: v.to(dev) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        return _as_tensor(self.clip.get_text_features(**enc)).cpu()

    def frame_features(self, frames: np.ndarray) -> np.ndarray:
        """Per-frame embeddings for the drift curve (DINO if present, else CLIP image features)."""
        f = self.dino_features(frames) if self.dino is not None else self.clip_image_features(frames)
        return f.numpy()

    def evaluate(
        self, frames: np.ndarray, global_prompt: str, events: Sequence[tuple[int, int, str]]
    ) -> dict:
        out: dict[str, float] = {}
        if self.dino is not None:
            out["subject_consistency"] = consistency(self.dino_features(frames))
        if self.clip is not None:
            img = _unit(self.clip_image_features(frames))
            out["background_consistency"] = consistency(img)
            txt = _unit(self.clip_text_features([global_prompt] + [p for _, _, p in events]))
            out["global_pf"] = float((img @ txt[0]).mean())
            local = [float((img[a:b] @ txt[1 + i]).mean()) for i, (a, b, _) in enumerate(events) if b > a]
            out["local_pf"] = float(np.mean(local))
        return out


def _as_tensor(x) -> torch.Tensor:
    """transformers 5 may return a model output instead of a tensor from get_*_features."""
    if isinstance(x, torch.Tensor):
        return x
    for name in ("pooler_output", "image_embeds", "text_embeds"):
        if getattr(x, name, None) is not None:
            return getattr(x, name)
    raise TypeError(f"unexpected CLIP output {type(x).__name__}")
