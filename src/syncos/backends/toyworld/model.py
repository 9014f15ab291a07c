"""The exact denoiser of the toy world and the backend that presents it to the samplers.

For a prompt the data distribution is a mixture of isotropic Gaussians N(mu_bks, tau^2 I), one
per combination (b, k, s) of the background, colour and subject tracks the prompt allows
(:mod:`.world`). With x_t = alpha x0 + sigma eps and v = alpha^2 tau^2 + sigma^2:

    log p(b, k, s | x_t) = log w_bks + (alpha <x_t, mu_bks> - alpha^2 |mu_bks|^2 / 2) / v + const
    E[x0 | x_t] = mu_bar + alpha tau^2 / v (x_t - alpha mu_bar),   mu_bar = sum r_bks mu_bks
    E[eps | x_t] = sigma / v (x_t - alpha mu_bar)

The components are never enumerated: mu_bks = sum_j beta_b[j] region_j (1 - m_s) + col_k m_s, so
<x_t, mu_bks> and |mu_bks|^2 split into a (b, s) and a (k, s) table. Given s, background and
colour are independent, and the sums over s that touch masks are run-length gathers and
scatters (a mask is one horizontal run per row). Everything is float64.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from syncos.backends.base import CallDefaults, Clip, ModelSpec
from syncos.errors import UserError
from syncos.schedules import PREDICTIONS, FlowSchedule, VPSchedule, from_x0_eps
from syncos.solvers import DDIM

from . import world as W

CONTRAST = 1.0  # latent = CONTRAST * (pixel - 0.5): calibrated on posterior entropy (docs/toyworld.md)
PIXEL_STD = 0.02  # component standard deviation, in pixel units
# Standard deviation of a clean clip's pixels under the unconditional prior (measured over 64
# drawn clips: 0.2505; a test checks it). latent_std = contrast * PIXEL_SPREAD is the latent's
# own unit, in which SynCoS's step size is given (unit-variance VAE latents have 1).
PIXEL_SPREAD = 0.25


@dataclass(frozen=True)
class Tables:
    """A prompt's factor tensors for a clip of F frames (Kb/Kk/Ks: its background/colour/subject tracks)."""

    beta: torch.Tensor  # (Kb, C*F*J) background region colours, latent units, order (c, f, j)
    col: torch.Tensor  # (Kk, C*F) subject colours
    log_ws: torch.Tensor  # (Ks,) subject-track log weights (each shape x motion has its prior's mass)
    log_wb: torch.Tensor  # (Kb,) background-track log prior weights (scene x lighting; 0: uniform)
    log_wk: torch.Tensor  # (Kk,) colour-track log prior weights
    run_a: torch.Tensor  # (N,) every mask run of every track and frame: flat index of its start
    run_b: torch.Tensor  # (N,) ... of its stop, in a (F, H, 2W+1) row-prefix-sum array
    run_seg: torch.Tensor  # (N,) its (frame, track, region) slot in a (F, Ks, J) table
    quad_b: torch.Tensor  # (Kb, Ks) |background part of mu|^2
    quad_k: torch.Tensor  # (Kk, Ks) |subject part of mu|^2
    under: torch.Tensor  # (F, Ks, J) mask area of each track, frame and region


def _prefix(img: torch.Tensor) -> torch.Tensor:
    """Row prefix sums over a horizontally doubled image (B, F, H, W) -> (B, F*H*(2W+1))."""
    doubled = torch.cat([img, img], dim=-1).cumsum(-1)
    return torch.nn.functional.pad(doubled, (1, 0)).flatten(1)


def _under_masks(img: torch.Tensor, t: Tables, tracks: int, regions: int) -> torch.Tensor:
    """Sum of images (B, F, H, W) under every mask, split by region: (B, F, Ks, J)."""
    B, F = img.shape[:2]
    p = _prefix(img)
    out = p.new_zeros(B, F * tracks * regions)
    out.index_add_(1, t.run_seg, p[:, t.run_b] - p[:, t.run_a])
    return out.reshape(B, F, tracks, regions)


