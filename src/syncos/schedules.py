"""Noise schedules and the one place that converts model outputs to (x0, eps).

Every schedule writes a noisy sample as ``x_t = alpha_t * x0 + sigma_t * eps``:
VP diffusion has ``alpha = sqrt(abar)``, ``sigma = sqrt(1 - abar)``; flow matching has
``alpha = 1 - s``, ``sigma = s``. A deterministic step from t to t' is then the same for both
families, ``x_t' = alpha' * x0 + sigma' * eps`` (DDIM with eta = 0, which for flow matching is
exactly the Euler step), so the samplers never need to know which family they run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

import torch

Prediction = Literal["eps", "v", "x0", "flow"]
PREDICTIONS: tuple[str, ...] = ("eps", "v", "x0", "flow")


# diffusers' Euler schedulers store zero terminal SNR as alphas_cumprod = 2^-24 so that their first
# sigma is finite: alpha = 2^-12 there stands for 0. Only that value is read so (to float32's
# round trip): a flow grid's first alpha of ~1e-4 is a real, if faint, signal and stays one.
EULER_ZERO_SNR_ALPHA = 2.0**-12


def no_signal(alpha: float) -> bool:
    """Whether a step is the zero-SNR one: alpha = 0, or the Euler schedulers' 2^-12 stand-in for it."""
    return alpha <= 0 or abs(alpha / EULER_ZERO_SNR_ALPHA - 1) < 1e-5


@dataclass(frozen=True)
class Grid:
    """The sampling steps: step k goes from (alpha[k], sigma[k]) to (alpha_next[k], sigma_next[k])."""

    timesteps: torch.Tensor  # (N,) float64, what the model is given
    alpha: torch.Tensor
    sigma: torch.Tensor
    alpha_next: torch.Tensor
    sigma_next: torch.Tensor

    def __len__(self) -> int:
        return len(self.timesteps)


class Schedule(Protocol):
    kind: str  # "vp" or "flow"
    num_train_timesteps: int

    def grid(self, steps: int) -> Grid: ...

    def coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


def _check_steps(steps: int, limit: int) -> None:
    if not isinstance(steps, int) or not 1 <= steps <= limit:
        raise ValueError(f"steps must be an integer in [1, {limit}], got {steps!r}")


