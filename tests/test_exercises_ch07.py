"""Chapter 7 exercise checks: the references pass, every listed mistake gets its own diagnosis, and the references
agree with cfglab's exact scores and with the closed forms they encode."""

import math

import pytest
import torch

import cfglab as cl
from cfglab.exercises import (
    ch07,
    check_cfg_reverse_sde,
    check_guided_score_1d,
    check_sde_guided_variance,
    check_tilted_langevin_step,
)

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


# -- cfg_reverse_sde (an experiment: the checker samples with the student's sampler) --------------------------------


def sde_variant(*, drift=1.0, noise=1.0, at_end=False, paper=False, swapped=False, no_scale=False, dsigma=False):
    """A hand-written guided reverse SDE on VE with one of the known slips (the defaults are the correct one)."""
    def sampler(score_cond, score_uncond, w, sigmas, x, generator):
        levels = sigmas.tolist()
        for hi, lo in zip(levels, levels[1:]):
            dv = hi - lo if dsigma else hi**2 - lo**2
            s = lo if at_end else hi
            sc, su = score_cond(x, s), score_uncond(x, s)
            if paper:
                guided = (1 + w) * sc - w * su
            elif swapped:
                guided = sc + w * (su - sc)
            elif no_scale:
                guided = sc
            else:
                guided = su + w * (sc - su)
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x = x + drift * dv * guided + math.sqrt(noise * dv) * z
        return x
    return sampler


def test_cfg_reverse_sde_reference_passes():
    assert check_cfg_reverse_sde(ch07._cfg_reverse_sde)


def test_cfg_reverse_sde_accepts_other_correct_solutions():
    # the score at the end of each step is another first-order scheme; an in-place loop is fine too
    assert check_cfg_reverse_sde(sde_variant(at_end=True))

    def in_place(score_cond, score_uncond, w, sigmas, x, generator):
        for i in range(len(sigmas) - 1):
            dv = float(sigmas[i] ** 2 - sigmas[i + 1] ** 2)
            s = sigmas[i]                                          # a 0-d tensor, not a float
            x += dv * ((1 - w) * score_uncond(x, s) + w * score_cond(x, s))
            x += math.sqrt(dv) * torch.randn(x.shape, generator=generator, dtype=x.dtype)
        return x
    assert check_cfg_reverse_sde(in_place)


@pytest.mark.parametrize("kwargs, phrase", [
    (dict(noise=2.0), "sqrt(2 dv) is Langevin"),
    (dict(drift=0.5, noise=0.0), "probability-flow ODE"),
    (dict(noise=0.0), "collapse onto 0"),
    (dict(drift=0.5), "drift is halved"),
    (dict(paper=True), "Ho & Salimans"),
    (dict(swapped=True), "weights are swapped"),
    (dict(no_scale=True), "scale is not used"),
    (dict(dsigma=True), "decrease of sigma"),
], ids=lambda v: v if isinstance(v, str) else ",".join(v))
def test_cfg_reverse_sde_mistakes_are_diagnosed(kwargs, phrase):
    verdict = check_cfg_reverse_sde(sde_variant(**kwargs))
    assert not verdict and phrase in verdict.message, verdict.message


def test_cfg_reverse_sde_reports_bad_outputs_in_words():
    v = check_cfg_reverse_sde(lambda score_cond, score_uncond, w, sigmas, x, generator: x[:, 0])
    assert not v and "tensor shaped like x" in v.message
    v = check_cfg_reverse_sde(lambda score_cond, score_uncond, w, sigmas, x, generator: x / 0.0)
    assert not v and "NaN or infinite" in v.message
    v = check_cfg_reverse_sde(lambda score_cond, score_uncond, w, sigmas, x, generator: 1 / 0)
    assert not v and "ZeroDivisionError" in v.message
    v = check_cfg_reverse_sde(lambda score_cond, score_uncond, w, sigmas, x, generator: x + 5.0
                              + sde_variant()(score_cond, score_uncond, w, sigmas, x, generator) - x)
    assert not v and "not centred" in v.message


def test_cfg_reverse_sde_judges_against_the_exact_discrete_law():
    # the recursion the checker uses for the step-size allowance is the exact variance of the reference sampler:
    # compare it with a large Monte-Carlo run, and with the continuous closed form as the grid is refined
    sig = ch07.sde_grid()
    g = torch.Generator().manual_seed(0)
    x = sig[0] * torch.randn(100_000, 1, generator=g, dtype=torch.float64)
    out = ch07._cfg_reverse_sde(ch07._example_score(1.0), ch07._example_score(2.0), 4.0, sig, x, g)
    law = ch07._em_law(4.0, sig)
    assert abs(out.var().item() - law) < 5 * law * math.sqrt(2 / 1e5)
    fine = torch.exp(torch.linspace(math.log(80), math.log(0.002), 8001, dtype=torch.float64))
    assert abs(ch07._em_law(4.0, fine) / ch07._sde_guided_variance(4.0) - 1) < 2e-3
