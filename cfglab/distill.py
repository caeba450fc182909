"""Guidance distillation (chapter 13): a student that takes the scale w as an input learns a CFG teacher's output.

Meng et al. (2023, "On distillation of guided diffusion models", sec. 3.1, stage one) train one network
``s(x_t, t, y, w)`` to match the combined output of the teacher's two predictions at every scale of a range,

    L = E_{w ~ U[w_min, w_max], t, (x0, y), eps} || s(x_t, t, y, w) - [u + w (c - u)] ||^2,

with ``c = teacher(x_t, t, y)`` and ``u = teacher(x_t, t, null)`` (the paper writes ``(1 + w) c - w u``, the same
target at the course's scale ``1 + w``). Sampling then costs one forward pass per step instead of two. FLUX.1 [dev]
is such a student; diffusers' ``FluxPipeline`` feeds it ``guidance_scale`` as the ``guidance`` input, and its
``true_cfg_scale`` with a ``negative_prompt`` adds a second pass of the same student (:func:`distilled`).

* :func:`cfg_target`: the teacher's CFG output at per-row scales (the regression target);
* :func:`distillation_loss`, :func:`distill_iter`, :func:`distill`: the loss, the loop as a generator, and the
  cached fit with a progress bar, like :func:`cfglab.fit`;
* :func:`distilled`: a student as a sampler field, with FluxPipeline's ``guidance`` and ``true_cfg_scale``;
* :func:`effective_scale`: which CFG scale a one-pass prediction stands for (least squares against ``c`` and ``u``).

The loop and the cache (``_steps`` and ``_fit``, private) are shared with :mod:`cfglab.train_guided`; they reuse
:class:`cfglab.TrainConfig` (Adam, warm-up and cosine schedule, clipping), :func:`cfglab.drop_labels`,
:func:`cfglab.train.sample_times` and :mod:`cfglab.cache`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import torch
from torch import Tensor, nn

from . import _checks, _progress, cache
from .guidance import Field, cfg
from .models import GuidedMLP
from .paths import PREDICTIONS
from .train import Data, TrainConfig, TrainStep, _check_trainable, _resolve_config, drop_labels, sample_times

BatchLoss = Callable[[Tensor, Tensor, torch.Generator], Tensor]


def _per_row(name: str, w: Any, x: Tensor) -> Tensor:
    """Scales as an (n, 1, ...) tensor that broadcasts against x: a number or an (n,) tensor."""
    n = x.shape[0]
    if isinstance(w, Tensor):
        if w.ndim > 1 or (w.ndim == 1 and w.shape[0] not in (1, n)) or not w.is_floating_point():
            raise ValueError(f"{name} must be a number or a floating (n,) tensor with n = {n}, got "
                             f"{tuple(w.shape)} {w.dtype}")
        if not bool(torch.isfinite(w).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
        ww = w.to(x).reshape(-1).expand(n)
    else:
        ww = torch.full((n,), _checks.scalar(name, w), dtype=x.dtype, device=x.device)
    return ww.reshape(n, *([1] * (x.ndim - 1)))


def cfg_target(teacher: Any, x: Tensor, t: Any, y: Any, w: Any) -> Tensor:
    """The teacher's CFG prediction ``u + w (c - u)`` at (x, t), in the teacher's own parameterization, without
    gradients: one pass over the doubled batch ``[x, x]`` with labels ``[y, null]``, combined by :func:`cfglab.cfg`
    at one scale or row by row at scales ``w`` of shape (n,). Rows whose label is the null label get ``u``."""
    m = _checks.model("teacher", teacher, "num_classes", "null_label", "path", "pred")
    x = _checks.tensor("x", x, min_ndim=2)
    n = x.shape[0]
    yy = _checks.labels("y", y, n, m.num_classes, x.device, allow_null=True)
    tt = _checks.times("t", t, x).expand(n)
    ww = _per_row("w", w, x)
    with torch.no_grad():
        out = m(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([yy, torch.full_like(yy, m.null_label)]))
    cond, uncond = out[:n], out[n:]                      # (n, d) each
    if not isinstance(w, Tensor):
        return cfg(cond, uncond, float(ww.reshape(-1)[0]))
    return torch.lerp(uncond, cond, ww)                  # cfg row by row (lerp: exact at w = 0 and w = 1)


def _scales(n: int, w_range: tuple[float, float], generator: torch.Generator | None, like: Tensor) -> Tensor:
    lo, hi = _range(w_range)
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return (lo + (hi - lo) * u).to(like)


def _range(w_range: Any) -> tuple[float, float]:
    if not isinstance(w_range, (tuple, list)) or len(w_range) != 2:
        raise TypeError(f"w_range must be a pair (w_min, w_max), got {w_range!r}")
    lo, hi = _checks.scalar("w_range[0]", w_range[0]), _checks.scalar("w_range[1]", w_range[1])
    if lo > hi:
        raise ValueError(f"w_range must have w_min <= w_max, got {w_range!r}")
    return lo, hi


def _check_pair(student: Any, teacher: Any) -> None:
    if not isinstance(student, GuidedMLP):
        raise TypeError(f"student must be a cfglab.models.GuidedMLP, got {type(student).__name__}")
    _checks.model("teacher", teacher, "num_classes", "null_label", "path", "pred")
    if repr(student.path) != repr(teacher.path) or student.pred != teacher.pred:
        raise ValueError(f"student and teacher must share a path and a prediction, got {student.path!r}/"
                         f"{student.pred} and {teacher.path!r}/{teacher.pred}")
    if student.num_classes < 1:
        raise ValueError("student must be conditional (num_classes >= 1): guidance needs a label to guide towards")
    if student.num_classes != teacher.num_classes:
        raise ValueError(f"student and teacher must know the same classes, got num_classes {student.num_classes} "
                         f"and {teacher.num_classes}")


def distillation_loss(student: GuidedMLP, teacher: Any, x0: Tensor, y: Any, *,
                      w_range: tuple[float, float] = (1.0, 5.0), w: Tensor | None = None,
                      t: Tensor | None = None, eps: Tensor | None = None,
                      generator: torch.Generator | None = None) -> Tensor:
    """Meng et al.'s stage-one loss: the mean squared error between ``student(x_t, t, y, w)`` and the teacher's
    CFG output :func:`cfg_target` at the same scale, with ``w`` uniform on ``w_range`` per row (unless given),
    and t, eps drawn from ``generator`` (unless given) as in :func:`cfglab.denoising_loss` (score predictions are
    weighted by sigma^2 there too)."""
    _check_pair(student, teacher)
    x0 = _checks.tensor("x0", x0, ndim=2, last_dim=student.dim)
    n = x0.shape[0]
    if t is None:
        t = sample_times(n, student.path, generator, dtype=x0.dtype, device=x0.device)
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device="cpu").to(x0.device)
    elif _checks.tensor("eps", eps).shape != x0.shape:
        raise ValueError(f"eps must have the shape of x0 {tuple(x0.shape)}, got {tuple(eps.shape)}")
    ws = _scales(n, w_range, generator, x0) if w is None else _per_row("w", w, x0).reshape(-1)
    xt = student.path.noise(x0, t, eps)
    err = (student(xt, t, y, ws) - cfg_target(teacher, xt, t, y, ws)) ** 2
    if student.pred == "score":
        err = err * student.path(t, x0).sigma ** 2
    return err.mean()


def _steps(model: nn.Module, data: Data, config: TrainConfig, batch_loss: BatchLoss) -> Iterator[TrainStep]:
    """The loop of :func:`cfglab.train_iter` around any loss of a batch ``batch_loss(x0, labels, generator)``:
    batches from ``data`` seeded by ``config.seed``, label dropout with ``config.p_uncond``, Adam with the
    warm-up and cosine schedule of ``config``, gradient clipping, a named error on a non-finite loss."""
    w = next(model.parameters())
    null = _checks.model("model", model, "null_label").null_label
    g = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    model.train()
    for step in range(config.steps):
        lr = config.lr_at(step)
        for group in opt.param_groups:
            group["lr"] = lr
        x0, y = data.sample(config.batch_size, generator=g)
        x0, y = x0.to(device=w.device, dtype=w.dtype), y.to(w.device)
        loss = batch_loss(x0, drop_labels(y, config.p_uncond, null, g), g)
        if not torch.isfinite(loss):
            model.eval()
            raise FloatingPointError(f"training stopped at step {step}: the loss became {loss.item()} "
                                     f"(lr={lr:.3g}); lower config.lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        yield TrainStep(step, loss.item(), lr)
    model.eval()


def _fingerprint(module: Any) -> str:
    """A hash of a module's weights (a teacher is part of what its student was trained on)."""
    h = hashlib.sha256()
    for name, v in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


