"""`make demo`'s story under the default sampler (independent tiles, chosen by the rule in
docs/syncos.md): no ghost and no blank frame, the global prompt's subject, place and light on every
frame, and cuts only where two tiles meet (what the default costs; docs/demo.md)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from syncos import api
from syncos.backends.toyworld import defects as D
from syncos.backends.toyworld import metrics as M
from syncos.samplers.options import DEFAULT_METHOD

DEMO = Path(__file__).resolve().parents[1] / "examples" / "ball_story.yaml"


def test_demo_story_has_no_ghost_or_blank_frame_and_cuts_only_between_tiles():
    gen = api.generate(DEMO)
    assert gen.scenario.method == DEFAULT_METHOD  # the demo shows what a user gets by default
    frames = np.stack(list(gen.backend.preview(gen.latent)))
    attrs = M.decode_frames(frames)
    events = api.video_events(gen.plan, gen.scenario)
    found = D.find_defects(attrs, gen.scenario.global_prompt, events)
    assert (found.ghosts, found.blank) == ((), ())  # co-denoising ghosted 31 of these 72 frames
    labels = M.frame_labels(attrs)
    for key, want in M.prompt_labels(gen.scenario.global_prompt).items():
        assert (labels[key] == want).all(), key  # subject, place and light hold on every frame
    # Tiles are sampled apart: nothing ties a tile's first frame to the last of the one before, so a
    # cut (and a restarted motion) may come only where two tiles meet, never inside one.
    seams = set(gen.plan.with_tiles().starts[1:])
    assert set(found.cuts) <= seams, found.cuts
    assert all(int(re.search(r"at frame (\d+)", r)[1]) in seams for r in found.repeats), found.repeats
    scores = api.evaluate_frames(gen, frames)
    assert scores["clean"] == 1.0 and scores["subject_consistency"] > 0.95
    # the first two events (right, jump) show in their spans; the left one restarts at the seam at 60
    assert scores["local_fidelity"] >= 2 / 3
