"""Metrics of a toyworld video, computed from its decoded frames only (like VBench on real videos).

Each frame is decoded to attributes by fitting the world's renderer to it (:func:`decode_frames`):
background (scene, night level, brightness) from the median colour of each region, subject
(shape, size, centre column, bottom row) by the nearest mask template, hue from the subject's
median colour, and the distance of the frame to that clean rendering. All scores are in [0, 1],
higher is better, and every one is weighted by each frame's :func:`validity`: 0 for a frame
with no subject, low for one far from every clean rendering (a black frame), 1 for any frame a
sampler produces. So an empty, black or constant-colour video scores low on every metric
instead of being "perfectly consistent and smooth" (docs/toyworld.md):

- ``subject_consistency``: mean over all frame pairs of [same shape] * exp(-dhue^2 / 2 (15 deg)^2);
  all pairs, so slow drift between far-apart frames counts (VBench compares with frame 0 too).
- ``background_consistency``: mean over pairs of [same scene] * exp(-dbright^2 / 2 (0.06)^2),
  times the fit quality of both backgrounds (as in ``clean``, on the non-subject pixels); the
  night level is excluded, since "night falls" changes it on purpose.
- ``smoothness``: mean over consecutive frames of exp(-max(0, jump - 1)), where ``jump`` is the
  largest attribute change in units of what the world's own motions produce in one frame
  (3 px position, 5 px height, 2 px size, 6 deg hue, 0.06 brightness, 0.25 night), and a
  change of shape or scene counts as 2.
- ``clean``: mean over frames of exp(-max(0, rmse - 0.03) / 0.05): rmse (pixels in [0, 1]) to
  the nearest clean rendering (0 without a subject); ghosted blends, collapsed averages and
  noise score low.
- ``global_fidelity``: over the attributes the global prompt pins (shape, colour name, scene,
  steady lighting), the mean fraction of frames that show them; 1 when it pins nothing.
- ``local_fidelity``: over events (start_frame, end_frame exclusive, local prompt), whether the
  span shows the named motion (any of them, if several) and lighting change; mean over events
  that name one (1 when none does).

Then what a viewer sees go wrong, lower is better (:mod:`.defects` defines them): ``cuts`` (a
count) and ``cut_rate`` (per pair of neighbouring frames), ``repeats``, ``blank_frames`` and
``ghost_frames``.
"""

from __future__ import annotations

import colorsys
import itertools
from dataclasses import dataclass

import numpy as np

from . import world as W

# One line each: what `syncos generate` and `syncos metrics` print beside the numbers.
MEANINGS = {
    "subject_consistency": "the subject keeps its shape and colour across all frame pairs",
    "background_consistency": "the scene and its brightness stay the same across frames",
    "smoothness": "no jumps between consecutive frames beyond the world's own motions",
    "clean": "each frame is a sharp rendering (no ghosting, blur or noise)",
    "global_fidelity": "frames show what the global prompt pins (shape, colour, scene, light)",
    "local_fidelity": "each event's span shows its motion or lighting change",
    "cuts": "count (0 is best): jumps between neighbouring frames no event explains",
    "cut_rate": "cuts per pair of neighbouring frames (0 is best)",
    "repeats": "count (0 is best): lighting changes played again, motions that restart",
    "blank_frames": "count (0 is best): frames gone black, washed out or flat",
    "ghost_frames": "count (0 is best): frames one sharp subject does not explain (a faint second ball)",
}
# lower is better; the others are scores
COUNTS = ("cuts", "cut_rate", "repeats", "blank_frames", "ghost_frames")
HUE_TOL, BRIGHT_TOL = 15.0, W.BRIGHT_STEP
VALID_RMSE = 0.2  # see validity()
SUBJECT_THRESHOLD = 0.12  # a pixel belongs to the subject if it differs this much from the background fit


