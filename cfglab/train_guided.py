"""Guidance learned in training (chapter 14): the network's own one-pass prediction is the guided one.

**Model guidance** (Tang et al. 2025, "Diffusion models without classifier-free guidance", the MG objective): a
conditional row regresses the usual denoising target plus ``w`` times the model's own guidance difference, held
fixed by a stop-gradient,

    target' = target + w * sg(D(x_t, t, y) - D(x_t, t, null)),

and a row whose label was dropped regresses the plain target, so ``D(., null)`` stays the unconditional model ``u``.
The stop-gradient term holds the model's output, which is itself being trained to be the guided one: at the optimum
``D(y) = c + w (D(y) - u)``, so ``D(y) - u = (c - u) / (1 - w)``, CFG at the course's scale ``1 / (1 - w)``
(:func:`scale_of_model_guidance`), not at ``1 + w`` (the scale the target would give with the true ``c`` inside).

**Guidance-free training** (Chen et al. 2025, "Visual generation without guidance", GFT, their code for DiT): the
conditional model is *parameterized* as ``beta D(x_t, t, y, 1/beta) + (1 - beta) sg(D(x_t, t, null, 1))`` with
``beta ~ U[beta_min, 1]`` per row, and that combination is trained with the plain conditional loss. At the optimum it
equals ``c``, so ``D(y, 1/beta) = u + (c - u) / beta``: CFG at scale ``1 / beta`` in one pass, for every beta at
once. The network is a :class:`cfglab.models.GuidedMLP`, fed the course's scale ``w = 1 / beta``.

:func:`effective_scale` reads off which CFG scale a one-pass prediction stands for (least squares against exact
``c`` and ``u``). The loops are those of :mod:`cfglab.distill` (``_steps``, ``_fit``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from . import _checks
from .distill import _fit, _per_row, _steps, effective_scale
from .models import MLP, GuidedMLP
from .train import Data, TrainConfig, TrainStep, _check_trainable, _resolve_config, sample_times

__all__ = ["scale_of_model_guidance", "model_guidance_target", "model_guidance_loss", "guidance_free_loss",
           "model_guidance_iter", "guidance_free_iter", "fit_model_guidance", "fit_guidance_free", "effective_scale"]


def scale_of_model_guidance(w: float) -> float:
    """The course's CFG scale at the fixed point of model guidance with weight ``w`` (0 <= w < 1): ``1 / (1 - w)``."""
    w = _checks.scalar("w", w)
    if not 0.0 <= w < 1.0:
        raise ValueError(f"w must be in [0, 1): model guidance has a fixed point only for w < 1, got {w}")
    return 1.0 / (1.0 - w)


def model_guidance_target(target: Tensor, cond: Tensor, uncond: Tensor, w: Any) -> Tensor:
    """MG's regression target ``target + w (cond - uncond)`` (Tang et al. 2025), in any parameterization: with the
    exact ``cond`` and ``uncond`` its conditional mean is the CFG field at ``1 + w``; with the model's own
    (guided) output in ``cond`` the fixed point is CFG at ``1 / (1 - w)``. ``w``: a number or (n,) weights."""
    for name, v in (("target", target), ("cond", cond), ("uncond", uncond)):
        _checks.tensor(name, v, min_ndim=1)
    if not target.shape == cond.shape == uncond.shape:
        raise ValueError(f"target, cond and uncond must have one shape, got {tuple(target.shape)}, "
                         f"{tuple(cond.shape)} and {tuple(uncond.shape)}")
    return target + _per_row("w", w, target) * (cond - uncond)


def _noised(model: Any, x0: Tensor, t: Tensor | None, eps: Tensor | None,
            generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor]:
    """(t, x_t, target of model.pred) on x0, with t and eps drawn from ``generator`` unless given."""
    n = x0.shape[0]
    if t is None:
        t = sample_times(n, model.path, generator, dtype=x0.dtype, device=x0.device)
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device="cpu").to(x0.device)
    elif _checks.tensor("eps", eps).shape != x0.shape:
        raise ValueError(f"eps must have the shape of x0 {tuple(x0.shape)}, got {tuple(eps.shape)}")
    return t, model.path.noise(x0, t, eps), model.path.target(model.pred, x0, eps, t)


def _weighted_mse(model: Any, err: Tensor, t: Tensor, x0: Tensor) -> Tensor:
    if model.pred == "score":  # sigma^2 weighting, as cfglab.denoising_loss
        err = err * model.path(t, x0).sigma ** 2
    return err.mean()


