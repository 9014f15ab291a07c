"""The measured memory check (issue 18 section 4), with an injected probe: no GPU needed."""

from __future__ import annotations

import pytest

from syncos import api, memory
from syncos.errors import UserError
from syncos.planning import plan_scenario

GIB = 2**30
SCENARIO = {
    "model": "toyworld",
    "global_prompt": "a red ball on green grass",
    "events": [{"prompt": "the ball jumps", "frames": 24}, {"prompt": "the ball rolls", "frames": 24}],
    "sampler": {"method": "codenoise", "steps": 2},
}


def test_the_largest_micro_batch_that_fits_with_the_margin_is_picked():
    # 10 GiB free, 80% usable: 8 GiB; 2 GiB resident leaves 6: three chunks of 2 GiB, not four
    assert memory.pick_micro_batch(10 * GIB, 2 * GIB, 2 * GIB, None, chunks=16) == 3
    assert memory.pick_micro_batch(10 * GIB, 2 * GIB, 2 * GIB - 1, None, chunks=16) == 3
    assert memory.pick_micro_batch(10 * GIB, 2 * GIB, GIB, None, chunks=16) == 6
    assert memory.pick_micro_batch(10 * GIB, 0, GIB, None, chunks=5) == 5  # no more than there are chunks
    assert memory.pick_micro_batch(10 * GIB, 2 * GIB, 2 * GIB, 2, chunks=16) == 2  # set: kept


def test_refused_when_not_even_one_chunk_fits_or_the_set_batch_does_not():
    with pytest.raises(UserError, match="not even one chunk fits: a forward of one chunk adds 7.00 GiB"):
        memory.pick_micro_batch(10 * GIB, 2 * GIB, 7 * GIB, None, chunks=4)
    with pytest.raises(UserError, match="sampler.micro_batch: 4 chunks per call .* at most 3 fit"):
        memory.pick_micro_batch(10 * GIB, 2 * GIB, 2 * GIB, 4, chunks=16)


def fake_probe(free: int, per_chunk: int, seen: list | None = None):
    def probe(backend, plan, options):
        if seen is not None:
            seen.append(options.micro_batch)
        return free, per_chunk

    return probe


def test_generate_takes_the_picked_micro_batch_and_records_it(monkeypatch):
    per_chunk = 300 * 2**20
    monkeypatch.setattr(memory, "measure", fake_probe(GIB, per_chunk))
    gen = api.generate(SCENARIO)
    resident = api.resident_bytes(gen.scenario, gen.backend, gen.plan.video_frames)
    want = min(int((memory.MARGIN * GIB - resident) // per_chunk), gen.plan.num_chunks)
    assert 1 <= want < 4  # not the default of 4: the pick is what ran
    assert gen.scenario.options["micro_batch"] == want
    given = api.generate({**SCENARIO, "sampler": {**SCENARIO["sampler"], "micro_batch": 1}})
    assert given.scenario.options["micro_batch"] == 1


def test_a_run_that_cannot_fit_is_refused_before_sampling(monkeypatch):
    monkeypatch.setattr(memory, "measure", fake_probe(GIB, 2 * GIB))
    _, backend, _ = api.prepare(SCENARIO)
    calls = []
    forward = backend.forward
    monkeypatch.setattr(backend, "forward", lambda x, t, c: calls.append(1) or forward(x, t, c))
    with pytest.raises(UserError, match="not even one chunk fits"):
        api.generate(SCENARIO, backend=backend)
    assert calls == []


def test_plan_shows_the_check_and_its_figures(monkeypatch):
    assert "memory: not measured on this device" in plan_scenario(SCENARIO).format()  # toyworld: CPU
    monkeypatch.setattr(memory, "measure", fake_probe(4 * GIB, GIB // 2))
    text = plan_scenario(SCENARIO).format()
    assert "4.00 GiB free with the model loaded; a forward adds 0.500 GiB per chunk (measured)" in text
    assert "(picked: the largest that fits)" in text


def test_nothing_is_measured_on_the_cpu():
    _, backend, plan = api.prepare(SCENARIO)
    scenario = api.prepare(SCENARIO)[0]
    assert memory.measure(backend, plan, scenario.sampler_options()) is None
