"""toyworld: the exact mixture denoiser, its presentation to the core, prompts and calibration."""

import numpy as np
import pytest
import torch

from syncos.backends import load_backend
from syncos.backends.toyworld import ToyWorldBackend, parse_prompt, vocabulary
from syncos.backends.toyworld.model import attribute_entropy
from syncos.errors import UserError
from syncos.schedules import to_x0_eps

PROMPT = "a red circle on grass at night. the circle moves right"


def component_means(backend, prompt, frames):
    """Every rendered component mean of a prompt's mixture (K, C, F, H, W) and its log weight, float64."""
    from syncos.backends.toyworld.world import runs_to_mask

    mix, w = backend.mixture(prompt), backend.world
    masks = np.stack([[runs_to_mask(r) for r in w.subjects[s].runs(frames)] for s in mix.s_idx])[:, None]
    log_ws = mix.tables(frames).log_ws.tolist()
    mus, logw = [], []
    for b in mix.b_idx:
        back = np.einsum("fjc,jhw->cfhw", w.backgrounds[b].colours(frames), w.region)
        for k in mix.k_idx:
            col = w.colours[k].colours(frames).T[:, :, None, None]
            mus.append(w.to_latent(back * (1 - masks) + col * masks))  # (Ks, C, F, H, W)
            logw += log_ws
    return torch.from_numpy(np.concatenate(mus)), torch.tensor(logw, dtype=torch.float64)


def brute_force(backend, mus, logw, x, t):
    """E[x0 | x_t] by enumerating every component; t is one timestep or one per frame (cfhw x)."""
    a, s = backend.schedule.coefficients(torch.tensor(t, dtype=torch.float64).reshape(-1, 1, 1))
    v = a**2 * backend.tau**2 + s**2  # (1 or F, 1, 1): broadcasts over the frames of (C, F, H, W)
    r = (logw - (((x[None] - a * mus) ** 2) / (2 * v)).flatten(1).sum(1)).softmax(0)
    mu = torch.einsum("k,kcfhw->cfhw", r, mus)
    return mu + a * backend.tau**2 / v * (x - a * mu)


@pytest.fixture(scope="module")
def backend():
    return ToyWorldBackend()


def test_posterior_mean_is_exact(backend):
    mus, logw = component_means(backend, PROMPT, 2)
    g = torch.Generator().manual_seed(0)
    for t in (900, 300):
        x = torch.randn(backend.latent_shape(2), generator=g, dtype=torch.float64) * 0.3
        post = backend.posterior(x[None], torch.tensor([float(t)]), backend.encode([PROMPT]))
        torch.testing.assert_close(post.x0[0], brute_force(backend, mus, logw, x, t), rtol=0, atol=1e-10)