@dataclass(frozen=True)
class FrameAttributes:
    """Per-frame decoded attributes (arrays of length T); -1 / NaN where no subject was found."""

    scene: np.ndarray  # index into world.SCENES
    night: np.ndarray
    bright: np.ndarray
    shape: np.ndarray  # index into world.SHAPES
    size: np.ndarray
    x: np.ndarray  # centre column
    bottom: np.ndarray  # bottom row (exclusive)
    hue: np.ndarray  # degrees
    rmse: np.ndarray  # distance to the nearest clean rendering, pixel units
    bg_rmse: np.ndarray  # distance of the non-subject pixels to the background fit
    light: np.ndarray  # mean of the regions' median colours, weighted by area (see background_levels)
    contrast: np.ndarray  # largest difference of one channel between two regions' median colours


def to_native(frames: np.ndarray) -> np.ndarray:
    """uint8 (T, H*k, W*k, 3) frames at any integer upscale -> float pixels (T, H, W, 3) by block mean."""
    frames = np.asarray(frames)
    T, Hk, Wk, _ = frames.shape
    k = Hk // W.HEIGHT
    if Hk != k * W.HEIGHT or Wk != k * W.WIDTH or k < 1:
        raise ValueError(f"frames must be an integer upscale of {W.HEIGHT}x{W.WIDTH}, got {Hk}x{Wk}")
    px = frames.astype(np.float64) / 255.0 if frames.dtype == np.uint8 else frames.astype(np.float64)
    return px.reshape(T, W.HEIGHT, k, W.WIDTH, k, 3).mean((2, 4))


def _background_grid() -> tuple[np.ndarray, np.ndarray]:
    """Every (scene, night, bright) on a fine grid and its region colours: (N, 3), (N, J, 3)."""
    nights, brights = np.linspace(0, 1, 21), np.linspace(-0.3, 0.3, 61)
    params, colours = [], []
    for si, scene in enumerate(W.SCENES):
        n, b = np.meshgrid(nights, brights, indexing="ij")
        params.append(np.stack([np.full(n.size, si), n.ravel(), b.ravel()], 1))
        colours.append(W.background_colours(scene, n.ravel(), b.ravel()))
    return np.concatenate(params), np.concatenate(colours)


_BG = _background_grid()
_AREA = np.bincount(W.row_regions(W.HEIGHT)) / W.HEIGHT  # share of the frame in each region


