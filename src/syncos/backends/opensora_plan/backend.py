"""Open-Sora Plan v1.3 text-to-video on the Backend protocol: loading, conditioning, schedule, decode.

The release (``opensora/sample/pipeline_opensora.py`` with ``scripts/text_condition/gpu/
sample_t2v_v1_3.sh``) samples 93 frames at 352x640 with 100 ancestral Euler steps
(EulerAncestralDiscreteScheduler: v-prediction, zero-SNR rescaled linear betas, trailing spacing)
and CFG 7.5, conditioned on mT5-XXL with 512 tokens and their attention mask. That scheduler
stores the zero-SNR end as alphas_cumprod = 2^-24 so its first sigma is finite: the first step
has alpha = 2^-12 rather than 0, and the grid here is the scheduler's own, so a chunk equals the
release's pipeline.

Latents are (C, T, h, w), normalised as the release's ``WFVAEModelWrapper`` does; decoding maps
them back (``WFVAE.denormalize``) in overlapping temporal tiles. The transformer embeds one
timestep per sample: FIFO runs in its shared-timestep approximation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from syncos.backends.base import CallDefaults
from syncos.backends.diffusers.common import PREDICTION_TYPES, DiffusersBackend
from syncos.errors import UserError, first_line
from syncos.schedules import VPSchedule

FAMILY = "opensora-plan-v1.3"
TRANSFORMER_CLASS = "OpenSoraT2V_v1_3"
# Where each part lives in a folder in the release's layout, and what it is.
PARTS = {
    "transformer": "the transformer (config.json + diffusion_pytorch_model.safetensors, as any93x640x640/)",
    "vae": "the WF-VAE folder (config.json + weights)",
    "text_encoder": "the mT5 encoder (transformers layout)",
    "tokenizer": "the mT5 tokenizer (default: text_encoder's folder when given apart)",
}
TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "tokenizer_config.json")
RELEASE_SCHEDULER = dict(
    prediction_type="v_prediction", rescale_betas_zero_snr=True, timestep_spacing="trailing"
)


@dataclass
class OpenSoraPlanModules:
    """The release's four modules and a scheduler: what the backend needs in place of a pipeline."""

    transformer: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any
    name_or_path: str = ""  # the release folder (run.json's model identity)

    @property
    def device(self) -> torch.device:
        return self.transformer.device


