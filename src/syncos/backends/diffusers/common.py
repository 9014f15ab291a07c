"""What every diffusers adapter shares: options, prompt caching, shapes, schedules, decoding.

A family module only says how its network is called, how its latents are laid out and how its
VAE decodes one temporal tile; everything else lives here once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from syncos.backends.base import CallDefaults, Clip, GuidanceSchedule, ModelSpec, negative_flags
from syncos.backends.diffusers.decode import tiled_decode
from syncos.errors import UserError
from syncos.schedules import FlowSchedule, Grid, VPSchedule, X0Limit, _check_steps
from syncos.solvers import DDIM, EULER_ANCESTRAL, Solver

PREDICTION_TYPES = {"epsilon": "eps", "v_prediction": "v", "sample": "x0", "flow_prediction": "flow"}

# Options every family accepts in ``model_options``.
COMMON_OPTIONS: dict[str, str] = {
    "chunk_length": "native clip in latent frames (default: the model's)",
    "stride": "default stride in latent frames",
    "decode_tile": "latent frames decoded at once (default: chunk_length)",
    "decode_overlap": "latent frames shared by neighbouring decode tiles",
    "solver": "'auto' (the pipeline scheduler's step rule; default) or 'ddim' (DDIM/Euler steps instead)",
}

# Scheduler classes whose step rule syncos reproduces, and the rule.
DDIM_SCHEDULERS = ("DDIMScheduler", "CogVideoXDDIMScheduler", "FlowMatchEulerDiscreteScheduler")
UNIPC, DPM = "UniPCMultistepScheduler", "DPMSolverMultistepScheduler"
EULER_A = "EulerAncestralDiscreteScheduler"


def scheduler_solver(scheduler: Any, choice: str | None) -> tuple[Solver, X0Limit | None]:
    """The stock pipeline's step rule and x0 clipping, read from its scheduler; refuses what differs.

    ``choice='ddim'`` takes DDIM (Euler for flow) steps on the scheduler's grid whatever the
    scheduler: the user's explicit choice, recorded in run.json, not equal to a multistep stock run.
    """
    name, cfg = type(scheduler).__name__, dict(scheduler.config)
    if choice not in (None, "auto", "ddim"):
        raise UserError(f"model_options.solver must be 'auto' or 'ddim', got {choice!r}")
    limit = None
    if cfg.get("thresholding"):
        limit = X0Limit(
            threshold_ratio=float(cfg.get("dynamic_thresholding_ratio", 0.995)),
            max_value=float(cfg.get("sample_max_value", 1.0)),
        )
    elif cfg.get("clip_sample") and name == "DDIMScheduler":  # CogVideoX's DDIM ignores clip_sample
        limit = X0Limit(clip=float(cfg.get("clip_sample_range", 1.0)))
    if choice == "ddim":
        return DDIM, limit
    differs = None
    if name == UNIPC:
        if not cfg.get("predict_x0", True) or cfg.get("solver_p") is not None:
            differs = "its noise-prediction form (predict_x0=False) or solver_p"
        else:
            solver = Solver(
                "unipc",
                order=int(cfg.get("solver_order", 2)),
                variant=cfg.get("solver_type", "bh2"),
                lower_order_final=bool(cfg.get("lower_order_final", True)),
                disable_corrector=tuple(cfg.get("disable_corrector") or ()),
            )
            return solver, limit
    elif name == DPM:
        if cfg.get("algorithm_type") != "dpmsolver++" or int(cfg.get("solver_order", 2)) > 2:
            differs = "an algorithm other than dpmsolver++ of order 1 or 2"
        elif cfg.get("variance_type") is not None:
            differs = "a learned variance"
        else:
            solver = Solver(
                "dpmsolver++",
                order=int(cfg.get("solver_order", 2)),
                variant=cfg.get("solver_type", "midpoint"),
                lower_order_final=bool(cfg.get("lower_order_final", True)),
                euler_at_final=bool(cfg.get("euler_at_final", False)),
            )
            return solver, limit
    elif name == EULER_A:
        return EULER_ANCESTRAL, limit
    elif name not in DDIM_SCHEDULERS:
        differs = "its step rule"
    elif cfg.get("stochastic_sampling"):
        differs = "stochastic sampling"
    elif name == "CogVideoXDDIMScheduler" and cfg.get("thresholding"):
        differs = "thresholding, which CogVideoX's DDIM ignores"
    if differs:
        raise UserError(
            f"the pipeline's {name} is not reproduced ({differs} differs from syncos's DDIM/Euler and "
            "UniPC / DPM-Solver++ / ancestral Euler steps); for results equal to stock load it with "
            "DDIMScheduler, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler, "
            "DPMSolverMultistepScheduler or EulerAncestralDiscreteScheduler, or set "
            "model_options.solver: ddim to take DDIM steps on its noise schedule"
        )
    return DDIM, limit


def vp_schedule_from_config(config: Any) -> VPSchedule:
    """The scheduler's alpha-bar table and DDIM spacing, rebuilt statelessly from its config."""
    cfg = dict(config)
    keys = (
        "beta_start",
        "beta_end",
        "beta_schedule",
        "num_train_timesteps",
        "snr_shift_scale",
        "rescale_betas_zero_snr",
    )
    kwargs = {k: cfg[k] for k in keys if cfg.get(k) is not None}
    if cfg.get("trained_betas") is not None:
        raise UserError("schedulers with explicit trained_betas are not supported; use a beta_schedule")
    spacing = cfg.get("timestep_spacing", "leading")
    if spacing not in ("trailing", "leading", "linspace"):
        spacing = "leading"
    try:
        sched = VPSchedule.from_betas(**kwargs, spacing=spacing, steps_offset=int(cfg.get("steps_offset", 0)))
    except ValueError as e:
        raise UserError(f"scheduler: {e}") from None
    if not cfg.get("set_alpha_to_one", True):
        sched = VPSchedule(
            alphas_cumprod=sched.alphas_cumprod,
            spacing=sched.spacing,
            steps_offset=sched.steps_offset,
            final_alpha_cumprod=float(sched.alphas_cumprod[0]),
        )
    return sched


