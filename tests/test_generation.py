"""``Generation.frames()`` decodes once; ``save`` streams when nothing needs the whole video."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from syncos import api

SCENARIO = {
    "model": "toyworld",
    "global_prompt": "a red ball on green grass",
    "events": [{"prompt": "the ball jumps", "frames": 12}],
    "sampler": {"method": "codenoise", "steps": 2, "guidance_scale": 1.0},
}


class Streaming:
    """The toyworld backend without its metrics: ``save`` then has no reason to hold the video."""

    def __init__(self, backend):
        self._backend = backend

    @property
    def spec(self):
        return dataclasses.replace(self._backend.spec, evaluate=None)

    def __getattr__(self, name):
        return getattr(self._backend, name)


def counting(gen: api.Generation, monkeypatch) -> list[int]:
    calls: list[int] = []
    decode = gen.backend.decode

    def counted(latent):
        calls.append(1)
        return decode(latent)

    monkeypatch.setattr(gen.backend, "decode", counted)
    return calls


def test_frames_are_decoded_once_and_kept(tmp_path, monkeypatch):
    """Fails on the old code, where every frames() call (and save after it) decoded the video again."""
    gen = api.generate(SCENARIO)
    calls = counting(gen, monkeypatch)
    first = gen.frames()
    assert gen.frames() is first and len(calls) == 1
    assert first.dtype == np.uint8 and first.shape[0] == 12 and first.shape[-1] == 3
    record = api.save(gen, tmp_path / "out")
    assert len(calls) == 1 and record["frames"] == 12
    assert json.loads((tmp_path / "out" / "run.json").read_text())["metrics"] == api.evaluate_frames(
        gen, first
    )


def test_save_streams_and_keeps_nothing_without_metrics(tmp_path, monkeypatch):
    gen = api.generate(SCENARIO)
    kept = gen.frames()
    streaming = dataclasses.replace(gen, backend=Streaming(gen.backend))  # nothing decoded yet
    calls = counting(gen, monkeypatch)  # the wrapper forwards decode to the patched backend
    assert api.save(streaming, tmp_path / "out")["frames"] == 12
    assert len(calls) == 1 and streaming._frames is None  # decoded once, streamed, not held
    assert np.array_equal(np.stack(list(streaming.decode())), kept) and len(calls) == 2
