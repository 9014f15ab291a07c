"""Scenario files (YAML or JSON) -> a validated, frozen :class:`Scenario`.

Every error is a :class:`UserError` whose message names the field and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from syncos.errors import UserError, first_line
from syncos.samplers import SAMPLERS
from syncos.timeline import PROMPT_MODES

DTYPES = ("float32", "float16", "bfloat16")
# Top-level keys describing the model; None means "the model family's default".
MODEL_KEYS: dict[str, tuple[type, ...]] = {
    "height": (int,),
    "width": (int,),
    "fps": (int, float),
    "dtype": (str,),
    "device": (str,),
    "cpu_offload": (bool,),
    "vae_tiling": (bool,),
    "vae_slicing": (bool,),
}
PLAN_KEYS = {"method": (str,), "stride": (int,), "prompt_mode": (str,)}


@dataclass(frozen=True)
class Event:
    prompt: str
    frames: int | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class Scenario:
    global_prompt: str
    events: tuple[Event, ...]
    model: str = "toyworld"
    method: str = "syncos"
    stride: int | None = None  # latent frames; None = the backend's default
    prompt_mode: str = "structured"
    options: Mapping[str, Any] = field(default_factory=dict)  # the sampler's options, validated
    seed: int = 0
    height: int | None = None
    width: int | None = None
    fps: float | None = None
    dtype: str | None = None
    device: str | None = None
    cpu_offload: bool | None = None
    vae_tiling: bool | None = None
    vae_slicing: bool | None = None
    model_options: Mapping[str, Any] = field(default_factory=dict)

    def model_settings(self) -> dict[str, Any]:
        """What the backend loader takes."""
        s = {k: getattr(self, k) for k in MODEL_KEYS}
        s["model_options"] = dict(self.model_options)
        return s

    def sampler_options(self):
        """The method's options dataclass."""
        return SAMPLERS[self.method][1](**self.options)

    def to_dict(self) -> dict[str, Any]:
        """The resolved scenario, in the file format (what run.json records)."""
        out: dict[str, Any] = {"model": self.model, "global_prompt": self.global_prompt}
        out["events"] = [
            {k: v for k, v in dataclasses.asdict(e).items() if v is not None} for e in self.events
        ]
        opts = dataclasses.asdict(self.sampler_options())
        out["sampler"] = {
            "method": self.method,
            "stride": self.stride,
            "prompt_mode": self.prompt_mode,
            **opts,
        }
        out["seed"] = self.seed
        out.update({k: getattr(self, k) for k in MODEL_KEYS if getattr(self, k) is not None})
        if self.model_options:
            out["model_options"] = dict(self.model_options)
        return out


def _type_name(types: tuple[type, ...]) -> str:
    if set(types) == {int, float}:
        return "a number"
    return " or ".join(
        {
            int: "an integer",
            float: "a number",
            str: "a string",
            bool: "true/false",
            dict: "a mapping",
            list: "a list",
        }[t]
        for t in types
    )


def _check(value: Any, types: tuple[type, ...], where: str, nullable: bool = True) -> Any:
    if value is None and nullable:
        return None
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        raise UserError(f"{where}: expected {_type_name(types)}, got {value!r}")
    return value


def _unknown(d: Mapping, allowed, where: str) -> None:
    extra = [k for k in d if k not in allowed]
    if extra:
        raise UserError(f"{where}: unknown key {extra[0]!r}; allowed: {', '.join(allowed)}")


def _prompt(value: Any, where: str) -> str:
    _check(value, (str,), where, nullable=False)
    if not value.strip():
        raise UserError(f"{where}: must not be empty")
    return value.strip()


def _event(raw: Any, i: int) -> Event:
    where = f"events[{i}]"
    if not isinstance(raw, Mapping):
        raise UserError(f"{where}: expected a mapping with 'prompt' and 'frames' or 'seconds', got {raw!r}")
    _unknown(raw, ("prompt", "frames", "seconds"), where)
    if "prompt" not in raw:
        raise UserError(f"{where}.prompt: missing; every event needs a local prompt")
    prompt = _prompt(raw["prompt"], f"{where}.prompt")
    frames = _check(raw.get("frames"), (int,), f"{where}.frames")
    seconds = _check(raw.get("seconds"), (int, float), f"{where}.seconds")
    if (frames is None) == (seconds is None):
        raise UserError(f"{where}: give exactly one of 'frames' or 'seconds'")
    if (frames is not None and frames <= 0) or (seconds is not None and seconds <= 0):
        raise UserError(f"{where}: span must be positive, got {frames if frames is not None else seconds}")
    return Event(prompt, frames, float(seconds) if seconds is not None else None)


