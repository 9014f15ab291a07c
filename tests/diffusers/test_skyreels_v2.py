"""SkyReels-V2 T2V and diffusion forcing: one chunk equals the stock pipelines; per-frame timesteps
are the transformer's own; long two-event videos (DF also through FIFO per-frame); constraints."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers_tiny import (
    TINY_SETTINGS,
    folder_round_trip,
    load,
    long_video,
    make_plan,
    one_chunk,
    relative_error,
    tiny_pipe,
)

from syncos.backends.diffusers import load_diffusers_backend
from syncos.errors import UserError

STEPS, CFG = 3, 5.0


def _stock_kwargs(b, prompt: str) -> dict:
    return dict(
        prompt=prompt,
        negative_prompt="",
        height=b.height,
        width=b.width,
        num_frames=b.video_frames(b.chunk_length),
        num_inference_steps=STEPS,
        guidance_scale=CFG,
        max_sequence_length=b.max_sequence_length,
        output_type="latent",
    )


def test_t2v_one_chunk_matches_stock_pipeline():
    b = load("skyreels-v2")
    mine, noise, prompt = one_chunk(b, STEPS, CFG)
    ref = tiny_pipe("skyreels-v2")(latents=noise[None], **_stock_kwargs(b, prompt)).frames[0]
    err = relative_error(mine, ref)
    print(f"skyreels-v2: relative max error {err:.1e}")
    assert err < 1e-5


def _df_stock(pipe, b, prompt: str) -> torch.Tensor:
    # the DF pipeline cannot take latents (prepare_latents returns 1 value where 4 are unpacked):
    # the same seed gives the same noise instead
    kw = dict(base_num_frames=b.video_frames(b.chunk_length), ar_step=0, fps=int(b.fps))
    return pipe(generator=torch.Generator().manual_seed(0), **kw, **_stock_kwargs(b, prompt)).frames[0]


def test_df_one_chunk_matches_stock_pipeline_first_order():
    """UniPC of order 1 without corrector (the Euler step): the stock DF pipeline, untouched."""
    from diffusers import UniPCMultistepScheduler

    pipe = tiny_pipe("skyreels-v2-df")
    pipe.scheduler = UniPCMultistepScheduler.from_config(
        pipe.scheduler.config, solver_order=1, disable_corrector=list(range(STEPS))
    )
    b = load_diffusers_backend(None, pipe=copy.deepcopy(pipe), **TINY_SETTINGS["skyreels-v2-df"])
    mine, _, prompt = one_chunk(b, STEPS, CFG)
    err = relative_error(mine, _df_stock(pipe, b, prompt))
    print(f"skyreels-v2-df (UniPC order 1): relative max error {err:.1e}")
    assert err < 1e-5


def test_df_one_chunk_with_shipped_unipc(monkeypatch):
    """The shipped UniPC (order 2, corrector): the DF pipeline hands each frame's scheduler a view of
    its latents and then overwrites them in place, so the corrector's remembered sample is the new
    one. With that aliasing removed (a copy of the sample per step) stock equals syncos."""
    from diffusers import UniPCMultistepScheduler

    b = load("skyreels-v2-df")
    mine, _, prompt = one_chunk(b, STEPS, CFG)
    aliased = _df_stock(tiny_pipe("skyreels-v2-df"), b, prompt)
    step = UniPCMultistepScheduler.step
    monkeypatch.setattr(
        UniPCMultistepScheduler, "step", lambda s, m, t, x, **k: step(s, m, t, x.clone(), **k)
    )
    err, err_aliased = (
        relative_error(mine, _df_stock(tiny_pipe("skyreels-v2-df"), b, prompt)),
        relative_error(mine, aliased),
    )
    print(f"skyreels-v2-df (shipped UniPC): {err:.1e} vs de-aliased stock, {err_aliased:.1e} vs stock")
    assert err < 1e-5 and err_aliased > 1e-3


def test_df_per_frame_timesteps_are_the_transformer_s():
    b = load("skyreels-v2-df")
    assert b.per_frame_timesteps
    L = b.chunk_length
    x = torch.randn(2, *b.latent_shape(L))
    cond = b.encode(["a cat", "a dog"])
    t = torch.tensor([[900.7, 600.2, 300.9][:L], [999.0, 500.0, 10.0][:L]])
    out = b.forward(x, t, cond)
    with torch.no_grad():  # row by row, as the pipeline calls it (its fps embedding needs a batch of one)
        direct = torch.cat(
            [
                b.pipe.transformer(
                    hidden_states=x[i : i + 1],
                    timestep=t[i : i + 1].long(),
                    encoder_hidden_states=cond[i : i + 1],
                    enable_diffusion_forcing=True,
                    fps=[1],
                    return_dict=False,
                )[0]
                for i in range(2)
            ]
        )
    assert torch.allclose(out, direct, atol=1e-6)
    # one timestep per chunk is the same as that timestep on every frame, and differs from per-frame
    uniform = b.forward(x, torch.tensor([600.0, 500.0]), cond)
    assert torch.allclose(uniform, b.forward(x, torch.tensor([[600.0] * L, [500.0] * L]), cond), atol=1e-6)
    assert not torch.allclose(uniform, out, atol=1e-4)


@pytest.mark.parametrize("family", ["skyreels-v2", "skyreels-v2-df"])
def test_loads_from_a_saved_folder(tmp_path, family):
    folder_round_trip(family, tmp_path)


@pytest.mark.parametrize("family", ["skyreels-v2", "skyreels-v2-df"])
def test_long_two_event_video(family):
    long_video(load(family))


def test_df_long_video_through_fifo_per_frame():
    from syncos.samplers import sample
    from syncos.samplers.fifo import FIFOOptions

    b = load("skyreels-v2-df")
    native = b.video_frames(b.chunk_length)
    plan = make_plan(b, [native * 2, native * 2])
    opts = FIFOOptions(steps=b.chunk_length, guidance_scale=3.0, partitions=1, timesteps="per-frame")
    res = sample("fifo", b, plan, opts, seed=1)
    assert tuple(res.latent.shape) == tuple(b.latent_shape(plan.latent_frames))
    assert torch.isfinite(res.latent).all()


def test_constraints():
    with pytest.raises(UserError, match="skyreels-v2 cannot take 24x16: .*multiples of 16"):
        load("skyreels-v2", height=24)
    pipe = tiny_pipe("skyreels-v2-df")
    pipe.transformer.register_to_config(num_frame_per_block=2)
    with pytest.raises(UserError, match="causal blocks of 2 latent frames: .*multiple of 2, got 3"):
        load_diffusers_backend(None, pipe=pipe, height=16, width=16, model_options={"native_frames": 9})


def test_df_runs_a_batch_in_one_forward(monkeypatch):
    """Three chunks at different per-frame levels: one transformer call, equal to one call per
    chunk (test_df_per_frame_timesteps_are_the_transformer_s). Fails on the old code, which made
    one call per chunk whenever the fps embedding was on (inject_sample_info)."""
    b = load("skyreels-v2-df")
    assert b.pipe.transformer.config.inject_sample_info
    L = b.chunk_length
    x = torch.randn(3, *b.latent_shape(L))
    t = torch.tensor([[900.0, 600.0, 300.0][:L], [999.0, 500.0, 10.0][:L], [400.0, 400.0, 100.0][:L]])
    cond = b.encode(["a cat", "a dog", "a cow"])
    rows = []
    forward = b.pipe.transformer.forward
    monkeypatch.setattr(
        b.pipe.transformer,
        "forward",
        lambda hidden_states, **kw: rows.append(len(hidden_states)) or forward(hidden_states, **kw),
    )
    out = b.forward(x, t, cond)
    assert rows == [3]
    alone = torch.cat([b.forward(x[i : i + 1], t[i : i + 1], cond[i : i + 1]) for i in range(3)])
    assert torch.allclose(out, alone, atol=1e-6)
