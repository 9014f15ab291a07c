"""Chunk-parallel sampling over several processes (gloo on CPU), against the single-process result.

Ranks are processes forked from a forkserver that has imported torch, syncos and the worker
(tests/dist_worker.py) once, so a rank starts in milliseconds rather than seconds (CI has two
cores). Each gets torchrun's environment variables; torchrun and mp.spawn are not used because
they kill the surviving ranks as soon as one fails, and the fault tests must see what the
survivors do on their own.
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import socket
import sys
import time
from pathlib import Path

import pytest
import torch

from syncos import distributed
from syncos.io import read_video

SCENARIO = {
    "model": "gaussian",
    "global_prompt": "a global prompt",
    "events": [{"prompt": "event one", "frames": 8}, {"prompt": "event two", "frames": 7}],
    "sampler": {"method": "codenoise", "steps": 4, "guidance_scale": 2.0},  # syncos: see the samplers test
}
_CTX = multiprocessing.get_context("forkserver")
_CTX.set_forkserver_preload(["dist_worker", "torch._dynamo"])  # torch.optim imports dynamo on first step


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(logs: str, env: dict[str, str], args: list[str]) -> None:
    """A rank: torchrun's environment, stdout/stderr (file descriptors too) into LOGS.{out,err}."""
    import dist_worker

    os.environ.update(env)
    for fd, suffix in ((1, "out"), (2, "err")):
        with open(f"{logs}.{suffix}", "w") as f:
            os.dup2(f.fileno(), fd)
    torch.set_num_threads(1)
    sys.exit(dist_worker.main(args))


def launch(
    world: int, args: list[str], logs: Path, wait: int | None = None, timeout: float = 60.0, **env: str
):
    """Start ``world`` ranks of dist_worker.main(args); wait for the first ``wait`` (default: all).

    The ranks not waited for are killed at the end.
    Returns [(exit code, stdout, stderr, seconds until it ended)] per waited-for rank.
    """
    base = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": str(world)}
    base.update(LOCAL_WORLD_SIZE=str(world), **env)
    procs = []
    start = time.monotonic()
    for r in range(world):
        rank_env = {**base, "RANK": str(r), "LOCAL_RANK": str(r)}
        procs.append(_CTX.Process(target=_rank, args=(str(logs / f"rank{r}"), rank_env, args)))
        procs[-1].start()
    results = []
    try:
        for r, p in enumerate(procs[: world if wait is None else wait]):
            p.join(max(1.0, timeout - (time.monotonic() - start)))
            out, err = ((logs / f"rank{r}.{s}").read_text() for s in ("out", "err"))
            results.append((p.exitcode, out, err, time.monotonic() - start))
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    return results


def _cases(world: int) -> list[str]:
    """Every Gaussian case; the slower models only with two ranks (CI has two cores)."""
    names = ["codenoise", "codenoise-uneven", "codenoise-one-chunk", "independent", "syncos-minibatch"]
    names += ["syncos-flow", "fifo", "extend-flow"]
    if world == 2 and importlib.util.find_spec("syncos.backends.toyworld") is not None:
        names += ["toyworld-codenoise", "toyworld-syncos"]
    if world == 2 and importlib.util.find_spec("diffusers") is not None:
        names.append("cogvideox-syncos")
    return names


def _scenario(tmp_path: Path) -> str:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(SCENARIO))
    return str(path)


# --------------------------------------------------------------------------- no process group


