"""``syncos ui``: the browser studio (the ``ui`` extra): logic in :mod:`.jobs`, layout in :mod:`.app`."""

from __future__ import annotations

from typing import Any


def launch(**options: Any) -> None:
    """Serve the studio until interrupted (imports Gradio only now); options as ``syncos.ui.app.launch``."""
    from syncos.ui.app import launch as serve

    serve(**options)


__all__ = ["launch"]
