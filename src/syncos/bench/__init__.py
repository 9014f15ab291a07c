"""Benchmarks: run a suite of scenarios with several methods and seeds, then summarise and plot.

``suite`` loads a folder of scenario files (+ its ``suite.yaml``), ``runner`` produces the
resumable ``results.csv``, ``report`` turns it into ``summary.md`` and PNG plots, and
``feature_metrics`` scores real-model videos with local CLIP/DINO weights.
"""

from syncos.bench.report import write_report
from syncos.bench.runner import run_suite
from syncos.bench.suite import Suite, load_suite

__all__ = ["Suite", "load_suite", "run_suite", "write_report"]