def _paint_masks(values: torch.Tensor, t: Tables, height: int, width: int) -> torch.Tensor:
    """sum_s mask_s * values[s, region]: values (B, F, Ks, J) -> images (B, F, H, W)."""
    B, F = values.shape[:2]
    vals = values.reshape(B, -1)[:, t.run_seg]
    diff = values.new_zeros(B, F * height * (2 * width + 1))
    diff.index_add_(1, t.run_a, vals)
    diff.index_add_(1, t.run_b, -vals)
    rows = diff.reshape(B, F, height, 2 * width + 1).cumsum(-1)[..., : 2 * width]
    return rows[..., :width] + rows[..., width:]


class PromptMixture:
    """The mixture a prompt selects; tables are built per clip length on first use and cached."""

    def __init__(self, world: W.World, prompt: str, prior: W.Prior = W.UNIFORM):
        self.world, self.prompt, self.prior = world, prompt, prior
        self.spec = W.parse_prompt(prompt)
        self.b_idx, self.k_idx, self.s_idx = world.select(self.spec)
        self._tables: dict[int, Tables] = {}
        self._frame_quads: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        """Number of mixture components."""
        return len(self.b_idx) * len(self.k_idx) * len(self.s_idx)

    def tables(self, frames: int) -> Tables:
        if frames not in self._tables:
            self._tables[frames] = self._build(frames)
        return self._tables[frames]

    def frame_quads(self, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """quad_b and quad_k split by frame, (F, Kb, Ks) and (F, Kk, Ks): for per-frame noise levels."""
        if frames not in self._frame_quads:
            t, J = self.tables(frames), self.world.region.shape[0]
            C = t.col.shape[1] // frames
            beta2 = t.beta.reshape(len(t.beta), C, frames, J) ** 2
            col2 = t.col.reshape(len(t.col), C, frames) ** 2
            area = torch.from_numpy(self.world.region.sum((1, 2)))
            quad_b = torch.einsum("bcfj,j->fb", beta2, area)[..., None] - torch.einsum(
                "bcfj,fsj->fbs", beta2, t.under
            )
            self._frame_quads[frames] = quad_b, torch.einsum("kcf,fs->fks", col2, t.under.sum(-1))
        return self._frame_quads[frames]

    def _build(self, F: int) -> Tables:
        w = self.world
        H, L = w.height, w.height * (2 * w.width + 1)
        J = w.region.shape[0]
        region_of_row = W.row_regions(H)
        bg = np.stack([w.backgrounds[i].colours(F) for i in self.b_idx])  # (Kb, F, J, 3)
        beta = w.to_latent(bg).transpose(0, 3, 1, 2)  # (Kb, C, F, J)
        col = w.to_latent(np.stack([w.colours[i].colours(F) for i in self.k_idx])).transpose(0, 2, 1)
        subjects = [w.subjects[i] for i in self.s_idx]
        Ks = len(subjects)
        runs = [  # (frame, track, row, start, stop)
            (f, s, row, a, b)
            for s, track in enumerate(subjects)
            for f, frame_runs in enumerate(track.runs(F))
            for row, a, b in frame_runs
        ]
        f, s, row, a, b = np.array(runs, dtype=np.int64).T
        seg = (f * Ks + s) * J + region_of_row[row]
        base = f * L + row * (2 * w.width + 1)
        under = np.bincount(seg, weights=b - a, minlength=F * Ks * J).reshape(F, Ks, J)
        area = w.region.sum((1, 2))  # (J,)
        beta2, col2 = beta**2, col**2
        quad_b = np.einsum("bcfj,j->b", beta2, area)[:, None] - np.einsum("bcfj,fsj->bs", beta2, under)
        quad_k = np.einsum("kcf,fs->ks", col2, under.sum(-1))
        counts: dict[tuple[str, str], int] = {}
        for track in subjects:
            counts[track.shape, track.motion] = counts.get((track.shape, track.motion), 0) + 1
        pw = self.prior.weight
        log_ws = [
            np.log(pw("shape", t.shape) * pw("motion", t.motion) / counts[t.shape, t.motion])
            for t in subjects
        ]
        backgrounds = [w.backgrounds[i] for i in self.b_idx]
        log_wb = [np.log(pw("scene", t.scene) * pw("lighting", t.lighting)) for t in backgrounds]
        log_wk = [np.log(pw("colour", w.colours[i].colour)) for i in self.k_idx]
        as_t = lambda arr: torch.from_numpy(np.ascontiguousarray(arr))  # noqa: E731
        return Tables(
            beta=as_t(beta).reshape(len(beta), -1),
            col=as_t(col).reshape(len(col), -1),
            log_ws=torch.tensor(log_ws, dtype=torch.float64),
            log_wb=torch.tensor(log_wb, dtype=torch.float64),
            log_wk=torch.tensor(log_wk, dtype=torch.float64),
            run_a=as_t(base + a),
            run_b=as_t(base + b),
            run_seg=as_t(seg),
            quad_b=as_t(quad_b),
            quad_k=as_t(quad_k),
            under=as_t(under),
        )


@dataclass(frozen=True)
class Posterior:
    """Exact posterior of a batch of chunks: means and the factor marginals over each prompt's tracks."""

    x0: torch.Tensor  # (n, C, F, H, W), float64
    eps: torch.Tensor
    backgrounds: list[torch.Tensor]  # per row: (Kb_row,) probabilities over mixture.b_idx
    colours: list[torch.Tensor]  # ... over mixture.k_idx
    subjects: list[torch.Tensor]  # ... over mixture.s_idx
    mixtures: list[PromptMixture]


def posterior_mean(
    x: torch.Tensor,
    alpha: torch.Tensor,
    sigma: torch.Tensor,
    tau: float,
    mixture: PromptMixture,
    region: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """E[x0|x_t], E[eps|x_t] and the marginals (r_b, r_k, r_s) for chunks x (n, C, F, H, W) of one prompt.

    alpha, sigma: one level per chunk (n,), or one per frame (n, F). Per frame the likelihood is
    a product of per-frame Gaussians, so each frame's terms are weighted by its own alpha_f / v_f.
    """
    n, C, F, H, Wd = x.shape
    J = region.shape[0]
    t = mixture.tables(F)
    Ks = len(t.log_ws)
    if alpha.dim() == 1:
        a, s = alpha.reshape(n, 1, 1), sigma.reshape(n, 1, 1)
        v = a**2 * tau**2 + s**2
        dot_b, dot_k = _mean_dots(x, t, region)
        log_b = (a * dot_b - a**2 / 2 * t.quad_b) / v + t.log_wb[:, None]
        log_k = (a * dot_k - a**2 / 2 * t.quad_k) / v + t.log_wk[:, None]
        a5, s5, v5 = (c.reshape(n, 1, 1, 1, 1) for c in (alpha, sigma, v.reshape(n)))
    else:  # per frame: sum_f (alpha_f <x_f, mu_f> - alpha_f^2 |mu_f|^2 / 2) / v_f
        v = alpha**2 * tau**2 + sigma**2  # (n, F)
        a5, s5, v5 = (c.reshape(n, 1, F, 1, 1) for c in (alpha, sigma, v))
        dot_b, dot_k = _mean_dots(x * a5 / v5, t, region)
        quad_b, quad_k = mixture.frame_quads(F)
        w = alpha**2 / (2 * v)
        log_b = dot_b - torch.einsum("nf,fbs->nbs", w, quad_b) + t.log_wb[:, None]
        log_k = dot_k - torch.einsum("nf,fks->nks", w, quad_k) + t.log_wk[:, None]
    log_s = t.log_ws + log_b.logsumexp(1) + log_k.logsumexp(1)  # (n, Ks)
    r_s = log_s.softmax(-1)
    r_b_s, r_k_s = log_b.softmax(1), log_k.softmax(1)  # background / colour given the subject track
    beta_bar = (r_b_s.transpose(1, 2) @ t.beta).reshape(n, Ks, C, F, J)
    col_bar = (r_k_s.transpose(1, 2) @ t.col).reshape(n, Ks, C, F, 1)
    back = torch.einsum("ns,nscfj->ncfj", r_s, beta_bar)
    # mu_bar = sum_j region_j back_j - sum_s m_s r_s (beta_bar_s[region] - col_bar_s)
    z = (r_s[:, :, None, None, None] * (beta_bar - col_bar)).permute(0, 2, 3, 1, 4)  # (n, C, F, Ks, J)
    under = _paint_masks(z.reshape(n * C, F, Ks, J), t, H, Wd).reshape(n, C, F, H, Wd)
    mu = torch.einsum("jh,ncfj->ncfh", region[:, :, 0], back)[..., None] - under
    resid = x - a5 * mu
    r_b = torch.einsum("ns,nbs->nb", r_s, r_b_s)
    r_k = torch.einsum("ns,nks->nk", r_s, r_k_s)
    return mu + a5 * tau**2 / v5 * resid, s5 / v5 * resid, r_b, r_k, r_s


def _mean_dots(x: torch.Tensor, t: Tables, region: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """<x, mu_bks> split as a (n, Kb, Ks) background and a (n, Kk, Ks) subject-colour table."""
    n, C, F, H, Wd = x.shape
    J, Ks = region.shape[0], len(t.log_ws)
    # <x_t, mu_bks> = beta_b . (X - Y_s) + col_k . sum_j Y_s
    # (X: x summed per region; Y_s: x summed per region under mask s)
    X = torch.einsum("ncfh,jh->ncfj", x.sum(-1), region[:, :, 0]).reshape(n, -1)
    Y = _under_masks(x.reshape(n * C, F, H, Wd), t, Ks, J).reshape(n, C, F, Ks, J)
    Ys = Y.permute(0, 1, 2, 4, 3).reshape(n, C * F * J, Ks)
    dot_b = (X @ t.beta.T)[:, :, None] - t.beta @ Ys
    return dot_b, t.col @ Y.sum(-1).reshape(n, C * F, Ks)


SCHEDULES = ("cogvideox", "sd", "flow")
LAYOUTS = ("cfhw", "fchw")
OPTIONS = (
    "prediction",
    "layout",
    "schedule",
    "chunk_length",
    "default_stride",
    "display_scale",
    "contrast",
    "pixel_std",
    "scale",
    "shift",
    "prior",
)


class ToyWorldBackend:
    """The exact toy text-to-video model (see the module docstring and docs/toyworld.md)."""

    name = "toyworld"
    device = torch.device("cpu")
    per_frame_timesteps = True  # forward() also takes t of shape (n, F): exact diagonal denoising
    fps = float(W.FPS)
    threads = 1  # its operations are too small to gain from intra-op threads (syncos.threads)

    def __init__(
        self,
        prediction: str | None = None,
        layout: str = "cfhw",
        schedule: str | None = None,
        chunk_length: int = W.CHUNK_LENGTH,
        default_stride: int = W.DEFAULT_STRIDE,
        display_scale: int = 8,
        contrast: float = CONTRAST,
        pixel_std: float = PIXEL_STD,
        scale: int = 1,
        shift: float = 1.0,
        prior: W.Prior | dict | None = None,
    ):
        schedule = schedule or ("flow" if prediction == "flow" else "cogvideox")
        prediction = prediction or ("flow" if schedule == "flow" else "v")
        _choice("prediction", prediction, PREDICTIONS)
        _choice("schedule", schedule, SCHEDULES)
        _choice("layout", layout, LAYOUTS)
        if (prediction == "flow") != (schedule == "flow") and prediction in ("flow", "v"):
            raise UserError(
                f"model_options.prediction {prediction!r} needs schedule "
                f"{'flow' if prediction == 'flow' else 'cogvideox or sd'}, got {schedule!r}"
            )
        for key, value in (
            ("chunk_length", chunk_length),
            ("default_stride", default_stride),
            ("display_scale", display_scale),
            ("scale", scale),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(f"model_options.{key} must be a positive integer, got {value!r}")
        if shift != 1.0 and schedule != "flow":
            raise UserError(f"model_options.shift applies to schedule 'flow' only, got schedule {schedule!r}")
        for key, value in (("contrast", contrast), ("pixel_std", pixel_std), ("shift", shift)):
            if not isinstance(value, (int, float)) or value <= 0:
                raise UserError(f"model_options.{key} must be a positive number, got {value!r}")
        self.prediction = prediction
        self.schedule = {
            "cogvideox": VPSchedule.cogvideox,
            "sd": VPSchedule.stable_diffusion,
            "flow": lambda: FlowSchedule(shift=float(shift)),  # shift: as Wan's (3-5) and HunyuanVideo's
        }[schedule]()
        self.layout = layout
        self.frame_axis = 1 if layout == "cfhw" else 0
        self.chunk_length, self.default_stride = chunk_length, default_stride
        self.display_scale = display_scale
        # scale s: the same world rendered at s x the resolution (each pixel an s x s block with
        # its own noise), so frame-wide attributes are decided at a lower SNR, as at a higher
        # resolution of a real model. The posterior stays exact: block means are sufficient.
        self.scale = scale
        self.world = _world(float(contrast))
        self.prior = W.Prior.parse(prior)  # weights of the factor values a prompt leaves open
        self.tau = float(contrast * pixel_std)
        self.latent_std = float(contrast) * PIXEL_SPREAD
        self._region = torch.from_numpy(self.world.region)

    @classmethod
    def from_settings(cls, **settings: Any) -> ToyWorldBackend:
        """Build from a scenario's model keys; native values or None only (errors name what is allowed)."""
        options = settings.pop("model_options", None) or {}
        if not isinstance(options, dict):
            raise UserError(f"model_options must be a mapping, got {type(options).__name__}")
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise UserError(f"unknown toyworld model_options {unknown}; allowed: {', '.join(OPTIONS)}")
        scale = options.get("display_scale", 8)
        allowed = {
            "height": (W.HEIGHT, W.HEIGHT * scale),
            "width": (W.WIDTH, W.WIDTH * scale),
            "fps": (W.FPS,),
            "dtype": ("float32",),
            "device": ("cpu",),
        }
        for key, value in settings.items():
            if value is None:
                continue
            if key not in allowed:
                raise UserError(f"toyworld does not take the setting {key!r} (allowed: {', '.join(allowed)})")
            if value not in allowed[key] and str(value) not in map(str, allowed[key]):
                options_ = " or ".join(map(str, allowed[key]))
                raise UserError(f"toyworld {key} must be {options_} (or left out), got {value!r}")
        return cls(**options)

    @property
    def height(self) -> int:
        """Decoded frame height in pixels (what memory checks and writers see)."""
        return self.world.height * self.display_scale

    @property
    def width(self) -> int:
        return self.world.width * self.display_scale

    # ------------------------------------------------------------------ Backend protocol

    def latent_shape(self, latent_frames: int) -> tuple[int, ...]:
        H, Wd = self.world.height * self.scale, self.world.width * self.scale
        return (3, latent_frames, H, Wd) if self.layout == "cfhw" else (latent_frames, 3, H, Wd)

    def latent_frames(self, video_frames: int) -> int:
        return video_frames

    def video_frames(self, latent_frames: int) -> int:
        return latent_frames

    def encode(self, prompts: Sequence[str], negative: bool | Sequence[bool] = False) -> list[PromptMixture]:
        """One cached mixture per distinct prompt; raises UserError for a prompt with no known word.
        A negative prompt is a prompt like any other here."""
        return [_mixture(self.world.contrast, p, self.prior) for p in prompts]

    def ignored_words(self, prompt: str) -> list[str]:
        """Words of ``prompt`` this model does not read (``generate`` and ``plan`` name them)."""
        return W.ignored_words(prompt)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: list[PromptMixture]) -> torch.Tensor:
        """Raw output at one timestep per chunk, t (n,), or one per frame, t (n, F)."""
        post = self.posterior(x, t, cond)
        alpha, sigma = self._coefficients(t, len(x))
        if alpha.dim() == 2:  # shaped to broadcast over the (n, C, F, H, W) posterior
            alpha, sigma = (c[:, None, :, None, None] for c in (alpha, sigma))
        out = from_x0_eps(post.x0, post.eps, alpha, sigma, self.prediction)
        return self._from_cfhw(out).to(x.dtype)

    def decode(self, latent: torch.Tensor) -> Iterator[np.ndarray]:
        """uint8 frames (H*k, W*k, 3), nearest-neighbour upscaled by display_scale k."""
        k = max(1, self.display_scale // self.scale)
        for img in self.preview(latent):
            yield img.repeat(k, axis=0).repeat(k, axis=1)

    def preview(self, latent: torch.Tensor) -> np.ndarray:
        """uint8 frames (T, H, W, 3) at the world's own size: the exact decode is cheap enough."""
        frames = latent.detach().double().cpu().movedim(self.frame_axis, 0).movedim(1, -1).numpy()
        return np.stack(
            [np.clip(self.world.to_pixels(f) * 255.0 + 0.5, 0, 255).astype(np.uint8) for f in frames]
        )

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(
            name=self.name,
            prediction=self.prediction,
            schedule=self.schedule,
            solver=DDIM,
            x0_limit=None,
            latent_std=self.latent_std,
            per_frame_timesteps=self.per_frame_timesteps,
            guidance=None,
            defaults=CallDefaults(steps=None, guidance_scale=None, negative_prompt=None),  # the sampler's
            clip=Clip(self.chunk_length, self.default_stride, self.frame_axis, 1, causal=False),
            fps=self.fps,
            height=self.height,
            width=self.width,
            threads=self.threads,
            evaluate=self.evaluate,
            preview=self.preview,
            ignored_words=self.ignored_words,
            identity={"family": "toyworld", "pipeline": "", "name_or_path": "toyworld", "dtype": "n/a"},
        )

    def evaluate(self, frames: np.ndarray, global_prompt: str, events: list[tuple[int, int, str]]):
        """The toyworld metrics of a decoded video (:func:`.metrics.evaluate`)."""
        from .metrics import evaluate

        return evaluate(frames, global_prompt, events)

    # ------------------------------------------------------------------ exact posterior

    def posterior(self, x: torch.Tensor, t: torch.Tensor, cond: list[PromptMixture]) -> Posterior:
        """E[x0|x_t], E[eps|x_t] and factor marginals; rows sharing a prompt are evaluated together."""
        n = len(x)
        if len(cond) != n:
            raise ValueError(f"{len(cond)} conditioning rows for {n} chunks")
        xc = self._to_cfhw(x).double()
        alpha, sigma = self._coefficients(t, n)
        if alpha.dim() == 2 and alpha.shape[1] != xc.shape[2]:
            raise ValueError(f"per-frame timesteps {tuple(alpha.shape)} for {xc.shape[2]} frames")
        if self.scale > 1:
            return self._posterior_scaled(xc, alpha, sigma, cond)
        return self._posterior_base(xc, alpha, sigma, self.tau, cond)

    def _posterior_base(self, xc: torch.Tensor, alpha, sigma, tau: float, cond) -> Posterior:
        n = len(xc)
        x0, eps = torch.empty_like(xc), torch.empty_like(xc)
        marg: list[list[torch.Tensor]] = [[torch.empty(0)] * n for _ in range(3)]
        groups: dict[int, list[int]] = {}
        for i, m in enumerate(cond):
            groups.setdefault(id(m), []).append(i)
        for rows in groups.values():
            r = torch.tensor(rows)
            out = posterior_mean(xc[r], alpha[r], sigma[r], tau, cond[rows[0]], self._region)
            x0[r], eps[r] = out[0], out[1]
            for j, row in enumerate(rows):
                for f in range(3):
                    marg[f][row] = out[2 + f][j]
        return Posterior(x0, eps, *marg, mixtures=list(cond))

    def _posterior_scaled(self, xc: torch.Tensor, alpha, sigma, cond) -> Posterior:
        """The exact posterior at scale s from the base world's, evaluated on s x s block means.

        A block mean sees noise sigma / s and component noise tau / s; with c = alpha tau^2 / v
        (v = alpha^2 tau^2 + sigma^2 per fine pixel) the base estimate is mu + c (ybar - alpha mu),
        which gives the mixture mean mu, and then each fine pixel's own posterior.
        """
        k = self.scale
        pooled = torch.nn.functional.avg_pool3d(xc, (1, k, k))
        base = self._posterior_base(pooled, alpha, sigma / k, self.tau / k, cond)
        shape = (len(xc), 1, -1, 1, 1)  # one value per chunk, or per frame
        a, s = alpha.reshape(shape), sigma.reshape(shape)
        v = a**2 * self.tau**2 + s**2
        c = a * self.tau**2 / v
        mu = (base.x0 - c * pooled) / (1 - a * c)
        up = mu.repeat_interleave(k, -2).repeat_interleave(k, -1)
        resid = xc - a * up
        return Posterior(
            up + c * resid, s / v * resid, base.backgrounds, base.colours, base.subjects, base.mixtures
        )

    def _coefficients(self, t: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha, sigma) of shape (n,), or (n, F) for per-frame timesteps t (n, F)."""
        t = torch.as_tensor(t, dtype=torch.float64)
        t = t if t.dim() == 2 else t.reshape(-1).expand(n)
        alpha, sigma = self.schedule.coefficients(t)
        return alpha.double(), sigma.double()

    def _to_cfhw(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.layout == "cfhw" else x.transpose(1, 2)

    def _from_cfhw(self, x: torch.Tensor) -> torch.Tensor:
        return self._to_cfhw(x)  # the swap is its own inverse

    def mixture(self, prompt: str) -> PromptMixture:
        return self.encode([prompt])[0]


@lru_cache(maxsize=8)
def _world(contrast: float) -> W.World:
    return W.World(contrast)


@lru_cache(maxsize=256)
def _mixture(contrast: float, prompt: str, prior: W.Prior = W.UNIFORM) -> PromptMixture:
    """Mixtures (and their tables) are shared by every backend with the same world and prior."""
    return PromptMixture(_world(contrast), prompt, prior)


def _choice(key: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise UserError(f"model_options.{key} must be one of {', '.join(allowed)}, got {value!r}")


def sample_component(mixture: PromptMixture, generator: np.random.Generator) -> tuple[int, int, int]:
    """Draw one component (background, colour, subject track indices into the world) by its weight."""
    t = mixture.tables(1)  # the weights do not depend on the clip length

    def pick(logw: torch.Tensor) -> int:  # a uniform factor draws as before priors existed (same seeds)
        if bool((logw == logw[0]).all()):
            return int(generator.integers(len(logw)))
        return int(generator.choice(len(logw), p=logw.softmax(0).numpy()))

    s = int(generator.choice(len(t.log_ws), p=t.log_ws.softmax(0).numpy()))
    b, k = pick(t.log_wb), pick(t.log_wk)
    return int(mixture.b_idx[b]), int(mixture.k_idx[k]), int(mixture.s_idx[s])


def sample_clean(mixture: PromptMixture, frames: int, generator: np.random.Generator) -> np.ndarray:
    """Draw x0 (C, F, H, W) from a prompt's mixture: a component by its weight, plus its noise."""
    w = mixture.world
    mean = w.to_latent(w.render(*sample_component(mixture, generator), frames))
    return mean + generator.normal(size=mean.shape) * w.contrast * PIXEL_STD


def attribute_entropy(
    backend: ToyWorldBackend, timesteps: Sequence[float], samples: int = 16, seed: int = 0, prompt: str = ""
) -> dict[str, np.ndarray]:
    """Posterior entropy over the subject's colour name and the scene, as a function of t.

    Normalised to [0, 1] (1: undecided, 0: decided) and averaged over clips x0 drawn from the
    prompt's mixture, noised to x_t with the backend's schedule. This is the calibration
    criterion (docs/toyworld.md): it involves no sampler.
    """
    g = np.random.default_rng(seed)
    mix = backend.mixture(prompt)
    F = backend.chunk_length
    x0 = torch.from_numpy(np.stack([sample_clean(mix, F, g) for _ in range(samples)]))
    names = {
        "colour": ([backend.world.colours[i].colour for i in mix.k_idx], lambda p: p.colours, W.COLOURS),
        "scene": ([backend.world.backgrounds[i].scene for i in mix.b_idx], lambda p: p.backgrounds, W.SCENES),
    }
    out = {key: np.zeros(len(timesteps)) for key in names}
    for i, t in enumerate(timesteps):
        tt = torch.full((samples,), float(t), dtype=torch.float64)
        alpha, sigma = backend.schedule.coefficients(tt)
        noise = torch.from_numpy(g.normal(size=x0.shape))
        xt = alpha.reshape(-1, 1, 1, 1, 1) * x0 + sigma.reshape(-1, 1, 1, 1, 1) * noise
        post = backend.posterior(backend._from_cfhw(xt), tt, backend.encode([prompt] * samples))
        for key, (labels, pick, everything) in names.items():
            onehot = torch.tensor([[lab == c for c in everything] for lab in labels], dtype=torch.float64)
            q = torch.stack(pick(post)) @ onehot  # (samples, classes)
            h = -(q * q.clamp_min(1e-300).log()).sum(1) / np.log(len(everything))
            out[key][i] = float(h.mean())
    return out
