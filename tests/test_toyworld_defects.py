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


def clip(
    frames=12, scene="grass", lighting="day", motion="still", x=6, colour="red", level=0, shape="circle"
):
    """A clean rendering as uint8 frames (F, H, W, 3)."""
    bg = track(WORLD.backgrounds, scene=scene, lighting=lighting, level=level, drift=0)
    col = track(WORLD.colours, colour=colour, offset=0, drift=0)
    sub = track(WORLD.subjects, shape=shape, motion=motion, x=x, size=8, phase=0)
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


@pytest.mark.parametrize(("shift", "cuts"), [(4, ()), (8, (6,))])
def test_a_stutter_of_one_track_step_is_no_cut(shift, cuts):
    """A subject snapping to the neighbouring position track (4 px, one stride of motion, as FIFO's
    per-frame noise levels do) stutters; twice that in one frame is a cut."""
    video = clip(12, x=10)
    video[6:] = clip(12, x=10 + shift)[6:]
    assert defects(video, [(0, 12, "the ball waits")]).cuts == cuts


def test_a_day_frame_dimmed_below_every_night_is_blank():
    """Dark, though not flat: a day frame at a quarter of its light is darker than any night."""
    video = clip(12, lighting="day")
    video[6] = (video[6] * 0.24).astype(np.uint8)
    assert defects(video, [(0, 12, "the ball waits")]).blank == (6,)


@pytest.mark.parametrize(("level", "cuts"), [(0, ()), (1, (6,))])
def test_a_brightness_jump_beyond_one_level_is_a_cut(level, cuts):
    """The world's brightness levels are 0.06 apart: one level in a frame is within the tolerance,
    two (0.12) are a cut, with nothing else changing."""
    video = clip(12, level=-1)
    video[6:] = clip(12, level=level)[6:]
    assert defects(video, [(0, 12, "the ball waits")]).cuts == cuts


def test_a_boundary_explains_only_what_it_names_and_only_near_it():
    events = [(0, 12, "the ball waits"), (12, 36, "the ball waits on the beach")]
    far = np.concatenate([clip(30, x=6), clip(6, scene="beach", x=6)])  # 18 frames after the boundary
    assert defects(far, events).cuts == (30,)
    moved = np.concatenate([clip(12, x=6), clip(24, scene="beach", x=22)])  # the beach, and a jump
    assert defects(moved, events).cuts == (12,)
    assert defects(np.concatenate([clip(12, x=6), clip(24, scene="beach", x=6)]), events).cuts == ()


@pytest.mark.parametrize("change", [{"colour": "yellow"}, {"shape": "square"}])
def test_a_new_identity_is_a_cut_unless_an_event_names_it(change):
    video = np.concatenate([clip(12), clip(12, **change)])
    assert defects(video, [(0, 24, "it waits")]).cuts == (12,)
    named = f"a {change.get('colour', '')} {change.get('shape', 'ball')} waits"
    assert defects(video, [(0, 12, "a red ball waits"), (12, 24, named)]).cuts == ()


def test_two_half_transparent_balls_are_ghost_frames():
    """One ball per frame: no ghost. Frames 4-9 blend the ball at two places half and half (what
    averaging two chunks that disagree gives): each is counted; black frames are blank, not ghosts."""
    video = clip(24, motion="right", x=2)
    assert defects(video, [(0, 24, "the ball moves right")]).ghosts == ()
    other = clip(24, motion="right", x=18)
    video[4:10] = ((video[4:10].astype(np.float64) + other[4:10]) / 2).round().astype(np.uint8)
    video[20] = 0
    d = defects(video, [(0, 24, "the ball moves right")])
    assert d.ghosts == (4, 5, 6, 7, 8, 9) and d.blank == (20,)
    assert evaluate(video, GLOBAL, [(0, 24, "the ball moves right")])["ghost_frames"] == 6
