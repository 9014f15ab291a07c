"""`make demo`'s story under the default sampler (extend, chosen by the rule in docs/syncos.md):
every event once, in order, in its own span; no ghost, cut, repeat or blank frame; the global
prompt's subject, place and light on every frame (docs/demo.md has the frames)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from syncos import api
from syncos.backends.toyworld import defects as D
from syncos.backends.toyworld import metrics as M
from syncos.samplers.options import DEFAULT_METHOD

DEMO = Path(__file__).resolve().parents[1] / "examples" / "ball_story.yaml"


def test_demo_story_shows_every_event_once_in_order_with_no_ghost_cut_repeat_or_blank_frame():
    gen = api.generate(DEMO)
    assert gen.scenario.method == DEFAULT_METHOD  # the demo shows what a user gets by default
    frames = np.stack(list(gen.backend.preview(gen.latent)))
    attrs = M.decode_frames(frames)
    events = api.video_events(gen.plan, gen.scenario)
    found = D.find_defects(attrs, gen.scenario.global_prompt, events)
    # tiles cut at 3 seams and restarted the leftward motion; syncos ghosted 31 frames, codenoise 47
    assert (found.ghosts, found.cuts, found.repeats, found.blank) == ((), (), (), ()), found
    labels = M.frame_labels(attrs)
    for key, want in M.prompt_labels(gen.scenario.global_prompt).items():
        assert (labels[key] == want).all(), key  # subject, place and light hold on every frame
    scores = api.evaluate_frames(gen, frames)
    assert scores["clean"] == 1.0 and scores["subject_consistency"] > 0.95
    # each event's motion shows in its own span (right, jump, left: in order), and no repeat above
    assert scores["local_fidelity"] == 1.0 and scores["global_fidelity"] == 1.0
