"""Guidance without a null label (chapter 16): independent-condition guidance and time-step guidance.

Sadat et al. (2024, "No training, no problem: rethinking classifier-free guidance for diffusion models") guide a
conditional model that was never trained with label dropout. **Independent-condition guidance** (ICG) puts the
prediction for a random condition ``c~``, drawn independently of the data, where CFG puts the unconditional one:

    guided = D(x, t, c~) + w (D(x, t, c) - D(x, t, c~)),

on the argument that ``p_t(x | c~) = p_t(x)`` for a condition independent of x. A network trained on pairs
(x, c) has never seen an independent pair, though: for a class label drawn at random it returns that class's
conditional score. Averaged over the draw, the ICG branch is ``sum_c q(c) s_t(x | c)`` (:func:`expected_icg`),
the score of the *geometric* mixture ``prod_c p_t(x | c)^q(c)``, while the unconditional score is
``sum_c p_t(c | x) s_t(x | c)``, weighted by the posterior. **Time-step guidance** (TSG) uses no condition at all:
the second prediction is the same model with its time-step embedding perturbed by Gaussian noise,
``guided = D(x, t~, c) + w (D(x, t, c) - D(x, t~, c))``. Both cost two network evaluations per step, like CFG.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .. import _checks
from ..models.blocks import _c_in, _prepare
from ..models.mlp import MLP
from ..paths import PREDICTIONS
from .rules import Field, _same_shape, cfg


def icg(cond: Tensor, independent: Tensor, scale: float) -> Tensor:
    """Independent-condition guidance (Sadat et al. 2024): ``independent + scale (cond - independent)``, the CFG
    rule :func:`cfglab.cfg` with the prediction for a random independent condition in place of the unconditional
    one. For a class-conditional model this is a negative prompt (chapter 8) naming a random class."""
    return cfg(cond, independent, scale)


def tsg(cond: Tensor, perturbed: Tensor, scale: float) -> Tensor:
    """Time-step guidance (Sadat et al. 2024): ``perturbed + scale (cond - perturbed)``, the CFG rule with the
    prediction at a perturbed time-step embedding (:func:`time_perturbed`) in place of the unconditional one."""
    return cfg(cond, perturbed, scale)


def expected_icg(conds: Sequence[Tensor], weights: Any = None) -> Tensor:
    """The ICG branch averaged over the random condition: ``sum_c q(c) conds[c]`` with ``q = weights`` (uniform by
    default). With the exact conditional scores of a mixture it is the score of ``prod_c p_t(x | c)^q(c)`` (up to
    normalisation), not the unconditional score ``sum_c p_t(c | x) s_t(x | c)``: the weights are the prior's, not the
    posterior's. For Gaussian classes of one shared variance it is the score of a single Gaussian at the weighted
    mean of the class means, with the class variance."""
    conds = list(conds)
    if not conds:
        raise ValueError("conds must hold at least one prediction")
    _same_shape(**{f"conds[{i}]": c for i, c in enumerate(conds)})
    q = _weights(weights, len(conds))
    return sum((float(w) * c for w, c in zip(q, conds)), torch.zeros_like(conds[0]))


def icg_negative_scale(scale: float, num_classes: int) -> float:
    """The expected ICG rule at ``scale``, with the random class uniform over ``num_classes`` classes, equals the
    negative-prompt rule ``n + w' (c - n)`` whose negative ``n`` is the average prediction of the *other* classes,
    at ``w' = 1 + (scale - 1)(1 - 1/num_classes)``: a weaker negative prompt (for two classes, ``(1 + scale)/2``)."""
    scale = _checks.scalar("scale", scale)
    k = _checks.count("num_classes", num_classes, minimum=2)
    return 1.0 + (scale - 1.0) * (1.0 - 1.0 / k)


def random_conditions(n: int, num_classes: int, generator: torch.Generator | None = None,
                      weights: Any = None) -> Tensor:
    """n class labels drawn independently of everything else from ``weights`` (uniform by default), shape (n,)."""
    n = _checks.count("n", n)
    k = _checks.count("num_classes", num_classes)
    q = _weights(weights, k)
    return torch.multinomial(q, n, replacement=True, generator=generator)


