"""The benchmark end to end on a tiny suite (the CI smoke version of ``syncos bench``)."""

import csv
import json

import numpy as np
import pytest
import yaml
from PIL import Image

from gaussian_backend import GaussianBackend
from syncos.bench import load_suite, run_suite, write_report
from syncos.bench.drift import drift_curve
from syncos.bench.report import interval
from syncos.bench.suite import scenario_seed, split_method
from syncos.bench.table import append_rows, read_rows
from syncos.cli import main
from syncos.errors import UserError

SCENARIOS = {
    "two-events": {
        "global_prompt": "a red ball on grass by day",
        "events": [{"prompt": "moves right", "frames": 8}, {"prompt": "jumps", "frames": 8}],
    },
    "one-event": {"global_prompt": "a blue square on snow", "events": [{"prompt": "still", "frames": 10}]},
}
SUITE = {
    "description": "smoke",
    "methods": ["codenoise", "fifo", "syncos", "no-tmin"],
    "seeds": 2,
    "overrides": [
        "sampler.steps=6",
        "sampler.iterations=2",
        "sampler.t_min=500",
        "sampler.guidance_scale=2.0",
    ],
    "variants": {"no-tmin": {"method": "syncos", "t_min": -1}},
    "contact_sheet": "two-events",
}


def gaussian(model, **settings):
    return GaussianBackend()


def write_suite(folder, suite=SUITE):
    folder.mkdir()
    for name, sc in SCENARIOS.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump({**sc, "sampler": {"method": "syncos"}}))
    (folder / "suite.yaml").write_text(yaml.safe_dump(suite))
    return folder


def test_suite_resolves_methods_and_variants(tmp_path):
    suite = load_suite(write_suite(tmp_path / "s"))
    assert set(suite.scenarios) == {"two-events", "one-event"}
    raw = suite.resolve("two-events", "codenoise", 1)
    assert raw["sampler"] == {"method": "codenoise", "steps": 6, "guidance_scale": 2.0}
    assert raw["seed"] == scenario_seed("two-events", 1)
    raw = suite.resolve("two-events", "no-tmin", 0)
    assert raw["sampler"]["method"] == "syncos" and raw["sampler"]["t_min"] == -1
    with pytest.raises(UserError, match="neither a sampler nor a variant"):
        suite.sampler_of("gen-l-video")


def test_bench_end_to_end_and_resume(tmp_path):
    suite = load_suite(write_suite(tmp_path / "s"))
    out = tmp_path / "out"
    run_suite(suite, out, load=gaussian, log=lambda _: None)
    rows = read_rows(out / "results.csv")
    assert len(rows) == 2 * 4 * 2
    assert {r["method"] for r in rows} == set(SUITE["methods"])
    assert all(float(r["wall_s"]) > 0 and int(r["nfe"]) > 0 for r in rows)
    summary = write_report(out, methods=suite.methods, contact=suite.contact_sheet)
    text = summary.read_text()
    assert "| no-tmin |" in text and "nfe" in text
    assert "0 is best" not in text  # no defect counts from a backend without them
    assert {r["fifo_mode"] for r in rows if r["method"] == "fifo"} == {"shared"}  # no per-frame t
    assert "| fifo (shared-timestep approx.) |" in text and "| fifo |" not in text
    for png in ("metrics.png", "drift.png", "contact_sheet.png"):
        assert (out / png).stat().st_size > 1000
    logs = []
    run_suite(suite, out, load=gaussian, log=logs.append)  # resume: nothing left to do
    assert logs[0].startswith("0 runs to do") and len(read_rows(out / "results.csv")) == 16


def test_resume_after_a_lost_row(tmp_path):
    suite = load_suite(write_suite(tmp_path / "s"))
    out = tmp_path / "out"
    run_suite(suite, out, methods=["codenoise"], seeds=1, load=gaussian, log=lambda _: None)
    path = out / "results.csv"
    text = path.read_text()
    path.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 1] + "one-event,code")  # a crash mid-row
    logs = []
    run_suite(suite, out, methods=["codenoise"], seeds=1, load=gaussian, log=logs.append)
    assert logs[0].startswith("1 runs to do")
    assert sorted(r["scenario"] for r in read_rows(path)) == ["one-event", "two-events"]


def test_table_widens_header(tmp_path):
    p = tmp_path / "r.csv"
    append_rows(p, [{"scenario": "a", "method": "m", "seed": 0, "x": 1}])
    append_rows(p, [{"scenario": "b", "method": "m", "seed": 0, "x": 2, "y": 3}])
    with p.open() as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["y"] == "" and rows[1]["y"] == "3"


def test_drift_and_interval():
    f = np.stack([np.full(4, i / 10) for i in range(5)])
    curve = drift_curve(f)
    assert list(curve) == [1, 2, 3, 4] and curve[1] > curve[4]
    mean, hw = interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and abs(hw - 4.303 * 1 / 3**0.5) < 1e-6