def model_guidance_loss(model: MLP, x0: Tensor, y: Any, *, w: float = 0.5, t: Tensor | None = None,
                        eps: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """The MG loss on a batch: ``|| D(x_t, t, y) - [target + w sg(D(x_t, t, y) - D(x_t, t, null))] ||^2``, the
    stop-gradient term from one pass over ``[x_t, x_t]`` with labels ``[y, null]`` without gradients, zero on
    rows whose label is null (they regress the plain target)."""
    if not isinstance(model, MLP):
        raise TypeError(f"model must be a cfglab.MLP, got {type(model).__name__}")
    w = _checks.scalar("w", w)
    x0 = _checks.tensor("x0", x0, ndim=2, last_dim=model.dim)
    n = x0.shape[0]
    yy = _checks.labels("y", y, n, model.num_classes, x0.device, allow_null=True)
    t, xt, target = _noised(model, x0, t, eps, generator)
    with torch.no_grad():
        out = model(torch.cat([xt, xt]), torch.cat([t, t]), torch.cat([yy, torch.full_like(yy, model.null_label)]))
        cond, uncond = out[:n], out[n:]                                   # (n, d) each, held fixed
        cond = torch.where((yy == model.null_label)[:, None], uncond, cond)   # null rows: plain target
    return _weighted_mse(model, (model(xt, t, yy) - model_guidance_target(target, cond, uncond, w)) ** 2, t, x0)


def _beta_min(v: Any) -> float:
    v = _checks.scalar("beta_min", v, positive=True)
    if v > 1:
        raise ValueError(f"beta_min must be in (0, 1], got {v}")
    return v


def guidance_free_loss(model: GuidedMLP, x0: Tensor, y: Any, *, beta_min: float = 0.2, beta: Tensor | None = None,
                       t: Tensor | None = None, eps: Tensor | None = None,
                       generator: torch.Generator | None = None) -> Tensor:
    """The GFT loss on a batch: ``|| beta D(x_t, t, y, 1/beta) + (1 - beta) sg(D(x_t, t, null, 1)) - target ||^2``
    with ``beta ~ U[beta_min, 1]`` per row (unless given, shape (n,)); rows with the null label learn
    ``D(null, w) = u`` at every scale."""
    if not isinstance(model, GuidedMLP):
        raise TypeError(f"model must be a cfglab.models.GuidedMLP, got {type(model).__name__}")
    beta_min = _beta_min(beta_min)
    x0 = _checks.tensor("x0", x0, ndim=2, last_dim=model.dim)
    n = x0.shape[0]
    yy = _checks.labels("y", y, n, model.num_classes, x0.device, allow_null=True)
    if beta is None:
        u01 = torch.rand(n, generator=generator, dtype=torch.float64)
        beta = (beta_min + (1 - beta_min) * u01).to(x0)
    b = _per_row("beta", beta, x0)                                            # (n, 1)
    if not bool(((b > 0) & (b <= 1)).all()):
        raise ValueError("beta must lie in (0, 1]")
    t, xt, target = _noised(model, x0, t, eps, generator)
    with torch.no_grad():
        uncond = model(xt, t, torch.full_like(yy, model.null_label), 1.0)   # sg(D(x_t, t, null, 1))
    combined = b * model(xt, t, yy, 1.0 / b.reshape(-1)) + (1 - b) * uncond
    return _weighted_mse(model, (combined - target) ** 2, t, x0)


def model_guidance_iter(model: MLP, data: Data, config: TrainConfig | None = None, *,
                        w: float = 0.5) -> Iterator[TrainStep]:
    """The MG training loop as a generator, one Adam step per ``next`` (the loop of :func:`cfglab.train_iter`:
    batches seeded by ``config.seed``, label dropout with ``config.p_uncond``) on :func:`model_guidance_loss`."""
    config = _resolve_config(config, {})
    if not isinstance(model, MLP):
        raise TypeError(f"model must be a cfglab.MLP, got {type(model).__name__}")
    _check_trainable(model, data)
    scale_of_model_guidance(w)
    return _steps(model, data, config, lambda x0, y, g: model_guidance_loss(model, x0, y, w=w, generator=g))


def guidance_free_iter(model: GuidedMLP, data: Data, config: TrainConfig | None = None, *,
                       beta_min: float = 0.2) -> Iterator[TrainStep]:
    """The GFT training loop as a generator, one Adam step per ``next``, on :func:`guidance_free_loss` with beta
    uniform on ``[beta_min, 1]`` (label dropout with ``config.p_uncond``)."""
    config = _resolve_config(config, {})
    if not isinstance(model, GuidedMLP):
        raise TypeError(f"model must be a cfglab.models.GuidedMLP, got {type(model).__name__}")
    _check_trainable(model, data)
    _beta_min(beta_min)
    return _steps(model, data, config,
                  lambda x0, y, g: guidance_free_loss(model, x0, y, beta_min=beta_min, generator=g))


def fit_model_guidance(model: MLP, data: Data, config: TrainConfig | None = None, *, w: float = 0.5,
                       progress: bool = True, use_cache: bool = True, **overrides: Any) -> list[float]:
    """Train ``model`` from scratch with :func:`model_guidance_loss` at weight ``w`` (label dropout with
    ``config.p_uncond``, the loop of :func:`cfglab.fit`); return the loss of every step. Cached by configuration."""
    config = _resolve_config(config, overrides)
    steps = model_guidance_iter(model, data, config, w=w)
    return _fit(model, data, config, steps, {"kind": "model guidance", "w": float(w)}, "training MLP with MG",
                progress, use_cache)


def fit_guidance_free(model: GuidedMLP, data: Data, config: TrainConfig | None = None, *, beta_min: float = 0.2,
                      progress: bool = True, use_cache: bool = True, **overrides: Any) -> list[float]:
    """Train ``model`` from scratch with :func:`guidance_free_loss` (beta uniform on ``[beta_min, 1]``, so one
    network covers the scales 1 .. 1/beta_min); return the loss of every step. Cached by configuration."""
    config = _resolve_config(config, overrides)
    steps = guidance_free_iter(model, data, config, beta_min=beta_min)
    return _fit(model, data, config, steps, {"kind": "guidance-free", "beta_min": float(beta_min)},
                "training GuidedMLP with GFT", progress, use_cache)
