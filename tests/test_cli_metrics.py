"""`syncos metrics`: the run.json beside a video stands in for --scenario; counts are printed."""

import json
import shutil

import pytest
import yaml

from syncos.cli import main

SCENARIO = {
    "model": "toyworld",
    "global_prompt": "a red ball on green grass",
    "events": [{"prompt": "the ball moves to the right", "frames": 24}],
    "sampler": {"method": "independent", "steps": 2},
    "seed": 0,
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny independent-tiles video with its run.json, and the scenario file it came from."""
    tmp = tmp_path_factory.mktemp("run")
    scenario = tmp / "s.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO))
    assert main(["generate", str(scenario), "-o", str(tmp / "out"), "--quiet"]) == 0
    return tmp / "out", scenario


def test_metrics_reads_the_scenario_from_run_json(run, capsys):
    out, scenario = run
    assert main(["metrics", str(out / "video.mp4"), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert main(["metrics", str(out / "video.mp4"), "--scenario", str(scenario), "--json"]) == 0
    assert found == json.loads(capsys.readouterr().out)
    recorded = json.loads((out / "run.json").read_text())["metrics"]
    assert {"cuts", "cut_rate", "repeats", "blank_frames"} <= set(found["metrics"]) == set(recorded)


def test_metrics_without_scenario_or_run_json_is_one_line(run, tmp_path, capsys):
    out, _ = run
    shutil.copy(out / "video.mp4", tmp_path / "video.mp4")
    assert main(["metrics", str(tmp_path / "video.mp4")]) == 2
    err = capsys.readouterr().err
    assert "no run.json beside" in err and "--scenario" in err and err.count("\n") == 1
    (tmp_path / "run.json").write_text(json.dumps({"scenario": "not a mapping"}))
    assert main(["metrics", str(tmp_path / "video.mp4")]) == 2
    assert "records no scenario" in capsys.readouterr().err


def test_metrics_table_says_what_counts_mean(run, capsys):
    out, _ = run
    assert main(["metrics", str(out / "video.mp4")]) == 0
    text = capsys.readouterr().out
    assert "0 is best" in text
    cuts = next(line for line in text.splitlines() if line.split()[0] == "cuts")
    assert "no event explains" in cuts and int(cuts.split()[1]) >= 0
