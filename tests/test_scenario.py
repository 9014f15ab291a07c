import pytest

from syncos.errors import UserError
from syncos.scenario import apply_overrides, load_scenario, parse_scenario

BASE = {
    "model": "toyworld",
    "global_prompt": "a red ball on green grass",
    "events": [
        {"prompt": "the ball moves to the right", "frames": 24},
        {"prompt": "the ball jumps", "seconds": 3},
    ],
    "sampler": {"method": "syncos", "steps": 10, "guidance_scale": 6.0, "stride": 4, "lr": 1},
    "seed": 3,
}


def with_(**changes):
    d = {**BASE, **changes}
    return {k: v for k, v in d.items() if v is not ...}


def test_valid_scenario_round_trips():
    s = parse_scenario(BASE)
    assert (
        s.method == "syncos"
        and s.stride == 4
        and s.options == {"steps": 10, "guidance_scale": 6.0, "lr": 1.0}
    )
    assert s.events[1].seconds == 3.0 and s.events[0].frames == 24
    again = parse_scenario(s.to_dict())
    assert again.to_dict() == s.to_dict() and again.sampler_options() == s.sampler_options()
    assert s.sampler_options().lr == 1.0 and s.sampler_options().iterations == 20


@pytest.mark.parametrize(
    "changes,match",
    [
        (dict(colour="red"), r"scenario: unknown key 'colour'; allowed: model, global_prompt"),
        (dict(global_prompt=...), r"global_prompt: missing"),
        (dict(global_prompt="  "), r"global_prompt: must not be empty"),
        (dict(global_prompt=3), r"global_prompt: expected a string, got 3"),
        (dict(events=[]), r"events: expected a non-empty list"),
        (dict(events=[{"frames": 3}]), r"events\[0\]\.prompt: missing"),
        (dict(events=[{"prompt": "", "frames": 3}]), r"events\[0\]\.prompt: must not be empty"),
        (dict(events=[{"prompt": "a", "frames": 0}]), r"events\[0\]: span must be positive"),
        (dict(events=[{"prompt": "a", "seconds": -1.0}]), r"events\[0\]: span must be positive"),
        (dict(events=[{"prompt": "a", "frames": 2, "seconds": 1}]), r"exactly one of 'frames' or 'seconds'"),
        (dict(events=[{"prompt": "a", "frames": "ten"}]), r"events\[0\]\.frames: expected an integer"),
        (dict(events=[{"prompt": "a", "frames": True}]), r"events\[0\]\.frames: expected an integer"),
        (dict(sampler={"method": "fifo2"}), r"sampler\.method: unknown method 'fifo2'; allowed: independent"),
        (dict(sampler={"method": "codenoise", "lrate": 1}), r"sampler: unknown key 'lrate'; allowed: method"),
        (dict(sampler={"timestep": "uniform"}), r"sampler: timestep must be one of grounded, random"),
        (dict(sampler={"steps": 0}), r"sampler\.steps: must be >= 1"),
        (dict(sampler={"stride": 0}), r"sampler\.stride: must be a positive"),
        (dict(sampler={"prompt_mode": "x"}), r"sampler\.prompt_mode: 'x' is not allowed"),
        (dict(sampler={"minibatch": 2.5}), r"sampler\.minibatch: expected an integer"),
        (dict(seed=-1), r"seed: must be in"),
        (dict(dtype="float8"), r"dtype: 'float8' is not allowed; use one of float32, float16, bfloat16"),
        (dict(height=-3), r"height: must be positive"),
        (dict(model=""), r"model: must not be empty"),
    ],
)
def test_errors_name_the_field(changes, match):
    with pytest.raises(UserError, match=match):
        parse_scenario(with_(**changes))


def test_other_samplers_options_are_left_unused():
    s = parse_scenario(with_(sampler={"method": "codenoise", "lr": 0.1, "steps": 7}))
    assert s.options == {"steps": 7} and "lr" not in s.to_dict()["sampler"]


def test_overrides():
    raw = apply_overrides(BASE, ["sampler.lr=0.25", "seed=9", "height=480", "sampler.method=codenoise"])
    assert raw["sampler"]["lr"] == 0.25 and raw["seed"] == 9 and raw["height"] == 480
    assert BASE["sampler"]["lr"] == 1  # the input is not modified
    with pytest.raises(UserError, match="expected key=value"):
        apply_overrides(BASE, ["seed"])
    with pytest.raises(UserError, match="'seed' is not a section"):
        apply_overrides(BASE, ["seed.x=1"])


def test_files(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("global_prompt: a ball\nevents:\n  - {prompt: jumps, frames: 12}\n")
    assert load_scenario(p).events[0].prompt == "jumps"
    p.write_text("global_prompt: [unclosed\n")
    with pytest.raises(UserError, match="is not valid YAML"):
        load_scenario(p)
    q = tmp_path / "s.json"
    q.write_text("{nope")
    with pytest.raises(UserError, match="is not valid JSON"):
        load_scenario(q)
    with pytest.raises(UserError, match="cannot be read"):
        load_scenario(tmp_path / "missing.yaml")
    p.write_text("- a list\n")
    with pytest.raises(UserError, match="expected a mapping at the top level"):
        load_scenario(p)
