"""The authors' Open-Sora Plan code, imported as a test oracle (never by the package).

It lives beside the checkout in ``../shared/reference/open-sora-plan`` (``SYNCOS_OSP_REFERENCE``
overrides). Importing it on a CPU needs stubs for modules it imports but never uses on the
sampling path (wandb, tensorboard's SummaryWriter, two torchvision transforms), and a null
``sdp_kernel`` context: its attention disables the math kernel, which leaves none on a CPU.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import os
import sys
import types
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path(
    os.environ.get("SYNCOS_OSP_REFERENCE", ROOT.parent / "shared" / "reference" / "open-sora-plan")
)


def _stub(name: str, **attrs) -> None:
    if name in sys.modules:
        return
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, loader=None)  # diffusers probes find_spec
    module.__dict__.update(attrs)
    sys.modules[name] = module


def _install_stubs() -> None:
    class _Anything:
        def __init__(self, *args, **kwargs):
            pass

        def __call__(self, x):
            return x

    # transformers decides once whether torchvision exists: let it see the real answer (absent)
    # before the stub below exists, by importing what the reference pipeline imports from it.
    import transformers
    from transformers import CLIPImageProcessor, CLIPTextModelWithProjection  # noqa: F401

    if not hasattr(transformers, "MT5Tokenizer"):  # gone in transformers 5; the oracle only names it
        transformers.MT5Tokenizer = transformers.T5Tokenizer

    _stub("wandb")
    try:
        import torch.utils.tensorboard  # noqa: F401
    except Exception:
        _stub("torch.utils.tensorboard", SummaryWriter=_Anything)
    try:
        import torchvision.transforms  # noqa: F401
    except Exception:
        _stub("torchvision", __path__=[])
        _stub("torchvision.transforms", Lambda=_Anything, Compose=_Anything)
        sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]


def reference(module: str):
    """``opensora.<module>`` from the authors' code; skips (reason 'oracle: ...') where it is absent."""
    if not (REFERENCE / "opensora").is_dir():
        pytest.skip(f"oracle: the authors' reference code is not beside this checkout ({REFERENCE})")
    pytest.importorskip("einops", reason="oracle: the reference code needs einops (pip install einops)")
    _install_stubs()
    if str(REFERENCE) not in sys.path:
        sys.path.insert(0, str(REFERENCE))
    return importlib.import_module(f"opensora.{module}")


@contextlib.contextmanager
def cpu_attention():
    """The reference's ``sdp_kernel(enable_math=False, ...)`` made a no-op, so attention runs on a CPU."""
    original = torch.backends.cuda.sdp_kernel
    torch.backends.cuda.sdp_kernel = lambda *args, **kwargs: contextlib.nullcontext()
    try:
        yield
    finally:
        torch.backends.cuda.sdp_kernel = original