def test_shard_is_balanced_and_covers_everything():
    for n in range(0, 14):
        for world in range(1, 6):
            spans = [distributed.shard(n, r, world) for r in range(world)]
            assert spans[0][0] == 0 and spans[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
            sizes = [hi - lo for lo, hi in spans]
            assert max(sizes) - min(sizes) <= 1 and max(sizes) == -(-n // world)


def test_without_a_group_everything_is_world_one(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with distributed.launched():
        assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
        x = torch.randn(3, 2)
        assert distributed.gather_rows(x, 3) is x
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "2.5")
    assert distributed.timeout_seconds() == 2.5 and distributed.timeout_seconds(7) == 7.0


# --------------------------------------------------------------------------- several processes


@pytest.mark.parametrize("world", [2, 3])
def test_equals_single_process(tmp_path, world):
    """Every rank ends with the single-process latent and NFE counts, whatever the number of ranks.

    Outputs are gathered, never reduced, so the only possible difference is the network's own
    dependence on its batch composition: none for the Gaussian and toyworld models (bitwise
    equal), ~1e-6 for the tiny diffusers transformer (its kernels reduce in a batch-dependent order).
    """
    names = _cases(world)
    results = launch(world, ["samplers", str(tmp_path), *names], tmp_path, timeout=120)
    for rc, _, err, _ in results:
        assert rc == 0, err
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]
    ref = ranks[0]["ref"]
    for name in names:
        for r in range(world):
            got = ranks[r]["dist"][name]
            assert got["nfe"] == ref[name]["nfe"], (name, r)
            if name.startswith("cogvideox"):
                torch.testing.assert_close(got["latent"], ref[name]["latent"], rtol=1e-5, atol=1e-5)
            else:
                assert torch.equal(got["latent"], ref[name]["latent"]), (name, r)


def test_cli_writes_once_and_matches_single_process(tmp_path, monkeypatch):
    import dist_worker
    from syncos import api, cli

    scenario = _scenario(tmp_path)
    monkeypatch.setattr(api, "load_backend", dist_worker.gaussian_loader(api.load_backend))
    assert cli.main(["generate", scenario, "-o", str(tmp_path / "one"), "-q"]) == 0
    (rc0, out0, err0, _), (rc1, out1, err1, _) = launch(
        2, ["cli", "generate", scenario, "-o", str(tmp_path / "two")], tmp_path
    )
    assert (rc0, rc1) == (0, 0), err0 + err1
    assert out0.startswith("wrote ") and (out1, err1) == ("", "")  # other ranks print nothing
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["run.json", "video.mp4"]
    one, two = (json.loads((tmp_path / d / "run.json").read_text()) for d in ("one", "two"))
    assert two.pop("world_size") == 2 and "world_size" not in one
    one.pop("seconds"), two.pop("seconds")
    assert one == two  # same nfe, plan, scenario
    a, b = (read_video(tmp_path / d / "video.mp4")[0] for d in ("one", "two"))
    assert (a == b).all()


@pytest.mark.parametrize("kind", ["exit", "hang"])
def test_a_failed_rank_stops_the_others(tmp_path, kind):
    """A rank that dies (or hangs) mid-run: the others exit 3 with one line, within the timeout, no video."""
    world, timeout = (3, 30.0) if kind == "exit" else (2, 3.0)
    out = tmp_path / "out"
    args = ["generate", _scenario(tmp_path), "-o", str(out), "-q", "--dist-timeout", str(timeout)]
    fault = f"1:3:{kind}"
    results = launch(
        world, ["cli", *args], tmp_path, wait=1 if kind == "hang" else None, SYNCOS_TEST_FAULT=fault
    )
    survivors = [res for r, res in enumerate(results) if r != 1]
    for rc, stdout, stderr, seconds in survivors:
        assert rc == 3, stderr
        assert stdout == "" and "Traceback" not in stderr
        assert stderr.startswith("syncos: error: rank ") and stderr.count("\n") == 1, stderr  # one line
        assert "peer rank" in stderr
        # a dead peer is noticed at once (its sockets close); a hung one after the timeout
        assert seconds < (10 if kind == "exit" else timeout + 10)
    if kind == "exit":
        assert results[1][0] == 17
    assert not any(out.glob("video*")) and not (out / "run.json").exists()


# --------------------------------------------------------------------------- syncos bench


def _bench_suite(folder: Path) -> Path:
    """Two scenarios whose rows fit one device and one that asks for CPU offloading (chunk-parallel)."""
    import yaml

    folder.mkdir()
    events = [{"prompt": "moves right", "frames": 8}, {"prompt": "jumps", "frames": 7}]
    for name, extra in (("a", {}), ("b", {}), ("offloaded", {"cpu_offload": True})):
        sc = {"global_prompt": f"scene {name}", "events": events, "sampler": {"method": "codenoise"}, **extra}
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(sc))
    suite = {"methods": ["codenoise", "syncos"], "seeds": 2,
             "overrides": ["sampler.steps=4", "sampler.iterations=2", "sampler.t_min=500"]}  # fmt: skip
    (folder / "suite.yaml").write_text(yaml.safe_dump(suite))
    return folder


