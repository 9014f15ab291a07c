import torch

from syncos.fusion import crop, fuse


def test_crop_then_fuse_is_identity_on_both_layouts():
    x = torch.randn(3, 20, 2, 2)
    for axis, lat in ((1, x), (0, x.movedim(1, 0).contiguous())):
        starts = (0, 4, 8, 12, 14)
        chunks = crop(lat, starts, 6, axis)
        assert chunks.shape[axis + 1] == 6
        torch.testing.assert_close(fuse(chunks, starts, 20, axis), lat)


def test_fuse_is_exact_average():
    starts, L, F = (0, 3, 6), 5, 11
    chunks = torch.randn(3, 2, L, 1)  # (n, C, L, W)
    total, count = torch.zeros(2, F, 1), torch.zeros(F)
    for c, s in zip(chunks, starts, strict=True):
        total[:, s : s + L] += c
        count[s : s + L] += 1
    torch.testing.assert_close(fuse(chunks, starts, F, axis=1), total / count[None, :, None])


def test_fuse_window_and_uncovered_frames():
    chunks = torch.ones(2, 4, 1) * torch.tensor([1.0, 3.0])[:, None, None]
    w = torch.tensor([1.0, 1.0, 3.0, 3.0])
    out = fuse(chunks, (0, 2), 8, axis=0, window=w)
    assert out[2, 0].item() == (3 * 1 + 1 * 3) / 4
    assert (out[6:] == 0).all()
