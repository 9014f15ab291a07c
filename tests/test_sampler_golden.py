"""Every method's latent, counts, notes and progress, recorded before the samplers shared one loop.

tests/data/sampler_golden.json was written by ``python tests/test_sampler_golden.py`` on the code
before ``Run.loop`` (commit e1c9078, each method with its own loop); this test holds the code to
it. A change of the noise draws' order, of what a step computes or of what the callback is shown
moves the latent by O(1); the tolerance only absorbs the last bits another CPU's kernels may
round differently (the refactor itself was checked bit for bit: torch.equal on every case).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from dist_worker import make_plan  # noqa: E402
from gaussian_backend import GaussianBackend  # noqa: E402
from syncos.samplers import SAMPLERS, sample  # noqa: E402
from syncos.solvers import Solver  # noqa: E402

FIXTURE = Path(__file__).parent / "data" / "sampler_golden.json"
CSD = {"iterations": 2, "t_min": 600.0}
CASES: dict[str, tuple[str, dict, bool]] = {  # name -> (method, options, UniPC instead of DDIM)
    "independent": ("independent", {"steps": 6}, False),
    "independent-unipc": ("independent", {"steps": 6}, True),
    "codenoise": ("codenoise", {"steps": 6}, False),
    "codenoise-unipc": ("codenoise", {"steps": 6}, True),
    "codenoise-rescheduled": ("codenoise", {"steps": 6, "noise": "rescheduled"}, False),
    "syncos": ("syncos", {"steps": 6, **CSD}, False),
    "syncos-unipc": ("syncos", {"steps": 6, **CSD}, True),
    "syncos-minibatch-fresh-random": (
        "syncos",
        {"steps": 6, **CSD, "minibatch": 2, "baseline_noise": "fresh", "timestep": "random"},
        False,
    ),
    "syncos-shifted-predicted-clean": (
        "syncos",
        {
            "steps": 6,
            **CSD,
            "layout": "shifted",
            "reversion": "predicted",
            "kernel": "clean",
            "stop_below": 0.5,
        },
        False,
    ),
    "syncos-implied-pyramid-sgd": (
        "syncos",
        {
            "steps": 6,
            **CSD,
            "baseline_noise": "implied",
            "blend": "pyramid",
            "optimizer": "sgd",
            "chain_rule": True,
        },
        False,
    ),
    "syncos-stage2-only": ("syncos", {"steps": 6, "iterations": 1, "stage1": False}, False),
    "fifo": ("fifo", {"steps": 12}, False),
    "fifo-no-lookahead": ("fifo", {"steps": 6, "partitions": 2, "lookahead": False}, False),
}


def run_case(name: str) -> dict:
    method, options, unipc = CASES[name]
    backend = GaussianBackend()
    if unipc:
        backend.solver = Solver("unipc", order=2)
    steps: list[list[float]] = []
    result = sample(
        method,
        backend,
        make_plan(backend, (8, 8)),
        SAMPLERS[method][1](guidance_scale=2.0, **options),
        seed=1,
        callback=lambda s: steps.append(
            [s.index, s.total, s.timestep, float(f"{float(s.x0.double().sum()):.9g}")]
        ),
    )
    return {
        "latent": [float(f"{v:.7g}") for v in result.latent.flatten().tolist()],
        "nfe": result.nfe,
        "solver": result.solver,
        "notes": list(result.notes),
        "fifo_mode": result.fifo_mode,
        "steps": steps,
    }


@pytest.mark.parametrize("name", list(CASES))
def test_samplers_match_their_recorded_runs(name):
    want, got = json.loads(FIXTURE.read_text())[name], run_case(name)
    for key in ("nfe", "solver", "notes", "fifo_mode"):
        assert got[key] == want[key], key
    assert [s[:3] for s in got["steps"]] == [s[:3] for s in want["steps"]]  # index, total, timestep
    torch.testing.assert_close(torch.tensor(got["steps"]), torch.tensor(want["steps"]), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        torch.tensor(got["latent"]), torch.tensor(want["latent"]), rtol=1e-4, atol=1e-5
    )


if __name__ == "__main__":  # (re)write the fixture from the code on the path
    lines = [f"{json.dumps(name)}: {json.dumps(run_case(name))}" for name in CASES]  # a case a line
    FIXTURE.write_text("{\n" + ",\n".join(lines) + "\n}\n")
