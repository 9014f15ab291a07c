"""The toy world: vocabulary, prompt parsing and rendering of clips.

A clip is a subject (shape, colour) on a background (scene, lighting), rendered as small RGB
frames. Its distribution is a mixture whose components are *tracks* of three independent
factors, so the model can evaluate a huge mixture exactly without enumerating it:

- background track: scene x lighting (day, night, night falls, sun rises) x brightness level x
  brightness drift; per frame it gives one colour for each of ``J`` fixed regions (sky, ground,
  ground texture);
- colour track: named colour x hue offset x hue drift; per frame one subject colour;
- subject track: shape x motion x start position/size/phase; per frame a binary mask, stored as
  one horizontal run per row (the world wraps around horizontally, so a subject that leaves on
  the right comes back on the left).

A clip composites them: ``pixel = sum_j bg[j] * region_j * (1 - mask) + colour * mask``. The
drift tracks (hue and brightness change a little within a chunk) are what lets purely local
coupling drift over a long video. Every rate below is per frame, so chunks of any length chain.
"""

from __future__ import annotations

import colorsys
import itertools
import re
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

import numpy as np

from syncos.errors import UserError

HEIGHT = WIDTH = 32
FPS = 8
CHUNK_LENGTH = 12  # latent frames (= video frames) of one native clip
DEFAULT_STRIDE = 4
HORIZON = 18  # rows above are sky, rows from here on are ground
FLOOR = 29  # bottom row (exclusive) of a subject standing on the ground

# Scene colours by day (sky, ground, ground texture); night is a dimmed, blue-tinted version.
SCENES: dict[str, tuple[tuple[float, float, float], ...]] = {
    "grass": ((0.55, 0.75, 0.95), (0.30, 0.62, 0.25), (0.18, 0.42, 0.14)),
    "beach": ((0.40, 0.72, 0.98), (0.93, 0.86, 0.60), (0.25, 0.52, 0.85)),
    "desert": ((0.96, 0.80, 0.52), (0.85, 0.56, 0.28), (0.66, 0.40, 0.18)),
    "snow": ((0.70, 0.76, 0.86), (0.95, 0.96, 0.98), (0.72, 0.82, 0.95)),
}
NIGHT_GAIN, NIGHT_TINT = 0.3, np.array([0.03, 0.04, 0.14])
COLOURS: dict[str, float] = {  # hue in degrees
    "red": 0.0,
    "yellow": 58.0,
    "green": 120.0,
    "cyan": 180.0,
    "blue": 235.0,
    "purple": 295.0,
}
SATURATION, VALUE = 0.85, 0.95
SHAPES = ("square", "circle", "triangle")
LIGHTINGS = ("day", "night", "nightfall", "sunrise")
STEADY_LIGHTINGS = ("day", "night")
MOTIONS = ("left", "right", "still", "jump", "fall", "grow", "shrink")

HUE_STEP = 6.0  # degrees: hue offset grid and hue drift per native chunk
BRIGHT_STEP = 0.06  # relative brightness: level grid and drift per native chunk
DRIFT_FRAMES = CHUNK_LENGTH - 1  # a drift track changes by one step over this many frames
SPEED = 1.0  # px/frame for left/right: one position step per default stride
POSITIONS = tuple(range(2, WIDTH, 4))  # subject centre columns (step = SPEED * stride)
SIZES = (6, 8, 10, 12)  # subject sizes (step = GROW * stride)
GROW = 0.5  # px/frame for grow/shrink
MIN_SIZE, MAX_SIZE = 3, 15
JUMP_HEIGHT, JUMP_PERIOD = 9, 8  # px, frames; phases step by the default stride
FALL_SPEED, FALL_HEIGHTS = 2, (16, 8)  # px/frame; start heights above the floor

