"""No host synchronisation per step in the diffusers adapters (issue 21, section 4).

The simulated device of ``tests/host_sync.py``: each method on tiny pipelines, with micro-batches
smaller than the chunk count, CFG on, and the families whose adapters used to read per call:
Wan (guidance hook, expert choice), CogVideoX's dynamic CFG, Kandinsky 5 (text-length groups).
"""

from __future__ import annotations

import pytest
import torch
from diffusers_tiny import TINY_SETTINGS, VARIANTS, load, make_plan

from host_sync import METHODS, assert_no_sync_per_step, counting


@pytest.mark.parametrize("method", list(METHODS))
def test_wan_sampling_loop_reads_nothing_back(monkeypatch, method):
    """Fails on the old code: the denoiser's torch.tensor(rows, device=) per micro-batch (uploads
    grow with the steps), and for syncos rbf_kernel's .item() and synchronise's float(norm)."""
    b = load("wan")
    native = b.video_frames(b.chunk_length)
    plan = make_plan(b, [native, native])
    assert_no_sync_per_step(monkeypatch, b, plan, method, 3, guidance_scale=3.0, micro_batch=1)


# the adapters' own per-call hooks: pipe, model_options, method
CASES = {
    "wan22-guidance-2": ("wan-experts", {"guidance_scale_2": 2.5}, "codenoise"),
    "cogvideox-dynamic-cfg": ("cogvideox-rope", {"use_dynamic_cfg": True}, "codenoise"),
    "kandinsky5": ("kandinsky5", {}, "codenoise"),
    "wan-ti2v-fifo-per-frame": ("wan-ti2v", {}, "fifo"),
    "wan22-experts-fifo-shared": ("wan-experts", {}, "fifo"),  # FIFO hands the denoiser host timesteps
}


@pytest.mark.parametrize("case", list(CASES))
def test_adapter_hooks_read_only_the_host(monkeypatch, case):
    """Fails on the old code: the denoiser's guidance hook read t with .tolist() (Wan 2.2's
    guidance_scale_2, CogVideoX's dynamic CFG); Kandinsky 5 kept its text lengths on the device
    and read them with .tolist(); Wan read t with .tolist() to pick an expert even with one."""
    pipe, options, method = CASES[case]
    base = TINY_SETTINGS[VARIANTS[pipe][1] if pipe in VARIANTS else pipe].get("model_options", {})
    b = load(pipe, model_options={**base, **options})
    native = b.video_frames(b.chunk_length)
    plan = make_plan(b, [native, native])
    assert_no_sync_per_step(monkeypatch, b, plan, method, 3, guidance_scale=3.0, micro_batch=1)


@pytest.mark.parametrize("family", ["wan", "mochi", "ltx", "hunyuanvideo"])
def test_decode_tiles_stay_on_the_device(monkeypatch, family):
    """Only the decoded frames come back to the host (decode.py), not each latent tile for its
    denormalisation. Fails on the old code: wan.py, mochi.py and ltx.py read every tile with .cpu()."""
    b = load(family)
    frames = 3 * b.chunk_length
    with counting(monkeypatch) as reads:
        latent = torch.randn(b.latent_shape(frames)).to(b.device)
        n = len(list(b.decode(latent)))
    monkeypatch.undo()
    assert n == b.video_frames(frames)
    assert reads and all("diffusers/decode.py" in r for r in reads), sorted(set(reads))
