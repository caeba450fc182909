"""Chapter 1 checkers: the reference passes, every listed mistake gets its own diagnosis, a stub is 'not written
yet', and the references agree with the package's samplers and tempered mixture."""

import math

import pytest
import torch

from cfglab import GaussianMixture, Linear, langevin, make, mala
from cfglab.exercises import (
    ch01,
    check_annealed_langevin,
    check_langevin_step,
    check_mala_accept_log_ratio,
    check_tempered_weights,
)

CASES = [
    (check_langevin_step, ch01.langevin_step_reference, ch01.LANGEVIN_MISTAKES),
    (check_mala_accept_log_ratio, ch01.mala_accept_log_ratio_reference, ch01.MALA_MISTAKES),
    (check_tempered_weights, ch01.tempered_weights_reference, ch01.TEMPERED_MISTAKES),
]


@pytest.mark.parametrize("check, reference, mistakes", CASES, ids=["langevin", "mala", "tempered"])
def test_reference_passes(check, reference, mistakes):
    assert check(reference, quiet=True)


@pytest.mark.parametrize("check, reference, mistakes", CASES, ids=["langevin", "mala", "tempered"])
def test_each_mistake_gets_its_diagnosis(check, reference, mistakes):
    for explanation, wrong in mistakes:
        verdict = check(wrong, quiet=True)
        assert not verdict
        assert explanation in verdict.message, (explanation, verdict.message)


@pytest.mark.parametrize("check", [c for c, _, _ in CASES], ids=["langevin", "mala", "tempered"])
def test_stub_is_not_written_yet(check):
    def stub(*args, **kwargs):
        raise NotImplementedError("write it")

    verdict = check(stub, quiet=True)
    assert not verdict and "not written yet" in verdict.message


def test_langevin_reference_is_one_step_of_the_package_sampler():
    mix = make("mixture")
    x = mix.sample(50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)[0]
    score = lambda v: mix.score(v, 0.0, Linear())  # noqa: E731
    h = 0.07
    got = langevin(score, x, h, 1, generator=torch.Generator().manual_seed(3))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=x.dtype)
    assert torch.allclose(got, ch01.langevin_step_reference(x, score(x), h, z), rtol=1e-12, atol=1e-12)


def test_mala_reference_reproduces_the_package_accept_decisions():
    mix = make("mixture")
    x = mix.sample(400, generator=torch.Generator().manual_seed(0), dtype=torch.float64)[0] * 1.3
    score = lambda v: mix.score(v, 0.0, Linear())  # noqa: E731
    h = 0.15
    got = mala(mix.log_prob, x, h, 1, score=score, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)  # the same draws as mala: z, then u
    z = torch.randn(x.shape, generator=g, dtype=x.dtype)
    prop = x + h * score(x) + math.sqrt(2 * h) * z
    u = torch.rand(x.shape[0], generator=g, dtype=x.dtype)
    ratio = ch01.mala_accept_log_ratio_reference(x, prop, mix.log_prob(x), mix.log_prob(prop), score(x),
                                                 score(prop), h)
    want = torch.where((torch.log(u) < ratio)[:, None], prop, x)
    assert 0.05 < (torch.log(u) < ratio).double().mean() < 0.95  # both decisions occur
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)


def test_tempered_reference_matches_the_tempered_mixture():
    mix = GaussianMixture([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]], [0.3, 0.2, 0.5], [0.5, 0.2, 0.3])
    for T in (0.3, 2.0):
        assert torch.allclose(ch01.tempered_weights_reference(mix.weights, mix.std, T, 2), mix.tempered(T).weights,
                              rtol=1e-12, atol=1e-14)


# -- the annealed-Langevin experiment: judged by its samples ----------------------------------------------------

def _annealed(noise="sqrt2h", reverse=False, const_step=False, last_level_only=False, sign=1.0):
    """The reference loop with one of the known slips."""
    def run(score, x, sigmas, steps_per_level, step_scale, generator):
        levels = [float(s) for s in sigmas]
        sigma_min = levels[-1]
        if reverse:
            levels = levels[::-1]
        if last_level_only:
            levels = [sigma_min] * len(levels)
        for sigma in levels:
            h = step_scale if const_step else step_scale * sigma**2 / sigma_min**2
            c = {"sqrt2h": math.sqrt(2 * h), "sqrth": math.sqrt(h), "h": h}[noise]
            for _ in range(steps_per_level):
                z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
                x = x + sign * h * score(x, sigma) + c * z
        return x
    return run


def _words(verdict):
    return " ".join(verdict.message.split())


def test_annealed_reference_passes_and_reports_the_frequencies():
    verdict = check_annealed_langevin(ch01.annealed_langevin_reference, quiet=True)
    assert verdict and "class frequencies" in _words(verdict)


@pytest.mark.parametrize("wrong, words", [
    (_annealed(noise="sqrth"), "too narrow"),
    (_annealed(noise="h"), "too narrow"),
    (_annealed(reverse=True), "too wide"),
    (_annealed(const_step=True), "too wide"),
    (_annealed(last_level_only=True), "not the weights"),
    (_annealed(sign=-1.0), "too wide"),
], ids=["sqrt(h) noise", "h noise", "levels reversed", "constant step", "no annealing", "downhill"])
def test_annealed_mistakes_are_diagnosed_from_the_samples(wrong, words):
    verdict = check_annealed_langevin(wrong, quiet=True)
    assert not verdict and words in _words(verdict), _words(verdict)


def test_annealed_checker_reports_errors_in_words():
    def bad_shape(score, x, sigmas, steps_per_level, step_scale, generator):
        return x[:, :1]

    def raises(score, x, sigmas, steps_per_level, step_scale, generator):
        raise ValueError("oops")

    assert "shaped like x" in _words(check_annealed_langevin(bad_shape, quiet=True))
    assert "raised ValueError: oops" in _words(check_annealed_langevin(raises, quiet=True))


def test_annealed_checker_accepts_another_order_of_noise():
    """A correct loop that draws its noise differently (one big draw per level) passes too: the checker judges
    the samples, not the bits."""
    def per_level(score, x, sigmas, steps_per_level, step_scale, generator):
        sigma_min = float(sigmas[-1])
        for sigma in sigmas.tolist():
            h = step_scale * sigma**2 / sigma_min**2
            zs = torch.randn((steps_per_level, *x.shape), generator=generator, dtype=x.dtype)
            for z in zs:
                x = x + h * score(x, sigma) + math.sqrt(2 * h) * z
        return x

    assert check_annealed_langevin(per_level, quiet=True)


def test_annealed_reference_is_the_package_sampler():
    """With sigma levels read off a VE path, the reference loop is cfglab.annealed_langevin step for step."""
    from cfglab import VE, annealed_langevin

    mix = make("mixture")
    ve = VE(sigma_min=0.05, sigma_max=3.0)
    x = ve.prior(300, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    want = annealed_langevin(mix.score_fn(ve), x, ve, 6, 4, 1e-3, generator=torch.Generator().manual_seed(1))
    ts = ve.timesteps(5, spacing="logsnr").to(torch.float64)
    sigmas = ve(ts).sigma
    by_sigma = {float(s): float(t) for s, t in zip(sigmas, ts)}
    score = lambda v, sigma: mix.score(v, torch.full((v.shape[0],), by_sigma[float(sigma)], dtype=v.dtype), ve)  # noqa: E731
    got = ch01.annealed_langevin_reference(score, x, sigmas, 4, 1e-3, torch.Generator().manual_seed(1))
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-10)
