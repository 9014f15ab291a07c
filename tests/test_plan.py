"""``syncos plan``: the layout and the counts a run will have, before it runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from syncos import api
from syncos.cli import main
from syncos.planning import plan_scenario, video_span
from syncos.timeline import auto_stride

SCENARIO = {
    "model": "toyworld",
    "model_options": {"chunk_length": 6},
    "global_prompt": "a red ball on green grass",
    "events": [
        {"prompt": "the ball moves to the right", "frames": 9},
        {"prompt": "the ball jumps", "frames": 4},
        {"prompt": "night falls", "frames": 8},
    ],
    "sampler": {"steps": 6, "stride": 3, "guidance_scale": 3.0},
}
# Every method, and the options that change its counts: CFG off, CSD minibatch, the implied
# noise's free first forward, stage 2 only, shifted tiles, fifo partitions.
CASES = [
    ("independent", {}),
    ("codenoise", {"guidance_scale": 1.0}),
    ("syncos", {"iterations": 2, "t_min": 500, "minibatch": 2}),
    ("syncos", {"iterations": 0}),
    ("syncos", {"iterations": 3, "t_min": 500, "baseline_noise": "implied"}),
    ("syncos", {"iterations": 2, "stage1": False}),
    ("syncos", {"iterations": 1, "t_min": 500, "layout": "shifted"}),
    ("fifo", {}),
    ("fifo", {"partitions": 3, "lookahead": False, "guidance_scale": 1.0}),
    ("extend", {}),
    ("extend", {"held": "noised", "stride": 5}),
]


def scenario(method: str, **options) -> dict:
    return {**SCENARIO, "sampler": {**SCENARIO["sampler"], "method": method, **options}}


@pytest.mark.parametrize("method, options", CASES)
def test_closed_form_nfe_equals_what_the_run_counts(method, options):
    """The formula and the samplers are separate code: a sampler that miscounts, or a formula that
    misses an option, fails here (the old dry run agreed with the samplers by construction)."""
    data = scenario(method, **options)
    plan = plan_scenario(data)
    assert plan.nfe == api.generate(data).nfe and plan.nfe_at_most == []


# toyworld at 6 steps (trailing, CogVideoX's schedule): t = 999, 832, 666, 499, 332, 166, alpha = 0 at
# t = 999. The scenario: 21 latent frames, chunk length 6, stride 3 -> 6 chunks (independent: 4 tiles
# at 0, 6, 12, 15); guidance 3 -> 2 passes per chunk.
HAND = [
    # 4 tiles x 6 steps x 2 passes
    ("independent", {}, {"stage1": 48}),
    # 6 chunks x 6 steps x 1 pass (no CFG)
    ("codenoise", {"guidance_scale": 1.0}, {"stage1": 36}),
    # stage 1: 6 x 6 x 2 = 72; t > 500 with alpha > 0: t = 832, 666 -> 2 steps x 2 iterations x 2 chunks x 2
    ("syncos", {"iterations": 2, "t_min": 500, "minibatch": 2}, {"stage1": 72, "stage2": 16, "stage3": 0}),
    # the re-noise control: the window holds 2 steps, no forward there
    ("syncos", {"iterations": 0, "t_min": 500}, {"stage1": 72, "stage2": 0, "stage3": 0}),
    # implied noise: the first of 3 iterations is stage 1's forward: 2 steps x 2 paid x 6 chunks x 2
    (
        "syncos",
        {"iterations": 3, "t_min": 500, "baseline_noise": "implied"},
        {"stage1": 72, "stage2": 48, "stage3": 0},
    ),
    # ... but not on a minibatch of 2 (other chunks): 2 steps x 3 x 2 chunks x 2
    (
        "syncos",
        {"iterations": 3, "t_min": 500, "baseline_noise": "implied", "minibatch": 2},
        {"stage1": 72, "stage2": 24, "stage3": 0},
    ),
    # stage 2 only: no stage 1; CSD at every step with alpha > 0 (5 of 6) x 2 iterations x 6 chunks x 2
    ("syncos", {"iterations": 2, "stage1": False}, {"stage2": 120, "stage3": 0}),
    # the default log-SNR window (<= -6.96): t = 832 has 2 log(0.0597 / 0.9982) = -5.6, above it: empty
    ("syncos", {}, {"stage1": 72, "stage3": 0}),
    # shifted tiles: offsets int(frac(k * 0.618) * 6) = 0, 3, 1, 5, 2, 0 cut 21 frames into
    # 4, 4, 5, 4, 5, 4 tiles = 26 x 2 passes; stage 2 as above with 1 iteration: 2 x 1 x 6 x 2
    (
        "syncos",
        {"iterations": 1, "t_min": 500, "layout": "shifted"},
        {"stage1": 52, "stage2": 24, "stage3": 0},
    ),
    # fifo: round(6 / 6) = 1 partition -> N = 6 levels, 3 context frames, queue 9: windows at 0 and 3;
    # base clip 6 steps x 2; then 21 + 6 - 6 = 21 iterations x 2 windows x 2
    ("fifo", {}, {"init": 12, "stage1": 84}),
    # 3 partitions -> N = 18, no lookahead: windows at 0, 6, 12; 18 x 1; 21 + 18 - 6 = 33 x 3 x 1
    ("fifo", {"partitions": 3, "lookahead": False, "guidance_scale": 1.0}, {"init": 18, "stage1": 99}),
]


@pytest.mark.parametrize("method, options, expected", HAND)
def test_nfe_against_hand_computed_numbers(method, options, expected):
    assert plan_scenario(scenario(method, **options)).nfe == expected


def test_the_paper_preset_costs_2_6_times_codenoise():
    """method.md: 50 steps, 4 of them with t > 900 and alpha > 0 (999 is skipped), 20 iterations:
    stage 1 = 6 chunks x 50 x 2 = 600, stage 2 = 4 x 20 x 6 x 2 = 960; (600 + 960) / 600 = 2.6."""
    plan = plan_scenario(scenario("syncos", preset="paper", steps=50))
    assert plan.nfe == {"stage1": 600, "stage2": 960, "stage3": 0} and plan.total_nfe / 600 == 2.6
    default = plan_scenario(scenario("syncos", steps=50))  # the log-SNR window is the same 4 steps
    assert default.nfe == plan.nfe


def test_early_stopping_makes_stage2_an_upper_bound(tmp_path, capsys):
    """stop_below > 0 may end iterations early: the plan says "at most" (text and JSON). Fails on
    the old code, which dry-ran the sampler over a zero network and printed one number."""
    data = scenario("syncos", iterations=4, t_min=500, stop_below=0.5)
    plan = plan_scenario(data)
    # 2 synchronised steps x 4 iterations x 6 chunks x 2 passes = 96 at most
    assert plan.nfe == {"stage1": 72, "stage2": 96, "stage3": 0} and plan.nfe_at_most == ["stage2"]
    assert "network evaluations: stage1 72, stage2 at most 96 (total at most 168)" in plan.format()
    ran = api.generate(data).nfe
    assert ran["stage1"] == 72 and ran["stage2"] <= 96
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["plan", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["nfe_at_most"] == ["stage2"] and "stage2 at most 96" in out["nfe_text"]
    # one iteration cannot stop early; without stop_below the count is exact
    for options in ({"iterations": 1, "stop_below": 0.5}, {"iterations": 4}):
        assert plan_scenario(scenario("syncos", t_min=500, **options)).nfe_at_most == []


def test_layout_covers_the_video_and_flags_thin_events():
    plan = plan_scenario(scenario("codenoise"))
    p = plan.plan
    assert p.latent_frames == 21 and p.num_chunks == len(plan.chunks) == 6
    assert [c.latent for c in plan.chunks] == [(s, s + 6) for s in (0, 3, 6, 9, 12, 15)]
    assert all(c.prompt == p.prompts[c.event] for c in plan.chunks)
    assert p.prompts[1] == "a red ball on green grass. the ball jumps"  # the full conditioning text
    assert [e.chunks for e in plan.events] == [3, 1, 2] and plan.thin_events == [1]
    assert sum(e.chunks for e in plan.events) == p.num_chunks
    text = plan.format()
    assert "warning: event 1 gets 1 chunk" in text and "stage1 72 (total 72)" in text
    # independent samples tiles: its own layout
    tiles = plan_scenario(scenario("independent"))
    assert [c.latent for c in tiles.chunks] == [(0, 6), (6, 12), (12, 18), (15, 21)]


def test_video_frames_of_a_causal_vae_chunk():
    class Causal:  # 1 + 4 (n - 1) video frames, as CogVideoX / Wan / LTX
        def video_frames(self, n):
            return 1 + 4 * (n - 1)

    b = Causal()
    assert video_span(b, (0, 13)) == (0, 49) and video_span(b, (4, 17)) == (13, 65)


def test_plan_command_text_json_and_time(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario("syncos", iterations=1, t_min=500)))
    assert main(["plan", str(path), "--steps", "4", "--time"]) == 0
    text = capsys.readouterr().out
    assert "toyworld, syncos, 4 steps: 21 video frames" in text and "estimated sampling time:" in text
    assert main(["plan", str(path), "--method", "fifo", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["method"] == "fifo" and data["estimated_seconds"] is None
    assert data["total_nfe"] == sum(data["nfe"].values()) and data["thin_events"] == [1]
    timed = plan_scenario(scenario("codenoise"), timed=True)
    assert timed.seconds_per_nfe > 0 and timed.estimated_seconds == timed.total_nfe * timed.seconds_per_nfe


def test_auto_stride_is_chosen_when_the_plan_is_built_and_recorded(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario("codenoise", steps=2)))
    assert main(["plan", str(path), "--set", "sampler.stride=auto", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    chosen = data["plan"]["stride"]
    assert chosen == auto_stride(data["plan"]["event_spans"], 6) and chosen != SCENARIO["sampler"]["stride"]
    assert f"stride {chosen} chosen by sampler.stride=auto" in data["notes"][0]
    out = tmp_path / "out"
    assert main(["generate", str(path), "--set", "sampler.stride=auto", "-o", str(out), "--quiet"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["scenario"]["sampler"]["stride"] == "auto" and run["plan"]["stride"] == chosen


GIBBERISH = {**SCENARIO, "global_prompt": "qqq", "events": [{"prompt": "zzz", "frames": 21}]}


@pytest.mark.parametrize(
    "data, args, message",
    [
        (SCENARIO, ["--method", "nope"], "sampler.method: unknown method 'nope'"),
        (SCENARIO, ["--set", "sampler.stride=9"], "sampler.stride: must be in [1, 6]"),
        (
            SCENARIO,
            ["--set", "sampler.stride=fast"],
            "sampler.stride: must be a positive number of latent frames or auto, got 'fast'",
        ),
        (SCENARIO, ["--set", "events=[]"], "events: expected a non-empty list"),
        (GIBBERISH, [], "qqq"),  # a prompt the model cannot take
    ],
)
def test_plan_rejects_what_generate_rejects(tmp_path, capsys, data, args, message):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    for command in (["plan"], ["generate", "-o", str(tmp_path / "out")]):
        assert main([*command, str(path), *args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out" / "video.mp4").exists()


def test_plan_of_a_tiny_diffusers_model():
    sys.path.insert(0, str(Path(__file__).parent / "diffusers"))
    from diffusers_tiny import load

    backend = load("cogvideox")
    data = {
        "global_prompt": "a cat",
        "events": [{"prompt": "walks", "frames": 9}, {"prompt": "sits", "frames": 9}],
    }
    plan = plan_scenario({**data, "model": "tiny"}, backend=backend, timed=True)
    assert plan.chunks[0].video == (0, backend.video_frames(plan.plan.chunk_length))
    assert plan.chunks[-1].video[1] == plan.plan.video_frames and plan.seconds_per_nfe > 0


def test_small_models_run_on_one_thread_unless_the_user_chose(monkeypatch):
    import torch

    from syncos import threads
    from syncos.backends.toyworld import ToyWorldBackend

    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "_TORCH_DEFAULT", 2)
    toy = ToyWorldBackend()
    try:
        torch.set_num_threads(2)  # torch's default here: syncos picks one thread for toyworld
        with threads.for_backend(toy):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        torch.set_num_threads(3)  # the user's explicit count wins
        with threads.for_backend(toy):
            assert torch.get_num_threads() == 3
        torch.set_num_threads(2)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")  # so does the variable
        with threads.for_backend(toy):
            assert torch.get_num_threads() == 2
        sys.path.insert(0, str(Path(__file__).parent / "diffusers"))
        from diffusers_tiny import load

        assert load("cogvideox").spec.threads == 1  # a tiny network: one thread too
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("guidance, batch", [(3.0, 4), (1.0, 2)])
def test_forward_batch_is_micro_batch_chunks_twice_with_cfg(monkeypatch, guidance, batch):
    """micro_batch counts chunks; a network call holds twice that with CFG: the plan says the
    number the network sees (fails on the old code, which did not say it)."""
    data = scenario("codenoise", micro_batch=2, guidance_scale=guidance, steps=2)
    plan = plan_scenario(data)
    cfg = "x 2: CFG's conditional and unconditional pass" if guidance != 1 else "no CFG"
    assert plan.forward_batch == batch and f"up to {batch} passes per network call" in plan.format()
    assert f"sampler.micro_batch 2 chunks{',' if guidance == 1 else ''} {cfg}" in plan.format()
    _, backend, _ = api.prepare(data)
    rows: list[int] = []
    forward = backend.forward
    monkeypatch.setattr(backend, "forward", lambda x, t, c: rows.append(len(x)) or forward(x, t, c))
    api.generate(data, backend=backend)
    # 6 chunks x (2 with CFG) passes per step, in calls of the batch: 3 calls per step
    assert rows == [batch] * 6 and plan.to_dict()["forward_batch"] == batch
