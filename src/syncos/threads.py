"""The CPU thread count for a run: one thread for small models unless the user chose a count.

toyworld's and the tiny test models' operations are far too small to gain from intra-op
threads; on a small or shared CPU the pool's spinning and oversubscription make them many
times slower (docs/ui.md has the numbers). A backend says so in its spec (``threads=1``); the count
is left alone on accelerators, and wherever the user set OMP_NUM_THREADS / MKL_NUM_THREADS or
called ``torch.set_num_threads`` (before or after importing syncos) to something other than
torch's default.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch

ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
_TORCH_DEFAULT = torch.get_num_threads()  # torch's own choice, unless changed before this import


def chosen_by_user() -> bool:
    return any(os.environ.get(v) for v in ENV) or torch.get_num_threads() != _TORCH_DEFAULT


@contextlib.contextmanager
def for_backend(backend: Any) -> Iterator[None]:
    """Run the block with the backend's preferred thread count (its spec's ``threads``), if any applies."""
    want = backend.spec.threads
    device = backend.device
    if not want or torch.device(device).type != "cpu" or chosen_by_user():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(want)
    try:
        yield
    finally:
        torch.set_num_threads(before)


__all__ = ["chosen_by_user", "for_backend"]
