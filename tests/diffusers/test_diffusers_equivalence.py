"""One chunk through our sampler == the stock diffusers pipeline, for the same noise, steps and guidance.

This proves the adapters' conversions (v / eps / flow -> x0, eps), their schedules and their
conditioning are the model's own: the only difference left is our stateless DDIM / Euler update.
"""

from __future__ import annotations

import pytest
import torch
from diffusers_tiny import load, make_plan, tiny_pipe

from syncos.backends.diffusers.ltx import pack, unpack

STEPS = 4
GUIDANCE = 6.0
# max |ours - stock| / max |stock| per family (float32 on CPU)
TOLERANCE = {
    "cogvideox": 1e-5,
    "cogvideox-rope": 1e-5,
    "wan": 1e-5,
    "wan-experts": 1e-5,
    "ltx": 1e-5,
    "animatediff": 1e-5,
    "modelscope": 1e-5,
}


def ours(backend, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, str]:
    from syncos.samplers import SamplerOptions, sample

    plan = make_plan(backend, [backend.video_frames(backend.chunk_length)])
    assert plan.num_chunks == 1 and plan.latent_frames == backend.chunk_length
    noise = torch.randn(
        backend.latent_shape(plan.latent_frames), generator=torch.Generator().manual_seed(seed)
    )
    res = sample("codenoise", backend, plan, SamplerOptions(steps=STEPS, guidance_scale=GUIDANCE), seed=seed)
    return res.latent.float().cpu(), noise, plan.prompts[0]


def stock(family: str, backend, noise: torch.Tensor, prompt: str) -> torch.Tensor:
    pipe = tiny_pipe(family)
    kw = dict(
        prompt=prompt,
        negative_prompt="",
        height=backend.height,
        width=backend.width,
        num_frames=backend.video_frames(backend.chunk_length),
        num_inference_steps=STEPS,
        guidance_scale=GUIDANCE,
        output_type="latent",
    )
    if family.startswith(("cogvideox", "wan", "ltx")):
        kw["max_sequence_length"] = backend.max_sequence_length
    if family == "ltx":
        c, f, h, w = noise.shape
        out = pipe(latents=pack(noise[None], 1, 1), frame_rate=backend.fps, **kw).frames
        return unpack(out, f, h, w, 1, 1)[0].float()
    return pipe(latents=noise[None], **kw).frames[0].float()


@pytest.mark.parametrize("family", list(TOLERANCE))
def test_one_chunk_matches_stock_pipeline(family):
    backend = load(family)
    mine, noise, prompt = ours(backend)
    ref = stock(family, backend, noise, prompt)
    assert mine.shape == ref.shape
    err = ((mine - ref).abs().max() / ref.abs().max()).item()
    print(f"{family}: relative max error {err:.2e}")
    assert err < TOLERANCE[family], err
