"""``latents=``: the caller's initial noise of the long latent (diffusers' ``latents`` argument, issue 18).

They replace the first long-latent draw of the run's generator, which is still drawn, so the rest
of the run's noise is what it would be without them; FIFO (a noise queue) refuses them.
"""

from __future__ import annotations

import pytest
import torch

from syncos import api, checkpoint
from syncos.errors import UserError
from syncos.samplers import Cancelled

SAMPLER = {
    "independent": {"steps": 4},
    "codenoise": {"steps": 4, "stride": 3},
    "syncos": {"steps": 4, "stride": 3, "iterations": 1, "t_min": 400},
}


def scenario(method: str, **sampler) -> dict:
    return {
        "model": "toyworld",
        "model_options": {"chunk_length": 6},
        "global_prompt": "a red ball on green grass",
        "events": [{"prompt": "the ball moves", "frames": 6}, {"prompt": "night falls", "frames": 6}],
        "seed": 3,
        "sampler": {"method": method, **SAMPLER.get(method, {"steps": 4}), **sampler},
    }


def long_shape(data: dict) -> tuple[int, ...]:
    _, backend, plan = api.prepare(data)
    return tuple(backend.latent_shape(plan.latent_frames))


def drawn(data: dict) -> torch.Tensor:
    """What the run's generator draws first for the long latent: torch.randn from the seed."""
    return torch.randn(long_shape(data), generator=torch.Generator().manual_seed(data["seed"]))


@pytest.mark.parametrize("method", list(SAMPLER))
def test_the_generator_s_own_noise_as_latents_gives_the_same_video(method):
    """Bit-identical, unbatched or with diffusers' batch axis of 1: the latents replace exactly the first
    draw and the later noise (SynCoS's baseline noise) is unchanged."""
    data = scenario(method)
    ref = api.generate(data).latent
    noise = drawn(data)
    assert torch.equal(api.generate(data, latents=noise).latent, ref)
    assert torch.equal(api.generate(data, latents=noise[None]).latent, ref)


@pytest.mark.parametrize("method", list(SAMPLER))
def test_other_latents_give_another_video(method):
    data = scenario(method)
    other = torch.randn(long_shape(data), generator=torch.Generator().manual_seed(99))
    got = api.generate(data, latents=other).latent
    assert not torch.allclose(got, api.generate(data).latent, atol=1e-3)
    assert torch.equal(api.generate(data, latents=other.clone()).latent, got)  # and the same again


def test_rescheduled_noise_takes_the_latents_as_given():
    """``noise: rescheduled`` does not reschedule given latents: codenoise (no later noise) from them is
    the iid run from them; without latents the two runs differ, so rescheduling is not a no-op here."""
    iid, resched = scenario("codenoise"), scenario("codenoise", noise="rescheduled")
    assert not torch.allclose(api.generate(iid).latent, api.generate(resched).latent, atol=1e-3)
    noise = drawn(iid)
    assert torch.equal(api.generate(resched, latents=noise).latent, api.generate(iid, latents=noise).latent)


@pytest.mark.parametrize("latents", [torch.zeros(2, 3), "noise", None])
def test_latents_of_the_wrong_shape_are_refused_with_one_line(latents):
    data = scenario("codenoise")
    shape = long_shape(data)
    latents = torch.zeros(2, *shape) if latents is None else latents  # a batch of two
    with pytest.raises(UserError) as e:
        api.generate(data, latents=latents)
    assert "\n" not in str(e.value) and f"latents: must be a tensor of shape {shape} or {(1, *shape)}" in str(
        e.value
    )


def test_fifo_refuses_latents_with_one_line():
    data = scenario("fifo")
    with pytest.raises(UserError, match="^latents: FIFO's noise is a queue") as e:
        api.generate(data, latents=torch.zeros(long_shape(data)))
    assert "\n" not in str(e.value)


def test_a_run_with_latents_resumes_bit_identically(tmp_path):
    """The checkpoint holds the state after the latents were used: a resume that is given them again
    goes on exactly as the uninterrupted run."""
    data = scenario("syncos")
    noise = torch.randn(long_shape(data), generator=torch.Generator().manual_seed(5))
    ref = api.generate(data, latents=noise).latent
    with pytest.raises(Cancelled):
        stop = checkpoint.Checkpoint(tmp_path, {"case": "latents"})
        api.generate(data, latents=noise, callback=lambda s: s.index < 1, checkpoint=stop)
    store = checkpoint.Checkpoint(tmp_path, {"case": "latents"})
    assert store.load().step == 1
    assert torch.equal(api.generate(data, latents=noise, checkpoint=store).latent, ref)
