"""One chunk through our sampler == the stock diffusers pipeline, for the same noise, steps and guidance.

This proves the adapters' conversions (v / eps / flow -> x0, eps), their schedules, their
conditioning, the step rule (DDIM / Euler / UniPC, ``syncos.solvers``), x0 clipping and guidance
schedules are the model's own. docs/diffusers.md lists these configurations as equal to stock.
"""

from __future__ import annotations

import pytest
import torch
from diffusers_tiny import TINY_SETTINGS, load, make_plan, relative_error, tiny_pipe

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
    "wan-unipc": 1e-5,
    "wan-experts-unipc": 1e-5,
    "animatediff-unipc": 1e-5,
    "animatediff-dpm": 1e-5,
    "animatediff-clip": 1e-5,
    "animatediff-threshold": 1e-5,
}
# Configurations that differ from the tiny pipe's defaults: name -> (tiny pipe, model_options, stock kwargs)
CONFIGS = {
    "wan22-guidance-2": ("wan-experts-unipc", {"guidance_scale_2": 2.5}, {"guidance_scale_2": 2.5}),
    "cogvideox-dynamic-cfg": ("cogvideox-rope", {"use_dynamic_cfg": True}, {"use_dynamic_cfg": True}),
}


def ours(backend, seed: int = 0, method: str = "codenoise") -> tuple[torch.Tensor, torch.Tensor, str]:
    from syncos.samplers import SamplerOptions, sample

    plan = make_plan(backend, [backend.video_frames(backend.chunk_length)])
    assert plan.num_chunks == 1 and plan.latent_frames == backend.chunk_length
    noise = torch.randn(
        backend.latent_shape(plan.latent_frames), generator=torch.Generator().manual_seed(seed)
    )
    res = sample(method, backend, plan, SamplerOptions(steps=STEPS, guidance_scale=GUIDANCE), seed=seed)
    return res.latent.float().cpu(), noise, plan.prompts[0]


def stock(family: str, backend, noise: torch.Tensor, prompt: str, **extra) -> torch.Tensor:
    pipe = tiny_pipe(family)
    kw = dict(
        **extra,
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
    err = relative_error(mine, stock(family, backend, noise, prompt))
    print(f"{family}: relative max error {err:.2e}")
    assert err < TOLERANCE[family], err


@pytest.mark.parametrize("name", list(CONFIGS))
def test_guidance_options_match_stock_pipeline(name):
    """Wan 2.2's guidance_scale_2 and CogVideoX's use_dynamic_cfg, each against the stock pipeline's own."""
    family, options, stock_kwargs = CONFIGS[name]
    base = load(family)
    backend = load(family, model_options={**base.options, **options})
    mine, noise, prompt = ours(backend)
    err = relative_error(mine, stock(family, backend, noise, prompt, **stock_kwargs))
    # the option must change the result, or this test could not fail
    assert relative_error(ours(base)[0], mine) > 1e-3
    print(f"{name}: relative max error {err:.2e}")
    assert err < 1e-5, err


def test_independent_tiles_take_the_same_unipc_steps():
    backend = load("wan-unipc")
    mine, noise, prompt = ours(backend, method="independent")
    assert relative_error(mine, stock("wan-unipc", backend, noise, prompt)) < 1e-5


def test_the_step_rule_and_clipping_matter():
    """Without UniPC or without clipping the results are far from stock: the tests above can fail."""
    wan = load("wan-unipc", model_options={**TINY_SETTINGS["wan"]["model_options"], "solver": "ddim"})
    mine, noise, prompt = ours(wan)
    assert (
        relative_error(mine, stock("wan-unipc", wan, noise, prompt)) > 1e-3
    )  # 1.5e-2: Euler on UniPC's grid
    assert relative_error(ours(load("animatediff"))[0], ours(load("animatediff-clip"))[0]) > 0.1
    unet = load(
        "animatediff-unipc", model_options={**TINY_SETTINGS["animatediff"]["model_options"], "solver": "ddim"}
    )
    mine, noise, prompt = ours(unet)
    assert relative_error(mine, stock("animatediff-unipc", unet, noise, prompt)) > 1e-3
