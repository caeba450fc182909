"""Checks for chapter 8, negative prompts and composition: the negative-prompt rule, an experiment (the scale at
which a negative prompt removes an attribute to a target fraction, judged with the toy's exact posterior),
composable diffusion's weighted sum, the per-sample perpendicular component and the Perp-Neg combination. Every
reference comes from :mod:`cfglab.guidance`; the known mistakes are the ones that appear in real code (the null kept
where the negative belongs, the paper's off-by-one scale, a projection over the whole batch)."""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real
from typing import Any, cast

import torch
from torch import Tensor

from ..data import AttributeToy, make_attributes
from ..guidance import cfg, compose, parallel_orthogonal, perp_neg
from ..paths import Linear, Path
from ..samplers import ode
from ._core import Verdict, _describe, _not_written, _raised_by_a_raise_statement, check_function


def _preds(g: torch.Generator, k: int, shape: tuple[int, ...] | None = None) -> list[Tensor]:
    if shape is None:
        n, d = int(torch.randint(3, 9, (1,), generator=g)), int(torch.randint(2, 5, (1,), generator=g))
        shape = (n, d)
    return [torch.randn(*shape, generator=g, dtype=torch.float64) for _ in range(k)]


def _scale(g: torch.Generator, lo: float = 1.5, hi: float = 7.5) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


# -- (a) the negative prompt -----------------------------------------------------------------------------------------


def _negative_inputs(g: torch.Generator) -> dict[str, Any]:
    cond, uncond, neg = _preds(g, 3)
    return {"cond": cond, "uncond": uncond, "neg": neg, "w": _scale(g)}


def _ref_negative(cond: Tensor, uncond: Tensor, neg: Tensor, w: float) -> Tensor:
    return cfg(cond, neg, w)


def check_negative_cfg(student: Callable[..., Any]) -> Verdict:
    """``negative_cfg(cond, uncond, neg, w)``: CFG with the negative prediction in place of the unconditional one,
    ``neg + w (cond - neg)``; ``uncond`` is not used."""
    mistakes = [
        ("you kept the null (unconditional) prediction: uncond + w (cond - uncond) is plain CFG and ignores the "
         "negative prompt. A negative prompt *replaces* the unconditional prediction: neg + w (cond - neg).",
         lambda cond, uncond, neg, w: cfg(cond, uncond, w)),
        ("the sign is flipped: you step from cond towards the negative, cond + w (neg - cond). Start from neg and "
         "step towards cond: neg + w (cond - neg).",
         lambda cond, uncond, neg, w: cfg(neg, cond, w)),
        ("you used Ho & Salimans' convention (1 + w) cond - w neg. In the course's convention the scale multiplies "
         "(cond - neg) and is added to neg: your answer is the course's rule at scale w + 1 (off by one).",
         lambda cond, uncond, neg, w: (1 + w) * cond - w * neg),
        ("you started from the unconditional prediction: uncond + w (cond - neg) = uncond + w (cond - uncond) - "
         "w (neg - uncond) is composable diffusion's NOT, a different rule (it keeps the unconditional prediction "
         "as the base point and subtracts a second guidance term). The negative prompt of Stable Diffusion "
         "pipelines is the CFG rule with neg in place of uncond: neg + w (cond - neg).",
         lambda cond, uncond, neg, w: compose(uncond, [cond, neg], [w, -w])),
    ]
    return check_function("negative_cfg", student, _ref_negative, _negative_inputs, mistakes=mistakes)


# -- (a') the scale at which a negative prompt removes an attribute to a target fraction ------------------------------

SCALE_SAMPLES, SCALE_STEPS, SCALE_TOL = 300, 30, 0.01
SCALE_TASK = ("circle", "red", 0.1)   # positive, negative, target mean p(negative | x)


def _negative_samples(toy: AttributeToy, path: Path, pos: int, neg: int, w: float, x1: Tensor,
                      rule: str = "negative") -> Tensor:
    """Samples of the probability-flow ODE (``SCALE_STEPS`` Heun steps from x1) with the exact concept scores:
    the negative prompt ``n + w (c - n)``, or composable NOT ``u + (c - u) - w (n - u)`` (``rule="not"``)."""
    m = toy.concepts

    def field(x: Tensor, t: Tensor) -> Tensor:
        c, n = m.score(x, t, path, pos), m.score(x, t, path, neg)
        return cfg(c, n, w) if rule == "negative" else compose(m.score(x, t, path), [c, n], [1.0, -w])

    with torch.no_grad():
        return cast(Tensor, ode(field, x1, path, steps=SCALE_STEPS))


