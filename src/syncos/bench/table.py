"""results.csv: one row per (scenario, method, seed), appended and flushed row by row.

A crash loses at most the row being written; a rerun reads the keys already present and skips
them. A row with a column the header lacks rewrites the file once (atomically) with the union.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from syncos.io import atomic_path

KEY = ("scenario", "method", "seed")


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if all(r.get(k) for k in KEY)]


def row_key(row: dict[str, Any]) -> tuple[str, str, str]:
    return tuple(str(row[k]) for k in KEY)  # type: ignore[return-value]


def append_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append rows and flush them to disk; widen the header first if they bring new columns."""
    if not rows:
        return
    header: list[str] = []
    _drop_partial_line(path)
    if path.is_file():
        with path.open(newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
    new = list(dict.fromkeys(k for r in rows for k in r if k not in header))
    if new and header:
        old = read_rows(path)
        header += new
        with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, header)
            w.writeheader()
            w.writerows(old)
    elif not header:
        header = new
        with path.open("w", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, header).writeheader()
    with path.open("a", newline="", encoding="utf-8") as f:
        csv.DictWriter(f, header).writerows(rows)
        f.flush()
        os.fsync(f.fileno())


def _drop_partial_line(path: Path) -> None:
    """Cut a last line that a crash left without its newline (it would fuse with the next row)."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb+") as f:
        data = f.read()
        if not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)
