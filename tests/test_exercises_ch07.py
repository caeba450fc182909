"""Chapter 7 exercise checks: the references pass, every listed mistake gets its own diagnosis, and the references
agree with cfglab's exact scores and with the closed forms they encode."""

import math

import pytest
import torch

import cfglab as cl
from cfglab.exercises import ch07, check_guided_score_1d, check_sde_guided_variance, check_tilted_langevin_step

# -- guided_score_1d ------------------------------------------------------------------------------------------------


def test_guided_score_reference_passes():
    assert check_guided_score_1d(ch07._guided_score_1d)


@pytest.mark.parametrize("explanation, wrong", ch07._SCORE_MISTAKES, ids=range(len(ch07._SCORE_MISTAKES)))
def test_guided_score_mistakes_are_diagnosed(explanation, wrong):
    verdict = check_guided_score_1d(wrong)
    assert not verdict and explanation in verdict.message


@pytest.mark.parametrize("path", [cl.VE(), cl.VP(), cl.Linear()], ids=["VE", "VP", "Linear"])
def test_guided_score_reference_matches_cfglab(path):
    cond = cl.GaussianMixture([[0.0]], 1.0)             # p(x | c = 0) = N(0, 1)
    uncond = cl.GaussianMixture([[0.0]], math.sqrt(2))  # p(x) = N(0, 2)
    x = torch.linspace(-3, 3, 13, dtype=torch.float64)[:, None]
    for t in [0.2, 0.5, 0.8]:
        c = path(torch.tensor(t, dtype=torch.float64))
        for w in [0.0, 1.0, 3.5]:
            want = cl.combine(cond.score_fn(path), uncond.score_fn(path), w)(x, torch.full((13,), t,
                                                                                         dtype=torch.float64))
            got = ch07._guided_score_1d(x, c.alpha.item(), c.sigma.item(), w)
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


# -- sde_guided_variance --------------------------------------------------------------------------------------------


def test_sde_variance_reference_passes():
    assert check_sde_guided_variance(ch07._sde_guided_variance)


@pytest.mark.parametrize("explanation, wrong", ch07._VARIANCE_MISTAKES, ids=range(len(ch07._VARIANCE_MISTAKES)))
def test_sde_variance_mistakes_are_diagnosed(explanation, wrong):
    verdict = check_sde_guided_variance(wrong)
    assert not verdict and explanation in verdict.message


def test_sde_variance_missing_limit_at_one_half_is_diagnosed():
    def no_limit(w):
        return (2 - 4 ** (1 - w)) / (2 * w - 1)  # ZeroDivisionError at w = 1/2

    verdict = check_sde_guided_variance(no_limit)
    assert not verdict and "2 ln 2" in verdict.message


def test_sde_variance_reference_special_values():
    f = ch07._sde_guided_variance
    assert f(0.0) == pytest.approx(2.0)       # unguided: the marginal N(0, 2)
    assert f(1.0) == pytest.approx(1.0)       # plain conditional N(0, 1)
    assert f(0.5) == pytest.approx(2 * math.log(2))
    assert f(0.5 + 1e-6) == pytest.approx(2 * math.log(2), rel=1e-5)  # continuous through the limit
    assert f(4.0) == pytest.approx((2 - 4.0**-3) / 7)


def test_sde_variance_solves_the_variance_ode():
    # Integrate dm/dv = 2 Lambda(v) m - 1 from v = V (m = V + 1, the exact conditional there) down to v = 0, with
    # Lambda(v) = w/(1 + v) + (1 - w)/(2 + v), by RK4 in log(1 + v); compare with the closed form.
    for w in [0.0, 0.5, 2.0, 4.0]:
        lam = lambda v: w / (1 + v) + (1 - w) / (2 + v)  # noqa: E731
        V = 1e6
        u_hi, u_lo, steps = math.log1p(V), 0.0, 4000
        du = (u_lo - u_hi) / steps
        f = lambda u, m: (2 * lam(math.expm1(u)) * m - 1) * math.exp(u)  # noqa: E731  dm/du = dm/dv * (1 + v)
        u, m = u_hi, V + 1.0
        for _ in range(steps):
            k1 = f(u, m)
            k2 = f(u + du / 2, m + du / 2 * k1)
            k3 = f(u + du / 2, m + du / 2 * k2)
            k4 = f(u + du, m + du * k3)
            m += du / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            u += du
        assert m == pytest.approx(ch07._sde_guided_variance(w), rel=1e-4)


# -- tilted_langevin_step -------------------------------------------------------------------------------------------


def test_tilted_step_reference_passes():
    assert check_tilted_langevin_step(ch07._tilted_langevin_step)


@pytest.mark.parametrize("explanation, wrong", ch07._STEP_MISTAKES, ids=range(len(ch07._STEP_MISTAKES)))
def test_tilted_step_mistakes_are_diagnosed(explanation, wrong):
    verdict = check_tilted_langevin_step(wrong)
    assert not verdict and explanation in verdict.message


def test_tilted_step_reference_is_cfglab_langevin_on_the_cfg_score():
    mix = cl.make("overlap")
    path, w, h = cl.VE(), 3.0, 0.05
    t = torch.full((50,), 0.4, dtype=torch.float64)
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    guided = cl.combine(mix.score_fn(path, 1), mix.score_fn(path), w)
    want = cl.langevin(lambda z: guided(z, t), x, h, 1, generator=torch.Generator().manual_seed(5))
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    got = ch07._tilted_langevin_step(x, mix.score(x, t, path, 1), mix.score(x, t, path), w, h, z)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
