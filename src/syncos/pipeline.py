"""``SynCoSPipeline.from_pipe(pipe)``: a long multi-event video from a diffusers pipeline, called as
diffusers users call pipelines.

``from_pipe`` follows diffusers' convention: the new pipeline shares the user's modules and never
casts, moves or offloads them (the user set dtype, device and offloading on ``pipe`` already; the
scenario keys that would change them in place are refused for a handed-in pipeline, see
``syncos.backends.diffusers.loader``). The backend is built once, so prompts are encoded once and
reused across calls. Settings a call leaves out (steps, CFG scale, negative prompt) come from the
family's stock ``__call__`` defaults (``ModelSpec.defaults``) and are recorded in the run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from syncos import api
from syncos.backends import Backend, load_backend
from syncos.errors import UserError
from syncos.samplers import Callback, Step

OUTPUT_TYPES = ("np", "pt", "pil", "latent")


@dataclass
class SynCoSPipelineOutput:
    """``frames[0]`` is the video of batch item 0 (diffusers' convention): float frames (T, H, W, 3)
    in [0, 1] for "np", (T, 3, H, W) for "pt", PIL images for "pil", the latent for "latent".
    ``generation`` is the run (``syncos.save(out.generation, folder)`` writes video.mp4 and run.json)."""

    frames: Any
    generation: api.Generation


class SynCoSPipeline:
    """A long-video pipeline over a diffusers text-to-video pipeline (see the module docstring)."""

    def __init__(self, backend: Backend, pipe: Any = None, model_options: Mapping[str, Any] | None = None):
        self.backend = backend
        self.pipe = pipe
        self.model_options = dict(model_options or {})

    @classmethod
    def from_pipe(
        cls,
        pipe: Any,
        *,
        height: int | None = None,
        width: int | None = None,
        fps: float | None = None,
        model_options: Mapping[str, Any] | None = None,
    ) -> SynCoSPipeline:
        """Wrap ``pipe`` (its modules shared, untouched); height/width/fps/model_options as a scenario's."""
        settings = {"height": height, "width": width, "fps": fps, "model_options": dict(model_options or {})}
        return cls(load_backend(pipe=pipe, **settings), pipe, model_options)

    @property
    def defaults(self) -> dict[str, Any]:
        """The family's call defaults a call gets for what it leaves out (sampler keys)."""
        return self.backend.spec.defaults.sampler_keys()

    def __call__(
        self,
        global_prompt: str,
        events: Sequence[Mapping[str, Any]],
        *,
        method: str = "syncos",
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        negative_prompt: str | None = None,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "np",
        callback_on_step_end: Callable[[Any, int, float, dict], Any] | None = None,
        callback: Callback | None = None,
        seed: int = 0,
        **sampler_options: Any,
    ) -> SynCoSPipelineOutput:
        """Sample the video of ``events`` ([{prompt, seconds | frames}]) under ``global_prompt``.

        ``generator`` (a CPU torch.Generator) is drawn from for all of the run's noise, so the same
        generator state gives the same video, and the generator advances, as in diffusers; without
        it the run is seeded with ``seed``. ``latents`` is the initial noise of the whole long latent,
        of shape L or (1, *L) for ``L = self.backend.latent_shape(latent frames)``, the layout of
        ``output_type="latent"`` (docs/diffusers.md): it replaces the generator's first draw, which
        is still drawn so the run's later noise is unchanged (FIFO, a noise queue, refuses it).
        ``callback_on_step_end(pipe, step, timestep, {"x0": fused clean estimate})`` is called after
        each step (diffusers' signature; return ``{"stop": True}`` to cancel). Other sampler keys
        (``iterations``, ``stride``, ``micro_batch``, ...) pass through as in a scenario's ``sampler``
        section.
        """
        if output_type not in OUTPUT_TYPES:
            raise UserError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")
        if generator is not None and (
            not isinstance(generator, torch.Generator) or generator.device.type != "cpu"
        ):
            raise UserError(
                "generator must be a CPU torch.Generator (syncos draws its noise on the CPU so that results "
                f"do not depend on the device), got {generator!r}"
            )
        given = {
            "steps": num_inference_steps,
            "guidance_scale": guidance_scale,
            "negative_prompt": negative_prompt,
        }
        sampler = {"method": method, **{k: v for k, v in given.items() if v is not None}, **sampler_options}
        spec = self.backend.spec
        identity = spec.identity
        scenario = {
            "model": identity["name_or_path"] or identity["pipeline"] or spec.name,
            "global_prompt": global_prompt,
            "events": [dict(e) for e in events],
            "sampler": sampler,
            # with a generator: its seed (what reproduces the run if it was freshly seeded)
            "seed": int(generator.initial_seed() % 2**63 if generator is not None else seed),
            "height": spec.height,
            "width": spec.width,
            "fps": spec.fps,
            **({"model_options": self.model_options} if self.model_options else {}),
        }
        step_callback = callback
        if callback_on_step_end is not None:

            def step_callback(step: Step) -> bool | None:
                out = callback_on_step_end(self, step.index, step.timestep, {"x0": step.x0})
                if isinstance(out, Mapping) and out.get("stop"):
                    return False
                return callback(step) if callback is not None else None

        gen = api.generate(
            scenario, backend=self.backend, callback=step_callback, generator=generator, latents=latents
        )
        return SynCoSPipelineOutput(frames=self._frames(gen, output_type), generation=gen)

    @staticmethod
    def _frames(gen: api.Generation, output_type: str) -> Any:
        if output_type == "latent":
            return gen.latent.unsqueeze(0)
        video = gen.frames()  # uint8 (T, H, W, 3)
        if output_type == "pil":
            from PIL import Image

            return [[Image.fromarray(f) for f in video]]
        frames = video.astype(np.float32) / 255.0
        if output_type == "pt":
            return torch.from_numpy(frames).permute(0, 3, 1, 2).unsqueeze(0)
        return frames[None]


__all__ = ["SynCoSPipeline", "SynCoSPipelineOutput"]
