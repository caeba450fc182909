"""Chapter 3 checks: the reference answers pass, every listed mistake gets its own diagnosis, a stub is 'not written
yet', and the hidden Gaussian velocity field of the Euler check is the exact flow of its Gaussian."""

import pytest
import torch

from cfglab import Linear
from cfglab.exercises import (
    check_euler_sample,
    check_flow_matching_target,
    check_heun_sample,
    check_interpolate,
    check_velocity_to_score,
)
from cfglab.exercises.ch03 import _euler, _gaussian_velocity

path = Linear()


def interpolate(x0, eps, t):
    t = t[:, None]
    return (1 - t) * x0 + t * eps


def flow_matching_target(x0, eps):
    return eps - x0


def velocity_to_score(v, x, t):
    t = t[:, None]
    return -(x + (1 - t) * v) / t


def euler_sample(velocity_fn, x1, steps):
    ts = torch.linspace(1, 0, steps + 1, dtype=x1.dtype)
    x = x1
    for i in range(steps):
        x = x - (ts[i] - ts[i + 1]) * velocity_fn(x, ts[i].expand(x.shape[0]))
    return x


def stub(*args, **kwargs):
    raise NotImplementedError


def _verdict(check, fn):
    return check(fn, quiet=True)


@pytest.mark.parametrize("check, fn", [
    (check_interpolate, interpolate),
    (check_flow_matching_target, flow_matching_target),
    (check_velocity_to_score, velocity_to_score),
    (check_euler_sample, euler_sample),
])
def test_reference_passes_and_stub_is_not_written_yet(check, fn):
    assert _verdict(check, fn)
    v = _verdict(check, stub)
    assert not v and "not written yet" in v.message


def tc(t):
    return t[:, None]


@pytest.mark.parametrize("wrong, words", [
    (lambda x0, eps, t: tc(t) * x0 + (1 - tc(t)) * eps, "other way round"),
    (lambda x0, eps, t: torch.sqrt(1 - tc(t)) * x0 + torch.sqrt(tc(t)) * eps, "square roots"),
    (lambda x0, eps, t: x0 + tc(t) * eps, "without shrinking"),
])
def test_interpolate_mistakes(wrong, words):
    v = _verdict(check_interpolate, wrong)
    assert not v and words in v.message


@pytest.mark.parametrize("wrong, words", [
    (lambda x0, eps: x0 - eps, "sign is flipped"),
    (lambda x0, eps: eps, "returned the noise"),
    (lambda x0, eps: x0, "returned the clean sample"),
    (lambda x0, eps: x0 + eps, "eps + x0"),
])
def test_flow_matching_target_mistakes(wrong, words):
    v = _verdict(check_flow_matching_target, wrong)
    assert not v and words in v.message


@pytest.mark.parametrize("wrong, words", [
    (lambda v, x, t: (x + (1 - tc(t)) * v) / tc(t), "sign is flipped"),
    (lambda v, x, t: -(x + tc(t) * v) / (1 - tc(t)), "swapped"),
    (lambda v, x, t: -(x + (1 - tc(t)) * v) / (1 - tc(t)), "divided by 1 - t"),
    (lambda v, x, t: -(x + tc(t) * v) / tc(t), "not x + t v"),
    (lambda v, x, t: x + (1 - tc(t)) * v, "returned the noise estimate"),
    (lambda v, x, t: -(x + (1 - tc(t)) * v) / tc(t) ** 2, "t squared"),
    (lambda v, x, t: -(1 - tc(t)) * v / tc(t), "x term is missing"),
])
def test_velocity_to_score_mistakes(wrong, words):
    v = _verdict(check_velocity_to_score, wrong)
    assert not v and words in v.message


def _euler_variant(**kw):
    return lambda velocity_fn, x1, steps: _euler(velocity_fn, x1, steps, **kw)


@pytest.mark.parametrize("wrong, words", [
    (_euler_variant(sign=+1.0), "wrong sign"),
    (_euler_variant(start=0.0, stop=1.0, sign=+1.0), "noising direction"),
    (_euler_variant(start=0.0, stop=1.0), "from t = 0 up to t = 1"),
    (_euler_variant(at_end=True), "end of each step"),
    (_euler_variant(h=1.0), "you used size 1"),
    (lambda velocity_fn, x1, steps: _euler(velocity_fn, x1, steps, points=steps), "steps - 1 steps"),
])
def test_euler_sample_mistakes(wrong, words):
    v = _verdict(check_euler_sample, wrong)
    assert not v and words in v.message


def test_euler_accepts_float_times_in_the_student_code():
    def euler_float_t(velocity_fn, x1, steps):
        x = x1
        for i in range(steps):
            x = x - velocity_fn(x, 1.0 - i / steps) / steps
        return x

    assert _verdict(check_euler_sample, euler_float_t)