def _fit(model: nn.Module, data: Data, config: TrainConfig, steps: Iterator[TrainStep], what: dict[str, Any],
         name: str, progress: bool, use_cache: bool) -> list[float]:
    """Run ``steps`` with a progress bar and cache the weights under the model, data, configuration and ``what``
    (the method and its settings), like :func:`cfglab.fit`; return the loss of every step."""
    fingerprint = getattr(data, "fingerprint", None)
    k = None
    if use_cache and callable(fingerprint):
        k = cache.key({"model": getattr(model, "config", {}), "data": fingerprint(), "train": asdict(config),
                       "method": what, "dtype": str(next(model.parameters()).dtype)})
    extras = cache.restore(model, k) if k else None
    if extras is not None:
        model.eval()
        stored = extras.get("__losses__")
        return [float(v) for v in stored.tolist()] if stored is not None else []
    losses: list[float] = []
    with _progress.bar(config.steps, name, disable=not progress) as bar:
        for rec in steps:
            losses.append(rec.loss)
            if rec.step % 50 == 0 or rec.step == config.steps - 1:
                bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}", refresh=False)
                bar.update(rec.step + 1 - bar.n)
        bar.summary = f"{name}: {len(losses)} steps, final loss {sum(losses[-50:]) / max(1, len(losses[-50:])):.4f}"
    if k:
        cache.save(k, {**model.state_dict(), "__losses__": torch.tensor(losses, dtype=torch.float64)})
    return losses


