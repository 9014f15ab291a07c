"""docs/diffusers.md's stage-2 figures come from benchmarks/flow_shift_nfe.py: the counts it prints
are the grids syncos samples (issue 18 section 5; the old table said 13 steps for LTX)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
import flow_shift_nfe  # noqa: E402


def test_steps_above_t_min_per_model_and_shift():
    got = {(m, why.split(" (")[0]): n for m, why, n, _ in flow_shift_nfe.rows()}
    assert got[("cogvideox-2b", "DDIM, trailing, SNR shift 3")] == 5
    assert got[("wan2.1-1.3b", "UniPC flow sigmas, shift 3")] == 13
    assert got[("wan2.1-1.3b", "UniPC flow sigmas, shift 5")] == 18
    ltx = [(why, n, nfe) for m, why, n, nfe in flow_shift_nfe.rows() if m == "ltx-video"]
    assert ltx == [("dynamic shift mu = 3.23 at 512x704x161, terminal 0.1", 34, 16320)]
    docs = (Path(__file__).parents[2] / "docs" / "diffusers.md").read_text()
    assert "| 16320 (34 steps > t_min) |" in docs and "mu = 3.23 at 512x704x161 (7392 tokens)" in docs