def _unwanted(toy: AttributeToy, path: Path, pos: int, neg: int, w: float, x1: Tensor, rule: str = "negative"
              ) -> float:
    return float(toy.probability(_negative_samples(toy, path, pos, neg, w, x1, rule), neg).mean())


def _negative_scale_for(toy: AttributeToy, path: Path, pos: int, neg: int, target: float, x1: Tensor) -> float:
    """Reference: bisection on [1, 8] for the negative-prompt scale w at which the mean exact p(neg | x) of the
    samples equals ``target`` (it falls as w grows from 1, where it is the share of neg among pos)."""
    lo, hi = 1.0, 8.0
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        u = _unwanted(toy, path, pos, neg, mid, x1)
        if abs(u - target) < 0.002 or hi - lo < 1e-3:
            return mid
        lo, hi = (mid, hi) if u > target else (lo, mid)
    return 0.5 * (lo + hi)


def check_negative_scale_for(student: Callable[..., Any]) -> Verdict:
    """``negative_scale_for(toy, path, pos, neg, target, x1)``: the scale w >= 1 at which "pos" with the negative
    prompt "neg" (exact scores, ``cl.ode`` with 30 steps from x1) leaves a mean exact ``p(neg | x)`` of ``target``.
    The checker calls it on the ring toy ("circle", negative "red", target 0.1, its own 300 starting points),
    samples at the returned scale the same way and accepts the scale if the unwanted fraction is within 0.01 of the
    target; known mistakes (the negative weight w - 1 instead of the scale, composable NOT's weight) are
    recognised from the fraction they leave."""
    name = "negative_scale_for"

    def verdict(passed: bool, message: str) -> Verdict:
        v = Verdict(passed, message, name=name, student=student, reference=_negative_scale_for)
        print(v)
        return v

    if not callable(student):
        return verdict(False, f"{name}: expected a function, got {_describe(student)}.")
    toy, path = make_attributes("ring"), Linear()
    pos, neg, target = toy.concept(SCALE_TASK[0]), toy.concept(SCALE_TASK[1]), SCALE_TASK[2]
    x1 = path.prior(SCALE_SAMPLES, 2, generator=torch.Generator().manual_seed(20260808), dtype=torch.float64)
    try:
        got = student(toy=toy, path=path, pos=pos, neg=neg, target=target, x1=x1.clone())
    except NotImplementedError as err:
        if _raised_by_a_raise_statement(err):
            return verdict(False, _not_written(name, err))
        return verdict(False, f"{name} raised NotImplementedError: {err}.")
    except Exception as err:  # report, never re-raise
        return verdict(False, f"{name} raised {type(err).__name__}: {err} (called with the ring toy, "
                              f"pos={pos}, neg={neg}, target={target}, x1 of shape {tuple(x1.shape)}).")
    is_number = isinstance(got, Real) or (isinstance(got, Tensor) and got.numel() == 1)
    if not is_number or isinstance(got, bool):
        return verdict(False, f"{name} should return the scale w as a float, got {_describe(got)}.")
    w = float(got)
    if not math.isfinite(w):
        return verdict(False, f"{name} returned {w}; return a finite scale w >= 1.")
    not_message = (f"{name}: {w:.3f} is the weight at which composable NOT, c - w (n - u), reaches the target. "
                   "The negative prompt replaces the unconditional prediction: n + w (c - n).")
    if w < 1:
        if w >= 0 and abs(_unwanted(toy, path, pos, neg, w, x1, rule="not") - target) <= SCALE_TOL:
            return verdict(False, not_message)
        return verdict(False, f"{name} returned w = {w:.3g} < 1. Below scale 1 a negative prompt attracts: the "
                              "unwanted fraction is larger than without it. Search w >= 1.")
    u = _unwanted(toy, path, pos, neg, w, x1)
    if abs(u - target) <= SCALE_TOL:
        x = _negative_samples(toy, path, pos, neg, w, x1)
        near = float(toy.near(x, toy.mask([pos], [neg])).double().mean())
        return verdict(True, f"{name}: at w = {w:.3f}, mean p(red | x) {u:.3f} (target {target:g}); "
                             f"{near:.0%} near a wanted object.")
    if abs(_unwanted(toy, path, pos, neg, w + 1, x1) - target) <= SCALE_TOL:
        return verdict(False, f"{name}: your value is one less than the scale: at w = {w:.3f} the unwanted "
                              f"fraction is {u:.3f}, and it reaches the target at w + 1. Did you return the "
                              "negative weight w - 1, or use Ho & Salimans' (1 + w) c - w n? The course's rule is "
                              "n + w (c - n).")
    if abs(_unwanted(toy, path, pos, neg, w, x1, rule="not") - target) <= SCALE_TOL:
        return verdict(False, not_message)
    side = ("too small: the unwanted fraction falls as w grows, so search larger scales" if u > target else
            "too large: the unwanted fraction falls as w grows, so the scale you want is smaller")
    return verdict(False, f"{name}: at w = {w:.3f} the negative prompt leaves a mean p(red | x) of {u:.3f}, not "
                          f"{target:g} +/- {SCALE_TOL:g}; your scale is {side}. Sample with cl.ode (30 steps) "
                          "from the given x1 and measure with toy.probability.")


