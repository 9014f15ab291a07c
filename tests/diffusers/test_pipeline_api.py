"""``SynCoSPipeline.from_pipe(pipe)`` and ``syncos.generate(pipe, ...)``: diffusers' conventions
(issue 18 section 1)."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers_tiny import BUILDERS, MORE_BUILDERS, TINY_SETTINGS, tiny_pipe

import syncos
from syncos import SynCoSPipeline
from syncos.backends.diffusers import load_diffusers_backend
from syncos.backends.diffusers.ltx import unpack
from syncos.errors import UserError

STEPS, GUIDANCE = 3, 4.0


def settings(family: str) -> dict:
    return {k: v for k, v in TINY_SETTINGS[family].items() if k in ("height", "width", "model_options")}


def modules_state(pipe) -> dict:
    """Each module's identity and each parameter's identity, dtype, device and storage."""
    return {
        name: (id(m), [(n, id(p), p.dtype, p.device, p.data_ptr()) for n, p in m.named_parameters()])
        for name, m in pipe.components.items()
        if isinstance(m, torch.nn.Module)
    }


def one_chunk_call(pipe, family: str, **kw):
    sp = SynCoSPipeline.from_pipe(pipe, **settings(family))
    frames = sp.backend.video_frames(sp.backend.chunk_length)
    events = [{"prompt": "walks through a puddle", "frames": frames}]
    call = dict(method="codenoise", num_inference_steps=STEPS, guidance_scale=GUIDANCE, negative_prompt="")
    return sp, sp("a red astronaut", events, **{**call, **kw})


@pytest.mark.parametrize("family", [*BUILDERS, *MORE_BUILDERS])
def test_from_pipe_leaves_modules_dtypes_and_devices_untouched(family):
    pipe = tiny_pipe(family)
    for m in pipe.components.values():
        if isinstance(m, torch.nn.Module):
            m.eval()  # as from_pretrained leaves them
    before = modules_state(pipe)
    sp, out = one_chunk_call(pipe, family, output_type="latent")
    assert sp.backend.pipe is pipe and modules_state(pipe) == before
    assert out.frames.shape == (1, *sp.backend.latent_shape(sp.backend.chunk_length))


@pytest.mark.parametrize("setting, value", [("dtype", "float32"), ("device", "cpu"), ("cpu_offload", True)])
def test_settings_that_would_change_a_handed_in_pipeline_are_refused(setting, value):
    """Fails on the old code, which cast / moved / offloaded the user's pipeline in place."""
    with pytest.raises(UserError, match=f"{setting}: would change the handed-in pipeline in place"):
        load_diffusers_backend(None, pipe=tiny_pipe("wan"), **{setting: value}, **settings("wan"))


def stock_one_chunk(family: str, sp, prompt: str, **noise) -> torch.Tensor:
    """The stock pipeline's latent for one chunk, its noise from ``noise`` (generator= or latents=)."""
    b = sp.backend
    kw = dict(
        prompt=prompt,
        negative_prompt="",
        height=b.height,
        width=b.width,
        num_frames=b.video_frames(b.chunk_length),
        num_inference_steps=STEPS,
        guidance_scale=GUIDANCE,
        output_type="latent",
        **noise,
    )
    if family in ("cogvideox", "wan", "ltx"):
        kw["max_sequence_length"] = b.max_sequence_length
    if family == "ltx":
        c, f, h, w = b.latent_shape(b.chunk_length)
        return unpack(tiny_pipe(family)(frame_rate=b.fps, **kw).frames, f, h, w, 1, 1).float()
    return tiny_pipe(family)(**kw).frames.float()


@pytest.mark.parametrize("family", list(BUILDERS))
def test_one_chunk_equals_the_stock_pipeline_with_the_same_generator(family):
    sp, out = one_chunk_call(
        tiny_pipe(family), family, generator=torch.Generator().manual_seed(7), output_type="latent"
    )
    ref = stock_one_chunk(
        family, sp, out.generation.plan.prompts[0], generator=torch.Generator().manual_seed(7)
    )
    err = ((out.frames - ref).abs().max() / ref.abs().max()).item()
    assert err < 1e-5, err


