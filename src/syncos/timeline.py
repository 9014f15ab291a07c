"""From a scenario's events to the sampler's plan: latent frames, chunk windows, a prompt per chunk."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from syncos.errors import UserError

PROMPT_MODES = ("structured", "local-only")
AUTO = "auto"  # sampler.stride: chosen from the timeline by auto_stride


class EventLike(Protocol):
    prompt: str
    frames: int | None
    seconds: float | None


@dataclass(frozen=True)
class Plan:
    latent_frames: int
    video_frames: int
    chunk_length: int
    stride: int
    starts: tuple[int, ...]  # first latent frame of each chunk
    chunk_events: tuple[int, ...]  # event index of each chunk
    event_spans: tuple[tuple[int, int], ...]  # [start, end) in latent frames
    video_spans: tuple[tuple[int, int], ...]  # [start, end) in output video frames
    prompts: tuple[str, ...]  # conditioning text of each event
    # [start, end) latent frames each chunk writes when fused; None: chunks overlap-average
    owned: tuple[tuple[int, int], ...] | None = None

    @property
    def chunk_prompts(self) -> list[str]:
        return [self.prompts[e] for e in self.chunk_events]

    @property
    def num_chunks(self) -> int:
        return len(self.starts)

    def with_stride(self, stride: int) -> Plan:
        """The same timeline cut into chunks with another stride."""
        starts = chunk_starts(self.latent_frames, self.chunk_length, stride)
        events = assign_events(starts, self.chunk_length, self.event_spans)
        return replace(self, stride=stride, starts=starts, chunk_events=events, owned=None)

    def extended(self) -> Plan:
        """The chunks an extension samples one after another (``syncos.samplers.extend``), and the
        frames each writes (``owned``).

        An event's first chunk starts one frame before the event: it holds where the last event
        left the scene, not its motion, as image-to-video models continue a still. Each further
        chunk starts ``stride`` frames later, holding the rest from the chunk before. A chunk writes
        only frames of its own event; the last one of the video may run past its end (those frames
        are sampled and dropped), so every chunk of an event adds exactly ``stride`` frames.
        """
        L = self.chunk_length
        starts: list[int] = []
        events: list[int] = []
        owned: list[tuple[int, int]] = []
        end = 0  # frames written so far
        for e, (a, b) in enumerate(self.event_spans):
            s = max(0, a - min(1, L - 1))  # a chunk of one frame holds none
            while end < b:
                starts.append(s)
                events.append(e)
                owned.append((end, min(s + L, b)))
                end, s = owned[-1][1], s + self.stride
        return replace(self, starts=tuple(starts), chunk_events=tuple(events), owned=tuple(owned))

    def with_tiles(self, offset: int = 0) -> Plan:
        """The same timeline cut into tiles that never blend: each frame is written by one chunk.

        Tile boundaries sit at ``offset + k * chunk_length``; a tile that would stick out of the
        video is moved inside and writes only the frames no other tile writes.
        """
        starts, owned = tile_layout(self.latent_frames, self.chunk_length, offset)
        # each tile is conditioned on the event covering most of the frames it writes
        events = tuple(assign_events([a], b - a, self.event_spans)[0] for a, b in owned)
        return replace(self, stride=self.chunk_length, starts=starts, chunk_events=events, owned=owned)


def combine_prompts(global_prompt: str, local_prompt: str, mode: str = "structured") -> str:
    """The text a chunk is conditioned on; the paper concatenates the global and local prompts."""
    if mode == "local-only" or not global_prompt.strip():
        return local_prompt.strip()
    if mode != "structured":
        raise UserError(f"prompt_mode {mode!r} is not allowed; use one of {', '.join(PROMPT_MODES)}")
    g = global_prompt.strip().rstrip(".")
    return f"{g}. {local_prompt.strip()}" if local_prompt.strip() else g


def chunk_starts(frames: int, length: int, stride: int) -> tuple[int, ...]:
    """Windows [s, s + length) every ``stride`` frames; the last one is aligned to the end."""
    if stride < 1 or stride > length:
        raise UserError(f"stride must be in [1, {length}] (the chunk length), got {stride}")
    if frames < length:
        raise UserError(
            f"the video is shorter than one chunk: {frames} latent frames < chunk length {length}; "
            "make the events longer"
        )
    starts = list(range(0, frames - length + 1, stride))
    if starts[-1] + length < frames:
        starts.append(frames - length)
    return tuple(starts)


def tile_layout(
    frames: int, length: int, offset: int = 0
) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    """Windows of ``length`` and the disjoint [start, end) span each one writes; spans cover the video."""
    if frames < length:
        raise UserError(
            f"the video is shorter than one chunk: {frames} latent frames < chunk length {length}"
        )
    cuts = sorted({0, frames, *range(offset % length, frames, length)})
    owned = tuple(zip(cuts[:-1], cuts[1:], strict=True))
    return tuple(min(a, frames - length) for a, _ in owned), owned


def assign_events(starts: Sequence[int], length: int, spans: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    """Each chunk takes the event covering most of its frames; ties go to the earlier event."""
    out = []
    for s in starts:
        cover = [max(0, min(s + length, b) - max(s, a)) for a, b in spans]
        out.append(max(range(len(spans)), key=lambda i: (cover[i], -i)))
    return tuple(out)


def auto_stride(spans: Sequence[tuple[int, int]], chunk_length: int) -> int:
    """The largest stride below the chunk length at which every event still gets a chunk.

    On toyworld larger strides scored better, for short events as for long ones, at fewer network
    evaluations (docs/open-questions.md, Q3: stride); a stride that leaves an event with no chunk
    would never show it. Where no stride shows every event, the largest one is returned and the
    plan names the event that is too short.
    """
    return showing_stride(spans, chunk_length) or max(1, chunk_length - 1)


def showing_stride(spans: Sequence[tuple[int, int]], chunk_length: int) -> int | None:
    """The largest stride below the chunk length (1 at least) at which every event gets a chunk, or None."""
    frames = spans[-1][1]
    for stride in range(max(1, chunk_length - 1), 0, -1):
        shown = set(assign_events(chunk_starts(frames, chunk_length, stride), chunk_length, spans))
        if len(shown) == len(spans):
            return stride
    return None


def shortest_shown(spans: Sequence[tuple[int, int]], i: int, chunk_length: int) -> int:
    """The fewest latent frames event ``i`` needs (the others as they are) for a chunk to show it at
    stride 1, the finest there is: what to ask for when lowering the stride cannot help."""
    a, b = spans[i]
    for n in range(b - a + 1, spans[-1][1] + chunk_length + 1):
        d = n - (b - a)
        longer = [(x + d * (j > i), y + d * (j >= i)) for j, (x, y) in enumerate(spans)]
        if i in assign_events(chunk_starts(longer[-1][1], chunk_length, 1), chunk_length, longer):
            return n
    return chunk_length  # a chunk of its own always shows it


def event_frames(event: EventLike, fps: float) -> int:
    if event.frames is not None:
        return int(event.frames)
    assert event.seconds is not None
    return max(1, round(event.seconds * fps))


def _too_short(spans: Sequence[tuple[int, int]], i: int, chunk_length: int, stride: int, ratio: float) -> str:
    """Why no chunk shows event ``i``, and the change that fixes it: a stride that works, else a length."""
    a, b = spans[i]
    why = f"{b - a} latent frames is too short for any chunk of {chunk_length} to show it (stride {stride})"
    works = showing_stride(spans, chunk_length)
    if works is not None and works < stride:
        return f"{why}; make it longer or set sampler.stride to {works} or less (or {AUTO})"
    n = shortest_shown(spans, i, chunk_length)
    video = math.ceil(n * ratio)
    return f"{why}; even stride 1 cannot: make it at least {n} latent frames (about {video} video frames)"


def plan_timeline(
    global_prompt: str,
    events: Sequence[EventLike],
    *,
    chunk_length: int,
    stride: int | str,
    fps: float,
    latent_frames: Callable[[int], int],
    video_frames: Callable[[int], int],
    prompt_mode: str = "structured",
) -> Plan:
    if not events:
        raise UserError("events: at least one event is needed")
    lengths = [event_frames(e, fps) for e in events]
    for i, n in enumerate(lengths):
        if n < 1:
            raise UserError(f"events[{i}].frames: must be positive, got {n}")
    total_video = sum(lengths)
    F = latent_frames(total_video)
    V = video_frames(F)
    bounds = [0]
    for n in lengths:
        bounds.append(bounds[-1] + n)
    lat = [round(b * F / total_video) for b in bounds]
    vid = [round(b * V / total_video) for b in bounds]
    spans = tuple(zip(lat[:-1], lat[1:], strict=True))
    if stride == AUTO:
        stride = auto_stride(spans, chunk_length)
    starts = chunk_starts(F, chunk_length, stride)
    chunk_events = assign_events(starts, chunk_length, spans)
    for i in range(len(spans)):
        if i not in chunk_events:  # it would silently never happen
            raise UserError(f"events[{i}]: {_too_short(spans, i, chunk_length, stride, V / F)}")
    prompts = tuple(combine_prompts(global_prompt, e.prompt, prompt_mode) for e in events)
    return Plan(
        latent_frames=F,
        video_frames=V,
        chunk_length=chunk_length,
        stride=stride,
        starts=starts,
        chunk_events=chunk_events,
        event_spans=spans,
        video_spans=tuple(zip(vid[:-1], vid[1:], strict=True)),
        prompts=prompts,
    )
