"""toyworld: an exact, analytic text-to-video model (the default backend); see docs/toyworld.md."""

from syncos.backends.toyworld.metrics import consistency_by_distance, decode_frames, evaluate
from syncos.backends.toyworld.model import Posterior, PromptMixture, ToyWorldBackend
from syncos.backends.toyworld.world import PromptSpec, parse_prompt, vocabulary

__all__ = [
    "Posterior",
    "PromptMixture",
    "PromptSpec",
    "ToyWorldBackend",
    "consistency_by_distance",
    "decode_frames",
    "evaluate",
    "parse_prompt",
    "vocabulary",
]
