"""(prompt, clip) pairs drawn from toyworld's generative prior, as the exact model conditions on them.

A prompt is "{global}. {local}" (:func:`syncos.timeline.combine_prompts`), each factor named with
some probability and otherwise left open; the clip is a component of the mixture that
:func:`~syncos.backends.toyworld.world.parse_prompt` makes of the text, drawn by its weight under
the prior (:class:`~syncos.backends.toyworld.world.Prior`), rendered by the world. A boundary clip
is what the timeline feeds a chunk that straddles two events: its first frames come from one local
prompt, the rest from the next, and its text is the prompt of the event covering most frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from syncos.backends.toyworld import world as W
from syncos.backends.toyworld.model import PIXEL_STD, ToyWorldBackend, sample_component
from syncos.errors import UserError
from syncos.timeline import assign_events, combine_prompts

STEADY_WORDS = {"day": ("by day", "daytime", "sunny"), "night": ("at night", "nighttime")}


@dataclass(frozen=True)
class ClipSampler:
    """Draws training pairs; clips are (3, F, H, W) pixels in [0, 1] with toyworld's pixel noise."""

    prior: W.Prior = W.UNIFORM
    frames: int = W.CHUNK_LENGTH
    p_named: float = 0.7  # each factor is named with this probability
    p_boundary: float = 0.25  # fraction of event-boundary clips
    p_empty: float = 0.1  # fraction of empty prompts (the unconditional model, for guidance)

    def prompts(self, g: np.random.Generator) -> tuple[str, str, str]:
        """(global, local, next local): the local prompts differ in motion, scene or lighting."""
        pick = lambda words: words[g.integers(len(words))]  # noqa: E731
        named = lambda: g.random() < self.p_named  # noqa: E731
        subject = pick(W.SHAPE_WORDS[pick(W.SHAPES)]) if named() else "thing"
        if named():
            subject = f"{pick(W.COLOUR_WORDS[pick(tuple(W.COLOURS))])} {subject}"
        glob = [f"a {subject}"]
        scene_named = named()  # a scene is named in the global prompt or in the local ones, not both
        if scene_named:
            glob.append(f"on the {pick(W.SCENE_WORDS[pick(tuple(W.SCENES))])}")
        if g.random() < self.p_named / 2:
            glob.append(pick(STEADY_WORDS[pick(W.STEADY_LIGHTINGS)]))

        def local() -> str:
            kind = g.integers(1 if scene_named else 0, 4) if g.random() < 0.5 else 2
            if kind == 1:
                return f"it {pick(W.LIGHTING_WORDS[pick(('nightfall', 'sunrise'))])}"
            if kind == 0:
                return f"it is in the {pick(W.SCENE_WORDS[pick(tuple(W.SCENES))])}"
            return f"it {pick(W.MOTION_WORDS[pick(W.MOTIONS)])}" if named() else ""

        return " ".join(glob), local(), local()

    @cached_property
    def exact(self) -> ToyWorldBackend:
        """The exact model under the same prior: its prompt mixtures are what clips are drawn from."""
        return ToyWorldBackend(prior=self.prior)

    def clip(self, prompt: str, g: np.random.Generator, frames: int | None = None) -> np.ndarray:
        """A clip (3, F, H, W) in [0, 1] from the prompt's mixture under the prior."""
        mix = self.exact.mixture(prompt)
        frames = frames or self.frames
        mean = mix.world.render(*sample_component(mix, g), frames)
        return mean + g.normal(size=mean.shape) * PIXEL_STD

    def sample(self, g: np.random.Generator) -> tuple[str, np.ndarray]:
        """One (text, clip) pair."""
        glob, first, second = self.prompts(g)
        texts = [_known(combine_prompts(glob, first)), _known(combine_prompts(glob, second))]
        if g.random() < self.p_boundary and texts[0] != texts[1]:
            cut = int(g.integers(1, self.frames))
            clip = np.concatenate([self.clip(texts[0], g)[:, :cut], self.clip(texts[1], g)[:, cut:]], axis=1)
            text = texts[assign_events([0], self.frames, [(0, cut), (cut, self.frames)])[0]]
        else:
            text, clip = texts[0], self.clip(texts[0], g)
        return ("" if g.random() < self.p_empty else text), clip

    def batches(self, batch: int, seed: int) -> Iterator[tuple[list[str], np.ndarray]]:
        """An endless seeded stream of (texts, clips (B, 3, F, H, W) in [0, 1])."""
        g = np.random.default_rng(seed)
        while True:
            pairs = [self.sample(g) for _ in range(batch)]
            yield [p for p, _ in pairs], np.stack([c for _, c in pairs])


def _known(text: str) -> str:
    """The text, or "" (unconditional) where it names nothing toyworld knows (e.g. "a thing")."""
    try:
        W.parse_prompt(text)
    except UserError:
        return ""
    return text