def test_one_chunk_with_latents_equals_the_stock_pipeline_with_the_same_latents():
    """``latents=`` in diffusers' layout, (1, C, F, H, W) for Wan, is the stock pipeline's ``latents``:
    one independent tile from them is the stock call's latent (fails while latents were not taken)."""
    pipe = tiny_pipe("wan")
    backend = SynCoSPipeline.from_pipe(pipe, **settings("wan")).backend
    shape = backend.latent_shape(backend.chunk_length)
    latents = torch.randn((1, *shape), generator=torch.Generator().manual_seed(11))
    sp, out = one_chunk_call(pipe, "wan", method="independent", latents=latents, output_type="latent")
    assert out.frames.shape == latents.shape
    ref = stock_one_chunk("wan", sp, out.generation.plan.prompts[0], latents=latents.clone())
    err = ((out.frames - ref).abs().max() / ref.abs().max()).item()
    assert err < 1e-5, err
    # and the run's own generator (seed 0) would have given another video: the latents were used
    assert not torch.allclose(
        one_chunk_call(pipe, "wan", method="independent", output_type="latent")[1].frames, ref
    )


def test_the_generator_seeds_the_run_as_in_diffusers(tmp_path):
    """The same generator state gives the same video; the generator advances, so a second call with
    the same generator object gives another; prompts are encoded once across calls."""
    sp = SynCoSPipeline.from_pipe(tiny_pipe("cogvideox"), **settings("cogvideox"))
    calls: list[list[str]] = []
    encode = sp.backend._encode_uncached
    sp.backend._encode_uncached = lambda prompts: calls.append(list(prompts)) or encode(prompts)
    events = [{"prompt": "walks", "frames": 9}, {"prompt": "sits", "frames": 9}]
    kw = dict(method="syncos", num_inference_steps=2, iterations=1, output_type="latent")
    g = torch.Generator().manual_seed(3)
    first = sp("a cat", events, generator=g, **kw).frames
    second = sp("a cat", events, generator=g, **kw).frames
    again = sp("a cat", events, generator=torch.Generator().manual_seed(3), **kw).frames
    assert torch.equal(first, again) and not torch.equal(first, second)
    assert len(calls) == 2  # the prompts, then the negative one: nothing again on later calls


def test_defaults_are_the_family_s_and_recorded(tmp_path):
    """Wan's stock CFG is 5.0, not CogVideoX's 6 (fails on the old code); run.json records it."""
    out = syncos.generate(
        tiny_pipe("wan"),
        global_prompt="a cat",
        events=[{"prompt": "sits", "frames": 9}],
        method="codenoise",
        num_inference_steps=1,
        **settings("wan"),
    )
    assert out.frames.shape == (1, 9, 16, 16, 3) and 0 <= out.frames.min() and out.frames.max() <= 1
    syncos.save(out.generation, tmp_path / "run")
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["scenario"]["sampler"]["guidance_scale"] == 5.0
    assert record["scenario"]["sampler"]["steps"] == 1 and record["model"]["pipeline"] == "WanPipeline"


@pytest.mark.parametrize("family", list(MORE_BUILDERS))
def test_one_chunk_equals_the_backend_run_each_family_file_holds_to_stock(family):
    """The newer families' stock calls differ too much for one stock-call helper; each family's own
    test file holds ``one_chunk`` (the backend over one chunk, seed s) equal to its stock pipeline.
    Here SynCoSPipeline over the same pipeline with ``generator=manual_seed(s)`` equals that run, so
    the chain reaches stock for every family. Kills: from_pipe building the backend with other
    settings than a folder load (size, options), or the generator not seeding the run."""
    from diffusers_tiny import load, one_chunk

    backend = load(family)
    ref, _, prompt = one_chunk(backend, STEPS, GUIDANCE, seed=3)
    frames = backend.video_frames(backend.chunk_length)
    sp = SynCoSPipeline.from_pipe(tiny_pipe(family), **settings(family))
    out = sp(
        "a red astronaut",
        [{"prompt": "walks through puddle", "frames": frames}],  # one_chunk's (make_plan's first)
        method="codenoise",
        num_inference_steps=STEPS,
        guidance_scale=GUIDANCE,
        negative_prompt="",
        generator=torch.Generator().manual_seed(3),
        output_type="latent",
    )
    assert out.generation.plan.prompts[0] == prompt
    torch.testing.assert_close(out.frames[0].float(), ref, rtol=1e-5, atol=1e-6)
