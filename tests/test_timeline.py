from dataclasses import dataclass

import numpy as np
import pytest

from syncos.errors import UserError
from syncos.timeline import assign_events, auto_stride, chunk_starts, combine_prompts, plan_timeline


@dataclass
class Ev:
    prompt: str
    frames: int | None = None
    seconds: float | None = None


def test_chunk_starts_cover_every_frame():
    for frames in range(6, 40):
        for length in (6, 13):
            if frames < length:
                continue
            for stride in range(1, length + 1):
                s = chunk_starts(frames, length, stride)
                covered = {f for a in s for f in range(a, a + length)}
                assert covered == set(range(frames))
                assert s[0] == 0 and s[-1] == frames - length
                assert list(s) == sorted(set(s))


def test_chunk_starts_errors():
    with pytest.raises(UserError, match="shorter than one chunk"):
        chunk_starts(5, 6, 2)
    with pytest.raises(UserError, match="stride"):
        chunk_starts(20, 6, 0)
    with pytest.raises(UserError, match="stride"):
        chunk_starts(20, 6, 7)


def test_majority_assignment_and_ties():
    spans = [(0, 10), (10, 20)]
    assert assign_events([0, 4, 7, 14], 6, spans) == (0, 0, 0, 1)  # start 7: 3 vs 3 -> earlier
    assert assign_events([8], 6, spans) == (1,)


def test_plan_seconds_and_prompts():
    p = plan_timeline(
        "a red ball on grass.",
        [Ev("moves left", seconds=2.0), Ev("jumps", frames=10)],
        chunk_length=6,
        stride=2,
        fps=8,
        latent_frames=lambda v: v,
        video_frames=lambda f: f,
    )
    assert p.latent_frames == 26 and p.event_spans == ((0, 16), (16, 26))
    assert p.prompts == ("a red ball on grass. moves left", "a red ball on grass. jumps")
    assert p.chunk_prompts[0].endswith("moves left") and p.chunk_prompts[-1].endswith("jumps")
    assert p.with_stride(6).starts == (0, 6, 12, 18, 20)


def test_causal_vae_mapping():
    p = plan_timeline(
        "g",
        [Ev("a", frames=49), Ev("b", frames=48)],
        chunk_length=13,
        stride=4,
        fps=8,
        latent_frames=lambda v: 1 + (v - 1 + 3) // 4,
        video_frames=lambda f: 1 + 4 * (f - 1),
    )
    assert p.latent_frames == 25 and p.video_frames == 97
    assert p.event_spans[0][1] in (12, 13)


def test_plan_errors():
    kw = dict(chunk_length=6, stride=2, fps=8, latent_frames=lambda v: v, video_frames=lambda f: f)
    with pytest.raises(UserError, match="at least one event"):
        plan_timeline("g", [], **kw)
    with pytest.raises(UserError, match=r"events\[1\]"):
        plan_timeline("g", [Ev("a", frames=8), Ev("b", frames=0)], **kw)
    with pytest.raises(UserError, match="shorter than one chunk"):
        plan_timeline("g", [Ev("a", frames=3)], **kw)


def test_combine_prompts():
    assert combine_prompts("", "jumps") == "jumps"
    assert combine_prompts("a ball", "jumps", "local-only") == "jumps"
    with pytest.raises(UserError, match="prompt_mode"):
        combine_prompts("a", "b", "both")


def test_event_too_short_for_any_chunk():
    kw = dict(chunk_length=6, stride=2, fps=8, latent_frames=lambda v: v, video_frames=lambda f: f)
    with pytest.raises(UserError, match=r"events\[1\].*too short"):
        plan_timeline("g", [Ev("a", frames=12), Ev("b", frames=2), Ev("c", frames=12)], **kw)


def events_chunks(spans, length, stride):
    chunks = assign_events(chunk_starts(spans[-1][1], length, stride), length, spans)
    return [chunks.count(i) for i in range(len(spans))]


@pytest.mark.parametrize(
    "lengths, stride",
    [([24, 24], 11), ([10] * 5, 11), ([9] * 5, 10), ([8] * 5, 8), ([7] * 5, 7), ([20, 6, 20], 10)],
)
def test_auto_stride_is_the_largest_that_shows_every_event(lengths, stride):
    bounds = [0, *np.cumsum(lengths)]
    spans = list(zip(bounds[:-1], bounds[1:], strict=True))
    assert auto_stride(spans, 12) == stride
    assert min(events_chunks(spans, 12, stride)) >= 1
    assert all(min(events_chunks(spans, 12, s)) == 0 for s in range(stride + 1, 12))


def test_auto_stride_when_no_stride_shows_every_event():
    spans = [(0, 20), (20, 24), (24, 30), (30, 50)]  # 4 frames: no window is mostly this event
    assert auto_stride(spans, 12) == 11 and all(min(events_chunks(spans, 12, s)) == 0 for s in range(1, 12))
    assert auto_stride([(0, 12)], 12) == 11  # one chunk covers the video
    assert auto_stride([(0, 30)], 1) == 1


def test_plan_with_auto_stride():
    events = [Ev("a", frames=10), Ev("b", frames=10), Ev("c", frames=10)]
    kw = dict(chunk_length=6, fps=8, latent_frames=lambda v: v, video_frames=lambda f: f)
    p = plan_timeline("g", events, stride="auto", **kw)
    assert p.stride == auto_stride(p.event_spans, 6) and p == plan_timeline(
        "g", events, stride=p.stride, **kw
    )
    with pytest.raises(UserError, match="shorter than one chunk"):
        plan_timeline("g", [Ev("a", frames=4)], stride="auto", **kw)
    squeezed = [Ev("a", frames=10), Ev("b", frames=2), Ev("c", frames=10)]  # no window is mostly "b"
    with pytest.raises(UserError, match=r"events\[1\]: 2 latent frames is too short"):
        plan_timeline("g", squeezed, stride="auto", **kw)
    kw["chunk_length"] = 12
    between = [Ev("a", frames=20), Ev("b", frames=6), Ev("c", frames=20)]  # stride 11 would drop "b"
    assert plan_timeline("g", between, stride="auto", **kw).stride == 10
    with pytest.raises(UserError, match=r"events\[1\]: 6 latent frames is too short"):
        plan_timeline("g", between, stride=11, **kw)
