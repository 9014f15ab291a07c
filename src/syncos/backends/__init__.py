"""Model backends: name or folder -> an object implementing :class:`syncos.backends.base.Backend`."""

from __future__ import annotations

from typing import Any

from syncos.backends.base import Backend
from syncos.errors import UserError

__all__ = ["Backend", "load_backend"]


def load_backend(model: str | None = None, *, pipe: Any = None, **settings: Any) -> Backend:
    """Build the backend for ``model`` ("toyworld", "toyworld-learned", a diffusers id or a local folder).

    ``settings`` are the scenario's model keys (height, width, fps, dtype, device, model_options, ...);
    a backend rejects the ones it cannot honour with a :class:`UserError`.
    """
    if pipe is None and model in (None, "", "toyworld"):
        from syncos.backends.toyworld import ToyWorldBackend

        return ToyWorldBackend.from_settings(**settings)
    try:
        from syncos.backends.diffusers import load_diffusers_backend
    except ImportError as e:  # diffusers is an optional extra
        raise UserError(
            f"model {model!r} needs the diffusers extra (pip install 'syncos[diffusers]'): {e}"
        ) from None
    if pipe is None:
        from syncos.learned import pipeline as learned

        folder = learned.learned_folder(model)
        if folder is not None:
            return learned.load(folder, load_diffusers_backend, **settings)
    return load_diffusers_backend(model, pipe=pipe, **settings)
