"""Model id / local folder / pipeline object -> the adapter of its family.

The family is read from the pipeline class name (``_class_name`` of ``model_index.json`` before
anything heavy is loaded), so an unsupported model fails fast with the list of what works.
Weights load as safetensors only, never with remote code; offline (HF_HUB_OFFLINE) only local
files are looked at.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from syncos.errors import UserError, first_line

# pipeline class name -> (family, adapter module, adapter class)
FAMILIES: dict[str, tuple[str, str, str]] = {
    "CogVideoXPipeline": ("cogvideox", "cogvideox", "CogVideoXBackend"),
    "WanPipeline": ("wan", "wan", "WanBackend"),
    "LTXPipeline": ("ltx", "ltx", "LTXBackend"),
    "AnimateDiffPipeline": ("animatediff", "unet", "UNetBackend"),
    "TextToVideoSDPipeline": ("modelscope", "unet", "UNetBackend"),
    "HunyuanVideoPipeline": ("hunyuanvideo", "hunyuan_video", "HunyuanVideoBackend"),
    "HunyuanVideo15Pipeline": ("hunyuanvideo15", "hunyuan_video15", "HunyuanVideo15Backend"),
    "MochiPipeline": ("mochi", "mochi", "MochiBackend"),
    "SkyReelsV2Pipeline": ("skyreels-v2", "skyreels_v2", "SkyReelsV2Backend"),
    "SkyReelsV2DiffusionForcingPipeline": ("skyreels-v2-df", "skyreels_v2", "SkyReelsV2DFBackend"),
    "SanaVideoPipeline": ("sana-video", "sana_video", "SanaVideoBackend"),
    "Kandinsky5T2VPipeline": ("kandinsky5", "kandinsky5", "Kandinsky5Backend"),
}
IN_PLACE = ("dtype", "device", "cpu_offload", "vae_tiling", "vae_slicing")  # settings that change a pipeline
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
SETTINGS = (
    "height",
    "width",
    "fps",
    "dtype",
    "device",
    "cpu_offload",
    "vae_tiling",
    "vae_slicing",
    "model_options",
)


def supported() -> str:
    listed = ", ".join(f"{fam} ({cls})" for cls, (fam, _, _) in FAMILIES.items())
    return f"{listed}, opensora-plan-v1.3 (a folder in the release's layout)"


def _offline() -> bool:
    v = os.environ.get("HF_HUB_OFFLINE", "")
    if v.strip().lower() in ("1", "true", "yes", "on"):
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover - very old hub
        return False


def _local_only() -> bool:
    """Look in the local cache only: HF_HUB_OFFLINE is set, or the hub cannot be reached (the hub
    client would otherwise retry for ~30 s before failing)."""
    return _offline() or _hub_unreachable() is not None


@functools.lru_cache(maxsize=1)
def _hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the hub cannot be reached (no DNS, no route), or None; a proxy is left to the client."""
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    try:
        from huggingface_hub import constants

        url = urlparse(constants.ENDPOINT)
        with socket.create_connection((url.hostname or "", url.port or 443), timeout=timeout):
            return None
    except OSError as e:
        return f"{url.hostname}: {e.strerror or e}"
    except Exception:  # an unexpected hub version: let the client try
        return None


def _connection_failed(e: BaseException | None) -> bool:
    """Whether a hub error was caused by the network (its cause chain holds a connection error)."""
    while e is not None:
        if isinstance(e, ConnectionError) or "Connect" in type(e).__name__:
            return True
        e = e.__cause__ or e.__context__
    return False


def _family_of_class(name: str, where: str) -> str:
    if name not in FAMILIES:
        raise UserError(
            f"{where} is a {name}, not a supported text-to-video pipeline; supported: {supported()}"
        )
    return name


def _pipeline_class(model: str) -> str:
    """The pipeline class recorded for ``model`` (folder or hub id), without loading weights."""
    path = Path(model).expanduser()
    if path.is_dir():
        index = path / "model_index.json"
        if not index.is_file():
            raise UserError(
                f"model folder {model!r} is not a diffusers video pipeline (no model_index.json; save one "
                "with pipe.save_pretrained(folder)) nor an Open-Sora Plan v1.3 folder (transformer/ with an "
                f"OpenSoraT2V_v1_3 config.json, vae/, text_encoder/, tokenizer/). Supported: {supported()}"
            )
        try:
            name = json.loads(index.read_text()).get("_class_name")
        except (OSError, ValueError) as e:
            raise UserError(f"model folder {model!r}: unreadable model_index.json ({e})") from None
        if not name:
            raise UserError(f"model folder {model!r}: model_index.json names no pipeline class")
        return _family_of_class(name, f"model folder {model!r}")
    if path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise UserError(f"model {model!r}: no such folder")
    from diffusers import DiffusionPipeline

    try:
        with warnings.catch_warnings():  # hub deprecation chatter would break the one-line error
            warnings.simplefilter("ignore")
            cfg = DiffusionPipeline.load_config(model, local_files_only=_local_only())
    except Exception as e:
        unreachable = None if _offline() else _hub_unreachable()
        if _offline():
            why = "it is not in the local cache (HF_HUB_OFFLINE is set, so the hub was not asked)"
        elif unreachable or _connection_failed(e):
            why = (
                f"it is not in the local cache and the Hugging Face hub could not be reached "
                f"({unreachable or first_line(e)}); set HF_HUB_OFFLINE=1 to skip the hub without "
                "waiting, or pass a local diffusers folder"
            )
        else:
            why = f"{type(e).__name__}: {first_line(e)}"
        raise UserError(f"model {model!r} could not be found: {why}") from None
    return _family_of_class(cfg.get("_class_name", "?"), f"model {model!r}")


