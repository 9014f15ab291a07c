import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from syncos.cli import main
from syncos.io import read_video

SCENARIO = {
    "model": "toyworld",
    "global_prompt": "a red ball on green grass",
    "events": [
        {"prompt": "the ball moves to the right", "frames": 12},
        {"prompt": "the ball jumps", "frames": 12},
    ],
    "sampler": {"method": "syncos", "steps": 4, "iterations": 2, "t_min": 500},
    "seed": 0,
}


def write(tmp_path, data, name="s.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def test_generate_writes_video_and_run_json(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["generate", str(write(tmp_path, SCENARIO)), "-o", str(out), "--gif", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["run.json", "video.gif", "video.mp4"]
    run = json.loads((out / "run.json").read_text())
    assert run["frames"] == 24 and run["method"] == "syncos" and run["seed"] == 0
    assert run["nfe"]["stage1"] > 0 and run["nfe"]["stage2"] > 0
    assert set(run["seconds"]) >= {"stage1", "stage2", "stage3", "total"}
    assert run["versions"]["torch"] and run["scenario"]["sampler"]["iterations"] == 2
    assert all(0.0 <= v <= 1.0 for v in run["metrics"].values())
    frames, fps = read_video(out / "video.mp4")
    assert frames.shape == (24, 256, 256, 3) and fps == 8
    # the metrics command scores the written file
    assert (
        main(["metrics", str(out / "video.mp4"), "--scenario", str(write(tmp_path, SCENARIO)), "--json"]) == 0
    )
    scored = json.loads(capsys.readouterr().out)
    assert set(scored) == set(run["metrics"])


def test_overrides_and_determinism(tmp_path):
    path = write(tmp_path, SCENARIO)
    args = [
        "generate",
        str(path),
        "--method",
        "codenoise",
        "--steps",
        "3",
        "--seed",
        "5",
        "--quiet",
        "--set",
        "sampler.guidance_scale=2.5",
    ]
    assert main([*args, "-o", str(tmp_path / "a")]) == 0
    assert main([*args, "-o", str(tmp_path / "b")]) == 0
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert (
        run["method"] == "codenoise"
        and run["seed"] == 5
        and run["scenario"]["sampler"]["guidance_scale"] == 2.5
    )
    a, _ = read_video(tmp_path / "a" / "video.mp4")
    b, _ = read_video(tmp_path / "b" / "video.mp4")
    assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"colour": "red"}, "scenario: unknown key 'colour'"),
        ({"global_prompt": ""}, "global_prompt: must not be empty"),
        ({"events": [{"prompt": "jumps", "frames": -2}]}, r"events[0]: span must be positive"),
        ({"sampler": {"method": "magic"}}, "sampler.method: unknown method 'magic'"),
        ({"model": "no/such-model-anywhere"}, "no/such-model-anywhere"),
        ({"global_prompt": "zzz qqq"}, "contains no word toyworld knows"),
        ({"events": [{"prompt": "the ball jumps", "frames": 5}]}, "shorter than one chunk"),
        ({"height": 100}, "height"),
    ],
)
def test_bad_input_exit_2_one_line_no_output(tmp_path, capsys, change, message):
    out = tmp_path / "out"
    code = main(["generate", str(write(tmp_path, {**SCENARIO, **change})), "-o", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.startswith("syncos: error:") and err.count("\n") == 1
    assert not out.exists() or not any(p.name.startswith("video") for p in out.iterdir())


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["generate", str(write(tmp_path, SCENARIO)), "-o", str(blocker / "out"), "--quiet"]) == 2
    assert "output folder" in capsys.readouterr().err


def test_missing_file_and_usage_errors(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "nope.yaml"), "-o", str(tmp_path / "o")]) == 2
    assert "cannot be read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["generate", "x.yaml"])  # no -o
    assert e.value.code == 2


def test_no_traceback_from_a_real_process(tmp_path):
    bad = write(tmp_path, {**SCENARIO, "seed": "zero"})
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    p = subprocess.run(
        [sys.executable, "-m", "syncos", "generate", str(bad), "-o", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert p.returncode == 2
    assert p.stderr.strip() == "syncos: error: seed: expected an integer, got 'zero'"


def test_vocab(capsys):
    assert main(["vocab"]) == 0
    out = capsys.readouterr().out
    assert "shape:" in out and "ball" in out and "night falls" in out


def test_interrupt_leaves_nothing(tmp_path, monkeypatch, capsys):
    import syncos.api as api

    def boom(*a, **k):
        yield np.zeros((32, 32, 3), np.uint8)
        raise KeyboardInterrupt

    monkeypatch.setattr(api.Generation, "frames", boom)
    out = tmp_path / "out"
    assert main(["generate", str(write(tmp_path, SCENARIO)), "-o", str(out), "--quiet"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(out.iterdir()) == []


EXAMPLES = sorted(
    p for p in (Path(__file__).parent.parent / "examples").iterdir() if p.suffix in (".yaml", ".json")
)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example(example, tmp_path):
    """Each toyworld example generates (briefly); the real-model ones validate."""
    from syncos.scenario import load_scenario

    scenario = load_scenario(example)
    if scenario.model != "toyworld":
        assert scenario.global_prompt and scenario.events
        return
    out = tmp_path / "out"
    args = [
        "generate",
        str(example),
        "-o",
        str(out),
        "--quiet",
        "--steps",
        "3",
        "--set",
        "sampler.iterations=2",
    ]
    assert main(args) == 0
    assert (out / "video.mp4").stat().st_size > 0 and (out / "run.json").exists()
