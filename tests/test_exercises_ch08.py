"""Chapter 8 checkers: the reference passes, every listed mistake gets its own diagnosis. (Every checker's answer to
a stub is tested once, in tests/test_student.py.)"""

import functools

import pytest
import torch

import cfglab as cl
from cfglab.exercises import (
    ch08,
    check_compose,
    check_negative_cfg,
    check_negative_scale_for,
    check_perp_component,
    check_perp_neg,
)

# -- (a) negative prompt ----------------------------------------------------------------------------------------------

def test_negative_cfg_reference_passes():
    assert check_negative_cfg(lambda cond, uncond, neg, w: neg + w * (cond - neg))


@pytest.mark.parametrize("wrong, phrase", [
    (lambda cond, uncond, neg, w: uncond + w * (cond - uncond), "kept the null"),
    (lambda cond, uncond, neg, w: cond + w * (neg - cond), "sign is flipped"),
    (lambda cond, uncond, neg, w: (1 + w) * cond - w * neg, "off by one"),
    (lambda cond, uncond, neg, w: uncond + w * (cond - uncond) - w * (neg - uncond), "composable diffusion's NOT"),
    (lambda cond, uncond, neg, w: uncond + w * (cond - neg), "started from the unconditional"),
])
def test_negative_cfg_mistakes(wrong, phrase):
    v = check_negative_cfg(wrong)
    assert not v and phrase in v.message


# -- (a') the scale that removes an attribute to a target (an experiment) -----------------------------------------

def negative_scale_for(toy, path, pos, neg, target, x1, rule="negative", tol=0.002):
    """Written here from the exercise text: bisection on the scale, sampling with the exact concept scores."""
    m = toy.concepts

    def unwanted(w):
        def field(x, t):
            c, n = m.score(x, t, path, pos), m.score(x, t, path, neg)
            if rule == "paper":
                return (1 + w) * c - w * n
            if rule == "not":
                return c - w * (n - m.score(x, t, path))
            if rule == "plain":
                return m.score(x, t, path) + w * (c - m.score(x, t, path))
            return n + w * (c - n)
        with torch.no_grad():
            x = cl.ode(field, x1, path, steps=30)
        return toy.probability(x, neg).mean().item()

    lo, hi = (0.0 if rule in ("paper", "not") else 1.0), 8.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        u = unwanted(mid)
        if abs(u - target) < tol or hi - lo < 1e-4:
            return mid
        lo, hi = (mid, hi) if u > target else (lo, mid)
    return mid


@pytest.fixture(autouse=True)
def _one_thread():
    # the experiment checker samples a few dozen ODEs: on a shared machine one thread is much faster
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def reference_scale():
    toy, path = cl.data.make_attributes("ring"), cl.Linear()
    x1 = path.prior(ch08.SCALE_SAMPLES, 2, generator=torch.Generator().manual_seed(20260808), dtype=torch.float64)
    return ch08._negative_scale_for(toy, path, toy.concept("circle"), toy.concept("red"), 0.1, x1)


def test_negative_scale_for_reference_and_an_independent_solution_pass():
    assert check_negative_scale_for(ch08._negative_scale_for)
    assert check_negative_scale_for(negative_scale_for)


