"""The options every sampler takes, and the checks that give a wrong value its one-line error.

Option values are checked where the options are built, so the command line, the Python API and
the bench all get the same one-line UserError naming the key as a scenario writes it (sampler.KEY).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from syncos.errors import UserError, shown, type_name

# The method a scenario runs when it names none: the one chosen by the rule written down before
# the runs (docs/syncos.md, "The default, and the rule that chose it"): among settings costing at
# most 1.3x co-denoising's network evaluations, the best mean of consistency, clean, cut, repeat and
# blank shares at no loss of fidelity, averaged over both judges (exact and learned). `extend` won
# (0.80x the NFE; no tile restarting its motion, no averaged frame), ahead of independent tiles by
# a margin the runs do not resolve; it was added to the candidates after the first runs.
# ``sampler: {preset: paper}`` (no method) is SynCoS with the paper's settings exactly.
DEFAULT_METHOD = "extend"
PRESET_METHOD = "syncos"  # the method sampler.preset belongs to, when a scenario names none


@dataclass(frozen=True)
class SamplerOptions:
    """Options every sampler takes (the paper's CogVideoX settings by default)."""

    steps: int = 50
    guidance_scale: float = 6.0
    # Rescaled guidance (Lin et al. 2024; diffusers' guidance_rescale): 0 = plain CFG, 1 = the guided
    # output scaled to the conditional one's standard deviation, against CFG's out-of-range frames
    # (off: it helps co-denoising and can wash out syncos's frames; docs/demo.md).
    guidance_rescale: float = 0.0
    negative_prompt: str = ""
    # chunks per forward call; with CFG the call's batch is twice that, each chunk's conditional and
    # unconditional pass side by side (``syncos plan`` prints the batch)
    micro_batch: int = 4
    # The long latent's noise: i.i.d. ("independent"), or "rescheduled" as FreeNoise does: every
    # frame past the first chunk repeats the noise of the frame one chunk earlier, shuffled within
    # blocks of ``stride`` frames, so every chunk starts from the same noise in another order and
    # frame-wide decisions (scene, light, colour) come out alike in all chunks.
    noise: str = "independent"

    def __post_init__(self) -> None:
        check_types(self)
        check_range(self, "steps", 1, 1000)  # the models' 1000 training timesteps
        # 1 = no guidance; below 1 would push away from the prompt, above 100 only saturates
        check_range(self, "guidance_scale", 1.0, 100.0)
        check_range(self, "guidance_rescale", 0.0, 1.0)
        check_range(self, "micro_batch", 1, 4096)
        check_choice(self, "noise", ("independent", "rescheduled"))


_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "None": type(None)}


def check_types(options: object) -> None:
    """Each field has its annotated type (an int is taken for a float); floats must be finite."""
    for f in dataclasses.fields(options):  # type: ignore[arg-type]
        value = getattr(options, f.name)
        allowed = [_TYPES[t.strip()] for t in str(f.type).split("|")]
        if value is None and type(None) in allowed:
            continue
        if float in allowed and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
            object.__setattr__(options, f.name, value)  # frozen: set the coerced value once
        ok = isinstance(value, tuple(allowed)) and (bool in allowed or not isinstance(value, bool))
        if not ok:
            expected = type_name(tuple(allowed)) + (" (or null)" if type(None) in allowed else "")
            raise UserError(f"sampler.{f.name}: expected {expected}, got {shown(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"sampler.{f.name}: must be a finite number, got {value}")


def check_range(options: object, name: str, lo: float, hi: float, *, open_lo: bool = False) -> None:
    """``lo <= value <= hi`` (``lo < value`` with ``open_lo``); None passes (a nullable default)."""
    value = getattr(options, name)
    if value is None:
        return
    if value < lo or value > hi or (open_lo and value == lo):
        lo_, hi_ = (f"{v:g}" if isinstance(v, float) else str(v) for v in (lo, hi))
        span = f"({lo_}, {hi_}]" if open_lo else f"[{lo_}, {hi_}]"
        raise UserError(f"sampler.{name}: must be in {span}, got {value}")


def check_choice(options: object, name: str, allowed: tuple[str, ...]) -> None:
    value = getattr(options, name)
    if value not in allowed:
        raise UserError(f"sampler.{name}: must be one of {', '.join(allowed)}, got {shown(value)}")