def test_gaussian_velocity_is_the_exact_flow_of_its_gaussian():
    """Many Euler steps of the closed-form field carry N(0, I) to N(mean, std^2 I), and the field equals the
    exact mixture velocity of a one-component mixture (score converted by the path)."""
    from cfglab import GaussianMixture

    mean, std = torch.tensor([0.7, -0.3], dtype=torch.float64), 0.4
    field = _gaussian_velocity(mean, std)
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(20000, 2, generator=g, dtype=torch.float64)
    x0 = euler_sample(field, x1, 400)
    assert torch.allclose(x0.mean(0), mean + x1.mean(0) * std, atol=1e-2)
    assert torch.allclose(x0.std(0), x1.std(0) * std, rtol=1e-2)
    mix = GaussianMixture(mean[None], std)
    x = torch.randn(50, 2, generator=g, dtype=torch.float64)
    for t in (0.1, 0.5, 0.9):
        tt = torch.full((50,), t, dtype=torch.float64)
        exact = path.convert(mix.score(x, tt, path), x, tt, "score", "velocity")
        assert torch.allclose(field(x, tt), exact, rtol=1e-10, atol=1e-10)


# -- heun_sample: judged by how close its samples land to the exact flow ------------------------------------------


def heun_sample(velocity_fn, x1, ts):
    x = x1
    for t, s in zip(ts[:-1], ts[1:]):
        v1 = velocity_fn(x, t.expand(x.shape[0]))
        v2 = velocity_fn(x + (s - t) * v1, s.expand(x.shape[0]))
        x = x + (s - t) * (v1 + v2) / 2
    return x


def _heun_variant(kind):
    def run(velocity_fn, x1, ts):
        x = x1
        for t, s in zip(ts[:-1], ts[1:]):
            tt, ss = t.expand(x.shape[0]), s.expand(x.shape[0])
            v1 = velocity_fn(x, tt)
            if kind == "euler":
                x = x + (s - t) * v1
            elif kind == "sign":
                x = x - (s - t) * (v1 + velocity_fn(x - (s - t) * v1, ss)) / 2
            elif kind == "second at t":
                x = x + (s - t) * (v1 + velocity_fn(x + (s - t) * v1, tt)) / 2
            elif kind == "second at x":
                x = x + (s - t) * (v1 + velocity_fn(x, ss)) / 2
        return x
    return run


def _midpoint(velocity_fn, x1, ts):
    """Another second-order method (explicit midpoint): a correct answer of a different kind."""
    x = x1
    for t, s in zip(ts[:-1], ts[1:]):
        h, m = s - t, ((t + s) / 2).expand(x.shape[0])
        x = x + h * velocity_fn(x + h / 2 * velocity_fn(x, t.expand(x.shape[0])), m)
    return x


def _in_sigma(velocity_fn, x1, ts):
    from cfglab import ode

    return ode(velocity_fn, x1, path, len(ts) - 1, pred="velocity", variable="sigma", spacing="uniform",
               denoise=False)


def _words(verdict):
    return " ".join(verdict.message.split())


def test_heun_reference_and_other_second_order_methods_pass():
    from cfglab.exercises.ch03 import heun_sample_reference

    for fn in (heun_sample_reference, heun_sample, _midpoint):
        v = check_heun_sample(fn, quiet=True)
        assert v and "second order" in _words(v), _words(v)


@pytest.mark.parametrize("wrong, words", [
    (_heun_variant("euler"), "as far as Euler's method does"),
    (_heun_variant("second at t"), "as far as Euler's method does"),
    (_heun_variant("sign"), "Time decreases along ts"),
    (_heun_variant("second at x"), "as far as Euler's method does"),
    (_in_sigma, "Karras' scaled variables"),
], ids=["euler", "second velocity at t", "wrong sign", "second velocity at x", "heun in sigma"])
def test_heun_mistakes_are_diagnosed_from_the_samples(wrong, words):
    v = check_heun_sample(wrong, quiet=True)
    assert not v and words in _words(v), _words(v)


def test_heun_reference_is_the_package_sampler():
    from cfglab import make, ode
    from cfglab.exercises.ch03 import heun_sample_reference

    mix = make("mixture")
    v = lambda x, t: path.convert(mix.score(x, t, path), x, t, "score", "velocity")  # noqa: E731
    x1 = torch.randn(100, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    want = ode(v, x1, path, 7, pred="velocity", variable="t", spacing="uniform", denoise=False)
    got = heun_sample_reference(v, x1, path.timesteps(7, spacing="uniform"))
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-10)
