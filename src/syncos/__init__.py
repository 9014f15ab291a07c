"""syncos: long, multi-event videos from short-clip text-to-video models with SynCoS."""

from syncos.api import Generation, generate, save
from syncos.errors import DistributedError, UserError
from syncos.scenario import Event, Scenario, load_scenario

__all__ = [
    "DistributedError",
    "Event",
    "Generation",
    "Scenario",
    "UserError",
    "generate",
    "load_scenario",
    "save",
]
__version__ = "0.1.0"
