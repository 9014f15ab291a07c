"""toyworld metrics: clean renderings score ~1, noise and ghosted blends score low."""

import numpy as np
import pytest
import torch

from syncos.backends.toyworld import ToyWorldBackend
from syncos.backends.toyworld.metrics import COUNTS, consistency_by_distance, decode_frames, evaluate

GLOBAL = "a red ball on grass"
EVENTS = [(0, 12, "the ball moves right"), (12, 24, "the ball jumps as night falls")]


def track(tracks, **match):
    return next(i for i, t in enumerate(tracks) if all(getattr(t, k) == v for k, v in match.items()))


def video(backend, pixels):
    return np.stack(list(backend.decode(torch.from_numpy(backend.world.to_latent(pixels)))))


@pytest.fixture(scope="module")
def clips():
    """A clean two-event video (moves right, then jumps as night falls) and ghosted / noise versions."""
    b = ToyWorldBackend()
    w = b.world
    red = track(w.colours, colour="red", offset=0, drift=0)
    day = track(w.backgrounds, scene="grass", lighting="day", level=0, drift=0)
    dusk = track(w.backgrounds, scene="grass", lighting="nightfall", level=0, drift=0)
    right = w.render(day, red, track(w.subjects, shape="circle", motion="right", x=6, size=8), 12)
    jumper = track(w.subjects, shape="circle", motion="jump", x=18, size=8, phase=0)
    jump = w.render(dusk, red, jumper, 12)
    clean = np.concatenate([right, jump], axis=1)
    left = w.render(day, red, track(w.subjects, shape="circle", motion="left", x=26, size=8), 24)
    noise = np.random.default_rng(0).uniform(size=clean.shape)
    ghost = 0.5 * clean + 0.5 * left
    return b, {"clean": video(b, clean), "ghost": video(b, ghost), "noise": video(b, noise)}


def test_clean_video_scores_one(clips):
    _, v = clips
    scores = evaluate(v["clean"], GLOBAL, EVENTS)
    assert set(scores) == {
        "subject_consistency",
        "background_consistency",
        "smoothness",
        "clean",
        "global_fidelity",
        "local_fidelity",
        *COUNTS,
    }
    assert min(v for k, v in scores.items() if k not in COUNTS) > 0.95, scores
    assert all(scores[k] == 0 for k in COUNTS), scores


def test_native_and_upscaled_frames_agree(clips):
    _, v = clips
    native = v["clean"][:, ::8, ::8]
    assert evaluate(native, GLOBAL, EVENTS) == pytest.approx(evaluate(v["clean"], GLOBAL, EVENTS))


@pytest.mark.parametrize("kind", ["ghost", "noise"])
def test_degraded_videos_score_low(clips, kind):
    _, v = clips
    s = {k: v for k, v in evaluate(v[kind], GLOBAL, EVENTS).items() if k not in COUNTS}
    assert s["clean"] < 0.6 and s["subject_consistency"] < 0.6 and s["local_fidelity"] < 0.8, s
    if kind == "noise":
        assert max(s.values()) < 0.2, s


def test_per_frame_attributes(clips):
    _, v = clips
    a = decode_frames(v["clean"])
    assert (a.shape == 1).all() and np.allclose(a.hue, 0, atol=1) and (a.scene == 0).all()
    assert a.night[0] < 0.05 and a.night[-1] > 0.95
    by_distance = consistency_by_distance(a)
    assert by_distance["subject"].shape == (24,) and by_distance["subject"][0] == pytest.approx(1.0)


def test_consistency_by_distance_of_sharp_frames(clips):
    _, v = clips
    mixed = np.concatenate([v["clean"][:12], v["noise"][12:]])  # sharp first half, noise second
    a = decode_frames(mixed)
    every, sharp = consistency_by_distance(a), consistency_by_distance(a, sharp_only=True)
    assert np.isnan(sharp["subject"][12:]).all()  # no pair of two sharp frames is 12 or more apart
    assert sharp["subject"][1] > 0.95 > every["subject"][1]
    assert consistency_by_distance(decode_frames(v["clean"]), sharp_only=True)["subject"][23] > 0.95


@pytest.mark.parametrize("colour", [0, 128, 255, (255, 0, 0)])
@pytest.mark.parametrize("events", [EVENTS, [(0, 24, "the ball")]])
def test_empty_or_constant_videos_score_low_on_every_metric(colour, events):
    """No metric rewards a video with nothing in it: black, grey, white or one colour throughout
    (the old metrics gave a black video 1.0 subject consistency and smoothness)."""
    flat = np.empty((24, 256, 256, 3), np.uint8)
    flat[...] = colour
    s = evaluate(flat, "a ball", events)
    assert s["blank_frames"] == 24 and s["cuts"] == 0, s  # blank throughout: no picture to cut from
    assert max(v for k, v in s.items() if k not in COUNTS) < 0.2, s


def test_validity_leaves_sampled_videos_alone(clips):
    """The frame validity is 1 on a clean video, so it changes no score of a real sample."""
    from syncos.backends.toyworld.metrics import validity

    _, v = clips
    assert validity(decode_frames(v["clean"])).min() == 1.0


def test_frame_labels_and_prompt_labels(clips):
    from syncos.backends.toyworld.metrics import frame_labels, prompt_labels

    _, v = clips
    labels = frame_labels(decode_frames(v["clean"]))
    assert (labels["shape"] == 1).all() and (labels["colour"] == 0).all() and (labels["scene"] == 0).all()
    assert (labels["size"] == 8).all()
    assert labels["lighting"][0] == 0 and labels["lighting"][-1] == 1  # the second event's nightfall
    assert all((x == -1).all() for x in frame_labels(decode_frames(v["noise"])).values())
    assert prompt_labels("a red ball on grass. moves right at night") == {
        "shape": 1,
        "colour": 0,
        "scene": 0,
        "lighting": 1,
    }
    assert prompt_labels("a ball or a box as night falls") == {}  # a mixture or a change pins nothing
