"""The plan as a picture: events over the video's frames, one bar per chunk, the sync window over
the steps. An SVG string (no plotting library), so the page shows it as it shows any HTML."""

from __future__ import annotations

from html import escape

from syncos.planning import RunPlan

WIDTH, LEFT, RIGHT = 900, 70, 10
ROW, GAP = 16, 4  # bar height and spacing, px
CHAR = 6.2  # about one character of the 11 px sans-serif font, px
COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f")


def _bar(x0: float, x1: float, y: float, colour: str, label: str, kind: str, title: str) -> str:
    """A labelled rectangle; the label is cut to the bar's width, the full text is its tooltip."""
    room = max(0, int((x1 - x0 - 6) / CHAR))
    text = label if len(label) <= room else label[: max(0, room - 1)] + "…"
    return (
        f'<g class="{kind}"><title>{escape(title)}</title>'
        f'<rect x="{x0:.1f}" y="{y}" width="{max(1.0, x1 - x0 - 1):.1f}" height="{ROW}" '
        f'fill="{colour}" rx="2"/>'
        f'<text x="{x0 + 3:.1f}" y="{y + ROW - 4}" fill="white">{escape(text)}</text></g>'
    )


def _label(y: float, text: str) -> str:
    return f'<text x="4" y="{y + ROW - 4}" fill="#444">{escape(text)}</text>'


def _sync_text(plan: RunPlan) -> str:
    if plan.sync_steps is None:
        return f"{plan.steps} steps ({plan.method}: no sync window)"
    if not plan.sync_steps:
        return f"{plan.steps} steps: the sync window holds none (plain co-denoising)"
    first, last = plan.sync_steps[0] + 1, plan.sync_steps[-1] + 1
    return f"{plan.steps} steps: stage 2 (sync) at {len(plan.sync_steps)} of them, {first}-{last}"


def plan_svg(plan: RunPlan) -> str:
    """The SVG of a :class:`RunPlan`: what ``syncos plan`` prints, drawn to scale."""
    frames = plan.plan.video_frames
    span = WIDTH - LEFT - RIGHT
    x = lambda f: LEFT + span * f / frames  # noqa: E731
    parts, y = [], GAP
    parts.append(_label(y, "events"))
    for i, e in enumerate(plan.events):
        local = e.prompt.rsplit(". ", 1)[-1]
        title = f"event {i}: frames {e.video[0]}-{e.video[1]}, {e.chunks} chunks; {e.prompt}"
        parts.append(_bar(x(e.video[0]), x(e.video[1]), y, COLOURS[i % len(COLOURS)], local, "event", title))
    y += ROW + 2 * GAP
    parts.append(_label(y, "chunks"))
    ends: list[int] = []  # each lane's last frame: overlapping chunks stack, later ones reuse a lane
    for i, c in enumerate(plan.chunks):
        lane = next((k for k, end in enumerate(ends) if end <= c.video[0]), len(ends))
        if lane == len(ends):
            ends.append(0)
        ends[lane] = c.video[1]
        local = c.prompt.rsplit(". ", 1)[-1]
        title = f"chunk {i}: frames {c.video[0]}-{c.video[1]}, event {c.event}; {c.prompt}"
        colour = COLOURS[c.event % len(COLOURS)]
        top = y + lane * (ROW + 1)
        parts.append(_bar(x(c.video[0]), x(c.video[1]), top, colour, f"{i}: {local}", "chunk", title))
    y += len(ends) * (ROW + 1) + GAP
    axis = f"frame 0 - {frames} ({frames / plan.fps:.1f} s at {plan.fps:g} fps)"
    parts.append(f'<text x="{LEFT}" y="{y + 10}" fill="#444">{escape(axis)}</text>')
    y += 14 + 2 * GAP
    parts.append(_label(y, "steps"))
    synced = set(plan.sync_steps or ())
    cell = span / max(1, plan.steps)
    for k in range(plan.steps):
        kind = "step synced" if k in synced else "step"
        fill = "#e15759" if k in synced else "#d0d0d0"
        parts.append(
            f'<rect class="{kind}" x="{LEFT + k * cell:.1f}" y="{y}" width="{max(1.0, cell - 1):.1f}" '
            f'height="{ROW}" fill="{fill}"><title>step {k + 1}</title></rect>'
        )
    y += ROW + GAP
    parts.append(f'<text x="{LEFT}" y="{y + 10}" fill="#444">{escape(_sync_text(plan))}</text>')
    height = y + 14 + GAP
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11" role="img" '
        f'aria-label="the plan">{"".join(parts)}</svg>'
    )


__all__ = ["plan_svg"]
