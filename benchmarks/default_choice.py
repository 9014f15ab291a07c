"""The default rule's last step, over judges: reads the summaries `default_rule.py` writes beside
its CSVs (.json) and prints the candidates eligible on every judge, ranked by their average score.

    python benchmarks/default_choice.py exact=benchmarks/results/default/exact.json \\
        learned=benchmarks/results/default/learned.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from default_rule import choose


def main() -> None:
    judges = {}
    for arg in sys.argv[1:]:
        name, _, path = arg.partition("=")
        judges[name] = json.loads(Path(path).read_text())
    if len(judges) < 1:
        sys.exit("usage: default_choice.py NAME=SUMMARY.json [NAME=SUMMARY.json ...]")
    print(choose(judges))


if __name__ == "__main__":
    main()