def test_per_frame_posterior_mean_is_exact(backend):
    """Frames at different noise levels (FIFO's diagonal): still the exact posterior, layout-free."""
    mus, logw = component_means(backend, PROMPT, 3)
    g = torch.Generator().manual_seed(1)
    fchw = ToyWorldBackend(layout="fchw")
    for ts in ([900.0, 500.0, 100.0], [999.0, 700.0, 20.0]):
        x = torch.randn(backend.latent_shape(3), generator=g, dtype=torch.float64) * 0.3
        t = torch.tensor([ts])
        post = backend.posterior(x[None], t, backend.encode([PROMPT]))
        torch.testing.assert_close(post.x0[0], brute_force(backend, mus, logw, x, ts), rtol=0, atol=1e-10)
        turned = fchw.posterior(x.transpose(0, 1)[None], t, fchw.encode([PROMPT]))
        torch.testing.assert_close(turned.x0, post.x0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("prediction", ["v", "eps"])
def test_per_frame_at_equal_timesteps_is_shared(prediction):
    b = ToyWorldBackend(prediction=prediction, chunk_length=4)
    x = torch.randn((3, *b.latent_shape(4)), dtype=torch.float64) * 0.5
    t = torch.tensor([800.0, 400.0, 50.0])
    cond = b.encode([PROMPT, "", "night falls"])
    shared = b.forward(x, t, cond)
    torch.testing.assert_close(b.forward(x, t[:, None].expand(3, 4), cond), shared, rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="per-frame timesteps"):
        b.forward(x, t[:, None].expand(3, 5), cond)


def test_prior_mean_at_zero_terminal_snr(backend):
    """At t=999 (alpha = 0) nothing is observed: x0_hat is the prompt's prior mean."""
    x = torch.randn((2, *backend.latent_shape(3)), dtype=torch.float64)
    x0 = backend.posterior(x, torch.tensor([999.0, 999.0]), backend.encode([PROMPT] * 2)).x0
    torch.testing.assert_close(x0[0], x0[1])
    assert torch.isfinite(x0).all()


@pytest.mark.parametrize(
    "prediction,schedule,layout",
    [
        ("v", "cogvideox", "cfhw"),
        ("eps", "sd", "fchw"),
        ("x0", "cogvideox", "fchw"),
        ("flow", "flow", "cfhw"),
        ("eps", "flow", "cfhw"),
    ],
)
def test_every_prediction_converts_back_to_the_same_x0(prediction, schedule, layout):
    b = ToyWorldBackend(prediction=prediction, schedule=schedule, layout=layout, chunk_length=4)
    x = torch.randn((2, *b.latent_shape(4)), dtype=torch.float64)
    t = torch.tensor([700.0, 200.0])
    cond = b.encode([PROMPT, ""])
    post = b.posterior(x, t, cond)
    alpha, sigma = b.schedule.coefficients(t)
    x0, eps = to_x0_eps(b.forward(x, t, cond), x, alpha, sigma, prediction)
    torch.testing.assert_close(x0, b._from_cfhw(post.x0), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(eps, b._from_cfhw(post.eps), rtol=1e-9, atol=1e-9)
    assert b.latent_shape(4)[b.frame_axis] == 4


def test_unconditional_is_the_mixture_over_every_prompt(backend):
    """p(x0) = sum_l p(l) p(x0 | l) over the lightings l, so E[x0|x_t, ""] mixes their posteriors exactly."""
    world = backend.world
    assert len(backend.mixture("")) == len(world.backgrounds) * len(world.colours) * len(world.subjects)
    x = torch.randn((1, *backend.latent_shape(3)), dtype=torch.float64) * 0.5
    t = torch.tensor([600.0])
    post = backend.posterior(x, t, backend.encode([""]))
    lighting = np.array([world.backgrounds[i].lighting for i in post.mixtures[0].b_idx])
    mixed = 0
    prompts = {"day": "by day", "night": "at night", "nightfall": "dusk", "sunrise": "dawn"}
    for name, prompt in prompts.items():
        p_l = post.backgrounds[0][torch.from_numpy(lighting == name)].sum()
        mixed = mixed + p_l * backend.posterior(x, t, backend.encode([prompt])).x0
    torch.testing.assert_close(post.x0, mixed, rtol=0, atol=1e-10)


def test_prompt_parsing():
    spec = parse_prompt("A red ball on the beach. Night falls")
    assert spec.colours == ("red",) and spec.shapes == ("circle",) and spec.scenes == ("beach",)
    assert spec.lightings == ("nightfall",) and len(spec.motions) == 7  # "falls" here is no motion
    assert parse_prompt("the box moves left").motions == ("left",)
    assert parse_prompt("a blue cube").lightings == ("day", "night")  # no change unless named
    assert len(parse_prompt("").lightings) == 4


def test_unknown_prompt_points_to_vocab(backend):
    with pytest.raises(UserError, match=r"no word toyworld knows; `syncos vocab` lists them$"):
        backend.encode(["a spaceship orbits mars"])
    assert backend.ignored_words("A red spaceship orbits the ball, then night falls") == [
        "spaceship",
        "orbits",
    ]
    vocab = vocabulary()
    assert {"shape", "colour", "scene", "lighting", "motion"} <= set(vocab) and "jumps" in vocab["motion"]


def test_settings():
    b = load_backend(
        "toyworld",
        height=None,
        width=256,
        fps=8,
        dtype="float32",
        device=None,
        model_options={"prediction": "eps", "layout": "fchw"},
    )
    assert b.prediction == "eps" and b.frame_axis == 0 and b.latent_shape(5) == (5, 3, 32, 32)
    with pytest.raises(UserError, match="fps must be 8"):
        ToyWorldBackend.from_settings(fps=24)
    with pytest.raises(UserError, match="allowed: prediction"):
        ToyWorldBackend.from_settings(model_options={"steps": 3})
    with pytest.raises(UserError, match="flow"):
        ToyWorldBackend.from_settings(model_options={"prediction": "flow", "schedule": "cogvideox"})
    with pytest.raises(UserError, match="num_frames"):
        ToyWorldBackend.from_settings(num_frames=10)


def test_decode_upscales(backend):
    frames = list(backend.decode(torch.zeros(backend.latent_shape(2))))
    assert len(frames) == 2 and frames[0].shape == (256, 256, 3) and frames[0].dtype == np.uint8
    assert backend.latent_frames(7) == backend.video_frames(7) == 7


def test_calibration_decides_coarse_to_fine(backend):
    """Colour and scene are undecided at t=900 and decided by t=500 under CogVideoX's schedule."""
    h = attribute_entropy(backend, [900, 500], samples=8)
    assert h["colour"][0] > 0.8 and h["scene"][0] > 0.7
    assert h["colour"][1] < 0.15 and h["scene"][1] < 0.15


def test_scene_adjectives_do_not_name_the_subject_colour():
    from syncos.backends.toyworld import parse_prompt

    assert parse_prompt("a red ball on green grass. the ball jumps").colours == ("red",)
    assert parse_prompt("a green ball on the grass").colours == ("green",)


def test_scaled_world_posterior_is_exact():
    """scale 2: each component mean is upsampled 2x2 with per-pixel noise; brute force on 64x64."""
    big = ToyWorldBackend(scale=2)
    assert big.latent_shape(2) == (3, 2, 64, 64)
    mus, logw = component_means(big, PROMPT, 2)
    mus = mus.repeat_interleave(2, -2).repeat_interleave(2, -1)
    g = torch.Generator().manual_seed(1)
    for t in (900, 500, 300):
        x = torch.randn(big.latent_shape(2), generator=g, dtype=torch.float64) * 0.3
        post = big.posterior(x[None], torch.tensor([float(t)]), big.encode([PROMPT]))
        torch.testing.assert_close(post.x0[0], brute_force(big, mus, logw, x, t), rtol=0, atol=1e-10)
        a, s = big.schedule.coefficients(torch.tensor([float(t)]))
        torch.testing.assert_close(post.eps[0], (x - a * post.x0[0]) / s, rtol=0, atol=1e-9)


def test_latent_std_is_the_spread_of_clean_clips():
    """SynCoS's step unit: the standard deviation of clean latents drawn from the prior."""
    import numpy as np

    from syncos.backends.toyworld import ToyWorldBackend
    from syncos.backends.toyworld.model import sample_clean

    for contrast in (1.0, 2.0):
        b = ToyWorldBackend(contrast=contrast)
        g = np.random.default_rng(1)
        clips = np.stack([sample_clean(b.mixture(""), 12, g) for _ in range(24)])
        assert abs(clips.std() / b.latent_std - 1) < 0.05