def background_levels(colours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Light and contrast of region colours (..., J, 3): the area-weighted mean, and the largest
    difference of one channel between two regions (a black, white or flat frame has none)."""
    light = (colours.mean(-1) * _AREA).sum(-1)
    pairs = np.abs(colours[..., :, None, :] - colours[..., None, :, :])
    return light, pairs.reshape(*pairs.shape[:-3], -1).max(-1)


def _hue(rgb: np.ndarray) -> float:
    return colorsys.rgb_to_hsv(*np.clip(rgb, 0, 1))[0] * 360.0


def _hue_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.abs(a - b) % 360.0
    return np.minimum(d, 360.0 - d)


def decode_frame(px: np.ndarray, region: np.ndarray) -> tuple[float, ...]:
    """Attributes of one native frame (H, W, 3) in [0, 1]; see :class:`FrameAttributes`."""
    rows = W.row_regions(W.HEIGHT)
    observed = np.stack([np.median(px[rows == j].reshape(-1, 3), axis=0) for j in range(len(region))])
    best = int(((_BG[1] - observed) ** 2).sum((1, 2)).argmin())
    scene, night, bright = _BG[0][best]
    bg = _BG[1][best]  # (J, 3)
    light, contrast = (float(v) for v in background_levels(observed))
    back = np.einsum("jc,jhw->hwc", bg, region)
    found = np.abs(px - back).max(-1) > SUBJECT_THRESHOLD
    if not found.any():
        bg_rmse = float(np.sqrt(((px - back) ** 2).mean()))
        return scene, night, bright, -1, np.nan, np.nan, np.nan, np.nan, bg_rmse, bg_rmse, light, contrast
    hue = _hue(np.median(px[found], axis=0))
    r, c = np.nonzero(found)
    angle = np.angle(np.exp(2j * np.pi * c / W.WIDTH).mean())
    x0, b0 = angle / (2 * np.pi) * W.WIDTH % W.WIDTH, r.max() + 1
    h0 = int(np.clip(r.max() - r.min() + 1, W.MIN_SIZE + 1, W.MAX_SIZE - 1))
    colour = W.hue_to_rgb(hue)
    best_fit: tuple = (np.inf, 0, 0, 0.0, 0, None)
    candidates = itertools.product(
        range(len(W.SHAPES)),
        range(h0 - 1, h0 + 2),
        (x0 - 0.5, x0, x0 + 0.5, x0 + 1.0),
        (b0, b0 + 1),
    )
    for si, size, x, bottom in candidates:
        mask = W.runs_to_mask(W.subject_runs(W.SHAPES[si], size, x, bottom))
        clean = back * (1 - mask[..., None]) + colour * mask[..., None]
        err = float(((px - clean) ** 2).mean())
        if err < best_fit[0]:
            best_fit = (err, si, size, x, bottom, mask)
    err, si, size, x, bottom, mask = best_fit
    bg_rmse = float(np.sqrt(((px - back)[mask == 0] ** 2).mean()))
    return scene, night, bright, si, size, x, bottom, hue, float(np.sqrt(err)), bg_rmse, light, contrast


def decode_frames(frames: np.ndarray) -> FrameAttributes:
    """Decode every frame of a video (T, H*k, W*k, 3) to its attributes."""
    region = W.regions()
    # frame by frame: the float copy of a whole upscaled video would be 8 bytes per pixel
    rows = np.array([decode_frame(to_native(f[None])[0], region) for f in frames], dtype=np.float64)
    cols = rows.T
    return FrameAttributes(
        scene=cols[0].astype(int),
        night=cols[1],
        bright=cols[2],
        shape=cols[3].astype(int),
        size=cols[4],
        x=cols[5],
        bottom=cols[6],
        hue=cols[7],
        rmse=cols[8],
        bg_rmse=cols[9],
        light=cols[10],
        contrast=cols[11],
    )


def similarity_matrices(attrs: FrameAttributes) -> dict[str, np.ndarray]:
    """(T, T) subject and background similarity of every frame pair (the consistency kernels)."""
    found = attrs.shape >= 0
    same_shape = (attrs.shape[:, None] == attrs.shape[None]) & found[:, None] & found[None]
    dh = np.nan_to_num(_hue_diff(attrs.hue[:, None], attrs.hue[None]), nan=180.0)
    v = validity(attrs)
    subject = same_shape * np.exp(-(dh**2) / (2 * HUE_TOL**2)) * np.sqrt(v[:, None] * v[None])
    db = attrs.bright[:, None] - attrs.bright[None]
    fit = np.sqrt(_quality(attrs.bg_rmse) * v)  # a background that fits no scene is no consistent one
    background = (attrs.scene[:, None] == attrs.scene[None]) * np.exp(-(db**2) / (2 * BRIGHT_TOL**2))
    background = background * fit[:, None] * fit[None]
    return {"subject": subject, "background": background}


def consistency_by_distance(attrs: FrameAttributes, sharp_only: bool = False) -> dict[str, np.ndarray]:
    """Mean subject/background similarity of frame pairs as a function of their distance (index d).

    ``sharp_only``: only pairs of sharp frames (``clean`` quality >= 0.5 for both), so that the
    attributes' drift is seen apart from ghosted frames; NaN at a distance with no such pair.
    """
    T = len(attrs.scene)
    ok = sharp(attrs) if sharp_only else np.ones(T, bool)
    pairs = ok[:, None] & ok[None]
    out = {}
    for key, sim in similarity_matrices(attrs).items():
        out[key] = np.array(
            [
                np.diagonal(sim, d)[np.diagonal(pairs, d)].mean() if np.diagonal(pairs, d).any() else np.nan
                for d in range(T)
            ]
        )
    return out


def _quality(rmse: np.ndarray) -> np.ndarray:
    """1 up to the noise floor of a clean sample (0.03), then decaying with the distance."""
    return np.exp(-np.maximum(0.0, rmse - 0.03) / 0.05)


def sharp(attrs: FrameAttributes) -> np.ndarray:
    """Per frame: a subject and a ``clean`` quality of at least 0.5 (rmse <= 0.065): no ghost."""
    return (_quality(attrs.rmse) >= 0.5) & (attrs.shape >= 0)


def validity(attrs: FrameAttributes) -> np.ndarray:
    """Per frame: whether it is a toyworld frame at all. 0 without a subject; 1 up to an rmse of
    VALID_RMSE to the nearest clean rendering (above the worst frame of any sample we measured:
    0.17), then falling fast (a black frame, 0.24, gets 0.16). Unlike ``clean`` it leaves blurry
    or ghosted samples at 1, so the other metrics keep measuring what they say."""
    return np.exp(-np.maximum(0.0, attrs.rmse - VALID_RMSE) / 0.02) * (attrs.shape >= 0)


def _pair_mean(sim: np.ndarray) -> float:
    T = len(sim)
    return float(sim[np.triu_indices(T, 1)].mean()) if T > 1 else float(sim.mean())


def _smoothness(a: FrameAttributes) -> float:
    v = validity(a)
    if len(a.scene) < 2:
        return float(v.mean())
    dx = np.abs((np.diff(a.x) + W.WIDTH / 2) % W.WIDTH - W.WIDTH / 2)
    jumps = np.stack(
        [
            dx / 3.0,
            np.abs(np.diff(a.bottom)) / 5.0,
            np.abs(np.diff(a.size)) / 2.0,
            _hue_diff(a.hue[1:], a.hue[:-1]) / 6.0,
            np.abs(np.diff(a.bright)) / W.BRIGHT_STEP,
            np.abs(np.diff(a.night)) / 0.25,
            2.0 * (np.diff(a.shape) != 0),
            2.0 * (np.diff(a.scene) != 0),
        ]
    )
    jump = np.nan_to_num(jumps, nan=2.0).max(0)
    return float((np.exp(-np.maximum(0.0, jump - 1.0)) * np.sqrt(v[1:] * v[:-1])).mean())


def _nearest_colour(hue: np.ndarray) -> np.ndarray:
    names = list(W.COLOURS)
    d = _hue_diff(hue[:, None], np.array([W.COLOURS[n] for n in names])[None])
    return np.where(np.isnan(hue), -1, d.argmin(1))


LIGHTS = ("day", "night")  # the steady lightings a frame shows (a change is a run of frames)


def frame_labels(attrs: FrameAttributes) -> dict[str, np.ndarray]:
    """Per frame, each attribute a prompt can name, as an index into the world's values (shape,
    colour, scene, lighting: day/night) or in pixels (size); -1 on a frame that is no toyworld
    frame (validity < 0.5), so it shows no value. What an event is measured to keep or change."""
    labels = {
        "shape": attrs.shape,
        "colour": _nearest_colour(attrs.hue),
        "size": np.nan_to_num(attrs.size, nan=-1).round().astype(int),
        "scene": attrs.scene,
        "lighting": (attrs.night > 0.5).astype(int),
    }
    ok = validity(attrs) >= 0.5
    return {k: np.where(ok, v, -1) for k, v in labels.items()}


def prompt_labels(prompt: str) -> dict[str, int]:
    """The attributes a prompt pins to a single value, in :func:`frame_labels`' indices."""
    spec = W.parse_prompt(prompt)
    named = {
        "shape": (spec.shapes, W.SHAPES),
        "colour": (spec.colours, tuple(W.COLOURS)),
        "scene": (spec.scenes, tuple(W.SCENES)),
        "lighting": (spec.lightings, LIGHTS),
    }
    return {k: values.index(v[0]) for k, (v, values) in named.items() if len(v) == 1 and v[0] in values}