class OpenSoraPlanBackend(DiffusersBackend):
    family = FAMILY
    options_help = {
        "max_sequence_length": "mT5 tokens per prompt (default 512, the release's)",
        "native_frames": "video frames of the native clip (default 93)",
        **{part: f"path of {what}" for part, what in PARTS.items()},
    }
    causal_vae = True
    default_fps = 18.0  # the sampling script's
    native_frames = 93

    @property
    def device(self) -> torch.device:
        return self.pipe.device

    def _setup(self) -> None:
        tr, vae, sched = self.pipe.transformer, self.pipe.vae, self.pipe.scheduler
        self.frame_axis = 1
        self.temporal_factor = int(vae.temporal_factor)
        self.spatial_factor = int(vae.spatial_factor)
        self.latent_channels = int(tr.config.in_channels)
        if vae.latent_channels != self.latent_channels:
            raise UserError(
                f"{FAMILY}: the transformer takes {self.latent_channels} latent channels, "
                f"the WF-VAE makes {vae.latent_channels}"
            )
        pred = sched.config.get("prediction_type", "epsilon")
        if pred not in PREDICTION_TYPES:
            raise UserError(
                f"{FAMILY}: scheduler prediction_type {pred!r} is not one of {list(PREDICTION_TYPES)}"
            )
        self.prediction = PREDICTION_TYPES[pred]
        table = getattr(sched, "alphas_cumprod", None)
        if table is None:
            raise UserError(
                f"{FAMILY}: the scheduler {type(sched).__name__} has no alphas_cumprod (not a VP one)"
            )
        spacing = sched.config.get("timestep_spacing", "trailing")
        self.schedule = VPSchedule(
            alphas_cumprod=torch.as_tensor(table).double(),
            spacing=spacing if spacing in ("trailing", "leading", "linspace") else "trailing",
            steps_offset=int(sched.config.get("steps_offset", 0)),
        )
        self.max_sequence_length = int(self.options.get("max_sequence_length") or 512)

    def call_defaults(self) -> CallDefaults:
        """The release's sampling script: 100 steps at CFG 7.5 (it has no pipeline __call__)."""
        return CallDefaults(steps=100, guidance_scale=7.5, negative_prompt=None)

    def identity(self) -> dict[str, str]:
        return {**super().identity(), "pipeline": "OpenSoraPlanModules"}

    def default_size(self) -> tuple[int, int]:
        return 352, 640

    def size_multiple(self) -> int:
        return self.spatial_factor * int(self.pipe.transformer.config.patch_size)

    def _encode_uncached(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(mT5 states (n, L, d), attention mask (n, L)): padded to max_sequence_length, as the release."""
        tokens = self.pipe.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.max_sequence_length,
            truncation=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        ids, mask = tokens.input_ids.to(self.device), tokens.attention_mask.to(self.device)
        states = self.pipe.text_encoder(ids, attention_mask=mask)[0]
        return states.to(self.pipe.transformer.dtype), mask

    def _forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        tr = self.pipe.transformer
        states, mask = cond
        return tr(x.to(self.device, tr.dtype), t.to(self.device), states, mask)

    def _decode_tile(self, latent: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        z = vae.denormalize(latent[None].to(self.device, next(vae.parameters()).dtype))
        return vae.decode(z)[0]


def _class_name(config: Path) -> str | None:
    """The ``_class_name`` a diffusers config.json records, or None if there is none."""
    try:
        return json.loads(config.read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError):
        return None


def is_opensora_plan(model: str | None) -> bool:
    """Whether a model setting means Open-Sora Plan v1.3: its name (parts given apart in
    model_options) or a folder in its layout (transformer/config.json naming OpenSoraT2V_v1_3)."""
    if model == FAMILY:
        return True
    folder = Path(model).expanduser() if model else None
    return bool(
        folder
        and folder.is_dir()
        and not (folder / "model_index.json").exists()
        and _class_name(folder / "transformer" / "config.json") == TRANSFORMER_CLASS
    )


def part_paths(model: str | None, options: dict) -> dict[str, Path]:
    """Each part's folder: ``model_options.<part>``, else ``model/<part>``; one line for a missing part."""
    folder = Path(model).expanduser() if model and Path(model).expanduser().is_dir() else None
    paths: dict[str, Path] = {}
    for part, what in PARTS.items():
        given = options.get(part)
        if given is not None and not isinstance(given, str):
            raise UserError(f"model_options.{part} must be a path, got {given!r}")
        path = Path(given).expanduser() if given else (folder / part if folder else None)
        fallback = paths.get("text_encoder")  # the hub's mT5 folders hold the tokenizer too
        if part == "tokenizer" and not given and not (path and path.is_dir()) and fallback:
            path = fallback if any((fallback / f).is_file() for f in TOKENIZER_FILES) else path
        if path is None or not path.is_dir():
            if given:
                where = f"model_options.{part} {given!r} is no folder"
            else:
                where = f"model folder {model!r} has no {part}/" if folder else f"no model_options.{part}"
            raise UserError(
                f"{FAMILY}: {where} ({what}); a release folder holds transformer/, vae/, text_encoder/ and "
                f"tokenizer/, or give the part's path in model_options.{part}"
            )
        paths[part] = path
    return paths


def _scheduler(folder: Path | None) -> Any:
    """The folder's ``scheduler/`` if it has one, else the release's EulerAncestralDiscreteScheduler."""
    import diffusers

    if folder is None or not (folder / "scheduler").is_dir():
        return diffusers.EulerAncestralDiscreteScheduler(**RELEASE_SCHEDULER)
    path = folder / "scheduler"
    try:
        name = json.loads((path / "scheduler_config.json").read_text())["_class_name"]
        return getattr(diffusers, name).from_pretrained(path)
    except Exception as e:
        raise UserError(f"{FAMILY}: {path} is not a diffusers scheduler: {first_line(e)}") from None


def _load(what: str, path: Path, fn):
    try:
        return fn()
    except UserError:
        raise
    except Exception as e:
        raise UserError(
            f"{FAMILY}: {what} in {path} could not be loaded: {type(e).__name__}: {first_line(e)}"
        ) from None


def load_modules(model: str | None, options: dict, dtype: torch.dtype | None, device) -> OpenSoraPlanModules:
    """The four parts from a release-layout folder or the paths in ``options``; weights as safetensors."""
    from transformers import AutoConfig, AutoTokenizer, MT5EncoderModel, T5EncoderModel

    from syncos.backends.opensora_plan.transformer import OpenSoraPlanTransformer
    from syncos.backends.opensora_plan.wfvae import WFVAE

    paths = part_paths(model, options)
    dtype = dtype or torch.float32
    device = device or torch.device("cpu")
    tr_cls = _class_name(paths["transformer"] / "config.json")
    if tr_cls != TRANSFORMER_CLASS:
        raise UserError(
            f"{FAMILY}: {paths['transformer']} is not an {TRANSFORMER_CLASS} folder "
            f"(its config.json names {tr_cls!r})"
        )
    transformer = _load(
        "the transformer",
        paths["transformer"],
        lambda: OpenSoraPlanTransformer.from_pretrained(
            paths["transformer"], torch_dtype=dtype, use_safetensors=True
        ),
    )
    vae = WFVAE.from_folder(paths["vae"], dtype=dtype, device=device)

    def text_encoder():
        kind = AutoConfig.from_pretrained(paths["text_encoder"], local_files_only=True).model_type
        if kind not in ("mt5", "t5"):
            raise UserError(
                f"{FAMILY}: {paths['text_encoder']} holds a {kind!r} model, not an mT5 / T5 encoder"
            )
        cls = MT5EncoderModel if kind == "mt5" else T5EncoderModel
        return cls.from_pretrained(
            paths["text_encoder"], torch_dtype=dtype, use_safetensors=True, local_files_only=True
        )

    encoder = _load("the text encoder", paths["text_encoder"], text_encoder)
    tokenizer = _load(
        "the tokenizer",
        paths["tokenizer"],
        lambda: AutoTokenizer.from_pretrained(paths["tokenizer"], local_files_only=True),
    )
    folder = Path(model).expanduser() if model and Path(model).expanduser().is_dir() else None
    modules = OpenSoraPlanModules(transformer, vae, encoder, tokenizer, _scheduler(folder), str(model or ""))
    for m in (modules.transformer, modules.vae, modules.text_encoder):
        m.to(device).eval()
    return modules


def load_backend(model: str | None, *, dtype=None, device=None, **settings: Any) -> OpenSoraPlanBackend:
    """The backend of a release-layout folder (or parts given apart); rejects what it cannot honour."""
    for name in ("cpu_offload", "vae_tiling", "vae_slicing"):
        if settings.pop(name, None):
            raise UserError(f"{name} is not supported for {FAMILY}; remove it from the scenario's model keys")
    options = dict(settings.pop("model_options", None) or {})
    unknown = sorted(k for k, v in settings.items() if k not in ("height", "width", "fps") and v is not None)
    if unknown:
        raise UserError(f"model settings {', '.join(unknown)} are not known for {FAMILY}")
    modules = load_modules(model, options, dtype, device)
    return OpenSoraPlanBackend(
        modules,
        height=settings.get("height"),
        width=settings.get("width"),
        fps=settings.get("fps"),
        model_options=options,
    )
