import math

import torch

from syncos.samplers.csd import rbf_kernel, stein_direction


def direct(x, g, w):
    n = len(x)
    xf, gf = x.reshape(n, -1).double(), g.reshape(n, -1).double()
    d = torch.tensor(
        [[((xf[i] - xf[j]) ** 2).sum().item() for j in range(n)] for i in range(n)], dtype=torch.float64
    )
    off = [d[i, j].item() for i in range(n) for j in range(i + 1, n)]
    gamma = math.log(n + 1) / torch.tensor(off, dtype=torch.float64).quantile(0.5).item()
    K = torch.exp(-gamma * d).double()
    out = []
    for i in range(n):
        att = sum(K[j, i] * gf[j] for j in range(n))
        rep = sum(2 * gamma * K[i, j] * (xf[i] - xf[j]) for j in range(n))
        out.append(w / n * (att - rep))
    return torch.stack(out).reshape(g.shape), K, gamma


def test_kernel_and_stein_match_direct_computation():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, 4, generator=g, dtype=torch.float64)
    grad = torch.randn(5, 3, 4, generator=g, dtype=torch.float64)
    ref, K_ref, gamma_ref = direct(x, grad, 0.7)
    K, gamma = rbf_kernel(x)
    assert math.isclose(gamma, gamma_ref, rel_tol=1e-10)
    torch.testing.assert_close(K, K_ref)
    torch.testing.assert_close(stein_direction(x, grad, 0.7), ref)


def test_one_chunk_is_plain_score_distillation():
    x, g = torch.randn(1, 4, 6), torch.randn(1, 4, 6)
    torch.testing.assert_close(stein_direction(x, g, 0.3), 0.3 * g)


def test_repulsion_pushes_apart():
    x = torch.tensor([[0.0], [1.0]])
    G = stein_direction(x, torch.zeros_like(x))
    # descent step theta -= lr * G moves the particles away from each other
    assert G[0, 0] > 0 and G[1, 0] < 0


def test_kernel_features_are_separate_from_particles():
    x, g = torch.randn(3, 5), torch.randn(3, 5)
    same = stein_direction(x, g, features=x)
    torch.testing.assert_close(same, stein_direction(x, g))
    assert not torch.allclose(stein_direction(x, g, features=x * 3), same)


def test_float32_kernel_agrees_with_float64_on_chunk_sized_latents():
    """The kernel runs in float32 (was float64): on 8 chunks of 16x13x30x45 latent values sharing
    content, the direction and gamma agree with float64 to 1e-6 relative. Kills squared distances
    by torch.cdist in float32, whose CPU loop sums without cascading (gamma off by ~1e-4)."""
    g = torch.Generator().manual_seed(2)
    D = 16 * 13 * 30 * 45
    x = torch.randn(1, D, generator=g) + 0.5 * torch.randn(8, D, generator=g)
    grad = torch.randn(8, D, generator=g)
    K32, gamma32 = rbf_kernel(x)
    K64, gamma64 = rbf_kernel(x.double())
    assert K32.dtype == torch.float32 and gamma32.dtype == torch.float32
    assert abs(float(gamma32) / float(gamma64) - 1) < 1e-6
    assert float((K32.double() - K64).abs().max()) < 1e-6
    G32, G64 = stein_direction(x, grad), stein_direction(x.double(), grad.double())
    assert float((G32.double() - G64).abs().max() / G64.abs().max()) < 1e-6