def _global_fidelity(a: FrameAttributes, prompt: str) -> float:
    spec, full = W.parse_prompt(prompt), W.PromptSpec()
    checks = []
    if spec.shapes != full.shapes:
        checks.append(np.isin(a.shape, [W.SHAPES.index(s) for s in spec.shapes]))
    if spec.colours != full.colours:
        checks.append(np.isin(_nearest_colour(a.hue), [list(W.COLOURS).index(c) for c in spec.colours]))
    if spec.scenes != full.scenes:
        checks.append(np.isin(a.scene, [list(W.SCENES).index(s) for s in spec.scenes]))
    if spec.lightings in (("day",), ("night",)):
        checks.append((a.night > 0.5) == (spec.lightings == ("night",)))
    v = validity(a)
    return float(np.mean([(c * v).mean() for c in checks])) if checks else float(v.mean())


def _shows(motion: str, a: FrameAttributes, span: slice) -> bool:
    x, bottom, size = a.x[span], a.bottom[span], a.size[span]
    if np.isnan(x).any():
        return False
    dx = float(np.mean((np.diff(x) + W.WIDTH / 2) % W.WIDTH - W.WIDTH / 2))
    return {
        "right": dx > 0.5,
        "left": dx < -0.5,
        "still": abs(dx) < 0.25 and np.ptp(size) <= 1 and np.ptp(bottom) <= 1,
        "jump": bottom.min() <= W.FLOOR - 4 and np.ptp(bottom) >= 4,
        "fall": bottom[-1] - bottom.min() >= 4 and bottom[-1] >= bottom[0],
        "grow": size[-1] - size[0] >= 2,
        "shrink": size[0] - size[-1] >= 2,
    }[motion]


