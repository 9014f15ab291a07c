"""toyworld's prior option: the weights of the factor values a prompt leaves open."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from syncos.backends import load_backend
from syncos.backends.toyworld import ToyWorldBackend
from syncos.backends.toyworld import world as W
from syncos.backends.toyworld.model import sample_component
from syncos.errors import UserError

PROMPT = "a red square stays still on the grass"
PEAKED = {"lighting": {"day": 0.9, "night": 0.1}, "colour": {"red": 0.5}}


def x0_at_alpha0(backend, prompt, frames=3, per_frame=False):
    """E[x0 | x_t] where nothing is observed (flow schedule, t = 1000: alpha = 0), per chunk or per frame."""
    x = torch.randn((1, *backend.latent_shape(frames)), dtype=torch.float64)
    t = torch.full((1, frames) if per_frame else (1,), 1000.0)
    post = backend.posterior(x, t, backend.encode([prompt]))
    assert float(backend.schedule.coefficients(torch.tensor([1000.0]))[0]) == 0.0
    return post


def sky_by_hand(lighting: dict[str, float], frames: int) -> np.ndarray:
    """Mean sky colour (F, 3) of grass: the prior over lighting, uniform over brightness level and drift."""
    f = np.arange(frames)
    out = np.zeros((frames, 3))
    for (light, p), level, drift in itertools.product(lighting.items(), (-1, 0, 1), (-1, 0, 1)):
        night = np.full(frames, {"day": 0.0, "night": 1.0}[light])
        bright = (level + drift * f / (W.CHUNK_LENGTH - 1)) * W.BRIGHT_STEP
        out += p / 9 * W.background_colours("grass", night, bright)[:, 0]
    return out


def test_open_lighting_follows_the_prior_by_hand():
    """Row 0 (sky, never under a subject) at alpha = 0: the prior-weighted mean of day and night skies."""
    for lighting in ({"day": 0.9, "night": 0.1}, {"day": 0.5, "night": 0.5}):
        b = ToyWorldBackend(prediction="flow", prior={"lighting": lighting})
        for per_frame in (False, True):
            sky = (
                x0_at_alpha0(b, PROMPT, per_frame=per_frame).x0[0, :, :, 0, 0].T.numpy()
            )  # latent = pixel - 0.5
            np.testing.assert_allclose(sky + 0.5, sky_by_hand(lighting, 3), rtol=0, atol=1e-12)


def test_open_colour_marginal_is_the_prior_and_a_named_one_is_unaffected():
    b = ToyWorldBackend(prediction="flow", prior=PEAKED)
    for prompt, expected in (
        ("a square on the grass", {"red": 0.5} | {c: 0.1 for c in W.COLOURS if c != "red"}),
        ("a blue square on the grass", {"blue": 1.0}),
    ):
        post = x0_at_alpha0(b, prompt)
        names = [b.world.colours[i].colour for i in post.mixtures[0].k_idx]
        got = {
            c: float(sum(p for n, p in zip(names, post.colours[0].tolist(), strict=True) if n == c))
            for c in expected
        }
        assert got == pytest.approx(expected, abs=1e-12)


def test_a_prompt_that_names_the_lighting_is_unaffected():
    uniform, peaked = ToyWorldBackend(prediction="flow"), ToyWorldBackend(prediction="flow", prior=PEAKED)
    g = torch.Generator().manual_seed(0)
    x = torch.randn((2, *uniform.latent_shape(3)), generator=g, dtype=torch.float64)
    t = torch.tensor([1000.0, 600.0])
    named = ["a red square at night", "a red ball. night falls"]
    torch.testing.assert_close(
        peaked.forward(x, t, peaked.encode(named)), uniform.forward(x, t, uniform.encode(named))
    )
    open_ = ["a red square", "a red square"]
    assert not torch.allclose(
        peaked.forward(x, t, peaked.encode(open_)), uniform.forward(x, t, uniform.encode(open_))
    )


def test_default_is_uniform_and_an_explicit_uniform_prior_matches_it():
    """Killed by a default that is not uniform (and by weights that leak into the default tables)."""
    default = ToyWorldBackend()
    tables = default.mixture("").tables(2)
    assert not tables.log_wb.any() and not tables.log_wk.any()
    explicit = ToyWorldBackend(
        prior={"lighting": {"day": 0.5}, "scene": {"snow": 0.25}, "colour": {"red": 1 / 6}}
    )
    g = torch.Generator().manual_seed(2)
    x = torch.randn((3, *default.latent_shape(4)), generator=g, dtype=torch.float64)
    t, prompts = torch.tensor([900.0, 400.0, 50.0]), ["", "a ball", "night falls"]
    torch.testing.assert_close(
        explicit.forward(x, t, explicit.encode(prompts)),
        default.forward(x, t, default.encode(prompts)),
        rtol=0,
        atol=1e-12,
    )


def test_components_are_drawn_by_the_prior():
    b = ToyWorldBackend(prior=PEAKED)
    g = np.random.default_rng(0)
    mix = b.mixture("a square on the grass")
    draws = [sample_component(mix, g) for _ in range(2000)]
    day = np.mean([b.world.backgrounds[d[0]].lighting == "day" for d in draws])
    red = np.mean([b.world.colours[d[1]].colour == "red" for d in draws])
    assert abs(day - 0.9) < 0.03 and abs(red - 0.5) < 0.04
    # the empty prompt also allows lighting changes: they keep a uniform prior's share (1/2 each)
    unconditional = [sample_component(b.mixture(""), g) for _ in range(2000)]
    lights = [b.world.backgrounds[d[0]].lighting for d in unconditional]
    assert abs(lights.count("day") / 2000 - 0.45) < 0.03 and abs(lights.count("sunrise") / 2000 - 0.25) < 0.03


@pytest.mark.parametrize(
    "prior,message",
    [
        ("peaked", "must be a mapping"),
        ({"weather": {"rain": 1.0}}, "unknown factor 'weather'; allowed: scene, lighting"),
        ({"lighting": {"dusk": 1.0}}, "unknown value 'dusk'; allowed: day, night"),
        ({"lighting": {"nightfall": 0.5}}, "unknown value 'nightfall'"),
        ({"colour": {"red": 0}}, "must be a probability in \\(0, 1\\]"),
        ({"colour": {"red": True}}, "must be a probability"),
        ({"lighting": {"day": 0.9, "night": 0.3}}, "sum to 1.2"),
        ({"colour": {"red": 1.0}}, "sum to 1;"),
        ({"shape": []}, "must map values"),
    ],
)
def test_bad_priors_are_one_line_errors(prior, message):
    with pytest.raises(UserError, match=message) as e:
        load_backend("toyworld", model_options={"prior": prior})
    assert "\n" not in str(e.value)
