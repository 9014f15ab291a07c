"""What a viewer sees go wrong in a toyworld video: cuts, repeats, blank and ghosted frames.

Built on the attributes :func:`.metrics.decode_frames` fits to each frame (no second decoding);
every threshold is a world constant (world.py), none was tuned on a sampler's output.

- **blank**: a frame whose background (the regions' median colours) is darker or brighter than
  every background of its scene the decoder fits (day to night, brightness +-0.3: five drift
  steps past the two any native clip reaches), or flatter (less contrast between regions) than
  every one, or farther from the nearest one than any sampled frame we measured (``VALID_RMSE``:
  a washed-out frame the decoder reads as snow): gone black, washed out, or showing no scene. No
  toyworld prompt asks for one.
- **cut**: a change between neighbouring frames that the world cannot make and no event boundary
  accounts for. Subject state (centre column, bottom row, size): more than any world track
  changes in ``gap + DEFAULT_STRIDE`` frames (the tracks' positions, sizes and jump phases are
  one stride of motion apart, so a sample snapping to the neighbouring track stutters, it does
  not cut); brightness: more than its drift over the gap plus one level (BRIGHT_STEP); night
  level: more than the nightfall ramp over the gap plus 1/2 (a flip between day and night); hue:
  a change of colour name with a step over the drift plus one offset (HUE_STEP); any change of
  scene or shape. The background is compared between neighbouring non-blank frames, the subject
  between neighbouring sharp ones (a ghosted stretch is ``clean``'s to measure: its two ends are
  compared across it), and a switch between a picture and a blank frame is a cut (a flash
  registers as cuts and blank frames). A change is explained once per event boundary, within a chunk of it
  (CHUNK_LENGTH - 1 frames), when the next event's local prompt pins that attribute anew (a new
  scene, lighting, shape or colour); a position never jumps on request.
- **repeat**: a lighting change (nightfall, sunrise) played more often than the events name it
  (played: night crosses from below 1/4 to above 3/4, or back, with no cut on the way; a flip is
  a cut, not a second nightfall), and a motion that restarts: within events naming one direction
  (left, right, grow, shrink, fall), a cut that sends the subject back against it.
- **ghost**: a frame with a picture (not blank) that one rendered subject does not explain: its
  distance to the nearest clean rendering (one subject on the fitted background) is beyond
  :func:`.metrics.sharp`'s bound, as when overlapping chunks average two places of the ball into
  two half-transparent balls, or fade it below the decoder's threshold (no subject found).
  ``clean`` scores the same distance as a mean; this counts the frames a viewer sees ghosted.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cache

import numpy as np

from . import metrics as M
from . import world as W

# motion -> the subject state it moves forward (a fall raises the bottom row's index)
DIRECTIONAL = {
    "right": ("x", 1),
    "left": ("x", -1),
    "grow": ("size", 1),
    "shrink": ("size", -1),
    "fall": ("bottom", 1),
}
NIGHT_RATE = 1.0 / W.DRIFT_FRAMES  # the nightfall ramp's change per frame
BRIGHT_RATE = W.BRIGHT_STEP / W.DRIFT_FRAMES
HUE_RATE = W.HUE_STEP / W.DRIFT_FRAMES
WINDOW = W.CHUNK_LENGTH - 1  # a chunk holding an event boundary reaches this far from it
# what a local prompt pins anew -> the groups of changes it explains at its event's boundary
EXPLAINS = {
    "scene": {"scene", "brightness"},
    "lighting": {"night", "brightness"},
    "shape": {"shape", "position"},
    "colour": {"colour"},
}


@dataclass(frozen=True)
class Defects:
    """Where a video goes wrong; ``cuts`` are frames t whose change from frame t - 1 is a cut."""

    cuts: tuple[int, ...]
    repeats: tuple[str, ...]  # one line each, e.g. "right restarts at frame 12"
    blank: tuple[int, ...]
    ghosts: tuple[int, ...] = ()


def _wrapped(d: np.ndarray | float) -> np.ndarray:
    """A column difference on the wrapping world, in [-W/2, W/2)."""
    return (np.asarray(d) + W.WIDTH / 2) % W.WIDTH - W.WIDTH / 2


@cache
def state_step(frames: int) -> dict[str, float]:
    """The largest change of each subject state any world track makes in ``frames`` frames."""
    out = {"x": 0.0, "size": 0.0, "bottom": 0.0}
    for track in W.World(contrast=1.0).subjects:
        s = np.array(track.states(frames + 2 * W.JUMP_PERIOD + W.FALL_HEIGHTS[0]), dtype=float).T
        d = {"size": s[0][frames:] - s[0][:-frames], "bottom": s[2][frames:] - s[2][:-frames]}
        d["x"] = _wrapped(s[1][frames:] - s[1][:-frames])
        out = {k: max(v, float(np.abs(d[k]).max())) for k, v in out.items()}
    return out


def _scene_bounds() -> np.ndarray:
    """Per scene (light min, light max, contrast min) over every background the decoder fits."""
    light, contrast = M.background_levels(M._BG[1])
    scene = M._BG[0][:, 0]
    masks = [scene == i for i in range(len(W.SCENES))]
    return np.array([(light[m].min(), light[m].max(), contrast[m].min()) for m in masks])


_BOUNDS = _scene_bounds()


def blank_frames(a: M.FrameAttributes) -> np.ndarray:
    """Per frame: darker, brighter or flatter than every background of its scene, or farther from
    the nearest one than any sampled frame's background was (VALID_RMSE; module docstring)."""
    lo, hi, flat = _BOUNDS[a.scene].T
    return (a.light < lo) | (a.light > hi) | (a.contrast < flat) | (a.bg_rmse > M.VALID_RMSE)