def _device(device: str | None) -> torch.device | None:
    if device is None:
        return None
    try:
        d = torch.device(device)
    except RuntimeError as e:
        raise UserError(f"device {device!r} is not a torch device: {e}") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        why = "this torch build has no CUDA" if torch.version.cuda is None else "no GPU is visible"
        raise UserError(
            f"device {device!r}: CUDA is not available ({why}); run on the CPU with --set device=cpu, or "
            "install torch's CUDA build (https://pytorch.org/get-started/locally/) on a machine with a GPU"
        )
    return d


def load_diffusers_backend(model: str | None = None, *, pipe: Any = None, **settings: Any) -> Any:
    """Load (or wrap) a diffusers text-to-video pipeline and return the adapter of its family."""
    unknown = sorted(k for k, v in settings.items() if k not in SETTINGS and v is not None)
    if unknown:
        raise UserError(f"unknown model settings {', '.join(unknown)}; allowed: {', '.join(SETTINGS)}")
    dtype_name = settings.get("dtype")
    if dtype_name is not None and dtype_name not in DTYPES:
        raise UserError(f"dtype {dtype_name!r} is not supported; use one of {', '.join(DTYPES)}")
    dtype = DTYPES.get(dtype_name) if dtype_name else None
    device = _device(settings.get("device"))

    if pipe is None and not model:
        raise UserError(f"no model given; name a diffusers model id or folder ({supported()})")

    from syncos.backends.opensora_plan import backend as opensora_plan

    if pipe is None and opensora_plan.is_opensora_plan(model):
        return opensora_plan.load_backend(
            model,
            dtype=dtype,
            device=device,
            **{k: v for k, v in settings.items() if k not in ("dtype", "device")},
        )
    if pipe is None:
        cls_name = _pipeline_class(str(model))
    else:
        cls_name = _family_of_class(type(pipe).__name__, "the pipeline handed over")
    _, module_name, class_name = FAMILIES[cls_name]
    import importlib

    adapter = getattr(importlib.import_module(f"syncos.backends.diffusers.{module_name}"), class_name)
    if settings.get("vae_slicing") and not adapter.frames_as_batch:
        raise UserError(
            f"vae_slicing: {adapter.family}'s video VAE decodes each temporal tile as a batch of one, so "
            "slicing would change nothing; bound decode memory with model_options.decode_tile (latent "
            "frames per tile) or vae_tiling (vae_slicing acts for animatediff and modelscope)"
        )
    in_place = [k for k in IN_PLACE if settings.get(k)]
    if pipe is not None and in_place:  # the user's pipeline is shared, never changed (diffusers' from_pipe)
        raise UserError(
            f"{', '.join(in_place)}: would change the handed-in pipeline in place (its modules are shared, "
            "never cast or moved); set them on the pipeline before handing it over (pipe.to(dtype=...), "
            "pipe.to(device), pipe.enable_model_cpu_offload(), pipe.vae.enable_tiling()), or name the "
            "model by id or folder"
        )

    if pipe is None:
        from diffusers import DiffusionPipeline

        kwargs: dict[str, Any] = {"use_safetensors": True, "local_files_only": _local_only()}
        if dtype is not None:
            kwargs["torch_dtype"] = dtype
        try:
            pipe = DiffusionPipeline.from_pretrained(str(model), **kwargs)
        except Exception as e:
            raise UserError(
                f"model {model!r} could not be loaded as a {cls_name}: {type(e).__name__}: {first_line(e)}"
            ) from None

    for name in ("transformer", "transformer_2", "unet", "vae", "text_encoder", "text_encoder_2"):
        module = getattr(pipe, name, None)
        if isinstance(module, torch.nn.Module):
            # modules built from a config start in training mode (dropout); from_pretrained's are in
            # eval mode already, so a handed-in pipeline changes only if it was left training
            module.eval()

    if settings.get("cpu_offload"):
        pipe.enable_model_cpu_offload(device=device or ("cuda" if torch.cuda.is_available() else "cpu"))
    elif device is not None:
        pipe.to(device)
    if settings.get("vae_tiling"):
        pipe.vae.enable_tiling()
    if settings.get("vae_slicing"):
        pipe.vae.enable_slicing()  # image VAEs: the tile's frames one at a time
    return adapter(
        pipe,
        height=settings.get("height"),
        width=settings.get("width"),
        fps=settings.get("fps"),
        model_options=settings.get("model_options"),
    )
