"""Smoke runs of the length and contradiction benchmarks (one tiny run each) and their measures."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import contradiction  # noqa: E402
import length_drift  # noqa: E402


def test_switch_frame_and_measure():
    lab = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    assert contradiction.switch_frame(lab, 0, 1) == 3
    assert contradiction.switch_frame(np.array([0, 0, -1, -1, 1, 1]), 0, 1) == 3  # the middle of the gap
    labels = {a: np.zeros(8, dtype=int) for a in contradiction.ATTRIBUTES}
    labels["scene"] = np.array([0, 0, 0, 3, 3, 3, 3, 3])  # grass, then snow one frame early
    labels["colour"][3] = 2  # a stray colour next to the boundary
    found = contradiction.measure(
        labels, "a red ball by day", [(0, 4, "on grass"), (4, 8, "on snow")], near=2
    )
    assert found["scene"] == {"in_span": pytest.approx(7 / 8), "switch": [-1.0]}
    assert found["colour"] == {"kept": 7 / 8, "open": False, "kept near": 3 / 4, "kept far": 1.0}
    assert found["size"]["open"] and found["size"]["kept"] == 1.0


def test_scaled_repeats_the_cycle():
    sc = {
        "global_prompt": "a ball",
        "events": [{"prompt": "jumps", "frames": 12}, {"prompt": "falls", "frames": 8}],
    }
    out = length_drift.scaled(sc, 30)["events"]
    assert [(e["prompt"], e["frames"]) for e in out] == [("jumps", 12), ("falls", 8), ("jumps", 10)]
    assert length_drift.far_pairs(np.array([1.0, 0.9, 0.5, 0.2]), 2) == pytest.approx((0.5 * 2 + 0.2) / 3)


@pytest.mark.parametrize("script", ["length_drift", "contradiction"])
def test_smoke(script, tmp_path, monkeypatch, capsys):
    module = {"length_drift": length_drift, "contradiction": contradiction}[script]
    only = {"length_drift": "open-scene-ball", "contradiction": "grass-to-snow"}[script]
    argv = ["x", "--seeds", "1", "--variants", "independent", "--only", only]
    argv += ["--out", str(tmp_path / "runs.csv"), "--plot", str(tmp_path / "plot.png")]
    if script == "length_drift":
        argv += ["--lengths", "2", "4", "--far", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    module.main()
    assert (tmp_path / "plot.png").stat().st_size > 0
    assert "| independent |" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", [*argv, "--report-only"])  # resumes: nothing left to run
    module.main()
    assert "[1/" not in capsys.readouterr().out


@pytest.mark.parametrize("extra", [["--variants", "nope"], ["--rerun", "default", "--report-only"]])
def test_bad_arguments_exit_2(extra, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["x", "--out", str(tmp_path / "runs.csv"), *extra])
    with pytest.raises(SystemExit) as e:
        contradiction.main()
    assert e.value.code == 2 and not (tmp_path / "runs.csv").exists()