# -- (b) composable diffusion -----------------------------------------------------------------------------------------


def _compose_inputs(g: torch.Generator) -> dict[str, Any]:
    m = int(torch.randint(2, 5, (1,), generator=g))
    uncond, *conds = _preds(g, m + 1)
    weights = [float(v) for v in (3.0 * torch.rand(m, generator=g, dtype=torch.float64) + 0.5)]
    weights[-1] = -weights[-1]                                   # one negated concept (NOT)
    if abs(sum(weights)) < 0.5:                                   # keep the normalised variant well defined
        weights[0] += 1.0
    return {"uncond": uncond, "conds": conds, "weights": weights}


def _ref_compose(uncond: Tensor, conds: list[Tensor], weights: list[float]) -> Tensor:
    return compose(uncond, conds, weights)


def check_compose(student: Callable[..., Any]) -> Verdict:
    """``compose(uncond, conds, weights)`` = ``uncond + sum_i weights[i] (conds[i] - uncond)`` (Liu et al. 2022)."""
    mistakes = [
        ("you forgot to subtract uncond in each term: uncond + sum_i w_i cond_i adds the predictions themselves. "
         "Each concept contributes its *difference* from the unconditional prediction, w_i (cond_i - uncond).",
         lambda uncond, conds, weights: uncond + sum(w * c for c, w in zip(conds, weights))),
        ("you normalised the weights (divided by their sum). Composable diffusion does not: sum_i w_i is the total "
         "guidance, and with a negated concept the sum can even be zero.",
         lambda uncond, conds, weights: compose(uncond, conds, [w / sum(weights) for w in weights])),
        ("you returned only the weighted sum of the predictions, sum_i w_i cond_i, without the unconditional base "
         "point: uncond + sum_i w_i (cond_i - uncond).",
         lambda uncond, conds, weights: sum(w * c for c, w in zip(conds, weights))),
        ("you returned only the guidance terms sum_i w_i (cond_i - uncond); add them to uncond.",
         lambda uncond, conds, weights: compose(uncond, conds, weights) - uncond),
        ("the signs of the terms are flipped: uncond - sum_i w_i (cond_i - uncond) guides away from every concept.",
         lambda uncond, conds, weights: compose(uncond, conds, [-w for w in weights])),
        ("you dropped the sign of the negative weights (used |w_i|): a negative weight is how NOT is written.",
         lambda uncond, conds, weights: compose(uncond, conds, [abs(w) for w in weights])),
    ]
    return check_function("compose", student, _ref_compose, _compose_inputs, mistakes=mistakes)


# -- (c) the perpendicular component and Perp-Neg ---------------------------------------------------------------------


def _perp_inputs(g: torch.Generator) -> dict[str, Any]:
    n = int(torch.randint(3, 7, (1,), generator=g))
    shape = (n, 3, 2) if bool(torch.rand((), generator=g) < 0.5) else (n, 2)
    a, b = _preds(g, 2, shape)
    return {"a": a, "b": b}


def _perp_inputs_3d(g: torch.Generator) -> dict[str, Any]:
    n = int(torch.randint(3, 7, (1,), generator=g))
    a, b = _preds(g, 2, (n, 3, 2))
    return {"a": a, "b": b}


def _ref_perp(a: Tensor, b: Tensor) -> Tensor:
    return parallel_orthogonal(a, b)[1]


def _perp_last_dim(a: Tensor, b: Tensor) -> Tensor:
    return a - (a * b).sum(-1, keepdim=True) / (b * b).sum(-1, keepdim=True) * b


def _perp_global(a: Tensor, b: Tensor) -> Tensor:
    return a - (a * b).sum() / (b * b).sum() * b