def ghost_frames(a: M.FrameAttributes, blank: np.ndarray) -> np.ndarray:
    """Per frame: a picture (not ``blank``) that is not one sharp rendered subject (module docstring)."""
    return ~blank & ~M.sharp(a)


def _pairs(a: M.FrameAttributes, blank: np.ndarray) -> list[tuple[int, int]]:
    """Neighbouring sharp frames: the subject is compared across a ghosted stretch (its two ends,
    with the gap's allowance), since a ghost's place and shape are its stronger copy's, which
    switches where co-denoising's windows meet; ghosting is ``clean``'s to measure."""
    seen = np.flatnonzero(M.sharp(a) & ~blank)
    return [(int(t0), int(t1)) for t0, t1 in zip(seen[:-1], seen[1:], strict=True)]


def _moved(a: M.FrameAttributes, attr: str, t0: int, t1: int) -> float:
    d = getattr(a, attr)[t1] - getattr(a, attr)[t0]
    return float(_wrapped(d) if attr == "x" else d)


def _changes(a: M.FrameAttributes, blank: np.ndarray) -> dict[int, set[str]]:
    """Frame t -> the groups of attributes that jump from the frame compared before it."""
    changes: dict[int, set[str]] = defaultdict(set)
    for t in np.flatnonzero(blank[1:] != blank[:-1]) + 1:
        changes[int(t)].add("blank")
    pictures = np.flatnonzero(~blank)
    for t0, t1 in zip(pictures[:-1], pictures[1:], strict=True):
        gap = int(t1 - t0)
        if a.scene[t1] != a.scene[t0]:
            changes[t1].add("scene")
        if abs(a.bright[t1] - a.bright[t0]) > BRIGHT_RATE * gap + W.BRIGHT_STEP:
            changes[t1].add("brightness")
        if abs(a.night[t1] - a.night[t0]) > NIGHT_RATE * gap + 0.5:
            changes[t1].add("night")
    colour = M._nearest_colour(a.hue)
    for t0, t1 in _pairs(a, blank):
        if a.shape[t1] != a.shape[t0]:
            changes[t1].add("shape")
        hue_step = HUE_RATE * (t1 - t0) + W.HUE_STEP
        if colour[t1] != colour[t0] and M._hue_diff(a.hue[t1], a.hue[t0]) > hue_step:
            changes[t1].add("colour")
        step = state_step(t1 - t0 + W.DEFAULT_STRIDE)
        if any(abs(_moved(a, k, t0, t1)) > step[k] for k in step):
            changes[t1].add("position")
    return changes


