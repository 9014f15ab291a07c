"""Scenario files (YAML or JSON) -> a validated, frozen :class:`Scenario`.

Every error is a :class:`UserError` whose message names the field and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from syncos.errors import UserError, first_line, shown, type_name
from syncos.samplers import SAMPLERS
from syncos.samplers.options import DEFAULT_METHOD, PRESET_METHOD
from syncos.samplers.syncos import SynCoSOptions, preset_values
from syncos.timeline import AUTO, PROMPT_MODES

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
PLAN_KEYS = {"method": (str,), "stride": (int, str), "prompt_mode": (str,), "preset": (str,)}
# Generous caps that keep absurd numbers out of the arithmetic; whether a video fits the device's
# memory is checked against the loaded model before anything is allocated (syncos.api).
MAX_VIDEO_FRAMES = 100_000  # about an hour at 24 fps
MAX_SIDE = 8192  # height and width, in pixels
MAX_FPS = 1000.0
MAX_FILE_BYTES = 16 * 2**20


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
    method: str = DEFAULT_METHOD
    stride: int | str | None = None  # latent frames or "auto" (auto_stride); None: the backend default
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
        """The method's options dataclass (``options`` may also hold other samplers' keys)."""
        options_type = SAMPLERS[self.method][1]
        return options_type(**{k: v for k, v in self.options.items() if k in _field_names(options_type)})

    @property
    def unused_options(self) -> list[str]:
        """Sampler keys given for another method: validated and recorded, not used by this one."""
        return [k for k in self.options if k not in _field_names(SAMPLERS[self.method][1])]

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
            **{k: self.options[k] for k in self.unused_options},
        }
        out["seed"] = self.seed
        out.update({k: getattr(self, k) for k in MODEL_KEYS if getattr(self, k) is not None})
        if self.model_options:
            out["model_options"] = dict(self.model_options)
        return out


def _check(value: Any, types: tuple[type, ...], where: str, nullable: bool = True) -> Any:
    if value is None and nullable:
        return None
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        raise UserError(f"{where}: expected {type_name(types)}, got {shown(value)}")
    return value


def _finite(value: Any, where: str) -> None:
    """No NaN or infinity anywhere in a scenario (YAML's .nan/.inf, JSON's NaN/Infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{where}: must be a finite number, got {value}")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _finite(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _finite(v, f"{where}[{i}]")


def _field_names(options_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(options_type))


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
        raise UserError(
            f"{where}: expected a mapping with 'prompt' and 'frames' or 'seconds', got {shown(raw)}"
        )
    _unknown(raw, ("prompt", "frames", "seconds"), where)
    if "prompt" not in raw:
        raise UserError(f"{where}.prompt: missing; every event needs a local prompt")
    prompt = _prompt(raw["prompt"], f"{where}.prompt")
    frames = _check(raw.get("frames"), (int,), f"{where}.frames")
    seconds = _check(raw.get("seconds"), (int, float), f"{where}.seconds")
    if (frames is None) == (seconds is None):
        raise UserError(f"{where}: give exactly one of 'frames' or 'seconds'")
    key, value = ("frames", frames) if frames is not None else ("seconds", seconds)
    if value <= 0:
        raise UserError(f"{where}.{key}: must be positive, got {value}")
    if frames is not None and frames > MAX_VIDEO_FRAMES:
        raise UserError(f"{where}.frames: at most {MAX_VIDEO_FRAMES} frames, got {frames}")
    if seconds is not None and seconds * MAX_FPS > MAX_VIDEO_FRAMES:
        raise UserError(f"{where}.seconds: at most {MAX_VIDEO_FRAMES / MAX_FPS:g} seconds, got {seconds}")
    return Event(prompt, frames, float(seconds) if seconds is not None else None)


def _sampler(raw: Any) -> tuple[str, int | str | None, str, dict[str, Any]]:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise UserError(f"sampler: expected a mapping, got {shown(raw)}")
    preset = _check(raw.get("preset"), (str,), "sampler.preset")
    default = DEFAULT_METHOD if preset is None else PRESET_METHOD  # `preset: paper` is SynCoS's
    method = _check(raw.get("method", default), (str,), "sampler.method", nullable=False)
    if method not in SAMPLERS:
        raise UserError(f"sampler.method: unknown method {shown(method)}; allowed: {', '.join(SAMPLERS)}")
    # Options of the other samplers are allowed, so one scenario serves every method (`--method
    # codenoise` on a SynCoS scenario): they are checked by the sampler they belong to and kept
    # (run.json records them as unused); a key no sampler knows is an error.
    owners: dict[str, type] = {}
    for _, options_type in [SAMPLERS[method], *SAMPLERS.values()]:
        owners.update({k: options_type for k in _field_names(options_type) if k not in owners})
    _unknown(raw, [*PLAN_KEYS, *owners], "sampler")
    stride = raw.get("stride")
    if stride is not None and stride != AUTO and not (type(stride) is int and stride >= 1):
        raise UserError(
            f"sampler.stride: must be a positive number of latent frames or {AUTO}, got {shown(stride)}"
        )
    prompt_mode = _check(raw.get("prompt_mode", "structured"), (str,), "sampler.prompt_mode", nullable=False)
    if prompt_mode not in PROMPT_MODES:
        raise UserError(
            f"sampler.prompt_mode: {prompt_mode!r} is not allowed; use one of {', '.join(PROMPT_MODES)}"
        )
    options: dict[str, Any] = {}
    for options_type in dict.fromkeys(owners.values()):  # the method's own options first
        given = {k: v for k, v in raw.items() if owners.get(k) is options_type}
        if preset is not None and options_type is SynCoSOptions:
            given = preset_values(preset, given)  # resolved here: run.json records every value
        built = options_type(**given)  # raises a UserError naming sampler.KEY and its range
        options.update({k: getattr(built, k) for k in given})
    return method, stride, prompt_mode, options


TOP_KEYS = ("model", "global_prompt", "events", "sampler", "seed", *MODEL_KEYS, "model_options")


def parse_scenario(raw: Any) -> Scenario:
    """Validate a scenario given as a mapping (the parsed YAML/JSON)."""
    if not isinstance(raw, Mapping):
        raise UserError(f"scenario: expected a mapping at the top level, got {type(raw).__name__}")
    _unknown(raw, TOP_KEYS, "scenario")
    _finite(raw, "")
    model = _check(raw.get("model", "toyworld"), (str,), "model", nullable=False)
    if not model.strip():
        raise UserError("model: must not be empty; use 'toyworld', a diffusers model id or a local folder")
    if "global_prompt" not in raw:
        raise UserError("global_prompt: missing; describe the subject, scene and style shared by all events")
    global_prompt = _prompt(raw["global_prompt"], "global_prompt")
    events_raw = raw.get("events")
    if not isinstance(events_raw, list) or not events_raw:
        raise UserError(f"events: expected a non-empty list of events, got {shown(events_raw)}")
    events = tuple(_event(e, i) for i, e in enumerate(events_raw))
    method, stride, prompt_mode, options = _sampler(raw.get("sampler"))
    seed = _check(raw.get("seed", 0), (int,), "seed", nullable=False)
    if not 0 <= seed < 2**63:
        raise UserError(f"seed: must be in [0, 2**63), got {seed}")
    settings = {k: _check(raw.get(k), MODEL_KEYS[k], k) for k in MODEL_KEYS}
    for k, top in (("height", MAX_SIDE), ("width", MAX_SIDE), ("fps", MAX_FPS)):
        if settings[k] is not None and not 0 < settings[k] <= top:
            raise UserError(f"{k}: must be positive and at most {top:g}, got {settings[k]}")
    if settings["dtype"] is not None and settings["dtype"] not in DTYPES:
        raise UserError(f"dtype: {settings['dtype']!r} is not allowed; use one of {', '.join(DTYPES)}")
    model_options = _check(raw.get("model_options"), (dict,), "model_options") or {}  # null: none given
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is an error (YAML requires
    unique keys; PyYAML silently keeps the last value, so ``seed: 1 ... seed: 2`` ran seed 2)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *anchor": its keys may be overridden by explicit ones
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def safe_yaml(text: str) -> Any:
    """YAML's safe subset, refusing duplicate keys."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


def _unique_json_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} is given twice in one object")
        out[key] = value
    return out


def read_scenario_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise UserError(f"scenario file {str(path)!r} is larger than {MAX_FILE_BYTES // 2**20} MiB")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(
            f"scenario file {str(path)!r} cannot be read: {e.strerror if isinstance(e, OSError) else e}"
        ) from None
    kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
    try:
        raw = json.loads(text, object_pairs_hook=_unique_json_keys) if kind == "JSON" else safe_yaml(text)
    except RecursionError:
        raise UserError(f"scenario file {str(path)!r}: nested too deeply to be a scenario") from None
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        mark, text = getattr(e, "problem_mark", None), getattr(e, "problem", None) or first_line(e)
        context, opened = getattr(e, "context", None), getattr(e, "context_mark", None)
        if context and opened is not None:
            if "quoted scalar" in context:  # point where the quote opens, not at the end of the file
                mark, text = opened, "a quoted string is never closed"
            else:
                text += f" ({context} that starts on line {opened.line + 1})"
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise UserError(f"scenario file {str(path)!r} is not valid {kind}: {text}{where}") from None
    except ValueError as e:  # a JSON key given twice (_unique_json_keys)
        raise UserError(f"scenario file {str(path)!r} is not valid JSON: {e}") from None
    return raw if raw is not None else {}


MAX_NODES, MAX_DEPTH = 100_000, 32  # far above any scenario; YAML anchors could otherwise explode


def _plain(raw: Any) -> Any:
    """A copy made of plain dicts, lists and scalars (other values become strings), refusing
    documents that YAML anchors make recursive or exponentially large ("billion laughs")."""
    count = 0

    def copy(node: Any, depth: int) -> Any:
        nonlocal count
        count += 1
        if count > MAX_NODES or depth > MAX_DEPTH:
            raise UserError(
                f"scenario: more than {MAX_NODES} values or {MAX_DEPTH} levels of nesting "
                "(a recursive or repeated YAML anchor?)"
            )
        if isinstance(node, Mapping):
            return {str(k): copy(v, depth + 1) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return [copy(v, depth + 1) for v in node]
        return node if node is None or isinstance(node, (str, int, float, bool)) else str(node)

    return copy(raw, 0)


_KEY = re.compile(r"[A-Za-z_][\w-]*(\[\d+\])*(\.[A-Za-z_][\w-]*(\[\d+\])*)*")


def apply_overrides(raw: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` overrides: dotted keys reach into sections, ``[i]`` into lists
    (``events[0].frames=30``); values are YAML scalars."""
    out = _plain(raw) if raw else {}
    for item in assignments:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not _KEY.fullmatch(key):
            raise UserError(
                f"--set {shown(item)}: expected key=value, e.g. sampler.lr=0.5, height=480 "
                "or events[0].frames=30"
            )
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        path: list[str | int] = [
            int(index) if index else name for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", key)
        ]
        node: Any = out
        for i, part in enumerate(path[:-1]):
            where = _path_name(path[: i + 1])
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    size = _list_size(node)
                    raise UserError(f"--set {shown(item)}: {_path_name(path[:i])} {size}")
                node = node[part]
            else:
                if not isinstance(node, dict) or not isinstance(node.get(part, {}), (dict, list)):
                    raise UserError(f"--set {shown(item)}: {where!r} is not a section")
                node = node.setdefault(part, [] if isinstance(path[i + 1], int) else {})
        last = path[-1]
        if isinstance(last, int):
            if not isinstance(node, list) or last >= len(node):
                size = _list_size(node)
                raise UserError(f"--set {shown(item)}: {_path_name(path[:-1])} {size}")
        elif not isinstance(node, dict):
            raise UserError(f"--set {shown(item)}: {_path_name(path[:-1])!r} is not a section")
        node[last] = value
    return out


def _list_size(node: Any) -> str:
    return f"has {len(node)} entries" if isinstance(node, list) else "is not a list"


def _path_name(path: list[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))


def load_scenario(source: str | Path | Mapping[str, Any], overrides: list[str] | None = None) -> Scenario:
    """A scenario from a file path or a mapping, with optional ``key=value`` overrides."""
    raw = dict(source) if isinstance(source, Mapping) else read_scenario_file(source)
    return parse_scenario(apply_overrides(raw, overrides or []))
