import pytest
import torch

from syncos.schedules import FlowSchedule, VPSchedule, from_x0_eps, to_x0_eps


@pytest.mark.parametrize(
    "prediction,schedule",
    [
        ("eps", VPSchedule.stable_diffusion()),
        ("v", VPSchedule.cogvideox()),
        ("x0", VPSchedule.cogvideox()),
        ("flow", FlowSchedule(shift=3.0)),
    ],
)
def test_conversions_round_trip(prediction, schedule):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, 3, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(5, 3, 4, generator=g, dtype=torch.float64)
    grid = schedule.grid(10)
    for k in range(len(grid)):
        a, s = grid.alpha[k], grid.sigma[k]
        x_t = a * x0 + s * eps
        out = from_x0_eps(x0, eps, a, s, prediction)
        x0_hat, eps_hat = to_x0_eps(out, x_t, a, s, prediction)
        if prediction != "eps" or a > 1e-6:
            torch.testing.assert_close(x0_hat, x0, rtol=1e-6, atol=1e-6)
        if prediction != "x0" or s > 1e-6:
            torch.testing.assert_close(eps_hat, eps, rtol=1e-6, atol=1e-6)


def test_per_row_coefficients():
    x0, eps = torch.randn(3, 2, 2), torch.randn(3, 2, 2)
    a, s = torch.tensor([0.9, 0.5, 0.1]), torch.tensor([0.2, 0.6, 0.95])
    a, s = a, (1 - a**2).sqrt()
    x_t = a[:, None, None] * x0 + s[:, None, None] * eps
    got = to_x0_eps(from_x0_eps(x0, eps, a, s, "v"), x_t, a, s, "v")
    torch.testing.assert_close(got[0], x0, atol=1e-5, rtol=1e-5)


def test_cogvideox_table_and_grid_match_diffusers():
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.CogVideoXDDIMScheduler(
        beta_schedule="scaled_linear",
        rescale_betas_zero_snr=True,
        snr_shift_scale=3.0,
        timestep_spacing="trailing",
        prediction_type="v_prediction",
        set_alpha_to_one=True,
    )
    ours = VPSchedule.cogvideox()
    torch.testing.assert_close(ours.alphas_cumprod, ref.alphas_cumprod.double(), rtol=0, atol=1e-12)
    for steps in (50, 30, 7):
        ref.set_timesteps(steps)
        assert ours.timestep_ints(steps) == ref.timesteps.tolist()
    grid = ours.grid(50)
    assert grid.timesteps[0] == 999 and grid.alpha[0] == 0.0  # zero terminal SNR
    assert grid.alpha_next[-1] == 1.0 and grid.sigma_next[-1] == 0.0


def test_sd_grid_matches_diffusers_ddim():
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.DDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        steps_offset=1,
        timestep_spacing="leading",
        clip_sample=False,
        set_alpha_to_one=False,
    )
    ours = VPSchedule.stable_diffusion()
    ref.set_timesteps(25)
    assert ours.timestep_ints(25) == ref.timesteps.tolist()


def test_flow_grid_matches_diffusers_euler():
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.FlowMatchEulerDiscreteScheduler(shift=5.0)
    ref.set_timesteps(20)
    grid = FlowSchedule(shift=5.0).grid(20)
    torch.testing.assert_close(grid.sigma.float(), ref.sigmas[:-1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grid.timesteps.float(), ref.timesteps, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("bad", [0, -1, 1001, 2.5])
def test_bad_steps(bad):
    with pytest.raises(ValueError, match="steps"):
        VPSchedule.cogvideox().grid(bad)
