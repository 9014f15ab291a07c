"""benchmarks/real_size.py at tiny size, so the real-size benchmark cannot rot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "real_size.py"


def test_real_size_benchmark_runs_at_tiny_size(capsys):
    spec = importlib.util.spec_from_file_location("real_size", SCRIPT)
    real_size = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(real_size)
    rows = real_size.main(["--tiny", "--mults", "2", "--steps", "2", "--iterations", "1"])
    assert len(rows) == 3 * 2
    for r in rows:
        assert r["nfe_per_s"] > 0 and 0 <= r["outside_net"] < 1 and r["frames"] > 0, r
        assert r["chunks"] >= r["mult"]
    out = capsys.readouterr().out
    assert "| wan2.1-1.3b | syncos | 2x |" in out and "tiny random models" in out