def _explain(changes: dict[int, set[str]], events: list[tuple[int, int, str]]) -> dict[int, set[str]]:
    """The changes left once each event boundary has accounted for what its next prompt pins anew."""
    left = {t: set(g) for t, g in changes.items()}
    for (_, _, before), (start, _, after) in zip(events[:-1], events[1:], strict=True):
        old, new = M.prompt_labels(before), M.prompt_labels(after)
        for attr in (k for k, v in new.items() if old.get(k) != v):
            groups = EXPLAINS.get(attr, set())
            near = [t for t, g in left.items() if abs(t - start) <= WINDOW and g & groups]
            if near:
                t = min(near, key=lambda u: abs(u - start))
                left[t] -= groups
    return {t: g for t, g in left.items() if g}


def _lighting_repeats(
    a: M.FrameAttributes, blank: np.ndarray, changes: dict[int, set[str]], prompts: list[str]
) -> list[str]:
    """Lighting changes played (gradually) more often than the prompts name them, one line each."""
    plays: dict[str, list[int]] = {"nightfall": [], "sunrise": []}
    state, last = None, -1  # last: the latest frame showing the current state
    for t in np.flatnonzero(~blank):
        new = 1 if a.night[t] > 0.75 else 0 if a.night[t] < 0.25 else None
        if new is None:
            continue
        if state is not None and new != state:
            if not any(u in changes for u in range(last + 1, t + 1)):
                plays["nightfall" if new else "sunrise"].append(int(t))
        state, last = new, t
    out = []
    for kind, frames in plays.items():
        named = sum(W.parse_prompt(p).lightings == (kind,) for p in prompts if p.strip())
        out += [f"{kind} again at frame {t} (the timeline has {named})" for t in frames[named:]]
    return out


def _event_at(events: list[tuple[int, int, str]], t: int) -> str | None:
    return next((p for start, end, p in events if start <= t < end), None)


def _restarts(a: M.FrameAttributes, blank: np.ndarray, cuts: dict[int, set[str]], events: list) -> list[str]:
    """Cuts that send the subject back against the one direction its events name."""
    out = []
    for t0, t1 in _pairs(a, blank):
        if "position" not in cuts.get(t1, ()):
            continue
        motions = {W.parse_prompt(p).motions for p in {_event_at(events, t0), _event_at(events, t1)} if p}
        if len(motions) != 1 or len(m := motions.pop()) != 1 or m[0] not in DIRECTIONAL:
            continue
        attr, sign = DIRECTIONAL[m[0]]
        if sign * _moved(a, attr, t0, t1) < -state_step(t1 - t0 + W.DEFAULT_STRIDE)[attr]:
            out.append(f"{m[0]} restarts at frame {t1}")
    return out


def find_defects(a: M.FrameAttributes, global_prompt: str, events: list[tuple[int, int, str]]) -> Defects:
    """Cuts, repeats and blank frames of decoded frames, for the events (start, end, local prompt)."""
    blank = blank_frames(a)
    changes = _changes(a, blank)
    cuts = _explain(changes, events)
    prompts = [global_prompt, *(p for _, _, p in events)]
    repeats = _lighting_repeats(a, blank, changes, prompts) + _restarts(a, blank, cuts, events)
    return Defects(
        tuple(sorted(int(t) for t in cuts)),
        tuple(repeats),
        tuple(int(t) for t in np.flatnonzero(blank)),
        tuple(int(t) for t in np.flatnonzero(ghost_frames(a, blank))),
    )


def counts(d: Defects, frames: int) -> dict[str, float]:
    """The measures run.json and the bench report: counts, and cuts per pair of neighbouring frames."""
    return {
        "cuts": len(d.cuts),
        "cut_rate": len(d.cuts) / max(1, frames - 1),
        "repeats": len(d.repeats),
        "blank_frames": len(d.blank),
        "ghost_frames": len(d.ghosts),
    }
