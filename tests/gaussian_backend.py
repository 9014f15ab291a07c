"""A backend whose data is one Gaussian per prompt: its posterior mean is known in closed form.

Core tests use it so they do not depend on any real model (or on toyworld's details).
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

from syncos.backends.base import CallDefaults, Clip, ModelSpec
from syncos.schedules import VPSchedule, from_x0_eps
from syncos.solvers import DDIM


class GaussianBackend:
    name = "gaussian"
    fps = 8.0
    device = torch.device("cpu")
    # what its spec declares; tests set them on an instance to try another model
    solver = DDIM
    latent_std = 1.0
    per_frame_timesteps = False
    threads = None

    def __init__(
        self, prediction="v", schedule=None, chunk_length=6, layout="cfhw", tau=0.5, channels=2, static=False
    ):
        self.prediction = prediction
        self.schedule = schedule or VPSchedule.cogvideox()
        self.chunk_length, self.default_stride = chunk_length, 2
        self.layout, self.tau, self.channels, self.static = layout, tau, channels, static
        self.frame_axis = 1 if layout == "cfhw" else 0
        self.calls: list[int] = []

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(
            name=self.name,
            prediction=self.prediction,
            schedule=self.schedule,
            solver=self.solver,
            x0_limit=None,
            latent_std=self.latent_std,
            per_frame_timesteps=self.per_frame_timesteps,
            guidance=None,
            defaults=CallDefaults(None, None, None),
            clip=Clip(self.chunk_length, self.default_stride, self.frame_axis, 1, causal=False),
            fps=self.fps,
            height=3,
            width=3,
            threads=self.threads,
            evaluate=None,
            preview=None,
            ignored_words=None,
            identity={"family": "gaussian", "pipeline": "", "name_or_path": "", "dtype": "float32"},
        )

    def latent_shape(self, frames):
        return (self.channels, frames, 3, 3) if self.layout == "cfhw" else (frames, self.channels, 3, 3)

    def latent_frames(self, video_frames):
        return video_frames

    def video_frames(self, latent_frames):
        return latent_frames

    def mean(self, prompt: str) -> torch.Tensor:
        seed = zlib.crc32(prompt.encode())
        g = torch.Generator().manual_seed(seed)
        if self.static:  # the same frame throughout: chunks at any offset agree
            frame = torch.randn(self.latent_shape(1), generator=g)
            return frame.repeat_interleave(self.chunk_length, dim=self.frame_axis)
        return torch.randn(self.latent_shape(self.chunk_length), generator=g)

    def encode(self, prompts, negative=False):
        return torch.stack([self.mean(p) for p in prompts])

    def posterior_x0(self, x, t, mu):
        a, s = self.schedule.coefficients(t)
        a = a.float().reshape(-1, *[1] * (x.dim() - 1))
        s = s.float().reshape(-1, *[1] * (x.dim() - 1))
        # x = a x0 + s eps with x0 ~ N(mu, tau^2): E[x0|x] = mu + a tau^2 (x - a mu) / (a^2 tau^2 + s^2)
        return mu + a * self.tau**2 * (x - a * mu) / (a**2 * self.tau**2 + s**2)

    def forward(self, x, t, cond):
        self.calls.append(len(x))
        a, s = self.schedule.coefficients(t)
        a = a.float().reshape(-1, *[1] * (x.dim() - 1))
        s = s.float().reshape(-1, *[1] * (x.dim() - 1))
        x0 = self.posterior_x0(x, t, cond)
        eps = (x - a * x0) / s.clamp_min(1e-8)
        return from_x0_eps(x0, eps, a, s, self.prediction)

    def decode(self, latent):
        frames = latent.movedim(self.frame_axis, 0)
        for f in frames:
            img = ((f[0].clamp(-1, 1) + 1) * 127.5).to(torch.uint8).numpy()
            yield np.repeat(img[:, :, None], 3, axis=2)
