"""Hugging Face diffusers backends: one adapter per model family behind the Backend protocol."""

from syncos.backends.diffusers.loader import FAMILIES, load_diffusers_backend

__all__ = ["FAMILIES", "load_diffusers_backend"]