# Words, by category; phrases are matched before single words (so "night falls" is no fall).
SHAPE_WORDS = {
    "square": ("square", "box", "cube", "block"),
    "circle": ("circle", "ball", "disc", "sphere", "dot"),
    "triangle": ("triangle", "pyramid", "wedge"),
}
SCENE_WORDS = {
    "grass": ("grass", "meadow", "field", "park", "lawn"),
    "beach": ("beach", "sand", "sea", "shore", "ocean"),
    "desert": ("desert", "dunes", "dune"),
    "snow": ("snow", "snowy", "winter", "ice"),
}
LIGHTING_WORDS = {
    "nightfall": ("night falls", "night comes", "sun sets", "sunset", "dusk", "gets dark"),
    "sunrise": ("sun rises", "sunrise", "dawn", "day breaks", "gets light"),
    "night": ("at night", "night", "nighttime", "dark"),
    "day": ("by day", "daytime", "day", "daylight", "sunny"),
}
MOTION_WORDS = {
    "left": ("left", "leftward", "leftwards"),
    "right": ("right", "rightward", "rightwards"),
    "jump": ("jumps", "jump", "jumping", "hops", "hop", "bounces", "bounce", "bouncing"),
    "fall": ("falls", "fall", "falling", "drops", "drop", "lands"),
    "grow": ("grows", "grow", "growing", "expands", "bigger"),
    "shrink": ("shrinks", "shrink", "shrinking", "smaller"),
    "still": ("stays still", "still", "rests", "rest", "waits", "sits", "stops", "stands"),
}
COLOUR_WORDS = {
    "red": ("red", "crimson"),
    "yellow": ("yellow", "golden"),
    "green": ("green",),
    "cyan": ("cyan", "turquoise", "teal"),
    "blue": ("blue", "azure"),
    "purple": ("purple", "violet", "magenta"),
}


# The factors a prior may weight, and the values of each that a prompt can leave open (a lighting
# change happens only where a prompt names one, so only the steady lightings have a prior weight).
PRIOR_FACTORS: dict[str, tuple[str, ...]] = {
    "scene": tuple(SCENES),
    "lighting": STEADY_LIGHTINGS,
    "colour": tuple(COLOURS),
    "shape": SHAPES,
    "motion": MOTIONS,
}


@dataclass(frozen=True)
class Prior:
    """Prior weights of factor values; a prompt's mixture weighs the values it allows by them.

    Default: uniform (every weight 1), which is toyworld's original prior. A prompt that names one
    value of a factor is unaffected (the weights are renormalised over what the prompt allows);
    an open factor follows the prior, e.g. ``lighting: {day: 0.9, night: 0.1}`` makes "a red ball
    on grass" daylight nine times out of ten (the empty prompt also allows lighting changes; they
    keep the share a uniform prior gives them). Hashable, so mixtures can be cached per prior.
    """

    weights: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()

    def weight(self, factor: str, value: str) -> float:
        """The prior weight of ``value``: 1 for a factor the prior leaves uniform, and for a value no
        prompt leaves open (a lighting change, open only in the empty prompt) the uniform share, so
        that an explicitly uniform prior is the default one."""
        table = dict(self.weights).get(factor)
        return 1.0 if table is None else dict(table).get(value, 1.0 / len(table))

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {factor: dict(values) for factor, values in self.weights}

    @classmethod
    def parse(cls, option: Any) -> Prior:
        """From ``model_options.prior``: {factor: {value: probability}}; unlisted values share the rest.

        Probabilities must be positive; the listed ones of a factor sum to 1 (all values listed)
        or to less than 1 (the unlisted values share the remainder equally).
        """
        if option is None or isinstance(option, Prior):
            return option or cls()
        allowed = "; ".join(f"{f}: {', '.join(vs)}" for f, vs in PRIOR_FACTORS.items())
        if not isinstance(option, dict):
            raise UserError(
                f"model_options.prior must be a mapping factor -> {{value: probability}} ({allowed})"
            )
        out = []
        for factor, probs in option.items():
            values = PRIOR_FACTORS.get(factor)
            if values is None:
                raise UserError(
                    f"model_options.prior: unknown factor {factor!r}; allowed: {', '.join(PRIOR_FACTORS)}"
                )
            if not isinstance(probs, dict) or not probs:
                raise UserError(
                    f"model_options.prior.{factor} must map values ({', '.join(values)}) to probabilities"
                )
            for value, p in probs.items():
                if value not in values:
                    raise UserError(
                        f"model_options.prior.{factor}: unknown value {value!r}; allowed: {', '.join(values)}"
                    )
                if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
                    raise UserError(
                        f"model_options.prior.{factor}.{value} must be a probability in (0, 1], got {p!r}"
                    )
            rest = [v for v in values if v not in probs]
            left = 1.0 - sum(probs.values())
            if (rest and left <= 1e-9) or (not rest and abs(left) > 1e-6):
                raise UserError(
                    f"model_options.prior.{factor}: probabilities sum to {1 - left:g}; they must sum to 1 "
                    "(or to less than 1 when some values are left out, which then share the rest)"
                )
            full = {v: float(probs[v]) if v in probs else left / len(rest) for v in values}
            out.append((factor, tuple(full.items())))
        return cls(tuple(sorted(out)))