def _local_fidelity(a: FrameAttributes, events: list[tuple[int, int, str]]) -> float:
    full, scores = W.PromptSpec(), []
    for start, end, prompt in events:
        span = slice(max(0, int(start)), min(len(a.scene), int(end)))
        if span.stop - span.start < 2:
            continue
        spec, checks = W.parse_prompt(prompt), []
        if spec.motions != full.motions:
            checks.append(any(_shows(m, a, span) for m in spec.motions))
        night = a.night[span]
        if spec.lightings == ("nightfall",):
            checks.append(night[-1] - night[0] >= 0.5)
        if spec.lightings == ("sunrise",):
            checks.append(night[0] - night[-1] >= 0.5)
        if checks:
            scores.append(np.mean(checks) * validity(a)[span].mean())
    return float(np.mean(scores)) if scores else float(validity(a).mean())


def evaluate(frames: np.ndarray, global_prompt: str, events: list[tuple[int, int, str]]) -> dict[str, float]:
    """All metrics of a video (T, H*k, W*k, 3) uint8; see the module docstring for definitions.
    The scores are in [0, 1], higher is better; the :data:`COUNTS` are lower is better."""
    return evaluate_with_defects(frames, global_prompt, events)[0]


def evaluate_with_defects(frames: np.ndarray, global_prompt: str, events: list[tuple[int, int, str]]):
    """:func:`evaluate`'s metrics and the :class:`.defects.Defects` they count (where each one is)."""
    from .defects import counts, find_defects  # it builds on this module's decoding

    attrs = decode_frames(frames)
    sims = similarity_matrices(attrs)
    found = find_defects(attrs, global_prompt, events)
    metrics = {
        "subject_consistency": _pair_mean(sims["subject"]),
        "background_consistency": _pair_mean(sims["background"]),
        "smoothness": _smoothness(attrs),
        "clean": float((_quality(attrs.rmse) * (attrs.shape >= 0)).mean()),
        "global_fidelity": _global_fidelity(attrs, global_prompt),
        "local_fidelity": _local_fidelity(attrs, events),
        **counts(found, len(attrs.scene)),
    }
    return metrics, found