@dataclass(frozen=True)
class PipelineVPSchedule(VPSchedule):
    """A VP schedule on a scheduler's own grid (UniPC, DPM-Solver, ancestral Euler): its timesteps, sigmas.

    DDIM steps from t to t - T/steps; these step to their next grid timestep, with their own
    spacing and terminal sigma, so the sampling points are read from a private copy of the scheduler.
    """

    scheduler: Any = field(default=None, compare=False, repr=False)

    def grid(self, steps: int) -> Grid:
        _check_steps(steps, self.num_train_timesteps)
        sched = copy.deepcopy(self.scheduler)
        sched.set_timesteps(steps, device="cpu")
        ve = torch.as_tensor(sched.sigmas)[: steps + 1].double()  # sqrt((1 - abar) / abar)
        alpha = 1 / (1 + ve**2).sqrt()
        sigma = ve * alpha
        ts = torch.as_tensor(sched.timesteps)[:steps].double()
        return Grid(ts, alpha[:steps], sigma[:steps], alpha[1 : steps + 1], sigma[1 : steps + 1])


@dataclass(frozen=True)
class PipelineFlowSchedule(FlowSchedule):
    """A flow schedule whose grid is the pipeline scheduler's own sigma sequence.

    Wan's UniPC (flow sigmas) and LTX's dynamic shift with terminal stretch each compute their
    grid differently; asking a private copy of the scheduler for its sigmas (never its ``step``)
    keeps the sampling points exactly the model's while the update stays our stateless one.
    """

    scheduler: Any = field(default=None, compare=False, repr=False)
    timesteps_kwargs: Callable[[int], dict] | None = field(default=None, compare=False, repr=False)

    def _from_scheduler(self, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        _check_steps(steps, self.num_train_timesteps)
        sched = copy.deepcopy(self.scheduler)
        kw = self.timesteps_kwargs(steps) if self.timesteps_kwargs else {}
        if "sigmas" in kw:
            sched.set_timesteps(device="cpu", **kw)
        else:
            sched.set_timesteps(steps, device="cpu", **kw)
        sigmas = torch.as_tensor(sched.sigmas)[: steps + 1].double().cpu()  # with the scheduler's last point
        ts = torch.as_tensor(sched.timesteps)[:steps].double().cpu()
        return sigmas, ts

    def sigmas(self, steps: int) -> torch.Tensor:
        return super().sigmas(steps) if self.scheduler is None else self._from_scheduler(steps)[0][:steps]

    def grid(self, steps: int) -> Grid:
        if self.scheduler is None:
            return super().grid(steps)
        sigmas, ts = self._from_scheduler(steps)
        return self.grid_from_sigmas(
            sigmas[:steps], ts, final=float(sigmas[steps]) if len(sigmas) > steps else 0.0
        )


def flow_schedule(scheduler: Any, timesteps_kwargs: Callable[[int], dict] | None = None) -> FlowSchedule:
    """Flow schedule of a pipeline scheduler; the plain shift formula if it has no flow sigmas."""
    cfg = dict(scheduler.config)
    shift = float(cfg.get("flow_shift") or cfg.get("shift") or 1.0)
    T = int(cfg.get("num_train_timesteps", 1000))
    is_flow = (
        "FlowMatch" in type(scheduler).__name__
        or cfg.get("use_flow_sigmas")
        or (cfg.get("prediction_type") == "flow_prediction")
    )
    if not is_flow:
        return FlowSchedule(shift=shift, num_train_timesteps=T)
    return PipelineFlowSchedule(
        shift=shift, num_train_timesteps=T, scheduler=scheduler, timesteps_kwargs=timesteps_kwargs
    )


def check_noise_to_clean(schedule: Any, scheduler: Any, family: str, steps: int = 8) -> None:
    """Refuse a folder whose schedule, as the adapter reads it, runs from clean to noise.

    Every sampler walks the grid from noise to clean (the noise-to-signal ratio sigma / alpha
    falls at every step); a scheduler setting that flips it (e.g. ``invert_sigmas`` on a family
    whose network does not take inverted time) would otherwise run, synchronise nowhere, and blame
    the step count.
    """
    g = schedule.grid(steps)
    if bool((g.sigma_next * g.alpha < g.sigma * g.alpha_next).all()):  # the grid lives on the host
        return
    cfg = dict(scheduler.config)
    setting = f" with invert_sigmas={cfg['invert_sigmas']}" if "invert_sigmas" in cfg else ""
    raise UserError(
        f"{family}: the pipeline's {type(scheduler).__name__}{setting} gives a grid from clean to noise "
        f"(noise level {float(g.sigma[0]):.3g} at the first of {steps} steps, {float(g.sigma_next[-1]):.3g} "
        f"after the last); syncos samples from noise to clean: load the scheduler the {family} family ships"
    )


def check_options(family: str, options: dict | None, allowed: dict[str, str]) -> dict:
    options = dict(options or {})
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        listing = "; ".join(f"{k}: {v}" for k, v in sorted(allowed.items()))
        raise UserError(f"model_options {', '.join(unknown)} not known for {family}; allowed: {listing}")
    for k in ("chunk_length", "stride", "decode_tile", "max_sequence_length"):
        v = options.get(k)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise UserError(f"model_options.{k} must be a positive integer, got {v!r}")
    v = options.get("decode_overlap")
    if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
        raise UserError(f"model_options.decode_overlap must be an integer >= 0, got {v!r}")
    return options


TINY_PARAMETERS = 10_000_000  # below this a denoising network runs fastest on one CPU thread


class DiffusersBackend:
    """Base adapter: a diffusers pipeline seen through the :class:`syncos.backends.base.Backend` protocol."""

    family: ClassVar[str] = ""
    options_help: ClassVar[dict[str, str]] = {}
    causal_vae: ClassVar[bool] = True
    frames_as_batch: ClassVar[bool] = False  # an image VAE decodes a tile's frames as one batch
    # Every family's VAE latents are normalised to unit variance (scaling_factor, latents_mean/std):
    # the unit of SynCoS's step size (sampler.lr_units: latent).
    latent_std: ClassVar[float] = 1.0
    default_fps: ClassVar[float] = 8.0
    native_frames: ClassVar[int] = (
        0  # video frames of the native clip (model_options.native_frames overrides)
    )
    per_frame_timesteps: bool = False  # a family whose network takes one timestep per frame sets it
    # frames -> scores, where a pipeline's frames live in a world with built-in metrics (ModelSpec.evaluate;
    # toyworld-learned sets toyworld's); None for a real model
    metrics: Callable[..., dict[str, float]] | None = None
    # the stock __call__ argument that is true classifier-free guidance (HunyuanVideo: true_cfg_scale)
    cfg_argument: ClassVar[str] = "guidance_scale"

    # set by subclasses in __init__
    prediction: str
    schedule: Any
    frame_axis: int
    temporal_factor: int
    spatial_factor: int
    latent_channels: int

    def __init__(
        self,
        pipe: Any,
        *,
        height: int | None,
        width: int | None,
        fps: float | None,
        model_options: dict | None,
    ):
        self.pipe = pipe
        self.name = self.family
        self.options = check_options(self.family, model_options, {**COMMON_OPTIONS, **self.options_help})
        self._cache: dict[str, Any] = {}
        self._rgb: tuple[torch.Tensor, torch.Tensor] | None = None  # preview(): the fitted map
        self._stats: tuple[torch.Tensor, torch.Tensor] | None = None  # _vae_input(): mean, std on the device
        self._setup()
        self.solver, self.x0_limit = scheduler_solver(self.pipe.scheduler, self.options.get("solver"))
        if type(self.pipe.scheduler).__name__ in (UNIPC, DPM, EULER_A) and type(self.schedule) is VPSchedule:
            s = self.schedule
            self.schedule = PipelineVPSchedule(
                s.alphas_cumprod,
                s.spacing,
                s.steps_offset,
                s.final_alpha_cumprod,
                scheduler=self.pipe.scheduler,
            )
        self.fps = float(fps) if fps is not None else float(self.default_fps)
        if self.fps <= 0:
            raise UserError(f"fps must be > 0, got {fps!r}")
        dh, dw = self.default_size()
        self.height = int(height) if height is not None else dh
        self.width = int(width) if width is not None else dw
        m = self.size_multiple()
        if self.height <= 0 or self.width <= 0 or self.height % m or self.width % m:
            raise UserError(
                f"{self.family} cannot take {self.height}x{self.width}: height and width must be positive "
                f"multiples of {m} (VAE factor {self.spatial_factor} x patch size), e.g. "
                f"{max(m, self.height // m * m)}x{max(m, self.width // m * m)}"
            )
        self.latent_hw = (self.height // self.spatial_factor, self.width // self.spatial_factor)
        native = self.native_chunk_length()
        self.chunk_length = int(self.options.get("chunk_length") or native)
        self.default_stride = int(
            self.options.get("stride")
            or max(1, min(self.chunk_length, self.native_stride(self.chunk_length)))
        )
        self._finish()
        check_noise_to_clean(self.schedule, self.pipe.scheduler, self.family)

    # ---- hooks a family fills in ------------------------------------------------------------
    def _setup(self) -> None:
        """Read the pipeline's factors, prediction type and schedule."""
        raise NotImplementedError

    def _finish(self) -> None:
        """What needs the chunk length and size (LTX's shift depends on the token count)."""

    def default_size(self) -> tuple[int, int]:
        raise NotImplementedError

    def size_multiple(self) -> int:
        raise NotImplementedError

    def native_chunk_length(self) -> int:
        """The native clip in latent frames: ``native_frames`` video frames unless a family knows better."""
        frames = int(self.options.get("native_frames") or self.native_frames)
        r = self.temporal_factor
        return (frames - 1) // r + 1 if self.causal_vae else frames // r

    def native_stride(self, chunk_length: int) -> int:
        """Paper: 13 latent frames with stride 4 on CogVideoX-2B; the same ratio elsewhere."""
        return round(chunk_length * 4 / 13)

    def _encode_uncached(self, prompts: list[str]) -> Any:
        """Conditioning rows for these prompts (a tensor or a tuple of tensors, batch first)."""
        raise NotImplementedError

    def _encode_negative(self, prompts: list[str]) -> Any:
        """Rows for negative prompts: as prompts, unless the stock pipeline encodes them otherwise."""
        return self._encode_uncached(prompts)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        """The raw network output (the protocol's call): the family's ``_forward``, without autograd."""
        with torch.no_grad():
            return self._forward(x, t, cond)

    def _forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        """The network on a batch of chunks: the family's call (inputs cast to its network's dtype)."""
        raise NotImplementedError

    def _decode_tile(self, latent: torch.Tensor) -> torch.Tensor:
        """Video (3, T, H, W) in [-1, 1] of one unbatched latent tile."""
        raise NotImplementedError

    def _network(self) -> torch.nn.Module | None:
        """The denoising network (transformer or UNet) of the pipeline."""
        net = getattr(self.pipe, "transformer", None) or getattr(self.pipe, "unet", None)
        return net if isinstance(net, torch.nn.Module) else None

    def _threads(self) -> int | None:
        """1 for a tiny network (test models: threads only cost), else torch's choice (syncos.threads)."""
        net = self._network()
        small = net is not None and sum(p.numel() for p in net.parameters()) < TINY_PARAMETERS
        return 1 if small else None

    def guidance(self) -> GuidanceSchedule | None:
        """The per-row CFG scale, for families whose stock pipeline varies it (None: one scale)."""
        return None

    def call_defaults(self) -> CallDefaults:
        """The stock pipeline's ``__call__`` defaults: steps, CFG scale (its true-CFG argument), negative."""
        import inspect

        params = inspect.signature(type(self.pipe).__call__).parameters

        def default(name: str) -> Any:
            p = params.get(name)
            return None if p is None or p.default is inspect.Parameter.empty else p.default

        steps, scale, negative = (
            default("num_inference_steps"),
            default(self.cfg_argument),
            default("negative_prompt"),
        )
        return CallDefaults(
            steps=int(steps) if isinstance(steps, int) else None,
            guidance_scale=float(scale) if isinstance(scale, int | float) else None,
            negative_prompt=negative if isinstance(negative, str) else None,
        )

    def identity(self) -> dict[str, str]:
        """The pipeline's class, where it was loaded from and its network's dtype (run.json, checkpoints)."""
        net = self._network()
        param = next(net.parameters(), None) if net is not None else None
        dtype = param.dtype if param is not None else getattr(self.pipe, "dtype", None)
        config = getattr(self.pipe, "config", None)
        path = (config.get("_name_or_path") if isinstance(config, dict) else None) or getattr(
            self.pipe, "name_or_path", None
        )
        return {
            "family": self.name,
            "pipeline": type(self.pipe).__name__,
            "name_or_path": str(path) if path else "",
            "dtype": str(dtype).removeprefix("torch.") if dtype is not None else "n/a",
        }

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(
            name=self.name,
            prediction=self.prediction,
            schedule=self.schedule,
            solver=self.solver,
            x0_limit=self.x0_limit,
            latent_std=self.latent_std,
            per_frame_timesteps=bool(self.per_frame_timesteps),
            guidance=self.guidance(),
            defaults=self.call_defaults(),
            clip=self.clip,
            fps=self.fps,
            height=self.height,
            width=self.width,
            threads=self._threads(),
            evaluate=self.metrics,
            preview=self.preview,
            ignored_words=None,
            identity=self.identity(),
        )

    @property
    def clip(self) -> Clip:
        return Clip(
            self.chunk_length, self.default_stride, self.frame_axis, self.temporal_factor, self.causal_vae
        )

    # ---- shapes -----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return torch.device(self.pipe._execution_device)

    def latent_shape(self, latent_frames: int) -> tuple[int, ...]:
        h, w = self.latent_hw
        if self.frame_axis == 0:
            return (latent_frames, self.latent_channels, h, w)
        return (self.latent_channels, latent_frames, h, w)

    def latent_frames(self, video_frames: int) -> int:
        return Clip(0, 0, 0, self.temporal_factor, self.causal_vae).latent_frames(video_frames)

    def video_frames(self, latent_frames: int) -> int:
        return Clip(0, 0, 0, self.temporal_factor, self.causal_vae).video_frames(latent_frames)

    # ---- conditioning -------------------------------------------------------------------------
    def encode(self, prompts: Sequence[str], negative: bool | Sequence[bool] = False) -> Any:
        """Rows for ``prompts``; each distinct (prompt, negative) goes through the text encoder once."""
        keys = list(zip(prompts, negative_flags(prompts, negative), strict=True))
        for flag in (False, True):
            missing = list(dict.fromkeys(p for p, n in keys if n == flag and (p, n) not in self._cache))
            if not missing:
                continue
            with torch.no_grad():
                rows = self._encode_negative(missing) if flag else self._encode_uncached(missing)
            for i, p in enumerate(missing):
                self._cache[p, flag] = (
                    tuple(r[i : i + 1] for r in rows) if isinstance(rows, tuple) else rows[i : i + 1]
                )
        got = [self._cache[k] for k in keys]
        if isinstance(got[0], tuple):
            return tuple(torch.cat(parts) for parts in zip(*got, strict=True))
        return torch.cat(got)

    # ---- decoding -----------------------------------------------------------------------------
    def preview(self, latent: torch.Tensor) -> np.ndarray:
        """Frames (T, h, w, 3) uint8 at latent size, by a linear latent-to-RGB map: no VAE decode.

        The map (channels + bias -> RGB) is fitted once, by least squares, to the VAE's own decode
        of a small random latent tile, so it holds for any family without a table of factors.
        """
        if self._rgb is None:
            self._rgb = self._fit_rgb()
        w, b = self._rgb
        z = latent.detach().float().cpu().movedim(self.frame_axis, 0)  # (T, C, h, w)
        rgb = torch.einsum("tchw,cd->thwd", z, w) + b
        return ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()

    def _fit_rgb(self) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator("cpu").manual_seed(0)
        m = max(1, self.size_multiple() // self.spatial_factor)
        h, w = (min(n, 8 * m) for n in self.latent_hw)
        tile = torch.randn(self.latent_shape(1), generator=g)[..., :h, :w].to(self.device)
        with torch.no_grad():
            video = self._decode_tile(tile).float().cpu()  # (3, T, H, W) in [-1, 1]
        rgb = torch.nn.functional.adaptive_avg_pool2d(video.mean(1), (h, w))  # (3, h, w)
        z = tile.float().cpu().movedim(self.frame_axis, 0)[0]  # (C, h, w)
        x = torch.cat([z.flatten(1), torch.ones(1, h * w)]).T.double()  # (h*w, C + 1)
        sol = torch.linalg.lstsq(x, rgb.flatten(1).T.double()).solution.float()  # (C + 1, 3)
        return sol[:-1], sol[-1]

    def _vae_input(
        self, latent: torch.Tensor, stats: tuple[Any, Any] | None, scaling: float = 1.0
    ) -> torch.Tensor:
        """The batch of one latent tile in the VAE's units, float32 on the device: ``latent * std /
        scaling + mean`` (``latent / scaling`` without ``stats``), the stock pipelines' arithmetic.

        The tile never leaves the device, and the per-channel statistics are moved there once.
        """
        z = latent.unsqueeze(0).to(self.device, torch.float32)
        if stats is None:
            return z / scaling
        if self._stats is None:
            shape = (1, z.shape[1]) + (1,) * (z.dim() - 2)
            self._stats = tuple(torch.as_tensor(v).float().to(self.device).view(shape) for v in stats)
        mean, std = self._stats
        return z * std / scaling + mean

    def decode(self, latent: torch.Tensor) -> Iterator[np.ndarray]:
        """Frames (H, W, 3) uint8, decoded in overlapping temporal tiles: memory does not grow with length."""
        tile = int(self.options.get("decode_tile") or self.chunk_length)
        default_overlap = max(1, tile // 4) if self.causal_vae else 0
        overlap = self.options.get("decode_overlap")
        overlap = default_overlap if overlap is None else int(overlap)
        frames = latent.shape[self.frame_axis]

        def tile_fn(a: int, b: int) -> torch.Tensor:
            with torch.no_grad():
                return self._decode_tile(latent.narrow(self.frame_axis, a, b - a))

        return tiled_decode(tile_fn, frames, self.video_frames, tile=tile, overlap=overlap)