def test_bench_ranks_take_whole_rows(tmp_path):
    """3 ranks: the 8 rows that fit one device are spread over the ranks, the 4 offloaded ones are
    chunk-parallel; results.csv and drift.csv hold what one process writes, in the same order."""
    from gaussian_backend import GaussianBackend
    from syncos.bench import load_suite, run_suite
    from syncos.bench.table import read_rows

    folder = _bench_suite(tmp_path / "suite")
    run_suite(
        load_suite(folder), tmp_path / "one", load=lambda model, **_: GaussianBackend(), log=lambda _: None
    )
    results = launch(3, ["bench", str(folder), str(tmp_path / "three")], tmp_path, timeout=120)
    for rc, _, err, _ in results:
        assert rc == 0, err
    assert "8 whole rows over 3 ranks, 4 chunk-parallel" in results[0][1]
    assert "[rank 1: 3/3] b syncos seed 1" in results[1][1]  # whole rows 1, 4, 7 of 8

    def table(run: str, name: str) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "wall_s"} for r in read_rows(tmp_path / run / name)]

    one, three = table("one", "results.csv"), table("three", "results.csv")
    key = lambda r: (r["scenario"], r["method"], r["seed"])  # noqa: E731
    assert [key(r) for r in three[:8]] == [key(r) for r in one if r["scenario"] != "offloaded"]
    assert sorted(three, key=key) == sorted(one, key=key) and len(one) == 12
    assert sorted(map(str, table("one", "drift.csv"))) == sorted(map(str, table("three", "drift.csv")))
    strips = sorted(str(p.relative_to(tmp_path / "three")) for p in (tmp_path / "three").rglob("*.png"))
    assert len(strips) == 6 and not list((tmp_path / "three").glob("*.rank*"))


def test_bench_folds_rows_an_interrupted_run_left_per_rank(tmp_path):
    from gaussian_backend import GaussianBackend
    from syncos.bench import load_suite, run_suite
    from syncos.bench.table import read_rows

    suite, out = load_suite(_bench_suite(tmp_path / "suite")), tmp_path / "out"
    run_suite(suite, out, load=lambda model, **_: GaussianBackend(), log=lambda _: None)
    lines = (out / "results.csv").read_text().splitlines(keepends=True)
    (out / "results.csv").write_text("".join(lines[:-3]))  # the last two rows were only in rank 1's file
    (out / "results.rank1.csv").write_text(lines[0] + "".join(lines[-2:]))
    logs: list[str] = []
    run_suite(suite, out, load=lambda model, **_: GaussianBackend(), log=logs.append)
    assert logs[0].startswith("1 runs to do")  # only the row no file held
    tail = [(r["method"], r["seed"]) for r in read_rows(out / "results.csv")][-3:]
    assert tail == [("syncos", "0"), ("syncos", "1"), ("codenoise", "1")]  # folded, then redone
    assert not (out / "results.rank1.csv").exists()


def test_cli_bench_under_two_ranks_reports_once(tmp_path):
    """`syncos bench` under torchrun: every rank exits 0, rank 0 alone prints and writes the report."""
    import yaml

    folder = _bench_suite(tmp_path / "suite")
    for f in folder.glob("[!s]*.yaml"):  # the scenarios (not suite.yaml): the decodable Gaussian model
        f.write_text(yaml.safe_dump({**yaml.safe_load(f.read_text()), "model": "gaussian"}))
    out = tmp_path / "out"
    args = ["cli", "bench", str(folder), "-o", str(out), "--methods", "codenoise", "--seeds", "1"]
    (rc0, out0, err0, _), (rc1, out1, err1, _) = launch(2, args, tmp_path, timeout=120)
    assert (rc0, rc1) == (0, 0), err0 + err1
    assert "summary.md" in out0 and out1 == ""
    assert "2 whole rows over 2 ranks, 1 chunk-parallel" in err0 and "[rank 1: 1/1] b codenoise" in err1
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 3
