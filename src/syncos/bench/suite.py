"""A suite: a folder of scenario files plus an optional ``suite.yaml``.

``suite.yaml`` (every key optional)::

    description: what the suite measures
    scenarios: ["*.yaml", "../other/*.yaml"]  # globs relative to the folder; default: every
                                               # .yaml/.yml/.json file in it except suite.yaml
    methods: [codenoise, fifo, syncos]  # what runs unless --methods says otherwise
    seeds: 3
    overrides: [sampler.steps=24]       # key=value applied to every scenario (as --set)
    variants:                           # named methods: a sampler plus option overrides
      no-tmin: {method: syncos, t_min: -1}
    contact_sheet: story-3              # the scenario shown frame by frame in the report
    baseline: codenoise                 # what the report's paired differences subtract

A method may add sampler options after ``+``: ``codenoise+noise=rescheduled``,
``paper+stride=8`` (a variant with its stride changed), ``syncos+sync_until=-4.39``; the row
keeps the whole name, so it says what ran without a variant written into ``suite.yaml``.

Scenarios stay method-neutral: when a row runs method M, sampler keys that M's options do not
have are dropped (so ``sampler.iterations`` set for syncos does not break codenoise rows).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from syncos.errors import UserError
from syncos.samplers import SAMPLERS
from syncos.scenario import PLAN_KEYS, apply_overrides, read_scenario_file

SUITE_FILE = "suite.yaml"
SUITE_KEYS = (
    "description",
    "scenarios",
    "methods",
    "seeds",
    "overrides",
    "variants",
    "contact_sheet",
    "baseline",
)


@dataclass(frozen=True)
class Suite:
    folder: Path
    scenarios: dict[str, Path]  # name (file stem) -> file
    methods: tuple[str, ...] = ("codenoise", "fifo", "syncos")
    seeds: int = 1
    overrides: tuple[str, ...] = ()
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    contact_sheet: str | None = None
    baseline: str | None = None
    description: str = ""

    def sampler_of(self, method: str) -> str:
        """The sampler a method name runs (a variant's ``method``, or the name itself)."""
        base, _ = split_method(method)
        if base in self.variants:
            return str(self.variants[base].get("method", "syncos"))
        if base not in SAMPLERS:
            allowed = ", ".join([*SAMPLERS, *self.variants])
            raise UserError(
                f"method {base!r} is neither a sampler nor a variant of this suite; use {allowed}"
                " (options may follow after +, e.g. codenoise+noise=rescheduled)"
            )
        return base

    def options_of(self, method: str) -> dict[str, Any]:
        """The sampler options a method name sets: its variant's, then those after ``+``."""
        base, extra = split_method(method)
        return {**self.variants.get(base, {}), **extra}

    def resolve(self, scenario: str, method: str, seed: int) -> dict[str, Any]:
        """The raw scenario mapping of one row: suite overrides, then the method, then the seed
        (the ``seed``-th of this scenario's own seeds, ``scenario_seed``)."""
        raw = apply_overrides(read_scenario_file(self.scenarios[scenario]), list(self.overrides))
        sampler = self.sampler_of(method)
        allowed = {*PLAN_KEYS, *(f.name for f in dataclasses.fields(SAMPLERS[sampler][1]))}
        section = {k: v for k, v in (raw.get("sampler") or {}).items() if k in allowed}
        section.update(self.options_of(method))
        section["method"] = sampler
        return {**raw, "sampler": section, "seed": scenario_seed(scenario, seed)}


def split_method(name: str) -> tuple[str, dict[str, Any]]:
    """``base+key=value+...`` -> (base, {key: YAML value}); the probe's variants use it too.

    The base is everything before the first ``+`` part with an ``=``, so a variant named with a
    ``+`` (the ablation suite's ``stages-1+3``) is one base."""
    parts = name.split("+")
    first = next((i for i, p in enumerate(parts) if "=" in p), len(parts))
    options: dict[str, Any] = {}
    for item in parts[first:]:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UserError(f"method {name!r}: expected base+key=value, e.g. codenoise+noise=rescheduled")
        options[key] = yaml.safe_load(text)
    return "+".join(parts[:first]), options


def scenario_seed(scenario: str, k: int) -> int:
    """The k-th seed of a scenario: its own, so that no two scenarios share an initial noise.

    With seed k shared by every scenario, scenarios of one length start from the same noise and
    make the same coin flips for what their prompts leave open (toyworld's day or night, say), so
    their results are correlated and an interval over scenarios is too narrow (measured: the
    background difference of SynCoS to co-denoising averaged +0.094, -0.04 and -0.13 over the 24
    suite scenarios at seeds 0, 1 and 2). Every variant of a scenario still shares its seeds, so
    differences stay paired.
    """
    return zlib.crc32(scenario.encode()) * 1000 + k


def _files(folder: Path, patterns: list[str] | None) -> dict[str, Path]:
    if patterns is None:
        found = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in (".yaml", ".yml", ".json")]
    else:
        found = [p for pat in patterns for p in sorted(folder.glob(pat))]
    out: dict[str, Path] = {}
    for p in found:
        if p.name == SUITE_FILE or not p.is_file():
            continue
        if p.stem in out and out[p.stem] != p:
            raise UserError(f"suite {str(folder)!r}: two scenarios are named {p.stem!r}")
        out[p.stem] = p
    if not out:
        raise UserError(f"suite {str(folder)!r} has no scenario files (.yaml, .yml or .json)")
    return out


def load_suite(folder: str | Path) -> Suite:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"suite {str(folder)!r} is not a folder of scenario files")
    meta: dict[str, Any] = {}
    if (folder / SUITE_FILE).is_file():
        meta = read_scenario_file(folder / SUITE_FILE)
        extra = [k for k in meta if k not in SUITE_KEYS]
        if extra:
            raise UserError(f"{SUITE_FILE}: unknown key {extra[0]!r}; allowed: {', '.join(SUITE_KEYS)}")
    variants = meta.get("variants") or {}
    for name, v in variants.items():
        if not isinstance(v, Mapping) or v.get("method", "syncos") not in SAMPLERS:
            raise UserError(f"{SUITE_FILE}: variants.{name} needs a mapping whose method is a sampler")
    suite = Suite(
        folder=folder,
        scenarios=_files(folder, meta.get("scenarios")),
        methods=tuple(meta.get("methods") or Suite.methods),
        seeds=int(meta.get("seeds", 1)),
        overrides=tuple(str(o) for o in meta.get("overrides") or ()),
        variants={k: dict(v) for k, v in variants.items()},
        contact_sheet=meta.get("contact_sheet"),
        baseline=meta.get("baseline"),
        description=str(meta.get("description", "")),
    )
    for m in suite.methods:
        suite.sampler_of(m)
    return suite