def _sampler(raw: Any) -> tuple[str, int | None, str, dict[str, Any]]:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise UserError(f"sampler: expected a mapping, got {raw!r}")
    method = _check(raw.get("method", "syncos"), (str,), "sampler.method", nullable=False)
    if method not in SAMPLERS:
        raise UserError(f"sampler.method: unknown method {method!r}; allowed: {', '.join(SAMPLERS)}")
    options_type = SAMPLERS[method][1]
    fields = {f.name: f for f in dataclasses.fields(options_type)}
    # Options of the other samplers are allowed and left unused, so one scenario serves every
    # method (`--method codenoise` on a SynCoS scenario); a key no sampler knows is an error.
    known = dict.fromkeys([*PLAN_KEYS, *fields])
    for _, other in SAMPLERS.values():
        known.update(dict.fromkeys(f.name for f in dataclasses.fields(other)))
    _unknown(raw, list(known), "sampler")
    stride = _check(raw.get("stride"), (int,), "sampler.stride")
    if stride is not None and stride < 1:
        raise UserError(f"sampler.stride: must be a positive number of latent frames, got {stride}")
    prompt_mode = _check(raw.get("prompt_mode", "structured"), (str,), "sampler.prompt_mode", nullable=False)
    if prompt_mode not in PROMPT_MODES:
        raise UserError(
            f"sampler.prompt_mode: {prompt_mode!r} is not allowed; use one of {', '.join(PROMPT_MODES)}"
        )
    options: dict[str, Any] = {}
    for key, value in raw.items():
        if key in PLAN_KEYS or key not in fields:
            continue
        default = fields[key].default
        types: tuple[type, ...] = (
            (int,) if default is None else ((int, float) if isinstance(default, float) else (type(default),))
        )
        options[key] = _check(value, types, f"sampler.{key}", nullable=default is None)
        if isinstance(default, float):
            options[key] = float(value)
    try:
        options_type(**options)
    except ValueError as e:
        raise UserError(f"sampler: {e}") from None
    if options.get("steps", 1) < 1:
        raise UserError(f"sampler.steps: must be >= 1, got {options['steps']}")
    return method, stride, prompt_mode, options


TOP_KEYS = ("model", "global_prompt", "events", "sampler", "seed", *MODEL_KEYS, "model_options")


def parse_scenario(raw: Any) -> Scenario:
    """Validate a scenario given as a mapping (the parsed YAML/JSON)."""
    if not isinstance(raw, Mapping):
        raise UserError(f"scenario: expected a mapping at the top level, got {type(raw).__name__}")
    _unknown(raw, TOP_KEYS, "scenario")
    model = _check(raw.get("model", "toyworld"), (str,), "model", nullable=False)
    if not model.strip():
        raise UserError("model: must not be empty; use 'toyworld', a diffusers model id or a local folder")
    if "global_prompt" not in raw:
        raise UserError("global_prompt: missing; describe the subject, scene and style shared by all events")
    global_prompt = _prompt(raw["global_prompt"], "global_prompt")
    events_raw = raw.get("events")
    if not isinstance(events_raw, list) or not events_raw:
        raise UserError(f"events: expected a non-empty list of events, got {events_raw!r}")
    events = tuple(_event(e, i) for i, e in enumerate(events_raw))
    method, stride, prompt_mode, options = _sampler(raw.get("sampler"))
    seed = _check(raw.get("seed", 0), (int,), "seed", nullable=False)
    if not 0 <= seed < 2**63:
        raise UserError(f"seed: must be in [0, 2**63), got {seed}")
    settings = {k: _check(raw.get(k), MODEL_KEYS[k], k) for k in MODEL_KEYS}
    for k in ("height", "width", "fps"):
        if settings[k] is not None and settings[k] <= 0:
            raise UserError(f"{k}: must be positive, got {settings[k]}")
    if settings["dtype"] is not None and settings["dtype"] not in DTYPES:
        raise UserError(f"dtype: {settings['dtype']!r} is not allowed; use one of {', '.join(DTYPES)}")
    model_options = _check(raw.get("model_options", {}) or {}, (dict,), "model_options")
    return Scenario(
        global_prompt=global_prompt,
        events=events,
        model=model.strip(),
        method=method,
        stride=stride,
        prompt_mode=prompt_mode,
        options=options,
        seed=seed,
        model_options=model_options,
        **{k: (float(v) if k == "fps" and v is not None else v) for k, v in settings.items()},
    )


def read_scenario_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(
            f"scenario file {str(path)!r} cannot be read: {e.strerror if isinstance(e, OSError) else e}"
        ) from None
    kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
    try:
        raw = json.loads(text) if kind == "JSON" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise UserError(f"scenario file {str(path)!r} is not valid {kind}: {first_line(e)}{where}") from None
    return raw if raw is not None else {}


def apply_overrides(raw: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` overrides (dotted keys reach into sections; values are YAML scalars)."""
    out = json.loads(json.dumps(raw, default=str)) if raw else {}
    for item in assignments:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: expected key=value, e.g. sampler.lr=0.5 or height=480")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        parts = key.strip().split(".")
        node = out
        for p in parts[:-1]:
            if not isinstance(node.get(p, {}), dict):
                raise UserError(f"--set {item!r}: {p!r} is not a section")
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def load_scenario(source: str | Path | Mapping[str, Any], overrides: list[str] | None = None) -> Scenario:
    """A scenario from a file path or a mapping, with optional ``key=value`` overrides."""
    raw = dict(source) if isinstance(source, Mapping) else read_scenario_file(source)
    return parse_scenario(apply_overrides(raw, overrides or []))
