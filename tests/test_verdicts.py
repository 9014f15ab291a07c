"""benchmarks/verdicts.py: the rule that turns paired intervals into holds / reverses / unresolved."""

import dataclasses
import sys
from pathlib import Path

import pytest

from syncos.bench.table import append_rows

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import verdicts  # noqa: E402

SC, BC = verdicts.SC, verdicts.BC
GAIN = verdicts.Verdict("a helps", "comparison", "a", "b", (SC, BC), +1, "")
LOSS = dataclasses.replace(GAIN, sign=-1)
NULL = dataclasses.replace(GAIN, sign=0)


@pytest.mark.parametrize(
    ("verdict", "diffs", "outcome"),
    [
        (GAIN, {SC: (0.3, 0.1), BC: (0.0, 0.1)}, "holds"),  # one resolved, none against
        (GAIN, {SC: (-0.3, 0.1), BC: (0.05, 0.1)}, "reverses"),
        (GAIN, {SC: (0.3, 0.1), BC: (-0.3, 0.1)}, "mixed"),
        (GAIN, {SC: (0.05, 0.1), BC: (-0.05, 0.1)}, "unresolved"),
        (LOSS, {SC: (-0.3, 0.1), BC: (0.0, 0.1)}, "holds"),
        (LOSS, {SC: (0.3, 0.1), BC: (0.0, 0.1)}, "reverses"),
        (NULL, {SC: (0.05, 0.1), BC: (-0.3, 0.1)}, "holds"),  # "earns nothing": no gain resolved
        (NULL, {SC: (0.3, 0.1), BC: (0.0, 0.1)}, "reverses"),
    ],
)
def test_decide(verdict, diffs, outcome):
    assert verdicts.decide(verdict, diffs) == outcome


def test_window_is_the_calibrations_timestep_in_log_snr():
    assert verdicts.window_until(900) == -4.39  # 2 log(0.1 / 0.9)
    assert verdicts.window_until(500) == 0.0
    assert verdicts.window_methods(580) == ("syncos+sync_until=-0.65", "syncos+sync_until=-0.65+iterations=0")


def test_cell_pairs_by_scenario_after_averaging_seeds(tmp_path):
    """Seeds are averaged within a scenario first; the interval is over scenarios."""
    judge = dataclasses.replace(verdicts.JUDGES["exact-peaked"], folder=tmp_path)
    rows = []
    for i, s in enumerate(["x", "y", "z"]):
        for seed, noise in ((0, 0.1), (1, -0.1)):  # the seeds' noise cancels in the scenario mean
            rows.append({"scenario": s, "method": "b", "seed": seed, SC: 0.5, BC: 0.5, "nfe": 100})
            rows.append(
                {"scenario": s, "method": "a", "seed": seed, SC: 0.7 + 0.01 * i + noise, BC: 0.5, "nfe": 200}
            )
    (tmp_path / "comparison").mkdir()
    append_rows(tmp_path / "comparison" / "results.csv", rows)
    c = verdicts.cell(judge, GAIN)
    assert (c.scenarios, c.seeds, c.nfe) == (3, 2, (200.0, 100.0))
    assert c.diffs[SC][0] == pytest.approx(0.21) and c.diffs[SC][1] == pytest.approx(4.303 * 0.01 / 3**0.5)
    assert c.outcome == "holds" and "**holds**: subject +0.210" in verdicts.show(c)
    assert verdicts.cell(judge, dataclasses.replace(GAIN, source="ablation")) is None  # -> "not run"
