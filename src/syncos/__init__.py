"""syncos: long, multi-event videos from short-clip text-to-video models with SynCoS.

The names below load on first use, so ``import syncos`` (and ``syncos --help``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from syncos.errors import DistributedError, UserError

if TYPE_CHECKING:
    from syncos.api import Generation, generate, save
    from syncos.pipeline import SynCoSPipeline
    from syncos.scenario import Event, Scenario, load_scenario

_LAZY = {
    "Generation": "syncos.api",
    "generate": "syncos.api",
    "save": "syncos.api",
    "SynCoSPipeline": "syncos.pipeline",
    "Event": "syncos.scenario",
    "Scenario": "syncos.scenario",
    "load_scenario": "syncos.scenario",
}

__all__ = [
    "DistributedError",
    "Event",
    "Generation",
    "Scenario",
    "SynCoSPipeline",
    "UserError",
    "generate",
    "load_scenario",
    "save",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'syncos' has no attribute {name!r}")
