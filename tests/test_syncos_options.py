"""SynCoS options that must do what they say: the score-distillation weight, chain_rule, stop_below,
and the combinations that cannot mean anything (refused with one line)."""

from __future__ import annotations

import pytest
import torch

from gaussian_backend import GaussianBackend
from syncos.errors import UserError
from syncos.samplers import SamplerOptions, SynCoSOptions, sample
from syncos.samplers.run import Run
from syncos.samplers.syncos import synchronise
from test_samplers import make_plan


def one_sgd_step(chain_rule: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(theta after one SGD iteration of stage 2, the same step computed by hand) on one chunk."""
    b = GaussianBackend(tau=0.3)
    plan = make_plan(b, frames=(6,))  # one chunk: the Stein update is plain score distillation
    opts = SynCoSOptions(
        guidance_scale=1.0, iterations=1, lr=0.7, lr_units="absolute", optimizer="sgd", chain_rule=chain_rule
    )
    t, (a, s) = 300.0, (float(c) for c in b.schedule.coefficients(torch.tensor(300.0)))
    assert 0.4 < a < 0.7 and 0.5 < s**2 < 0.85  # a weight far from 1: the mutation w = 1 shows
    x0 = torch.randn(b.latent_shape(6), generator=torch.Generator().manual_seed(5))
    theta, _ = synchronise(Run(b, plan, opts, 0, None), x0, t, a, s, opts)
    run = Run(b, plan, opts, 0, None)  # the same generator: the same baseline noise
    eps_base = run.randn()
    _, eps_hat = run.denoiser((a * x0 + s * eps_base)[None], t, a, s, [plan.prompts[0]])
    # theta' = theta - lr * w(t) * (eps_hat - eps_base), w(t) = sigma^2 (times alpha with chain_rule)
    weight = s**2 * (a if chain_rule else 1.0)
    return theta, x0 - 0.7 * weight * (eps_hat[0] - eps_base)


@pytest.mark.parametrize("chain_rule", [False, True])
def test_sgd_step_is_weighted_by_sigma_squared_and_alpha_with_chain_rule(chain_rule):
    """Kills: w(t) replaced by 1 (the mutation every test passed before), chain_rule ignored."""
    theta, expected = one_sgd_step(chain_rule)
    torch.testing.assert_close(theta, expected, rtol=1e-5, atol=1e-6)


def test_adamw_takes_no_weight_and_refuses_chain_rule():
    """AdamW's step is the same for any constant gradient scale, so there the weight is 1 and
    chain_rule is refused. Fails on the old code, which accepted chain_rule under AdamW."""
    from syncos.samplers.syncos import sd_weight

    assert sd_weight(SynCoSOptions(), 0.3, 0.9) == 1.0
    assert sd_weight(SynCoSOptions(optimizer="sgd"), 0.3, 0.9) == pytest.approx(0.81)
    with pytest.raises(UserError, match=r"^sampler.chain_rule: .*sampler.optimizer: sgd"):
        SynCoSOptions(chain_rule=True)


def test_predicted_reversion_without_stage1_is_refused():
    """stage1: false has no predicted noise; the old code silently used the baseline one."""
    with pytest.raises(UserError, match=r"^sampler.reversion: 'predicted' .* sampler.stage1 is false"):
        SynCoSOptions(stage1=False, reversion="predicted")
    SynCoSOptions(stage1=False)  # the baseline reversion is what stage-2-only runs


def thetas(b, plan, opts, t, a, s, x0, n):
    """theta after 0..n iterations of one synchronised step (a fresh optimiser each call, as a run has)."""
    out = [x0]
    for i in range(1, n + 1):
        o = SynCoSOptions(**{**opts.__dict__, "iterations": i, "stop_below": 0.0})
        out.append(synchronise(Run(b, plan, o, 0, None), x0, t, a, s, o)[0])
    return out


def test_stop_below_stops_when_the_update_not_the_gradient_falls_below():
    """The update is how far the optimiser moved theta. Under AdamW it does not shrink with the
    gradient: the old code compared gradient norms and stopped at the third of 12 iterations here
    (gradient at 0.50 of its first), while the update falls below 0.6 of its first only at the fifth."""
    b = GaussianBackend(tau=0.3, static=True)
    plan = make_plan(b, frames=(8, 8))
    t, (a, s) = 500.0, (float(c) for c in b.schedule.coefficients(torch.tensor(500.0)))
    x0 = torch.zeros(b.latent_shape(plan.latent_frames))
    n, fraction = 12, 0.6
    opts = SynCoSOptions(guidance_scale=1.0, iterations=n, lr=0.3, stop_below=fraction)
    traj = thetas(b, plan, opts, t, a, s, x0, n)
    updates = [float((traj[i + 1] - traj[i]).norm()) for i in range(n)]
    below = [i for i in range(n) if updates[i] < fraction * updates[0]]
    assert below and below[0] == 4, updates  # the setting must stop early, or the test shows nothing
    run = Run(b, plan, opts, 0, None)
    run.denoiser.stage = "stage2"
    theta, _ = synchronise(run, x0, t, a, s, opts)
    # iterations 0..below[0] ran (each one forward per chunk), and theta is where they left it
    assert run.counter.nfe["stage2"] == (below[0] + 1) * plan.num_chunks
    torch.testing.assert_close(theta, traj[below[0] + 1])


def test_stop_below_zero_runs_every_iteration_and_a_run_counts_fewer():
    b = GaussianBackend(tau=0.3, static=True)
    plan = make_plan(b, frames=(8, 8))
    base = dict(steps=6, iterations=30, t_min=500, lr=0.3)
    full = sample("syncos", b, plan, SynCoSOptions(**base), seed=0)
    assert torch.equal(
        full.latent, sample("syncos", b, plan, SynCoSOptions(**base, stop_below=0.0), 0).latent
    )
    early = sample("syncos", b, plan, SynCoSOptions(**base, stop_below=0.5), seed=0)
    assert 0 < early.nfe["stage2"] < full.nfe["stage2"]


def test_predicted_reversion_without_a_csd_move_is_codenoise():
    """reversion: predicted steps with stage 1's fused noise, so with no CSD move (iterations 0) a
    run is plain co-denoising; the baseline reversion re-noises instead. Kills: reversion ignored."""
    b = GaussianBackend()
    plan = make_plan(b, frames=(8, 6))
    codenoise = sample("codenoise", b, plan, SamplerOptions(steps=6), seed=2).latent
    opts = dict(steps=6, iterations=0, t_min=500)
    predicted = sample("syncos", b, plan, SynCoSOptions(**opts, reversion="predicted"), seed=2)
    assert "stage 2 (re-noising only (no CSD move)) ran at 2 of 6 steps" in predicted.notes[0]
    torch.testing.assert_close(predicted.latent, codenoise)
    baseline = sample("syncos", b, plan, SynCoSOptions(**opts), seed=2).latent
    assert (baseline - codenoise).abs().max() > 0.05
