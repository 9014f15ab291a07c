"""``syncos ui``: the browser studio (the ``ui`` extra): logic in :mod:`.jobs`, layout in :mod:`.app`."""

from __future__ import annotations


def launch(host: str = "127.0.0.1", port: int = 7860, scenario: str | None = None) -> None:
    """Serve the studio on HOST:PORT until interrupted (imports Gradio only now)."""
    from syncos.ui.app import launch as serve

    serve(host=host, port=port, scenario=scenario)


__all__ = ["launch"]
