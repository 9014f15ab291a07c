"""The step rule: how a sampler turns this step's (x0, eps) estimate into the next latent.

A stock pipeline hands its model output to a stateful diffusers scheduler. Samplers here fuse
chunk estimates into one long (x0, eps) per step and then apply the same rule statelessly on the
fused latent: DDIM with eta = 0 (the Euler step for flow matching), UniPC's multistep
predictor-corrector (the scheduler Wan ships), DPM-Solver++ 2M (Sana-Video's), written in x0
("data prediction") form with the history of earlier estimates carried explicitly in a
:class:`History` value, or the ancestral Euler step (Open-Sora Plan's), which adds fresh noise
drawn from the run's generator.

A multistep rule is only valid along an ODE trajectory. Where a sampler leaves it (SynCoS's
stage-2 re-noising), the step is first order and the history starts again. The ancestral step
is one-step already and uses only (x0, eps): it applies unchanged there, fresh noise included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from syncos.schedules import Grid


@dataclass(frozen=True)
class Solver:
    """A step rule; the defaults are DDIM.

    ``unipc`` mirrors UniPCMultistepScheduler(predict_x0=True), ``dpmsolver++`` mirrors
    DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order <= 2),
    ``euler_ancestral`` mirrors EulerAncestralDiscreteScheduler (eta 1).
    """

    name: str = "ddim"  # "ddim", "unipc", "dpmsolver++" or "euler_ancestral"
    order: int = 1
    variant: str = "bh2"  # UniPC's B(h): "bh1" / "bh2"; DPM-Solver++'s "midpoint" / "heun"
    corrector: bool = True  # UniC after each network evaluation
    lower_order_final: bool = True
    disable_corrector: tuple[int, ...] = ()
    euler_at_final: bool = False  # DPM-Solver++: the last step first order (also when it ends at sigma 0)

    def describe(self) -> str:
        if self.name in ("ddim", "euler_ancestral"):
            return self.name
        if self.name == "dpmsolver++":
            return f"dpmsolver++-{self.variant} order {self.order}"
        return f"unipc-{self.variant} order {self.order}" + ("" if self.corrector else " without corrector")


DDIM = Solver()
EULER_ANCESTRAL = Solver("euler_ancestral")


@dataclass(frozen=True)
class History:
    """What a multistep rule remembers: earlier x0 estimates with their log-SNRs, newest last."""

    x0: tuple[torch.Tensor, ...] = ()
    lam: tuple[float, ...] = ()
    last_x: torch.Tensor | None = None  # the sample the last predictor started from (for UniC)
    last_order: int = 0


def _lam(alpha: float, sigma: float) -> float:
    """log(alpha / sigma): -inf at pure noise, +inf at the clean end (the formulas below take both)."""
    if sigma == 0 or alpha == 0:
        return math.inf if sigma == 0 else -math.inf
    return math.log(alpha) - math.log(sigma)


def _rhos(rks: list[float], hh: float, order: int, variant: str) -> tuple[torch.Tensor, torch.Tensor, float]:
    """UniPC's (R, b, B(h)) for ratios ``rks`` (the last is 1) and step hh = -h."""
    h_phi_k = math.expm1(hh) / hh - 1
    b_h = hh if variant == "bh1" else math.expm1(hh)
    R, b, fact = [], [], 1
    r = torch.tensor(rks, dtype=torch.float64)
    for i in range(1, order + 1):
        R.append(r ** (i - 1))
        b.append(h_phi_k * fact / b_h)
        fact *= i + 1
        h_phi_k = h_phi_k / hh - 1 / fact
    return torch.stack(R), torch.tensor(b, dtype=torch.float64), b_h


def _uni(x, m0, ms, lams, lam_s0, a_t, s_t, s_s0, order, variant, model_t=None):
    """One UniP step (model_t None) or UniC correction (model_t = x0 at the predicted point).

    x is the start sample at log-SNR lam_s0, m0 its x0, ms / lams earlier x0s and log-SNRs
    (newest first); the target is (a_t, s_t).
    """
    lam_t = _lam(a_t, s_t)
    h = lam_t - lam_s0
    hh = -h
    h_phi_1 = math.expm1(hh)
    x_t = (s_t / s_s0) * x - (a_t * h_phi_1) * m0
    rks = [(lams[i] - lam_s0) / h for i in range(order - 1)] + [1.0]
    D1s = [(ms[i] - m0) / rks[i] for i in range(order - 1)]
    R, b, b_h = _rhos(rks, hh, order, variant)
    if model_t is None:
        if not D1s:
            return x_t
        rhos = [0.5] if order == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1]).tolist()
        return x_t - (a_t * b_h) * sum(r * d for r, d in zip(rhos, D1s, strict=True))
    rhos = [0.5] if order == 1 else torch.linalg.solve(R, b).tolist()
    corr = sum((r * d for r, d in zip(rhos[:-1], D1s, strict=True)), torch.zeros_like(x))
    return x_t - (a_t * b_h) * (corr + rhos[-1] * (model_t - m0))


