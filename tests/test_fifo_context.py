"""FIFO's lookahead context: the frames in front of the queue are the ones that left, as they
were before their last step (at the grid's lowest noise level), not their stepped values."""

from __future__ import annotations

import torch

from syncos.samplers import FIFOOptions, sample
from test_fifo import PerFrameGaussian
from test_samplers import make_plan


class Recording(PerFrameGaussian):
    """Keeps every per-frame (queue) forward's input and timesteps."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x, t, cond):
        if t.dim() == 2:  # the queue's windows (the base clip is sampled with one t per clip)
            self.inputs.append((x.clone(), t.clone()))
        return super().forward(x, t, cond)


def test_context_frames_are_the_pre_step_frames_that_left():
    """Each iteration's context (first window, positions 0..P-1) is the previous iteration's
    positions 1..P as they were given to the model, i.e. before that iteration's step, at the
    grid's lowest level. Kills: taking the stepped frames (``new[1 : P + 1]``) instead of the old
    ones (``queue[1 : P + 1]``); a context not shifted by one; context labelled with another t."""
    b = Recording()
    plan = make_plan(b, frames=(8, 10))
    L, P = b.chunk_length, b.chunk_length // 2
    opts = FIFOOptions(steps=12, guidance_scale=1.0, micro_batch=16)  # one call per iteration
    sample("fifo", b, plan, opts, seed=3)
    total = plan.latent_frames + 12 - L
    assert len(b.inputs) == total  # one forward of all windows per iteration
    lowest = float(b.schedule.grid(12).timesteps[-1])
    for (x, t), (x_next, t_next) in zip(b.inputs, b.inputs[1:], strict=False):
        first, first_next = x[0].movedim(b.frame_axis, 0), x_next[0].movedim(b.frame_axis, 0)
        assert torch.equal(first_next[:P], first[1 : P + 1])
        assert (t_next[0, :P] == lowest).all() and (t[0, : P + 1] == lowest).all()