def test_methods_take_options_after_plus(tmp_path):
    """`codenoise+noise=rescheduled`, `no-tmin+stride=8`: a row's name says what ran, no suite edit."""
    suite = load_suite(write_suite(tmp_path / "s"))
    raw = suite.resolve("two-events", "codenoise+noise=rescheduled", 0)
    assert raw["sampler"] == {
        "method": "codenoise",
        "steps": 6,
        "guidance_scale": 2.0,
        "noise": "rescheduled",
    }
    raw = suite.resolve("two-events", "no-tmin+stride=8+t_min=300", 0)
    assert raw["sampler"]["method"] == "syncos" and raw["sampler"]["stride"] == 8
    assert raw["sampler"]["t_min"] == 300  # after the variant's own t_min
    with pytest.raises(UserError, match="expected base\\+key=value"):
        suite.resolve("two-events", "codenoise+noise=rescheduled+stride", 0)
    assert split_method("stages-1+3") == ("stages-1+3", {})  # a variant's own + is no option
    assert split_method("stages-1+3+stride=8") == ("stages-1+3", {"stride": 8})
    with pytest.raises(UserError, match="'nope' is neither"):
        suite.sampler_of("nope+stride=8")


def _judge_suite(tmp_path):
    folder = tmp_path / "tw"
    folder.mkdir()
    # the global prompt leaves the lighting open: the prior decides day or night
    sc = {"global_prompt": "a red ball on grass", "events": [{"prompt": "moves right", "frames": 12}]}
    (folder / "ball.yaml").write_text(yaml.safe_dump(sc))
    overrides = ["sampler.steps=4", "sampler.guidance_scale=1.0", "sampler.micro_batch=16"]
    (folder / "suite.yaml").write_text(
        yaml.safe_dump({"methods": ["independent"], "seeds": 3, "overrides": overrides})
    )
    return folder


def test_cli_bench_runs_on_another_judge(tmp_path):
    """`--set model_options...` reaches every row and each row records its judge: under a prior of
    day 0.99 an open-lighting scenario is day, under night 0.99 night (ignored, both would match)."""
    folder = _judge_suite(tmp_path)
    assert main(["bench", str(folder), "-o", str(tmp_path / "uniform"), "--seeds", "1"]) == 0
    brightness = {}
    for light, other in (("day", "night"), ("night", "day")):
        prior = f"model_options.prior.lighting={{{light}: 0.99, {other}: 0.01}}"
        assert main(["bench", str(folder), "-o", str(tmp_path / light), "--set", prior]) == 0
        rows = read_rows(tmp_path / light / "results.csv")
        assert len(rows) == 3 and {r["model"] for r in rows} == {"toyworld"}
        recorded = [json.loads(r["model_options"]) for r in rows]
        assert recorded == [{"prior": {"lighting": {light: 0.99, other: 0.01}}}] * 3
        assert "with model_options" in (tmp_path / light / "summary.md").read_text()
        brightness[light] = np.asarray(Image.open(tmp_path / light / "strips/ball/independent.png")).mean()
    assert brightness["day"] > brightness["night"] + 40  # measured: 143 and 64
    assert {r["model_options"] for r in read_rows(tmp_path / "uniform" / "results.csv")} == {"{}"}
    assert main(["bench", str(folder), "-o", str(tmp_path / "x"), "--set", "model_options"]) == 2


def test_cli_bench_rejects_unknown_method(tmp_path, capsys):
    folder = write_suite(tmp_path / "s")
    assert main(["bench", str(folder), "-o", str(tmp_path / "o"), "--methods", "nope"]) == 2
    assert "neither a sampler nor a variant" in capsys.readouterr().err


def test_toyworld_smoke_suite(tmp_path, capsys):
    """`syncos bench` on a 2-scenario toyworld suite, with its own metrics, through the command line."""
    folder = tmp_path / "tw"
    folder.mkdir()
    events = [{"prompt": "moves right", "frames": 8}, {"prompt": "jumps", "frames": 8}]
    for name, g in (("ball", "a red ball on grass by day"), ("box", "a blue box on snow by day")):
        (folder / f"{name}.yaml").write_text(yaml.safe_dump({"global_prompt": g, "events": events}))
    suite = {
        "methods": ["codenoise", "syncos"],
        "seeds": 1,
        "baseline": "codenoise",
        "overrides": [
            "sampler.steps=3",
            "sampler.iterations=1",
            "sampler.guidance_scale=1.0",
            "sampler.micro_batch=16",
        ],
    }
    (folder / "suite.yaml").write_text(yaml.safe_dump(suite))
    assert main(["bench", str(folder), "-o", str(tmp_path / "out")]) == 0  # FIFO: covered above
    rows = read_rows(tmp_path / "out" / "results.csv")
    assert len(rows) == 4 and all(0 <= float(r["subject_consistency"]) <= 1 for r in rows)
    kinds = {r["kind"] for r in read_rows(tmp_path / "out" / "drift.csv")}
    assert kinds == {"subject", "background"}
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "subject_consistency" in summary
    # the defect counts are columns, and the report says which way they go
    assert all(int(float(r["cuts"])) >= 0 and 0 <= float(r["cut_rate"]) <= 1 for r in rows)
    assert "| cuts | cut_rate | repeats | blank_frames | ghost_frames |" in summary
    assert "blank_frames, ghost_frames: defects" in summary


def test_every_scenario_has_its_own_seeds():
    """Shared seeds make scenarios of one length start from one noise: correlated rows."""
    seeds = {scenario_seed(name, k) for name in ("a", "b", "long-6x-ball") for k in range(3)}
    assert len(seeds) == 9
    assert scenario_seed("a", 1) == scenario_seed("a", 1)  # stable across processes (no hash())
    assert all(0 <= s < 2**63 for s in seeds)
