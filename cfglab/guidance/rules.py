"""The combination rules of guidance: pure functions on predictions (tensors) or on fields ``fn(x, t)``.

CFG in the course's convention and its mapping to Ho & Salimans (2022, eq. 6), classifier guidance in score space
(Dhariwal & Nichol 2021, alg. 1), and the rules on several predictions of chapter 8: composable diffusion (Liu et
al. 2022) and Perp-Neg (Armandpour et al. 2023), with the per-sample projection that Perp-Neg shares with APG
(Sadat et al. 2024, eq. 8).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .. import _checks

Field = Callable[[Tensor, Tensor], Tensor]


def scale_from_paper(w: float) -> float:
    """Our scale for Ho & Salimans' guidance weight w in ``(1 + w) cond - w uncond``: ``1 + w``."""
    return 1.0 + _checks.scalar("w", w)


def scale_to_paper(scale: float) -> float:
    """Ho & Salimans' w for our scale: ``scale - 1``."""
    return _checks.scalar("scale", scale) - 1.0


def cfg(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
    """Classifier-free guidance, ``uncond + scale * (cond - uncond)`` (Ho & Salimans 2022, eq. 6 with
    scale = 1 + w). With a negative prompt, pass the negative prediction as ``uncond``."""
    scale = _checks.scalar("scale", scale)
    _checks.tensor("cond", cond)
    _checks.tensor("uncond", uncond)
    if cond.shape != uncond.shape:
        raise ValueError(f"cond and uncond must have one shape, got {tuple(cond.shape)} and {tuple(uncond.shape)}")
    _checks.same_device(cond=cond, uncond=uncond)
    _checks.same_dtype(cond=cond, uncond=uncond)
    # lerp is exact at both ends: scale 0 returns uncond and scale 1 returns cond bit for bit.
    return torch.lerp(uncond, cond, scale)


def classifier_guidance(score: Tensor, grad_log_p: Tensor, scale: float) -> Tensor:
    """Classifier guidance in score space, ``score + scale * grad_x log p_t(y | x)`` (Dhariwal & Nichol 2021,
    alg. 1; sec. 4.2 for eps: subtract ``sigma * scale * grad``). Scale 1 is the exact conditional score when the
    classifier is exact; CFG at scale w equals this rule at scale w - 1 on top of the *conditional* score."""
    scale = _checks.scalar("scale", scale)
    _checks.tensor("score", score)
    _checks.tensor("grad_log_p", grad_log_p)
    if score.shape != grad_log_p.shape:
        raise ValueError(f"score and grad_log_p must have one shape, got {tuple(score.shape)} and "
                         f"{tuple(grad_log_p.shape)}")
    _checks.same_device(score=score, grad_log_p=grad_log_p)
    return score + scale * grad_log_p


def combine(cond_fn: Field, uncond_fn: Field, scale: float) -> Field:
    """The CFG rule applied to two fields ``fn(x, t)`` (for example the exact scores of a mixture)."""
    scale = _checks.scalar("scale", scale)
    _checks.function("cond_fn", cond_fn)
    _checks.function("uncond_fn", uncond_fn)
    return lambda x, t: cfg(cond_fn(x, t), uncond_fn(x, t), scale)


# -- Rules on several predictions: shapes (n, ...), worked per sample over the non-batch dimensions ----------------
# (shared with the taming rules of chapter 9, :mod:`cfglab.guidance.taming`)


def _per_sample(x: Tensor) -> list[int]:
    return list(range(1, x.ndim))


def _same_shape(**tensors: Tensor) -> None:
    shapes = {k: tuple(_checks.tensor(k, v, min_ndim=1).shape) for k, v in tensors.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError("predictions must have one shape, got " + ", ".join(f"{k} {s}" for k, s in shapes.items()))


def parallel_orthogonal(v: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
    """Split ``v`` per sample into ``par = (<v, ref> / |ref|^2) ref`` and ``orth = v - par`` (APG's projection,
    Sadat et al. 2024, eq. 8). A zero ``ref`` gives ``par = 0``."""
    _same_shape(v=v, ref=ref)
    dims = _per_sample(v)
    nrm2 = (ref * ref).sum(dim=dims, keepdim=True)
    coef = (v * ref).sum(dim=dims, keepdim=True) / torch.where(nrm2 > 0, nrm2, torch.ones_like(nrm2))
    par = coef * ref
    return par, v - par


# -- Negative prompts and composition (chapter 8): rules on several predictions -----------------------------------


def compose(uncond: Tensor, conds: Sequence[Tensor], weights: Sequence[float]) -> Tensor:
    """Composable diffusion (Liu et al. 2022, "Compositional visual generation with composable diffusion models"):
    ``uncond + sum_i weights[i] * (conds[i] - uncond)``.

    Positive weights are their conjunction (AND): with exact scores and unit weights the result is the score of
    ``p_t(x) prod_i p_t(c_i | x)``, which equals ``p_t(x | c_1, ..., c_m)`` when the concepts are conditionally
    independent given x_t. A negative weight is their negation (NOT): ``-w (cond_n - uncond)`` pushes away from
    concept n. One term with weight w is plain CFG, :func:`cfg`. The weights are not normalised (their sum is the
    total guidance); the rule is affine with coefficients summing to one, so it gives the same field on eps, x0,
    score or velocity predictions."""
    uncond = _checks.tensor("uncond", uncond)
    conds, weights = list(conds), [_checks.scalar("weight", w) for w in weights]
    if len(conds) != len(weights) or not conds:
        raise ValueError(f"need one weight per condition and at least one, got {len(conds)} conditions and "
                         f"{len(weights)} weights")
    out = uncond.clone()
    for i, (c, w) in enumerate(zip(conds, weights)):
        _same_shape(uncond=uncond, **{f"conds[{i}]": c})
        out = out + w * (c - uncond)
    return out


def perp_neg(uncond: Tensor, pos: Tensor, neg: Tensor, scale: float, neg_scale: float = 1.0) -> Tensor:
    """Perp-Neg (Armandpour et al. 2023, "Re-imagine the negative prompt algorithm", alg. 1 and its official code):
    ``uncond + scale * (d_pos - neg_scale * perp(d_neg; d_pos))`` with ``d_pos = pos - uncond``,
    ``d_neg = neg - uncond`` and ``perp(a; b) = a - (<a, b> / |b|^2) b``, the part of the negative direction
    orthogonal to the positive one, per sample over the non-batch dimensions (:func:`parallel_orthogonal`).

    The negative can no longer cancel what the positive asks for: a negative equal to the positive does nothing.
    ``neg_scale = 0`` is plain CFG. The paper's algorithm multiplies the whole bracket by the guidance scale;
    written as ``uncond + scale * d_pos - w_neg * perp(...)`` it is the same rule with ``w_neg = scale *
    neg_scale``. Because the projection is per sample and homogeneous, the rule commutes with the conversions
    between eps, x0, score and velocity (a per-sample affine map of the predictions)."""
    scale = _checks.scalar("scale", scale)
    neg_scale = _checks.scalar("neg_scale", neg_scale)
    _same_shape(uncond=uncond, pos=pos, neg=neg)
    d_pos = pos - uncond
    _, orth = parallel_orthogonal(neg - uncond, d_pos)
    return uncond + scale * (d_pos - neg_scale * orth)