UNIFORM = Prior()  # toyworld's original prior: every value a prompt allows equally likely


def vocabulary() -> dict[str, list[str]]:
    """Category -> the words a prompt may use (what ``syncos vocab`` prints)."""
    cats = {
        "shape": SHAPE_WORDS,
        "colour": COLOUR_WORDS,
        "scene": SCENE_WORDS,
        "lighting": LIGHTING_WORDS,
        "motion": MOTION_WORDS,
    }
    return {cat: sorted({w for ws in table.values() for w in ws}) for cat, table in cats.items()}


@dataclass(frozen=True)
class PromptSpec:
    """What a prompt pins: for each factor the allowed values (a mixture over them)."""

    shapes: tuple[str, ...] = SHAPES
    colours: tuple[str, ...] = tuple(COLOURS)
    scenes: tuple[str, ...] = tuple(SCENES)
    lightings: tuple[str, ...] = LIGHTINGS
    motions: tuple[str, ...] = MOTIONS


def _find(text: str, table: dict[str, tuple[str, ...]], keep: bool = False) -> tuple[list[str], str]:
    """Names whose words occur in ``text`` (longest words first), and the text with them removed.

    ``keep``: scene words take a colour adjective along ("green grass", "white snow"), so that
    describing the scene never names the subject's colour.
    """
    found: list[str] = []
    pairs = sorted(((w, n) for n, ws in table.items() for w in ws), key=lambda p: -len(p[0]))
    adjectives = "|".join(re.escape(w) for ws in COLOUR_WORDS.values() for w in ws) + "|white|golden"
    for word, name in pairs:
        pattern = rf"\b{re.escape(word)}\b"
        if keep:
            pattern = rf"(?:\b(?:{adjectives})\s+)?{pattern}"
        if re.search(pattern, text):
            text = re.sub(pattern, " ", text)
            if name not in found:
                found.append(name)
    return found, text


# Words that carry no factor of their own: never reported as ignored (the factor words around them are read).
FILLER = frozenset(
    "a an the and on in at to of with is are it its then from into onto over by as while "
    "moves move moving goes go going".split()
)


def _factors(text: str) -> tuple[list[str], list[str], list[str], list[str], list[str], str]:
    """Lightings, motions, shapes, scenes and colours named in ``text``, and what is left of it."""
    lights, text = _find(text, LIGHTING_WORDS)
    motions, text = _find(text, MOTION_WORDS)
    shapes, text = _find(text, SHAPE_WORDS)
    scenes, text = _find(text, SCENE_WORDS, keep=True)
    colours, text = _find(text, COLOUR_WORDS)
    return lights, motions, shapes, scenes, colours, text


def ignored_words(prompt: str) -> list[str]:
    """The words of ``prompt`` toyworld does not read (filler aside), in order: said before a run."""
    rest = _factors(prompt.lower())[-1]
    return list(dict.fromkeys(w for w in re.findall(r"[a-z0-9']+", rest) if w not in FILLER))


def parse_prompt(prompt: str) -> PromptSpec:
    """Parse a (structured) prompt; "" is unconditional: every factor stays open.

    Each named value restricts its factor to the named values; unnamed factors stay open.
    A lighting *change* happens only where a prompt names one: with no change named the lighting
    is steady (day or night, or the one named).
    """
    text = prompt.lower().strip()
    if not text:
        return PromptSpec()
    lights, motions, shapes, scenes, colours, _ = _factors(text)
    if not (lights or motions or shapes or colours or scenes):
        raise UserError(f"prompt {prompt!r} contains no word toyworld knows; `syncos vocab` lists them")
    changes = [x for x in lights if x in ("nightfall", "sunrise")]
    lightings = changes or [x for x in lights if x in STEADY_LIGHTINGS] or list(STEADY_LIGHTINGS)
    return PromptSpec(
        shapes=_ordered(shapes, SHAPES),
        colours=_ordered(colours, tuple(COLOURS)),
        scenes=_ordered(scenes, tuple(SCENES)),
        lightings=_ordered(lightings, LIGHTINGS),
        motions=_ordered(motions, MOTIONS),
    )


