"""Paths: coefficients against their closed forms, derivatives against finite differences, conversions round-trip."""

import math

import pytest
import torch

from cfglab import VE, VP, Linear
from cfglab.paths import PREDICTIONS

T = torch.tensor([0.05, 0.2, 0.5, 0.8, 0.95], dtype=torch.float64)


def test_closed_forms():
    t = T
    c = VE(0.002, 80.0)(t)
    assert torch.allclose(c.sigma, 0.002 * (80 / 0.002) ** t)
    assert torch.allclose(c.alpha, torch.ones_like(t))
    c = VP(0.1, 20.0)(t)
    B = 0.1 * t + 0.5 * 19.9 * t**2
    assert torch.allclose(c.alpha, torch.exp(-B / 2))
    assert torch.allclose(c.alpha**2 + c.sigma**2, torch.ones_like(t))
    c = Linear()(t)
    assert torch.allclose(c.alpha, 1 - t) and torch.allclose(c.sigma, t)


def test_derivatives_match_finite_differences(path):
    h = 1e-6
    c, cp, cm = path(T), path(T + h), path(T - h)
    assert torch.allclose(c.d_alpha, (cp.alpha - cm.alpha) / (2 * h), rtol=1e-5, atol=1e-7)
    assert torch.allclose(c.d_sigma, (cp.sigma - cm.sigma) / (2 * h), rtol=1e-5, atol=1e-7)


def test_sde_coefficients_reproduce_marginal_variance(path):
    # d/dt sigma^2 = 2 f sigma^2 + g^2 is the variance ODE of dx = f x dt + g dW started from a point.
    c = path(T)
    assert torch.allclose(2 * c.sigma * c.d_sigma, 2 * c.f * c.sigma**2 + c.g2, rtol=1e-10)
    assert torch.allclose(c.f, c.d_alpha / c.alpha)


def test_vp_beta_is_g2():
    t = T
    assert torch.allclose(VP()(t).g2, 0.1 + 19.9 * t, rtol=1e-10)


@pytest.mark.parametrize("src", PREDICTIONS)
@pytest.mark.parametrize("dst", PREDICTIONS)
def test_conversions_round_trip_float64(path, src, dst):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(5, 3, generator=g, dtype=torch.float64)
    xt = path.noise(x0, T, eps)
    value = path.target(src, x0, eps, T)
    out = path.convert(value, xt, T, src, dst)
    assert out.dtype == torch.float64
    assert torch.allclose(out, path.target(dst, x0, eps, T), rtol=1e-9, atol=1e-9)
    back = path.convert(out, xt, T, dst, src)
    assert torch.allclose(back, value, rtol=1e-8, atol=1e-8)


def test_velocity_is_ode_drift(path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 2, generator=g, dtype=torch.float64)
    score = torch.randn(5, 2, generator=g, dtype=torch.float64)
    assert torch.allclose(path.ode_drift(x, T, score), path.convert(score, x, T, "score", "velocity"))
    drift, gdiff = path.reverse_sde(x, T, score)
    c = path(T, x)
    assert torch.allclose(drift, c.f * x - c.g2 * score)
    assert torch.allclose(gdiff**2, c.g2)


def test_logsnr_inverse(path):
    t = torch.tensor([0.1, 0.3, 0.6, 0.9], dtype=torch.float64)
    assert torch.allclose(path.t_of_logsnr(path(t).logsnr), t, atol=1e-10)


def test_timesteps(path):
    for spacing in ("logsnr", "uniform"):
        ts = path.timesteps(10, spacing=spacing)
        assert ts.shape == (11,)
        assert ts[0] == path.t_max and ts[-1] == path.t_min
        assert (ts[1:] < ts[:-1]).all()
    lam = path(path.timesteps(8, spacing="logsnr")).logsnr
    assert torch.allclose(lam.diff(), lam.diff()[0].expand(8), rtol=1e-6)
    assert torch.equal(path.timesteps(8), path.timesteps(8, spacing=path.spacing))  # None: the path's default


def test_prior_and_dtype(path):
    g = torch.Generator().manual_seed(0)
    x = path.prior(20000, 2, generator=g, dtype=torch.float64)
    assert x.dtype == torch.float64 and x.shape == (20000, 2)
    sigma1 = path(1.0 if not isinstance(path, Linear) else 1.0).sigma.item()
    assert abs(x.std().item() / sigma1 - 1) < 0.02
    assert path(torch.tensor(0.5, dtype=torch.float32)).alpha.dtype == torch.float32


def test_equality_and_repr():
    assert VE() == VE(0.002, 80.0) and VE() != VE(0.01, 80.0) and Linear() == Linear()
    assert repr(VP()) == "VP(beta_min=0.1, beta_max=20.0)"
    assert math.isfinite(hash(VE()))
