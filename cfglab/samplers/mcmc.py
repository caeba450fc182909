"""Langevin samplers of a fixed target (ULA and MALA) and annealed Langevin dynamics over the noise levels of a path."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .. import _checks
from ..paths import Path
from .base import Trajectory, _evaluate, _finite, _grid, _progress, _start


def langevin(fn: Callable[[Tensor], Tensor], x: Tensor, step_size: float, steps: int, *,
             generator: torch.Generator | None = None,
             return_trajectory: bool = False) -> Tensor | tuple[Tensor, Trajectory]:
    """Unadjusted Langevin algorithm: ``x <- x + h * score(x) + sqrt(2 h) z`` for a target with score ``fn(x)``
    (Roberts & Tweedie 1996). Its stationary law is biased by O(h); see :func:`mala` for the exact correction."""
    x = _start(x)
    _checks.function("fn", fn)
    h = _checks.scalar("step_size", step_size, positive=True)
    steps = _checks.count("steps", steps)
    xs = [x] if return_trajectory else []
    for i in _progress(steps, "langevin"):
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x = x + h * _evaluate(fn, x) + math.sqrt(2 * h) * z
        _finite(x, f"at Langevin step {i + 1}")
        if return_trajectory:
            xs.append(x)
    if return_trajectory:
        return x, Trajectory(torch.stack(xs), torch.arange(steps + 1, dtype=x.dtype))
    return x


def _autograd_score(log_prob: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    def score(x: Tensor) -> Tensor:
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(log_prob(xg).sum(), xg)
        return g

    return score


def _log_density(log_prob: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    lp = log_prob(x)
    if not isinstance(lp, Tensor) or lp.shape != (x.shape[0],):
        got = tuple(lp.shape) if isinstance(lp, Tensor) else type(lp).__name__
        raise ValueError(f"log_prob must return one value per row of x, shape ({x.shape[0]},), got {got}")
    return lp


def mala(log_prob: Callable[[Tensor], Tensor], x: Tensor, step_size: float, steps: int, *,
         score: Callable[[Tensor], Tensor] | None = None, generator: torch.Generator | None = None,
         return_trajectory: bool = False) -> Tensor | tuple[Tensor, Trajectory]:
    """Metropolis-adjusted Langevin (Roberts & Tweedie 1996): a Langevin proposal
    ``x' = x + h s(x) + sqrt(2h) z`` accepted with probability ``min(1, p(x') q(x | x') / (p(x) q(x' | x)))``,
    ``q(a | b) = N(a; b + h s(b), 2h I)``. ``log_prob`` is the target's log-density up to a constant (per row);
    its score comes from autograd unless ``score`` is given. The chain leaves the target exactly invariant."""
    x = _start(x)
    h = _checks.scalar("step_size", step_size, positive=True)
    steps = _checks.count("steps", steps)
    _checks.function("log_prob", log_prob)
    score = _checks.function("score", score) if score is not None else _autograd_score(log_prob)
    xs = [x] if return_trajectory else []
    accept = []
    lp, s = _log_density(log_prob, x), _evaluate(score, x, name="score")
    dims = tuple(range(1, x.ndim))
    for _ in _progress(steps, "mala"):
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        prop = x + h * s + math.sqrt(2 * h) * z
        lp_prop, s_prop = _log_density(log_prob, prop), _evaluate(score, prop, name="score")
        fwd = -((prop - x - h * s) ** 2).sum(dims) / (4 * h)
        bwd = -((x - prop - h * s_prop) ** 2).sum(dims) / (4 * h)
        log_ratio = lp_prop - lp + bwd - fwd
        u = torch.rand(x.shape[0], generator=generator, dtype=x.dtype).to(x.device)
        ok = torch.log(u) < log_ratio
        okx = ok.reshape(-1, *([1] * (x.ndim - 1)))
        x = torch.where(okx, prop, x)
        s = torch.where(okx, s_prop, s)
        lp = torch.where(ok, lp_prop, lp)
        accept.append(ok.to(x.dtype).mean())
        if return_trajectory:
            xs.append(x)
    if return_trajectory:
        return x, Trajectory(torch.stack(xs), torch.arange(steps + 1, dtype=x.dtype), torch.stack(accept))
    return x


def annealed_langevin(fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, path: Path, levels: int,
                      steps_per_level: int, step_scale: float, *, generator: torch.Generator | None = None,
                      return_trajectory: bool = False) -> Tensor | tuple[Tensor, Trajectory]:
    """Annealed Langevin dynamics (Song & Ermon 2019, alg. 1): ``steps_per_level`` Langevin steps on each p_t of a
    decreasing ladder of ``levels`` times (log-SNR spaced from the path's t_max to t_min), with step size
    ``step_scale * sigma_t^2 / sigma_{t_min}^2`` (so ``step_scale`` is the step at the last, least noisy level).
    ``fn(x, t)`` is the score of p_t. Designed for the VE path (NCSN); the trajectory records one state per level.
    """
    x = _start(x)
    _checks.function("fn", fn)
    levels = _checks.count("levels", levels, minimum=2)
    steps_per_level = _checks.count("steps_per_level", steps_per_level)
    eps = _checks.scalar("step_scale", step_scale, positive=True)
    ts = _grid(path, levels - 1, x, None, None, "logsnr")
    xs = [x] if return_trajectory else []
    times = [ts[0]] if return_trajectory else []
    sigma_last = path(ts[-1]).sigma.item()
    for t in _progress(ts, "annealed_langevin"):
        h = eps * (path(t).sigma.item() / sigma_last) ** 2
        tt = t.expand(x.shape[0])
        for _ in range(steps_per_level):
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            x = x + h * _evaluate(fn, x, tt) + math.sqrt(2 * h) * z
            _finite(x, f"at level t={t.item():.4g}")
        if return_trajectory:
            xs.append(x)
            times.append(t)
    if return_trajectory:
        return x, Trajectory(torch.stack(xs), torch.stack(times))
    return x