def step(
    solver: Solver,
    grid: Grid,
    k: int,
    x: torch.Tensor,
    x0: torch.Tensor,
    eps: torch.Tensor,
    history: History | None = None,
    ode: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, History]:
    """The latent at grid point k + 1 from x at point k and its estimate (x0, eps).

    ``ode=False`` marks an estimate that is not the model's at x (a re-noised one): the step is
    then DDIM's and the multistep history is dropped (the ancestral step stays ancestral).
    ``generator`` (CPU) draws the ancestral step's noise.
    """
    a_next, s_next = float(grid.alpha_next[k]), float(grid.sigma_next[k])
    if solver.name == "euler_ancestral":
        return _euler_ancestral(
            float(grid.alpha[k]), float(grid.sigma[k]), a_next, s_next, x0, eps, generator
        )
    if solver.name == "ddim" or not ode:
        return a_next * x0 + s_next * eps, History()
    h = history or History()
    a, s = float(grid.alpha[k]), float(grid.sigma[k])
    lam = _lam(a, s)
    if solver.name == "dpmsolver++":
        return _dpm(solver, len(grid), k, x, x0, h, a_next, s_next, s, lam), History((x0,), (lam,))
    if solver.corrector and h.last_x is not None and k - 1 not in solver.disable_corrector:
        s_prev = float(grid.sigma[k - 1])
        x = _uni(
            h.last_x, h.x0[-1], h.x0[-2::-1], h.lam[-2::-1], h.lam[-1], a, s, s_prev,
            h.last_order, solver.variant, model_t=x0,
        )  # fmt: skip
    xs, lams = (h.x0 + (x0,))[-solver.order :], (h.lam + (lam,))[-solver.order :]
    order = min(solver.order, len(grid) - k if solver.lower_order_final else solver.order, len(xs))
    x_next = _uni(x, x0, xs[-2::-1], lams[-2::-1], lam, a_next, s_next, s, order, solver.variant)
    return x_next, History(xs, lams, last_x=x, last_order=order)


def _dpm(solver: Solver, n: int, k: int, x, x0, h: History, a_t: float, s_t: float, s_s: float, lam: float):
    """DPM-Solver++ 2M (midpoint or Heun), first order on the first step and where diffusers drops it."""
    hh = _lam(a_t, s_t) - lam
    phi = math.expm1(-hh)  # exp(-h) - 1
    x_t = (s_t / s_s) * x - (a_t * phi) * x0
    final_first = k == n - 1 and (solver.euler_at_final or s_t == 0 or (solver.lower_order_final and n < 15))
    if solver.order == 1 or not h.x0 or final_first:
        return x_t
    d1 = (x0 - h.x0[-1]) * (hh / (lam - h.lam[-1]))  # (m0 - m1) / r0
    if solver.variant == "heun":
        return x_t + (a_t * (phi / hh + 1.0)) * d1
    return x_t - (0.5 * a_t * phi) * d1


def _euler_ancestral(a: float, s: float, a_next: float, s_next: float, x0, eps, generator):
    """EulerAncestralDiscreteScheduler's step, in VP form.

    With VE sigmas v = s / a, it goes from v to v_down = v_to^2 / v along the ODE and adds noise
    v_up = sqrt(v_to^2 - v_down^2): x' = a' (x0 + v_down eps + v_up z), z ~ N(0, 1) drawn once per
    step (none at the last step, where v_to = 0) with the shape of x, as the scheduler draws it.
    """
    v, v_to = s / a, s_next / a_next
    up = math.sqrt(max(v_to**2 * (v**2 - v_to**2) / v**2, 0.0))
    down = math.sqrt(max(v_to**2 - up**2, 0.0))
    x_next = a_next * x0 + (a_next * down) * eps
    if up > 0:
        z = torch.randn(x0.shape, generator=generator, dtype=torch.float32).to(x0.device, x0.dtype)
        x_next = x_next + (a_next * up) * z
    return x_next, History()
