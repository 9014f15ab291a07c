"""Cuts, repeats and blank frames on hand-made videos with a known number of each."""

import numpy as np
import pytest

from syncos.backends.toyworld import world as W
from syncos.backends.toyworld.defects import find_defects, state_step
from syncos.backends.toyworld.metrics import decode_frames, evaluate

WORLD = W.World(contrast=1.0)
GLOBAL = "a red ball on grass"


def track(tracks, **match):
    return next(i for i, t in enumerate(tracks) if all(getattr(t, k) == v for k, v in match.items()))


def clip(frames=12, scene="grass", lighting="day", motion="still", x=6, colour="red", level=0, phase=0):
    """A clean rendering as uint8 frames (F, H, W, 3)."""
    bg = track(WORLD.backgrounds, scene=scene, lighting=lighting, level=level, drift=0)
    col = track(WORLD.colours, colour=colour, offset=0, drift=0)
    sub = track(WORLD.subjects, shape="circle", motion=motion, x=x, size=8, phase=phase)
    px = WORLD.render(bg, col, sub, frames)  # (3, F, H, W)
    return (np.clip(px, 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 3, 0)


def defects(frames, events, global_prompt=GLOBAL):
    return find_defects(decode_frames(frames), global_prompt, events)


def test_clean_story_has_no_defect():
    """Moves right, then jumps as night falls, continuing where the first event ended."""
    video = np.concatenate([clip(motion="right", x=6), clip(lighting="nightfall", motion="jump", x=18)])
    d = defects(video, [(0, 12, "the ball moves right"), (12, 24, "the ball jumps as night falls")])
    assert (d.cuts, d.repeats, d.blank) == ((), (), ())


def test_spliced_video_has_one_cut_per_splice():
    """Three shots: the ball jumps 11 px at frame 8, the scene turns to beach at frame 16."""
    video = np.concatenate([clip(8, x=6), clip(8, x=18), clip(8, scene="beach", x=18)])
    d = defects(video, [(0, 24, "the ball waits")])
    assert (d.cuts, d.repeats, d.blank) == ((8, 16), (), ())
    # an event that asks for the beach at frame 16 explains the second cut, not the first
    d = defects(video, [(0, 16, "the ball waits"), (16, 24, "the ball waits on the beach")])
    assert d.cuts == (8,)


def test_a_lighting_the_next_event_names_explains_its_flip():
    video = np.concatenate([clip(lighting="day"), clip(lighting="night")])
    assert defects(video, [(0, 24, "the ball waits")]).cuts == (12,)
    assert defects(video, [(0, 12, "the ball waits by day"), (12, 24, "the ball waits at night")]).cuts == ()
    # a boundary explains one change: a second flip near it is still a cut
    video[14] = clip(lighting="day")[2]
    d = defects(video, [(0, 12, "the ball waits by day"), (12, 24, "the ball waits at night")])
    assert d.cuts == (14, 15)


def test_repeated_nightfall_is_a_repeat_and_its_reset_a_cut():
    video = np.concatenate([clip(lighting="nightfall"), clip(lighting="nightfall")])
    d = defects(video, [(0, 24, "night falls")])
    assert d.cuts == (12,) and d.blank == ()
    assert d.repeats == ("nightfall again at frame 21 (the timeline has 1)",)
    # two events that each name it: played twice, asked twice
    assert defects(video, [(0, 12, "night falls"), (12, 24, "night falls")]).repeats == ()


def test_restarted_motion_is_a_cut_and_a_repeat():
    """Two tiles that each start the rightward motion at x = 6 (independent tiles' restart)."""
    video = np.concatenate([clip(motion="right", x=6), clip(motion="right", x=6)])
    d = defects(video, [(0, 24, "the ball moves right")])
    assert (d.cuts, d.repeats, d.blank) == ((12,), ("right restarts at frame 12",), ())
    # the same jump where the events name no direction is a cut, no restart
    assert defects(video, [(0, 24, "the ball")]).repeats == ()


def test_black_and_washed_out_frames_are_blank():
    video = clip(24, motion="right", x=2)
    video[5:8] = 0  # three black frames
    video[15] = 255  # a white one
    video[20] = (0.6 * video[20] + 0.4 * 255).astype(np.uint8)  # washed out: brighter than any grass
    video[22] = (0.5 * video[22] + 0.5 * 255).astype(np.uint8)  # fits no background (read as snow)
    d = defects(video, [(0, 24, "the ball moves right")])
    assert d.blank == (5, 6, 7, 15, 20, 22)
    assert d.cuts == (5, 8, 15, 16, 20, 21, 22, 23)  # each switch between picture and blank
    assert d.repeats == ()


def test_a_frame_washed_out_like_snow_is_a_cut():
    """Washed 80% to white, grass reads as a snow scene: not blank, but a scene cut in and out."""
    video = clip(24, motion="right", x=2)
    video[10] = (0.2 * video[10] + 0.8 * 255).astype(np.uint8)
    d = defects(video, [(0, 24, "the ball moves right")])
    assert (d.cuts, d.blank) == ((10, 11), ())


def test_a_fade_to_black_is_blank_from_where_it_leaves_the_world():
    video = clip(12, lighting="night")
    for i, gain in enumerate([0.8, 0.4, 0.1, 0.0]):
        video[8 + i] = (video[8 + i] * gain).astype(np.uint8)
    d = defects(video, [(0, 12, "the ball waits")], "a red ball on grass at night")
    # a 20% dimming in one frame is a brightness cut (over three levels); then the switch into blank
    assert d.blank == (9, 10, 11) and d.cuts == (8, 9)


def test_day_night_flicker_registers_as_cuts():
    """FIFO-style flicker: a night video with day frames at 12-13 and 18."""
    video = clip(24, lighting="night")
    day = clip(24, lighting="day")
    video[[12, 13, 18]] = day[[12, 13, 18]]
    d = defects(video, [(0, 24, "the ball waits")], "a red ball on grass at night")
    assert (d.cuts, d.repeats, d.blank) == ((12, 14, 18, 19), (), ())


def test_independent_tiles_register_at_their_boundary():
    """Two tiles sampled apart (another position, another brightness level): a cut at the seam."""
    video = np.concatenate([clip(motion="right", x=6, level=-1), clip(motion="right", x=26, level=1)])
    d = defects(video, [(0, 24, "the ball moves right")])
    assert d.cuts == (12,)


def test_evaluate_reports_counts_and_rate():
    video = np.concatenate([clip(8, x=6), clip(8, x=18), clip(8, scene="beach", x=18)])
    video[3] = 0
    s = evaluate(video, GLOBAL, [(0, 24, "the ball waits")])
    assert (s["cuts"], s["repeats"], s["blank_frames"]) == (4, 0, 1)
    assert s["cut_rate"] == pytest.approx(4 / 23)


def test_thresholds_are_the_world_constants():
    """A frame may show what the world does in one frame plus one stride of its track grids."""
    k = 1 + W.DEFAULT_STRIDE
    assert state_step(k)["x"] == W.SPEED * k
    assert state_step(k)["size"] == np.ceil(W.GROW * k)
    assert state_step(1)["bottom"] == 3  # the jump's steepest frame (fall: FALL_SPEED = 2)
