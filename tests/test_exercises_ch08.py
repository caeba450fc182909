"""Chapter 8 checkers: the reference passes, every listed mistake gets its own diagnosis. (Every checker's answer to
a stub is tested once, in tests/test_student.py.)"""

import pytest
import torch

from cfglab.exercises import check_compose, check_negative_cfg, check_perp_component, check_perp_neg

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