@dataclass(frozen=True)
class VPSchedule:
    """Discrete VP schedule given by its alpha-bar table; DDIM conventions of diffusers."""

    alphas_cumprod: torch.Tensor  # (T,) float64
    spacing: Literal["trailing", "leading", "linspace"] = "trailing"
    steps_offset: int = 0
    final_alpha_cumprod: float = 1.0
    kind: str = "vp"

    @property
    def num_train_timesteps(self) -> int:
        return len(self.alphas_cumprod)

    @classmethod
    def from_betas(
        cls,
        beta_start: float = 0.00085,
        beta_end: float = 0.012,
        beta_schedule: str = "scaled_linear",
        num_train_timesteps: int = 1000,
        snr_shift_scale: float = 1.0,
        rescale_betas_zero_snr: bool = False,
        **kwargs,
    ) -> VPSchedule:
        """Build the table exactly as diffusers' DDIM / CogVideoX-DDIM schedulers do."""
        T = num_train_timesteps
        if beta_schedule == "scaled_linear":
            betas = torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float64) ** 2
        elif beta_schedule == "linear":
            betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float32).double()
        elif beta_schedule == "squaredcos_cap_v2":
            f = [math.cos((i / T + 0.008) / 1.008 * math.pi / 2) ** 2 for i in range(T + 1)]
            betas = torch.tensor([min(1 - f[i + 1] / f[i], 0.999) for i in range(T)], dtype=torch.float64)
        else:
            raise ValueError(
                f"beta_schedule {beta_schedule!r} is not supported; "
                "use scaled_linear, linear or squaredcos_cap_v2"
            )
        abar = torch.cumprod(1.0 - betas, dim=0)
        if snr_shift_scale != 1.0:
            abar = abar / (snr_shift_scale + (1 - snr_shift_scale) * abar)
        if rescale_betas_zero_snr:
            s = abar.sqrt()
            s0, sT = s[0].clone(), s[-1].clone()
            s = (s - sT) * s0 / (s0 - sT)
            abar = s**2
        return cls(alphas_cumprod=abar, **kwargs)

    @classmethod
    def cogvideox(cls) -> VPSchedule:
        """CogVideoX's DDIM schedule: scaled-linear betas, SNR shift 3, zero terminal SNR, trailing."""
        return cls.from_betas(snr_shift_scale=3.0, rescale_betas_zero_snr=True, spacing="trailing")

    @classmethod
    def stable_diffusion(cls) -> VPSchedule:
        return cls.from_betas(spacing="leading", steps_offset=1)

    def timestep_ints(self, steps: int) -> list[int]:
        T = self.num_train_timesteps
        _check_steps(steps, T)
        if self.spacing == "trailing":
            ratio = T / steps
            ts = [int(round(T - i * ratio)) - 1 for i in range(steps)]
        elif self.spacing == "leading":
            ratio = T // steps
            ts = [i * ratio + self.steps_offset for i in range(steps)][::-1]
        elif self.spacing == "linspace":
            ts = [int(round(i * (T - 1) / max(steps - 1, 1))) for i in range(steps)][::-1]
        else:
            raise ValueError(f"spacing {self.spacing!r} is not supported; use trailing, leading or linspace")
        return ts

    def grid(self, steps: int) -> Grid:
        ts = self.timestep_ints(steps)
        T = self.num_train_timesteps
        abar = self.alphas_cumprod
        prev = [t - T // steps for t in ts]  # diffusers' DDIM convention for the next point
        a = torch.stack([abar[t] for t in ts])
        a_next = torch.tensor(
            [abar[p].item() if p >= 0 else self.final_alpha_cumprod for p in prev], dtype=torch.float64
        )
        return Grid(
            timesteps=torch.tensor(ts, dtype=torch.float64),
            alpha=a.sqrt(),
            sigma=(1 - a).sqrt(),
            alpha_next=a_next.sqrt(),
            sigma_next=(1 - a_next).sqrt(),
        )

    def coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(t).round().long().clamp(0, self.num_train_timesteps - 1)
        a = self.alphas_cumprod[idx]
        return a.sqrt(), (1 - a).sqrt()


@dataclass(frozen=True)
class FlowSchedule:
    """Rectified flow: x_t = (1 - s) x0 + s eps, model timestep = s * T; ``shift`` warps the grid."""

    shift: float = 1.0
    num_train_timesteps: int = 1000
    kind: str = "flow"

    def sigmas(self, steps: int) -> torch.Tensor:
        T = self.num_train_timesteps
        _check_steps(steps, T)
        # As diffusers' FlowMatchEulerDiscreteScheduler: the grid ends at the *shifted* smallest
        # training sigma and is then shifted once more.
        warp = lambda s: self.shift * s / (1 + (self.shift - 1) * s)  # noqa: E731
        return warp(torch.linspace(1.0, float(warp(torch.tensor(1.0 / T))), steps, dtype=torch.float64))

    def grid(self, steps: int) -> Grid:
        return self.grid_from_sigmas(self.sigmas(steps))

    def grid_from_sigmas(
        self, sigmas: torch.Tensor, timesteps: torch.Tensor | None = None, final: float = 0.0
    ) -> Grid:
        """A grid from an explicit sigma sequence (e.g. the one a diffusers scheduler computed)."""
        s = torch.as_tensor(sigmas, dtype=torch.float64)
        s_next = torch.cat([s[1:], s.new_full((1,), final)])
        ts = s * self.num_train_timesteps if timesteps is None else torch.as_tensor(timesteps).double()
        return Grid(timesteps=ts, alpha=1 - s, sigma=s, alpha_next=1 - s_next, sigma_next=s_next)

    def coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = (torch.as_tensor(t, dtype=torch.float64) / self.num_train_timesteps).clamp(0, 1)
        return 1 - s, s


def _bcast(c: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """c shaped to broadcast over ``like``; a scalar stays a host 0-dim tensor, which kernels on
    any device take by value (no copy to the device and nothing to wait for)."""
    if not isinstance(c, torch.Tensor) or (c.dim() == 0 and c.device.type == "cpu"):
        return torch.as_tensor(c, dtype=like.dtype)
    c = c.to(like)
    return c.reshape(c.shape + (1,) * (like.dim() - c.dim()))


@dataclass(frozen=True)
class X0Limit:
    """diffusers' ``clip_sample`` / ``thresholding`` of the x0 estimate (DDIM, UniPC); eps is left as is.

    Dynamic thresholding (Imagen) clamps each batch row to its ``ratio`` quantile of |x0|, at
    least 1 and at most ``max_value``, and divides by it; clipping clamps to [-clip, clip].
    """

    clip: float | None = None
    threshold_ratio: float | None = None
    max_value: float = 1.0

    def __call__(self, x0: torch.Tensor) -> torch.Tensor:
        if self.threshold_ratio is not None:
            flat = x0.reshape(len(x0), -1)
            q = torch.quantile(flat.abs(), self.threshold_ratio, dim=1).clamp(1.0, self.max_value)[:, None]
            return (torch.maximum(torch.minimum(flat, q), -q) / q).reshape(x0.shape)
        return x0 if self.clip is None else x0.clamp(-self.clip, self.clip)


def to_x0_eps(
    out: torch.Tensor, x_t: torch.Tensor, alpha, sigma, prediction: str, limit: X0Limit | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Convert a raw model output to (x0, eps). alpha/sigma: scalars or one value per batch row."""
    a, s = _bcast(alpha, x_t), _bcast(sigma, x_t)
    if prediction == "v":  # VP only: v = alpha * eps - sigma * x0
        x0, eps = a * x_t - s * out, s * x_t + a * out
    elif prediction == "flow":  # v = eps - x0 with alpha = 1 - sigma
        x0, eps = x_t - s * out, x_t + a * out
    elif prediction == "eps":
        if alpha <= 0 if isinstance(alpha, (int, float)) else bool((a <= 0).any()):  # a float: no read
            raise ValueError("an eps prediction gives no x0 at alpha = 0 (zero terminal SNR)")
        x0, eps = (x_t - s * out) / a, out
    elif prediction == "x0":
        x0, eps = out, (x_t - a * out) / s.clamp_min(1e-8)
    else:
        raise ValueError(f"prediction {prediction!r} is not supported; use one of {', '.join(PREDICTIONS)}")
    return (x0 if limit is None else limit(x0)), eps


def from_x0_eps(x0: torch.Tensor, eps: torch.Tensor, alpha, sigma, prediction: str) -> torch.Tensor:
    """The inverse of :func:`to_x0_eps`: what a model of the given kind would output."""
    a, s = _bcast(alpha, x0), _bcast(sigma, x0)
    if prediction == "v":
        return a * eps - s * x0
    if prediction == "flow":
        return eps - x0
    if prediction == "eps":
        return eps
    if prediction == "x0":
        return x0
    raise ValueError(f"prediction {prediction!r} is not supported; use one of {', '.join(PREDICTIONS)}")