def _ordered(named: list[str], everything: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(v for v in everything if v in named) if named else everything


# ---------------------------------------------------------------- rendering primitives


def hue_to_rgb(hue_deg: np.ndarray | float) -> np.ndarray:
    """Subject colour(s) in [0, 1] for hue(s) in degrees: (..., 3)."""
    hue = np.asarray(hue_deg, dtype=np.float64)
    flat = [colorsys.hsv_to_rgb((h / 360.0) % 1.0, SATURATION, VALUE) for h in hue.ravel()]
    return np.array(flat, dtype=np.float64).reshape(hue.shape + (3,))


def background_colours(scene: str, night: np.ndarray | float, bright: np.ndarray | float) -> np.ndarray:
    """Region colours (..., J, 3) for a scene at night level(s) in [0, 1] and brightness offset(s)."""
    day = np.array(SCENES[scene], dtype=np.float64)  # (J, 3)
    night = np.asarray(night, dtype=np.float64)[..., None, None]
    bright = np.asarray(bright, dtype=np.float64)[..., None, None]
    dark = day * NIGHT_GAIN + NIGHT_TINT
    return np.clip(((1 - night) * day + night * dark) * (1 + bright), 0.0, 1.0)


def row_regions(height: int = HEIGHT) -> np.ndarray:
    """Region index of each row: 0 sky, 1 plain ground, 2 ground texture (furrows, waves, drifts).

    Regions are unions of whole rows, so a mask's run (one row) lies in exactly one region: this
    is what lets the model sum under masks once instead of once per region.
    """
    rows = np.arange(height)
    return np.where(rows < HORIZON, 0, np.where((rows - HORIZON) % 3 == 2, 2, 1))


def regions(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """The J=3 region indicators (sky, plain ground, ground texture): (J, H, W), a partition of the frame."""
    onehot = row_regions(height)[None, :] == np.arange(3)[:, None]  # (J, H)
    return np.repeat(onehot[:, :, None], width, axis=2).astype(np.float64)


@cache
def shape_rows(shape: str, size: int) -> tuple[tuple[int, int, int], ...]:
    """(row offset from top, column offset from the left edge, width) of each row of a shape."""
    rows = []
    for i in range(size):
        if shape == "square":
            a, b = 0, size
        elif shape == "circle":
            r = size / 2.0
            dy = i + 0.5 - r
            half = np.sqrt(max(r * r - dy * dy, 0.0))
            a, b = int(round(r - half)), int(round(r + half))
        elif shape == "triangle":
            half = (i + 1) / size * size / 2.0
            a, b = int(round(size / 2.0 - half)), int(round(size / 2.0 + half))
        else:
            raise ValueError(f"unknown shape {shape!r}")
        if b > a:
            rows.append((i, a, b - a))
    return tuple(rows)


def subject_runs(shape: str, size: int, centre: float, bottom: int, height: int = HEIGHT, width: int = WIDTH):
    """Runs (row, start, stop) of a subject mask; ``start`` in [0, W), ``stop`` may exceed W (wraps)."""
    left = int(round(centre - size / 2.0))
    out = []
    for i, a, w in shape_rows(shape, size):
        row = bottom - size + i
        if 0 <= row < height:
            start = (left + a) % width
            out.append((row, start, start + w))
    return out


def runs_to_mask(runs, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.float64)
    for row, a, b in runs:
        cols = np.arange(a, b) % width
        mask[row, cols] = 1.0
    return mask


# ---------------------------------------------------------------- tracks


@dataclass(frozen=True)
class BackgroundTrack:
    scene: str
    lighting: str
    level: int  # brightness offset at frame 0, in BRIGHT_STEP
    drift: int  # brightness change per native chunk, in BRIGHT_STEP

    def attributes(self, frames: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame night level and brightness offset."""
        f = np.arange(frames, dtype=np.float64)
        ramp = np.clip(f / DRIFT_FRAMES, 0.0, 1.0)
        night = {"day": 0 * f, "night": 0 * f + 1, "nightfall": ramp, "sunrise": 1 - ramp}[self.lighting]
        return night, (self.level + self.drift * f / DRIFT_FRAMES) * BRIGHT_STEP

    def colours(self, frames: int) -> np.ndarray:
        """(F, J, 3) region colours in [0, 1]."""
        return background_colours(self.scene, *self.attributes(frames))


@dataclass(frozen=True)
class ColourTrack:
    colour: str
    offset: int  # hue offset at frame 0, in HUE_STEP
    drift: int  # hue change per native chunk, in HUE_STEP

    def hues(self, frames: int) -> np.ndarray:
        f = np.arange(frames, dtype=np.float64)
        return COLOURS[self.colour] + (self.offset + self.drift * f / DRIFT_FRAMES) * HUE_STEP

    def colours(self, frames: int) -> np.ndarray:
        """(F, 3) subject colour in [0, 1]."""
        return hue_to_rgb(self.hues(frames))


@dataclass(frozen=True)
class SubjectTrack:
    shape: str
    motion: str
    x: int  # centre column at frame 0
    size: int  # size at frame 0
    phase: int = 0  # jump phase (frames) or fall start height (px above the floor)

    def states(self, frames: int) -> list[tuple[int, float, int]]:
        """Per frame (size, centre column, bottom row)."""
        out = []
        for f in range(frames):
            size, x, bottom = self.size, float(self.x), FLOOR
            if self.motion == "left":
                x -= SPEED * f
            elif self.motion == "right":
                x += SPEED * f
            elif self.motion == "grow":
                size = min(MAX_SIZE, int(round(self.size + GROW * f)))
            elif self.motion == "shrink":
                size = max(MIN_SIZE, int(round(self.size - GROW * f)))
            elif self.motion == "jump":
                bottom -= int(round(JUMP_HEIGHT * abs(np.sin(np.pi * (f + self.phase) / JUMP_PERIOD))))
            elif self.motion == "fall":
                bottom = min(FLOOR, FLOOR - self.phase + FALL_SPEED * f)
            out.append((size, x % WIDTH, bottom))
        return out

    def runs(self, frames: int) -> list[list[tuple[int, int, int]]]:
        return [subject_runs(self.shape, *state) for state in self.states(frames)]


def _subject_nuisance(motion: str) -> list[tuple[int, int, int]]:
    """(x, size, phase) combinations a motion leaves open."""
    phases = {"jump": range(0, JUMP_PERIOD, DEFAULT_STRIDE), "fall": FALL_HEIGHTS}.get(motion, (0,))
    return list(itertools.product(POSITIONS, SIZES, phases))


class World:
    """All tracks of every factor; a prompt selects a subset of each (see :func:`parse_prompt`).

    ``contrast`` maps pixels to the latent: ``latent = contrast * (pixel - 0.5)``; it is the
    calibration knob (see docs/toyworld.md).
    """

    def __init__(self, contrast: float, height: int = HEIGHT, width: int = WIDTH):
        if (height, width) != (HEIGHT, WIDTH):
            raise ValueError(f"toyworld renders {HEIGHT}x{WIDTH} frames")
        self.contrast = float(contrast)
        self.height, self.width = height, width
        self.region = regions(height, width)  # (J, H, W)

    @cached_property
    def backgrounds(self) -> list[BackgroundTrack]:
        steps = (-1, 0, 1)
        return [BackgroundTrack(*c) for c in itertools.product(SCENES, LIGHTINGS, steps, steps)]

    @cached_property
    def colours(self) -> list[ColourTrack]:
        steps = (-1, 0, 1)
        return [ColourTrack(*c) for c in itertools.product(COLOURS, steps, steps)]

    @cached_property
    def subjects(self) -> list[SubjectTrack]:
        return [
            SubjectTrack(shape, motion, *nuisance)
            for shape in SHAPES
            for motion in MOTIONS
            for nuisance in _subject_nuisance(motion)
        ]

    def select(self, spec: PromptSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Indices of the background, colour and subject tracks a prompt allows."""
        bgs = self.backgrounds
        b = [i for i, t in enumerate(bgs) if t.scene in spec.scenes and t.lighting in spec.lightings]
        k = [i for i, t in enumerate(self.colours) if t.colour in spec.colours]
        s = [i for i, t in enumerate(self.subjects) if t.shape in spec.shapes and t.motion in spec.motions]
        return np.array(b), np.array(k), np.array(s)

    def to_latent(self, pixels: np.ndarray) -> np.ndarray:
        return self.contrast * (pixels - 0.5)

    def to_pixels(self, latent: np.ndarray) -> np.ndarray:
        return latent / self.contrast + 0.5

    def render(self, background: int, colour: int, subject: int, frames: int) -> np.ndarray:
        """One component mean as pixels (3, F, H, W) in [0, 1] (the dense reference rendering)."""
        bg = self.backgrounds[background].colours(frames)  # (F, J, 3)
        col = self.colours[colour].colours(frames)  # (F, 3)
        masks = np.stack([runs_to_mask(r) for r in self.subjects[subject].runs(frames)])  # (F, H, W)
        return compose(bg, col, masks, self.region)


def compose(bg: np.ndarray, colour: np.ndarray, mask: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Pixels (3, F, H, W) from region colours (F, J, 3), subject colour (F, 3) and masks (F, H, W)."""
    back = np.einsum("fjc,jhw->cfhw", bg, region)
    return back * (1 - mask[None]) + colour.T[:, :, None, None] * mask[None]