def distill_iter(student: GuidedMLP, teacher: Any, data: Data, config: TrainConfig | None = None, *,
                 w_range: tuple[float, float] = (1.0, 5.0)) -> Iterator[TrainStep]:
    """The distillation loop as a generator (one Adam step of the student per ``next``): fresh batches from
    ``data``, labels dropped to the null label with ``config.p_uncond`` (their target is the teacher's
    unconditional prediction at every scale), :func:`distillation_loss` with w uniform on ``w_range``."""
    config = _resolve_config(config, {})
    _check_pair(student, teacher)
    _check_trainable(student, data)
    lo, hi = _range(w_range)
    if isinstance(teacher, nn.Module):
        teacher.eval()
    return _steps(student, data, config,
                  lambda x0, y, g: distillation_loss(student, teacher, x0, y, w_range=(lo, hi), generator=g))


def distill(student: GuidedMLP, teacher: Any, data: Data, config: TrainConfig | None = None, *,
            w_range: tuple[float, float] = (1.0, 5.0), progress: bool = True, use_cache: bool = True,
            **overrides: Any) -> list[float]:
    """Distil ``teacher`` (a CFG-trained :class:`cfglab.MLP`) into ``student`` in place over scales ``w_range`` and
    return the loss of every step; keyword ``overrides`` replace fields of ``config`` (``steps=500``). Weights
    distilled before from the same teacher weights, student, data and configuration are loaded from the cache."""
    config = _resolve_config(config, overrides)
    steps = distill_iter(student, teacher, data, config, w_range=w_range)
    what = {"kind": "distill", "w_range": list(_range(w_range)),
            "teacher": _fingerprint(teacher) if isinstance(teacher, nn.Module) else repr(teacher)}
    return _fit(student, data, config, steps, what, "distilling GuidedMLP", progress, use_cache)


def distilled(student: GuidedMLP, y: Any, guidance: float = 1.0, *, true_cfg_scale: float = 1.0,
              negative: Any = None, kind: str = "score") -> Field:
    """A distilled student as a sampler field ``fn(x, t)``, with the arithmetic of diffusers' ``FluxPipeline``.

    ``guidance`` is the scale fed to the network (FluxPipeline's ``guidance_scale``, passed to the transformer as
    ``guidance``): one forward pass per call. A ``negative`` label (the null label plays the empty prompt) acts
    only with ``true_cfg_scale > 1``, as ``do_true_cfg = true_cfg_scale > 1 and has_neg_prompt`` in the pipeline:
    then a second pass with the negative label *at the same guidance* is combined by
    ``neg + true_cfg_scale * (cond - neg)`` (:func:`cfglab.cfg`), one pass over ``[x, x]``. Otherwise the
    negative label is ignored."""
    if not isinstance(student, GuidedMLP):
        raise TypeError(f"student must be a cfglab.models.GuidedMLP, got {type(student).__name__}")
    guidance = _checks.scalar("guidance", guidance)
    true_cfg_scale = _checks.scalar("true_cfg_scale", true_cfg_scale)
    kind = _checks.choice("kind", kind, PREDICTIONS)
    for name, lab in (("y", y), ("negative", negative)):
        if lab is not None and not isinstance(lab, Tensor):
            _checks.labels(name, lab, 1, student.num_classes, torch.device("cpu"), allow_null=True)
    two = true_cfg_scale > 1 and negative is not None

    def fn(x: Tensor, t: Tensor) -> Tensor:
        x = _checks.tensor("x", x, ndim=2, finite=False)
        n = x.shape[0]
        yy = _checks.labels("y", y, n, student.num_classes, x.device, allow_null=True)
        tt = _checks.times("t", t, x).expand(n)
        if not two:
            return student.predict(x, tt, yy, guidance, kind=kind)
        neg = _checks.labels("negative", negative, n, student.num_classes, x.device, allow_null=True)
        out = student(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([yy, neg]), guidance)   # (2n, d)
        return student.path.convert(cfg(out[:n], out[n:], true_cfg_scale), x, tt, student.pred, kind)

    return fn


def effective_scale(pred: Tensor, cond: Tensor, uncond: Tensor) -> float:
    """The CFG scale a prediction stands for: the least-squares ``lambda`` of ``pred - uncond ≈ lambda (cond -
    uncond)`` over every entry, ``<pred - u, c - u> / |c - u|^2`` (exact ``c`` and ``u``, e.g. a mixture's
    scores). A CFG prediction at scale w returns w."""
    for name, v in (("pred", pred), ("cond", cond), ("uncond", uncond)):
        _checks.tensor(name, v, min_ndim=1)
    if not pred.shape == cond.shape == uncond.shape:
        raise ValueError(f"pred, cond and uncond must have one shape, got {tuple(pred.shape)}, {tuple(cond.shape)} "
                         f"and {tuple(uncond.shape)}")
    d = (cond - uncond).double()
    den = float((d * d).sum())
    if den == 0.0:
        raise ValueError("cond equals uncond everywhere: there is no guidance direction to project on")
    return float(((pred - uncond).double() * d).sum()) / den