def icg_guided(model: nn.Module, y: Any, scale: float, *, generator: torch.Generator | None = None,
               redraw: bool = True, weights: Any = None, kind: str = "score") -> Field:
    """ICG as a sampler field ``fn(x, t)``: one forward pass over ``[x, x]`` with labels ``[y, c~]``, combined by
    :func:`icg` and converted to ``kind``. The random labels ``c~`` come from ``weights`` (uniform by default) and
    ``generator``: new ones at every evaluation (``redraw=True``) or one per sample, drawn at the first evaluation
    and kept (``redraw=False``: then every call must have the batch size of the first). The model's null label is
    never used, so it works on a model trained with ``p_uncond = 0``."""
    scale = _checks.scalar("scale", scale)
    m = _checks.model("model", model, "num_classes", "path", "pred")
    kind = _checks.choice("kind", kind, PREDICTIONS)
    k = _checks.count("model.num_classes", m.num_classes)
    q = _weights(weights, k)
    if not isinstance(y, Tensor):
        _checks.labels("y", y, 1, k, torch.device("cpu"))
    kept: list[Tensor] = []

    def fn(x: Tensor, t: Tensor) -> Tensor:
        x = _checks.tensor("x", x, min_ndim=1, finite=False)
        n = x.shape[0]
        yy = _checks.labels("y", y, n, k, x.device)
        if redraw or not kept:
            kept[:] = [torch.multinomial(q, n, replacement=True, generator=generator).to(x.device)]
        elif kept[0].shape[0] != n:
            raise ValueError(f"with redraw=False every call must have the first call's batch size "
                             f"{kept[0].shape[0]}, got {n}")
        tt = _checks.times("t", t, x).expand(n)
        out = m(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([yy, kept[0]]))  # (2n, d)
        return m.path.convert(icg(out[:n], out[n:], scale), x, tt, m.pred, kind)

    return fn


def time_perturbed(model: nn.Module, x: Tensor, t: Any, y: Any, noise_scale: float, z: Tensor) -> Tensor:
    """The prediction of a :class:`cfglab.MLP` with its time-step embedding ``e(t)`` (shape (n, width)) replaced by
    ``e(t) + noise_scale * rms(e(t)) * z``, the perturbation of TSG (Sadat et al. 2024); ``rms`` is per sample, so
    ``noise_scale`` is relative to the embedding's own size (the paper lets the size of the perturbation depend on
    the noise level; a constant is the simplest case). ``z`` (n, width) is the Gaussian noise; a zero
    ``noise_scale`` gives ``model(x, t, y)`` exactly."""
    if not isinstance(model, MLP):
        raise TypeError(f"model must be a cfglab.MLP (TSG perturbs its time embedding), got {type(model).__name__}")
    noise_scale = _checks.scalar("noise_scale", noise_scale, nonnegative=True)
    x, tt = _prepare(model, x, t)
    width = model.label.embedding_dim
    z = _checks.tensor("z", z, ndim=2)
    if z.shape != (x.shape[0], width):
        raise ValueError(f"z must have shape ({x.shape[0]}, {width}), got {tuple(z.shape)}")
    yy = _checks.labels("y", model.null_label if y is None else y, x.shape[0], model.num_classes, x.device,
                        allow_null=True)
    e = model.time(tt)  # (n, width)
    e = e + noise_scale * e.pow(2).mean(1, keepdim=True).sqrt() * z.to(e)
    out: Tensor = model.trunk(x * _c_in(model.path, x, tt), e + model.label(yy))
    return out


def tsg_guided(model: nn.Module, y: Any, scale: float, noise_scale: float = 1.0, *,
               generator: torch.Generator | None = None, kind: str = "score") -> Field:
    """TSG as a sampler field ``fn(x, t)``: one forward pass over ``[x, x]``, the second half with its time-step
    embedding perturbed by fresh Gaussian noise at every evaluation (:func:`time_perturbed`), combined by
    :func:`tsg` and converted to ``kind``. ``y`` may be the null label or None (an unconditional model)."""
    scale = _checks.scalar("scale", scale)
    noise_scale = _checks.scalar("noise_scale", noise_scale, nonnegative=True)
    if not isinstance(model, MLP):
        raise TypeError(f"model must be a cfglab.MLP (TSG perturbs its time embedding), got {type(model).__name__}")
    kind = _checks.choice("kind", kind, PREDICTIONS)
    width = model.label.embedding_dim
    label = model.null_label if y is None else y
    if not isinstance(label, Tensor):
        _checks.labels("y", label, 1, model.num_classes, torch.device("cpu"), allow_null=True)

    def fn(x: Tensor, t: Tensor) -> Tensor:
        x = _checks.tensor("x", x, min_ndim=1, finite=False)
        n = x.shape[0]
        yy = _checks.labels("y", label, n, model.num_classes, x.device, allow_null=True)
        tt = _checks.times("t", t, x).expand(n)
        z = torch.randn(n, width, generator=generator, dtype=x.dtype).to(x.device)
        z2 = torch.cat([torch.zeros_like(z), z])  # the first half unperturbed
        out = time_perturbed(model, torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([yy, yy]), noise_scale, z2)
        return model.path.convert(tsg(out[:n], out[n:], scale), x, tt, model.pred, kind)

    return fn


def _weights(weights: Any, k: int) -> Tensor:
    """Probabilities of the k conditions as a float64 (k,) tensor: uniform for None, normalised otherwise."""
    if weights is None:
        return torch.full((k,), 1.0 / k, dtype=torch.float64)
    q = torch.as_tensor(weights, dtype=torch.float64)
    if q.shape != (k,) or not torch.isfinite(q).all() or (q < 0).any() or q.sum() <= 0:
        raise ValueError(f"weights must be {k} non-negative numbers with a positive sum, got {q.tolist()}")
    return q / q.sum()
