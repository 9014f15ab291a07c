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


def test_stride_auto_from_file_and_command_line():
    s = load_scenario(BASE, ["sampler.stride=auto"])
    assert s.stride == "auto" and parse_scenario(s.to_dict()).stride == "auto"
    assert parse_scenario(with_(sampler={"stride": "auto"})).stride == "auto"


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
        (dict(events=[{"prompt": "a", "frames": 0}]), r"events\[0\]\.frames: must be positive, got 0"),
        (
            dict(events=[{"prompt": "a", "seconds": -1.0}]),
            r"events\[0\]\.seconds: must be positive, got -1.0",
        ),
        (dict(events=[{"prompt": "a", "frames": 2, "seconds": 1}]), r"exactly one of 'frames' or 'seconds'"),
        (dict(events=[{"prompt": "a", "frames": "ten"}]), r"events\[0\]\.frames: expected an integer"),
        (dict(events=[{"prompt": "a", "frames": True}]), r"events\[0\]\.frames: expected an integer"),
        (dict(sampler={"method": "fifo2"}), r"sampler\.method: unknown method 'fifo2'; allowed: independent"),
        (dict(sampler={"method": "codenoise", "lrate": 1}), r"sampler: unknown key 'lrate'; allowed: method"),
        (dict(sampler={"timestep": "uniform"}), r"sampler\.timestep: must be one of grounded, random"),
        (dict(sampler={"steps": 0}), r"sampler\.steps: must be in \[1, 1000\], got 0"),
        (dict(sampler={"lr": -1}), r"sampler\.lr: must be in \[0, 10\], got -1"),
        (dict(sampler={"method": "codenoise", "lr": "abc"}), r"sampler\.lr: expected a number, got 'abc'"),
        (dict(sampler={"guidance_scale": float("nan")}), r"sampler\.guidance_scale: must be a finite number"),
        (dict(sampler={"guidance_scale": -1}), r"sampler\.guidance_scale: must be in \[1, 100\]"),
        (dict(sampler={"method": "fifo", "partitions": 0}), r"sampler\.partitions: must be in \[1, 1000\]"),
        (dict(fps=float("inf")), r"fps: must be a finite number"),
        (dict(model_options={"contrast": float("nan")}), r"model_options\.contrast: must be a finite number"),
        (dict(events=[{"prompt": "a", "frames": 10**9}]), r"events\[0\]\.frames: at most 100000 frames"),
        (dict(events=[{"prompt": "a", "seconds": 1e300}]), r"events\[0\]\.seconds: at most 100 seconds"),
        (dict(sampler={"stride": 0}), r"sampler\.stride: must be a positive number of latent frames or auto"),
        (dict(sampler={"stride": "fast"}), r"sampler\.stride: .* or auto, got 'fast'$"),
        (dict(sampler={"stride": 2.5}), r"sampler\.stride: .* or auto, got 2\.5$"),
        (dict(sampler={"stride": True}), r"sampler\.stride: .* or auto, got True$"),
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


def test_other_samplers_options_are_checked_and_kept():
    s = parse_scenario(with_(sampler={"method": "codenoise", "lr": 0.1, "steps": 7}))
    assert s.options == {"lr": 0.1, "steps": 7} and s.unused_options == ["lr"]
    assert s.to_dict()["sampler"]["lr"] == 0.1 and not hasattr(s.sampler_options(), "lr")
    again = parse_scenario(s.to_dict())  # run.json's scenario runs again as it was
    assert again.sampler_options() == s.sampler_options() and again.options["lr"] == 0.1


def test_overrides():
    raw = apply_overrides(BASE, ["sampler.lr=0.25", "seed=9", "height=480", "sampler.method=codenoise"])
    assert raw["sampler"]["lr"] == 0.25 and raw["seed"] == 9 and raw["height"] == 480
    assert BASE["sampler"]["lr"] == 1  # the input is not modified
    with pytest.raises(UserError, match="expected key=value"):
        apply_overrides(BASE, ["seed"])
    with pytest.raises(UserError, match="'seed' is not a section"):
        apply_overrides(BASE, ["seed.x=1"])


def test_overrides_reach_list_items():
    raw = apply_overrides(BASE, ["events[1].frames=30", "events[0].prompt=the ball jumps"])
    assert raw["events"][1]["frames"] == 30 and raw["events"][0]["prompt"] == "the ball jumps"
    with pytest.raises(UserError, match=r"events has 2 entries"):
        apply_overrides(BASE, ["events[2].frames=3"])
    with pytest.raises(UserError, match="sampler is not a list"):
        apply_overrides(BASE, ["sampler[0]=1"])
    with pytest.raises(UserError, match="expected key=value"):
        apply_overrides(BASE, ["events[x]=1"])


def test_files(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("global_prompt: a ball\nevents:\n  - {prompt: jumps, frames: 12}\n")
    assert load_scenario(p).events[0].prompt == "jumps"
    p.write_text("global_prompt: [unclosed\n")
    with pytest.raises(UserError, match="is not valid YAML"):
        load_scenario(p)
    p.write_text('global_prompt: "a ball\nevents:\n  - {prompt: jumps, frames: 12}\n')
    with pytest.raises(UserError, match=r"quoted string is never closed \(line 1, column 16\)"):
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


def test_a_key_given_twice_is_refused(tmp_path):
    """YAML and JSON parsers keep the last of two equal keys without a word (``seed: 1`` ...
    ``seed: 2`` ran seed 2). Fails on the old code: both files loaded. A merge key (``<<``) may
    still be overridden by an explicit key, as YAML allows."""
    from syncos.ui.jobs import from_yaml

    p = tmp_path / "s.yaml"
    p.write_text("seed: 1\nglobal_prompt: a ball\nseed: 2\nevents:\n  - {prompt: jumps, frames: 12}\n")
    with pytest.raises(UserError, match=r"not valid YAML: key 'seed' is given twice in one mapping \(line 3"):
        load_scenario(p)
    with pytest.raises(UserError, match="key 'seed' is given twice"):
        from_yaml(p.read_text())  # the studio's editor reads YAML the same way
    q = tmp_path / "s.json"
    q.write_text('{"global_prompt": "a ball", "events": [{"prompt": "jumps", "frames": 12, "frames": 3}]}')
    with pytest.raises(UserError, match="not valid JSON: key 'frames' is given twice in one object"):
        load_scenario(q)
    p.write_text(
        "global_prompt: a ball\nevents:\n  - &e {prompt: jumps, frames: 12}\n  - {<<: *e, frames: 6}\n"
    )
    assert [e.frames for e in load_scenario(p).events] == [12, 6]


@pytest.mark.parametrize("value", [False, 0, "", []])
def test_model_options_of_another_type_is_refused(value):
    """Fails on the old code, which read ``model_options: false`` (or 0, "", []) as no options."""
    raw = {"global_prompt": "a ball", "events": [{"prompt": "jumps", "frames": 12}], "model_options": value}
    with pytest.raises(UserError, match="model_options: expected a mapping"):
        load_scenario(raw)
    assert load_scenario({**raw, "model_options": None}).model_options == {}
