import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from syncos.backends.toyworld.metrics import COUNTS
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
    assert all(0.0 <= v <= 1.0 for k, v in run["metrics"].items() if k not in COUNTS or k == "cut_rate")
    frames, fps = read_video(out / "video.mp4")
    assert frames.shape == (24, 256, 256, 3) and fps == 8
    # the metrics command scores the written file
    assert (
        main(["metrics", str(out / "video.mp4"), "--scenario", str(write(tmp_path, SCENARIO)), "--json"]) == 0
    )
    scored = json.loads(capsys.readouterr().out)
    assert set(scored["metrics"]) == set(run["metrics"])
    assert "read back from the file" in scored["metrics_from"]
    assert "before video encoding" in run["metrics_from"]


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
        ({"events": [{"prompt": "the ball jumps", "frames": 99_999}]}, "fit here: for longer videos"),
        ({"sampler": {"stride": 13}}, "sampler.stride: must be in [1, 12] (this model's chunk length)"),
        ({"sampler": {"method": "fifo", "partitions": 100}}, "sampler.partitions: 1200 sampling steps"),
        ({"sampler": {"method": "codenoise", "guidance_scale": 1e30}}, "sampler.guidance_scale: must be in"),
    ],
)
def test_bad_input_exit_2_one_line_no_output(tmp_path, capsys, monkeypatch, change, message):
    import syncos.api

    monkeypatch.setattr(syncos.api, "_available_memory", lambda device: (8 * 2**30, "this machine"))
    out = tmp_path / "out"
    code = main(["generate", str(write(tmp_path, {**SCENARIO, **change})), "-o", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.startswith("syncos: error:") and err.count("\n") == 1
    assert not out.exists()


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
    assert "interrupted; step 4 of 4 is saved" in capsys.readouterr().err  # sampling had ended
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.safetensors"]


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


def test_help_version_and_usage_do_not_import_torch():
    code = (
        "import sys, contextlib, io\n"
        "from syncos.cli import main\n"
        "for argv in (['--help'], ['generate', '--help'], ['--version']):\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        main(argv)\n"
        "print(main([]), 'torch' in sys.modules)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.split() == ["2", "False"], p.stderr  # bare syncos: usage, exit 2; no torch anywhere
    assert p.stderr.startswith("usage: syncos") and "generate" in p.stderr
    v = subprocess.run([sys.executable, "-m", "syncos", "--version"], capture_output=True, text=True)
    assert v.returncode == 0 and v.stdout.strip() == "syncos 0.1.0"


def test_every_argument_has_help():
    from syncos.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices and a.dest == "command")
    for p in [parser, *subparsers.choices.values()]:
        for action in p._actions:
            assert action.help, f"{p.prog} {action.option_strings or action.dest} has no help"


def test_unused_options_are_kept_and_said(tmp_path, capsys):
    out = tmp_path / "out"
    path = write(tmp_path, SCENARIO)
    args = ["generate", str(path), "-o", str(out), "--method", "codenoise", "--steps", "1"]
    assert main([*args, "--set", "sampler.lr=0.3", "--set", "events[0].frames=13"]) == 0
    printed = capsys.readouterr().out
    assert "codenoise does not use sampler.iterations, sampler.t_min, sampler.lr" in printed
    assert "subject_consistency" in printed and "the subject keeps its shape" in printed
    run = json.loads((out / "run.json").read_text())
    assert run["unused_options"] == ["iterations", "t_min", "lr"] and run["scenario"]["sampler"]["lr"] == 0.3
    assert run["frames"] == 25 and run["metrics_from"].startswith("decoded frames")
    assert main([*args, "--set", "sampler.lr=abc"]) == 2  # validated although codenoise ignores it
    assert "sampler.lr: expected a number, got 'abc'" in capsys.readouterr().err


def test_output_given_as_a_file(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["generate", str(write(tmp_path, SCENARIO)), "-o", str(blocker), "--quiet"]) == 2
    assert "output folder" in (err := capsys.readouterr().err) and "is a file" in err
    assert blocker.read_text() == "x"


def test_save_from_python_counts_the_whole_run(tmp_path):
    import syncos

    gen = syncos.generate({**SCENARIO, "sampler": {"method": "codenoise", "steps": 2}})
    record = syncos.save(gen, tmp_path / "out")
    assert gen.wall_seconds > 0 and record["seconds"]["total"] >= gen.wall_seconds
    assert record["seconds"]["total"] >= record["seconds"]["decode_and_write"]


def _suite(tmp_path, prompt="the ball jumps"):
    suite = tmp_path / "suite"
    suite.mkdir()
    events = [{"prompt": prompt, "frames": 12}]
    write(suite, {**SCENARIO, "events": events, "sampler": {"steps": 1}}, "one.yaml")
    (suite / "suite.yaml").write_text("methods: [codenoise]\n")
    return suite


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--seeds", "0"], "argument --seeds: expected a positive integer, got 0"),
        (["--report-only"], "has no results yet"),
    ],
)
def test_bench_usage_errors(tmp_path, capsys, extra, message):
    out = tmp_path / "new"
    with pytest.raises(SystemExit) if "--seeds" in extra else contextlib.nullcontext() as e:
        code = main(["bench", str(_suite(tmp_path)), "-o", str(out), *extra])
    code = e.value.code if "--seeds" in extra else code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and not out.exists()


def test_bench_in_which_every_run_fails(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["bench", str(_suite(tmp_path, prompt="zzz qqq")), "-o", str(out)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("syncos: error: all 1 runs failed") and "errors.log" in last


def test_bench_summary_wording(tmp_path):
    from syncos.bench.report import write_report
    from syncos.bench.table import append_rows

    rows = [
        dict(scenario=s, method=m, seed=0, nfe=100 + 20 * (m == "b"), clean=0.5 + 0.1 * i * (m == "b"))
        for i, s in enumerate(["x", "y", "z"])
        for m in ("a", "b")
    ]
    append_rows(tmp_path / "results.csv", rows)
    text = write_report(tmp_path, methods=["a", "b"]).read_text()
    assert "x 1 seed (0)." in text
    assert "| b | 20.000 (every scenario) | 0.100 ± 0.248 |" in text  # NFE: a design constant, no *
    from syncos.bench.report import load, unit_interval

    parsed, _, _ = load(tmp_path)
    assert unit_interval(parsed, "clean") and not unit_interval(parsed, "nfe")  # clean's error bars clipped


def test_unreachable_hub_says_so_without_waiting(tmp_path, monkeypatch, capsys):
    pytest.importorskip("diffusers")
    from syncos.backends.diffusers import loader

    monkeypatch.setattr(loader, "_offline", lambda: False)
    monkeypatch.setattr(loader, "_hub_unreachable", lambda: "huggingface.co: Name or service not known")
    scenario = write(tmp_path, {**SCENARIO, "model": "no-such-org/no-such-model"})
    assert main(["generate", str(scenario), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "the Hugging Face hub could not be reached (huggingface.co: Name or service not known)" in err
    assert "HF_HUB_OFFLINE=1" in err and "local diffusers folder" in err and not (tmp_path / "out").exists()