def test_negative_scale_for_reference_reaches_the_target_on_fresh_noise():
    # the scale found on the checker's 500 points removes red to the target on an independent draw too
    toy, path = cl.data.make_attributes("ring"), cl.Linear()
    x1 = path.prior(2000, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    u = ch08._unwanted(toy, path, toy.concept("circle"), toy.concept("red"), reference_scale(), x1)
    assert abs(u - 0.1) < 5 * 0.3 / 2000**0.5


@pytest.mark.parametrize("wrong, phrase", [
    (lambda toy, path, pos, neg, target, x1: reference_scale() - 1.0, "one less than the scale"),
    (functools.partial(negative_scale_for, rule="paper"), "one less than the scale"),
    (functools.partial(negative_scale_for, rule="not"), "composable NOT"),
    (lambda toy, path, pos, neg, target, x1: 1.5, "too small"),
    (lambda toy, path, pos, neg, target, x1: 6.0, "too large"),
    (lambda toy, path, pos, neg, target, x1: 0.5, "Below scale 1"),
    (lambda toy, path, pos, neg, target, x1: "2", "as a float"),
    (lambda toy, path, pos, neg, target, x1: [2.0], "as a float"),
    (lambda toy, path, pos, neg, target, x1: float("nan"), "finite scale"),
    (lambda toy, path, pos, neg, target, x1: 1 / 0, "ZeroDivisionError"),
])
def test_negative_scale_for_mistakes_are_diagnosed(wrong, phrase):
    v = check_negative_scale_for(wrong)
    assert not v and phrase in v.message, v.message


# -- (b) compose ------------------------------------------------------------------------------------------------------

def reference_compose(uncond, conds, weights):
    out = uncond
    for c, w in zip(conds, weights):
        out = out + w * (c - uncond)
    return out


def test_compose_reference_passes():
    assert check_compose(reference_compose)


@pytest.mark.parametrize("wrong, phrase", [
    (lambda uncond, conds, weights: uncond + sum(w * c for c, w in zip(conds, weights)), "forgot to subtract"),
    (lambda uncond, conds, weights: reference_compose(uncond, conds, [w / sum(weights) for w in weights]),
     "normalised"),
    (lambda uncond, conds, weights: sum(w * c for c, w in zip(conds, weights)), "without the unconditional"),
    (lambda uncond, conds, weights: reference_compose(uncond, conds, weights) - uncond, "only the guidance terms"),
    (lambda uncond, conds, weights: reference_compose(uncond, conds, [-w for w in weights]), "flipped"),
    (lambda uncond, conds, weights: reference_compose(uncond, conds, [abs(w) for w in weights]), "negative weight"),
])
def test_compose_mistakes(wrong, phrase):
    v = check_compose(wrong)
    assert not v and phrase in v.message


# -- (c) perpendicular component and Perp-Neg -------------------------------------------------------------------------

def perp(a, b):
    dims = list(range(1, a.ndim))
    return a - (a * b).sum(dims, keepdim=True) / (b * b).sum(dims, keepdim=True) * b


def test_perp_component_reference_passes():
    assert check_perp_component(perp)


@pytest.mark.parametrize("wrong, phrase", [
    (lambda a, b: perp(b, a), "wrong vector"),
    (lambda a, b: a - (a * b).sum() / (b * b).sum() * b, "whole batch"),
    (lambda a, b: a - (a * b).sum(-1, keepdim=True) / (b * b).sum(-1, keepdim=True) * b, "last dimension"),
    (lambda a, b: a - perp(a, b), "parallel part"),
    (lambda a, b: a - (a * b).sum(list(range(1, a.ndim)), keepdim=True)
     / (b * b).sum(list(range(1, a.ndim)), keepdim=True).sqrt() * b, "|b|^2"),
])
def test_perp_component_mistakes(wrong, phrase):
    v = check_perp_component(wrong)
    assert not v and phrase in v.message


def reference_perp_neg(uncond, pos, neg, w, neg_scale):
    return uncond + w * ((pos - uncond) - neg_scale * perp(neg - uncond, pos - uncond))


def test_perp_neg_reference_passes():
    assert check_perp_neg(reference_perp_neg)


def _pn(direction, sign=-1.0, outside=False):
    """uncond + w (d_pos + sign * neg_scale * direction(uncond, pos, neg)), or the negative term outside the scale."""
    def fn(uncond, pos, neg, w, neg_scale):
        term = sign * neg_scale * direction(uncond, pos, neg)
        return uncond + w * (pos - uncond) + term if outside else uncond + w * ((pos - uncond) + term)
    return fn


def _global_perp(a, b):
    return a - (a * b).sum() / (b * b).sum() * b


@pytest.mark.parametrize("wrong, phrase", [
    (_pn(lambda u, p, n: perp(n, p)), "raw predictions"),
    (_pn(lambda u, p, n: perp(n - u, p - u), outside=True), "outside the guidance scale"),
    (_pn(lambda u, p, n: perp(n - u, p - u), sign=1.0), "wrong sign"),
    (_pn(lambda u, p, n: n - u), "NOT"),
    (_pn(lambda u, p, n: perp(p - u, n - u)), "wrong vector"),
    (_pn(lambda u, p, n: _global_perp(n - u, p - u)), "whole batch"),
])
def test_perp_neg_mistakes(wrong, phrase):
    v = check_perp_neg(wrong)
    assert not v and phrase in v.message


def test_checkers_use_float64_inputs():
    seen = {}

    def spy(cond, uncond, neg, w):
        seen["dtype"] = cond.dtype
        return neg + w * (cond - neg)

    assert check_negative_cfg(spy) and seen["dtype"] == torch.float64