def _perp_mistakes() -> list[tuple[str, Callable[..., Any]]]:
    return [
        ("you projected onto the wrong vector: this is the part of b orthogonal to a. perp(a; b) removes from a its "
         "component along b: a - (<a, b> / |b|^2) b.",
         lambda a, b: parallel_orthogonal(b, a)[1]),
        ("the dot products are taken over the whole batch (one number for all samples): each sample needs its own "
         "projection, sums over every dimension except the first. Some Perp-Neg implementations do this with "
         "torch.mul(a, b).sum() and are only right for a batch of one.",
         _perp_global),
        ("the dot products are taken over the last dimension only: for inputs of shape (n, 3, 2) each sample is "
         "the whole (3, 2) block, so sum over all dimensions except the first.",
         _perp_last_dim),
        ("you returned the parallel part (<a, b> / |b|^2) b; the perpendicular part is a minus it.",
         lambda a, b: parallel_orthogonal(a, b)[0]),
        ("the coefficient is divided by |b| instead of |b|^2: the projection of a on b is (<a, b> / |b|^2) b.",
         lambda a, b: a - (a * b).flatten(1).sum(1).reshape(-1, *[1] * (a.ndim - 1))
         / (b * b).flatten(1).sum(1).sqrt().reshape(-1, *[1] * (a.ndim - 1)) * b),
    ]


def check_perp_component(student: Callable[..., Any]) -> Verdict:
    """``perp_component(a, b)`` = ``a - (<a, b> / |b|^2) b`` per sample (dot products over all non-batch dims)."""
    verdict = check_function("perp_component", student, _ref_perp, _perp_inputs, mistakes=_perp_mistakes(),
                             quiet=True)
    if verdict:  # make sure (n, 3, 2) inputs were seen: the last-dimension mistake only shows there
        verdict = check_function("perp_component", student, _ref_perp, _perp_inputs_3d, mistakes=_perp_mistakes(),
                                 quiet=True, seed=7)
    print(verdict)
    return verdict


def _perp_neg_inputs(g: torch.Generator) -> dict[str, Any]:
    uncond, pos, neg = _preds(g, 3)
    return {"uncond": uncond, "pos": pos, "neg": neg, "w": _scale(g), "neg_scale": _scale(g, 0.5, 2.0)}


def _ref_perp_neg(uncond: Tensor, pos: Tensor, neg: Tensor, w: float, neg_scale: float) -> Tensor:
    return perp_neg(uncond, pos, neg, w, neg_scale)


def check_perp_neg(student: Callable[..., Any]) -> Verdict:
    """``perp_neg_guidance(uncond, pos, neg, w, neg_scale)`` = ``uncond + w (d_pos - neg_scale perp(d_neg; d_pos))``
    (Armandpour et al. 2023, alg. 1) with ``d = prediction - uncond``."""

    def with_perp(fn: Callable[[Tensor, Tensor], Tensor]) -> Callable[..., Tensor]:
        return lambda uncond, pos, neg, w, neg_scale: uncond + w * (
            (pos - uncond) - neg_scale * fn(neg - uncond, pos - uncond))

    mistakes = [
        ("the projection uses the raw predictions, perp(neg; pos), instead of the guidance directions "
         "perp(neg - uncond; pos - uncond). Perp-Neg removes from the negative *direction* its component along the "
         "positive *direction*; both are differences from the unconditional prediction.",
         lambda uncond, pos, neg, w, neg_scale: uncond + w * ((pos - uncond) - neg_scale * _ref_perp(neg, pos))),
        ("the negative term is outside the guidance scale: uncond + w d_pos - neg_scale perp(...). The paper's "
         "algorithm multiplies the whole bracket by w: uncond + w (d_pos - neg_scale perp(d_neg; d_pos)).",
         lambda uncond, pos, neg, w, neg_scale: uncond + w * (pos - uncond)
         - neg_scale * _ref_perp(neg - uncond, pos - uncond)),
        ("the negative term has the wrong sign: Perp-Neg *subtracts* the perpendicular part of the negative "
         "direction.",
         lambda uncond, pos, neg, w, neg_scale: uncond + w * ((pos - uncond)
                                                             + neg_scale * _ref_perp(neg - uncond, pos - uncond))),
        ("you subtracted the whole negative direction (neg - uncond), not its part perpendicular to the positive "
         "direction: that is composable diffusion's NOT, which also cancels what the two prompts share.",
         lambda uncond, pos, neg, w, neg_scale: uncond + w * ((pos - uncond) - neg_scale * (neg - uncond))),
        ("the projection is onto the wrong vector: you took the part of d_pos orthogonal to d_neg.",
         with_perp(lambda a, b: parallel_orthogonal(b, a)[1])),
        ("the dot products are taken over the whole batch instead of per sample.",
         with_perp(_perp_global)),
    ]
    return check_function("perp_neg_guidance", student, _ref_perp_neg, _perp_neg_inputs, mistakes=mistakes)
