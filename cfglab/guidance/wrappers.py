"""Wrappers that turn a conditional model into a guided sampler field ``fn(x, t)``.

The batched CFG wrapper :func:`guided` (one forward pass over ``[x, x]``, Ho & Salimans 2022), :func:`predictions`
and :func:`guided_rule` to sample with any rule in any space (chapter 9), classifier guidance by autograd (Dhariwal
& Nichol 2021, alg. 1-2), autoguidance (Karras et al. 2024, eq. 2) and :func:`label_predictions` for several
prompts at once (negative prompts and composition, chapter 8).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .. import _checks
from ..paths import PREDICTIONS
from .rules import Field, cfg, classifier_guidance
from .taming import in_interval

Rule = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
Pair = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def guided(model: nn.Module | _checks.Denoiser, y: Any, scale: float = 1.0, *, negative: Any = None,
           kind: str = "score", interval: tuple[float, float] | None = None) -> Field:
    """A guided prediction function ``fn(x, t)`` for a conditional denoiser, ready for the samplers.

    One forward pass over the doubled batch ``[x, x]`` with labels ``[y, null]`` gives both predictions, which are
    combined by :func:`cfg` and converted to ``kind`` (default the score, what the samplers take). ``negative``
    (a label or (n,) labels) replaces the null label: negative prompting; ``y`` may itself be the null label
    (e.g. "anything but class 3" is ``guided(model, model.null_label, w, negative=3)``). At ``scale == 1``
    without a negative the unconditional half is skipped and the plain conditional prediction is returned.

    ``interval=(start, stop)`` guides only at the times ``start <= t <= stop`` (the guidance interval of Kynkäänniemi
    et al. 2024, eq. 3; :func:`cfglab.guidance.in_interval`) and uses scale 1 elsewhere, where the guided prediction
    *is* the conditional one: there the second half of the batch is not evaluated at all, with or without a
    negative, as diffusers' guiders (``start``/``stop``) and ComfyUI (``cfg`` = 1) skip it. Rows at different times
    are split: one forward pass over all n rows with their labels and the m rows inside the interval with the null
    (or negative) label, n + m rows instead of 2n.
    """
    scale = _checks.scalar("scale", scale)
    m = _checks.model("model", model, "num_classes", "null_label", "path", "pred", "predict")
    kind = _checks.choice("kind", kind, PREDICTIONS)
    _eager_labels(m, y=y, negative=negative)
    null = m.null_label
    if interval is not None:
        if not isinstance(interval, (tuple, list)) or len(interval) != 2:
            raise TypeError(f"interval must be a pair (start, stop) of times, got {interval!r}")
        start, stop = _checks.scalar("interval start", interval[0]), _checks.scalar("interval stop", interval[1])
        if start > stop:
            raise ValueError(f"interval must have start <= stop, got {interval!r}")

    def fn(x: Tensor, t: Tensor) -> Tensor:
        x = _checks.tensor("x", x, min_ndim=1, finite=False)
        n = x.shape[0]
        yy = _checks.labels("y", y, n, m.num_classes, x.device, allow_null=True)
        if scale == 1.0 and negative is None:
            return m.predict(x, t, yy, kind=kind)
        neg = null if negative is None else negative
        nn_ = _checks.labels("negative", neg, n, m.num_classes, x.device, allow_null=True)
        tt = _checks.times("t", t, x)
        tt = tt.expand(n)
        if interval is not None:
            on = in_interval(tt, start, stop)                                   # (n,) rows that are guided
            if not bool(on.all()):
                if not bool(on.any()):
                    return m.predict(x, tt, yy, kind=kind)                      # scale 1 everywhere: one pass
                out = m(torch.cat([x, x[on]]), torch.cat([tt, tt[on]]), torch.cat([yy, nn_[on]]))  # (n + m, d)
                guided_ = out[:n].clone()
                guided_[on] = cfg(out[:n][on], out[n:], scale)
                return m.path.convert(guided_, x, tt, m.pred, kind)
        out = m(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([yy, nn_]))  # (2n, d)
        cond, uncond = out[:n], out[n:]
        return m.path.convert(cfg(cond, uncond, scale), x, tt, m.pred, kind)

    return fn


def _eager_labels(model: _checks.Denoiser, allow_null: bool = True, **labels: Any) -> None:
    """Check integer labels when the wrapper is built (tensor labels are checked against the batch at each call)."""
    for name, y in labels.items():
        if y is not None and not isinstance(y, Tensor):
            _checks.labels(name, y, 1, model.num_classes, torch.device("cpu"), allow_null=allow_null)


def log_prob_grad(classifier: Callable[[Tensor, Tensor], Tensor], x: Tensor, t: Any, y: Any) -> Tensor:
    """``grad_x log p_t(y | x)`` for a classifier ``classifier(x, t) -> logits (n, K)`` by autograd: one forward
    and one backward pass. Log-probabilities are valid logits too, so the exact noisy classifier of a mixture is
    ``lambda x, t: mix.log_posterior(x, t, path)``. The log-probability of row i is taken at its own label
    ``y[i]`` (a gather over the class column); rows are independent, so the gradient of their sum is the
    per-row gradient. Works inside ``torch.no_grad()``."""
    _checks.function("classifier", classifier)
    x = _checks.tensor("x", x, min_ndim=2)
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        logits = classifier(xg, t)  # (n, K)
        if not isinstance(logits, Tensor) or logits.ndim != 2 or logits.shape[0] != x.shape[0]:
            got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ValueError(f"classifier must return logits of shape ({x.shape[0]}, K), got {got}")
        yy = _checks.labels("y", y, x.shape[0], logits.shape[1], x.device)
        logp = torch.log_softmax(logits, dim=1).gather(1, yy[:, None]).sum()
        (grad,) = torch.autograd.grad(logp, xg)
    return grad


def classifier_guided(score_fn: Field, classifier: Callable[[Tensor, Tensor], Tensor], y: Any,
                      scale: float = 1.0) -> Field:
    """Classifier guidance as a sampler field, ``fn(x, t) = score_fn(x, t) + scale * grad_x log p_t(y | x)``.

    ``score_fn`` is an unconditional score (e.g. ``lambda x, t: model.predict(x, t)``) and ``classifier(x, t)``
    returns logits over the classes (a :class:`cfglab.Classifier`, or ``lambda x, t: mix.log_posterior(x, t,
    path)`` for the exact one). Dhariwal & Nichol (2021, sec. 4, alg. 1-2) scale the classifier gradient by s;
    in eps form (their sec. 4.2) the same rule reads ``eps - sigma * scale * grad``, sigma being the path's noise
    level (DDPM's ``sqrt(1 - alpha_bar)``). At scale 1 with the exact classifier this is the exact conditional
    score, by Bayes' rule (Song et al. 2021, sec. 5). Each call costs one classifier forward and backward pass on
    top of ``score_fn``; at scale 0 the classifier is skipped.
    """
    scale = _checks.scalar("scale", scale)
    _checks.function("score_fn", score_fn)
    _checks.function("classifier", classifier)

    def fn(x: Tensor, t: Tensor) -> Tensor:
        score = score_fn(x, t)
        if scale == 0.0:
            return score
        return classifier_guidance(score, log_prob_grad(classifier, x, t, y), scale)

    return fn


def predictions(model: nn.Module | _checks.Denoiser, y: Any) -> Pair:
    """``fn(x, t) -> (cond, uncond)``: both predictions of a conditional denoiser in its own parameterization
    (``model.pred``), from one forward pass over the doubled batch ``[x, x]`` with labels ``[y, null]``."""
    m = _checks.model("model", model, "num_classes", "null_label")
    _eager_labels(m, allow_null=False, y=y)

    def fn(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        x = _checks.tensor("x", x, min_ndim=1, finite=False)
        n = x.shape[0]
        yy = _checks.labels("y", y, n, m.num_classes, x.device)
        nul = _checks.labels("null", m.null_label, n, m.num_classes, x.device, allow_null=True)
        tt = _checks.times("t", t, x).expand(n)
        out = m(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([yy, nul]))  # (2n, d)
        return out[:n], out[n:]

    return fn


def guided_rule(pair: Pair, rule: Rule, path: Any, *, pred: str = "score", space: str = "x0",
                kind: str = "score") -> Field:
    """Any guidance rule as a sampler field ``fn(x, t)``. ``pair(x, t)`` returns (cond, uncond) predictions of
    kind ``pred`` (e.g. :func:`predictions` of a model, or two exact mixture scores); both are converted to
    ``space`` (eps, x0, score, velocity or v), ``rule(cond, uncond, x, t)`` combines them there, and the result is
    converted to ``kind`` for the samplers. ``rule = lambda c, u, x, t: cfg(c, u, w)`` is plain CFG in any space;
    rules that are not affine in the predictions (thresholding, rescale, APG, CFG-Zero*) depend on the space."""
    _checks.function("pair", pair)
    _checks.function("rule", rule)
    _checks.path("path", path)
    pred = _checks.choice("pred", pred, PREDICTIONS)
    space = _checks.choice("space", space, PREDICTIONS)
    kind = _checks.choice("kind", kind, PREDICTIONS)

    def fn(x: Tensor, t: Tensor) -> Tensor:
        tt = _checks.times("t", t, x).expand(x.shape[0])
        cond, uncond = pair(x, tt)
        cond, uncond = path.convert(cond, x, tt, pred, space), path.convert(uncond, x, tt, pred, space)
        return path.convert(rule(cond, uncond, x, tt), x, tt, space, kind)

    return fn


def autoguided(model: nn.Module, guide: nn.Module, y: Any, scale: float = 1.0, *, kind: str = "score") -> Field:
    """Autoguidance (Karras et al. 2024, eq. 2): guide a conditional denoiser with a weaker version of itself.

    ``fn(x, t) = guide_y + scale * (model_y - guide_y)``, both predictions conditional on the same label ``y``
    and converted to ``kind`` (default the score, what the samplers take). The "bad" ``guide`` is a smaller
    and/or shorter-trained denoiser of the same task on the same path. It is the CFG rule :func:`cfg` with the
    guide in place of the unconditional prediction: CFG is the special case where the guide is the same model
    with the null label (``cfg(model(x, t, y), model(x, t, null), scale)``, i.e. :func:`guided`). Scale 1 returns
    the model's plain conditional prediction (the guide is not called). Two forward passes, one per network.
    """
    scale = _checks.scalar("scale", scale)
    good_m = _checks.model("model", model, "num_classes", "path", "predict")
    bad_m = _checks.model("guide", guide, "num_classes", "path", "predict")
    kind = _checks.choice("kind", kind, PREDICTIONS)
    if repr(good_m.path) != repr(bad_m.path):
        raise ValueError(f"model and guide must be trained on one path, got {good_m.path!r} and {bad_m.path!r}")
    if bad_m.num_classes != good_m.num_classes:
        raise ValueError(f"model and guide must know the same classes, got num_classes {good_m.num_classes} and "
                         f"{bad_m.num_classes}")
    _eager_labels(good_m, allow_null=False, y=y)

    def fn(x: Tensor, t: Tensor) -> Tensor:
        x = _checks.tensor("x", x, min_ndim=1, finite=False)
        yy = _checks.labels("y", y, x.shape[0], good_m.num_classes, x.device)
        good = good_m.predict(x, t, yy, kind=kind)
        if scale == 1.0:
            return good
        return cfg(good, bad_m.predict(x, t, yy, kind=kind), scale)

    return fn


def label_predictions(model: nn.Module, labels: Sequence[Any], *, kind: str = "score"
                      ) -> Callable[[Tensor, Tensor], list[Tensor]]:
    """``fn(x, t) -> [prediction for labels[0], prediction for labels[1], ...]``, each converted to ``kind``, from
    one forward pass over m copies of the batch. A label is a class index, ``model.null_label`` or None (the null
    label). Feed the list to :func:`compose`, :func:`perp_neg` or :func:`cfg` to sample with several prompts."""
    m = _checks.model("model", model, "num_classes", "null_label", "path", "pred")
    kind = _checks.choice("kind", kind, PREDICTIONS)
    labels = [m.null_label if y is None else y for y in labels]
    if not labels:
        raise ValueError("labels must name at least one label")
    _eager_labels(m, **{f"labels[{i}]": y for i, y in enumerate(labels)})

    def fn(x: Tensor, t: Tensor) -> list[Tensor]:
        x = _checks.tensor("x", x, min_ndim=1, finite=False)
        n = x.shape[0]
        ys = [_checks.labels("labels", y, n, m.num_classes, x.device, allow_null=True) for y in labels]
        tt = _checks.times("t", t, x).expand(n)
        xx, tm = torch.cat([x] * len(ys)), tt.repeat(len(ys))
        out = m(xx, tm, torch.cat(ys))  # (m n, ...): block i holds the prediction for labels[i]
        return list(m.path.convert(out, xx, tm, m.pred, kind).split(n))

    return fn
