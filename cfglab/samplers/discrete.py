"""The discrete samplers of DDPM and DDIM on any path, and DDIM with CFG++ (a sampler that needs both predictions)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .. import _checks
from ..paths import PREDICTIONS, Path
from .base import Trajectory, _Field, _finish, _finite, _grid, _progress, _start


def ddim(fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, path: Path, steps: int, *, eta: float = 0.0,
         generator: torch.Generator | None = None, pred: str = "score", t_max: float | None = None,
         t_min: float | None = None, spacing: str | Tensor | None = None, denoise: bool = True,
         return_trajectory: bool = False) -> Tensor | tuple[Tensor, Trajectory]:
    """DDIM steps (Song, Meng & Ermon 2021, eq. 12) on any path: from t to s < t,
    ``x_s = alpha_s x0 + sqrt(sigma_s^2 - c^2) eps + c z`` with ``c = eta * sigma_s/sigma_t *
    sqrt(sigma_t^2 - (alpha_t/alpha_s)^2 sigma_s^2)``. ``eta=0`` is deterministic; ``eta=1`` is DDPM's ancestral
    sampler (Ho et al. 2020, alg. 2), see :func:`ddpm`."""
    x = _start(x)
    steps = _checks.count("steps", steps)
    eta = _checks.scalar("eta", eta, nonnegative=True)
    ts = _grid(path, steps, x, t_max, t_min, spacing)
    field = _Field(fn, path, pred)
    xs = [x] if return_trajectory else []
    for i in _progress(steps, "ddim"):
        t, s = ts[i], ts[i + 1]
        ct, cs = path(t), path(s)
        pred_now = field(x, t, pred)  # one evaluation, converted twice below
        tt = t.expand(x.shape[0])
        x0 = path.convert(pred_now, x, tt, pred, "x0")
        eps = path.convert(pred_now, x, tt, pred, "eps")
        var_ts = ct.sigma**2 - (ct.alpha / cs.alpha) ** 2 * cs.sigma**2
        c = eta * cs.sigma / ct.sigma * torch.sqrt(var_ts.clamp_min(0))
        c = torch.minimum(c, cs.sigma)
        x = cs.alpha * x0 + torch.sqrt(cs.sigma**2 - c**2) * eps
        if eta > 0:
            x = x + c * torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        _finite(x, f"at step {i + 1} (t={s.item():.4g})")
        if return_trajectory:
            xs.append(x)
    return _finish(lambda z, t: field(z, t, "x0"), x, ts, xs, denoise, return_trajectory, path)


def ddpm(fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, path: Path, steps: int, *,
         generator: torch.Generator | None = None, **kwargs: Any) -> Tensor | tuple[Tensor, Trajectory]:
    """DDPM ancestral sampling (Ho et al. 2020, alg. 2): each step draws from the Gaussian posterior
    ``q(x_s | x_t, x0 = x0_hat)``; identical to :func:`ddim` with ``eta=1``."""
    return ddim(fn, x, path, steps, eta=1.0, generator=generator, **kwargs)


def ddim_cfgpp(pair: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]], x: Tensor, path: Path, steps: int, *,
               guidance_scale: float, pred: str = "score", t_max: float | None = None, t_min: float | None = None,
               spacing: str | Tensor | None = None, denoise: bool = True,
               return_trajectory: bool = False) -> Tensor | tuple[Tensor, Trajectory]:
    """Deterministic DDIM with CFG++ (Chung et al. 2024, "CFG++: manifold-constrained classifier free guidance",
    alg. 1): from t to s, ``x_s = alpha_s x0_lam + sigma_s eps_u`` where ``x0_lam = x0_u + lam (x0_c - x0_u)``
    is guided with ``lam = guidance_scale`` in [0, 1] but the renoising uses the *unconditional* eps. Plain DDIM
    with CFG would renoise with the guided eps. CFG++ needs both predictions separately, so ``pair(x, t)`` returns
    ``(cond, uncond)`` of kind ``pred`` (e.g. :func:`cfglab.guidance.predictions`); this is why it is a sampler
    and not a rule. ``lam = 1`` is not plain conditional sampling: the step is not a fixed-scale ODE step."""
    lam = _checks.scalar("guidance_scale", guidance_scale)
    _checks.function("pair", pair)
    x = _start(x)
    steps = _checks.count("steps", steps)
    pred = _checks.choice("pred", pred, PREDICTIONS)
    ts = _grid(path, steps, x, t_max, t_min, spacing)
    xs = [x] if return_trajectory else []

    def both(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        tt = t.expand(x.shape[0])
        c, u = pair(x, tt)
        x0 = torch.lerp(path.convert(u, x, tt, pred, "x0"), path.convert(c, x, tt, pred, "x0"), lam)
        return x0, path.convert(u, x, tt, pred, "eps")

    for i in _progress(steps, "ddim_cfgpp"):
        x0, eps_u = both(x, ts[i])
        cs = path(ts[i + 1])
        x = cs.alpha * x0 + cs.sigma * eps_u
        _finite(x, f"at step {i + 1} (t={ts[i + 1].item():.4g})")
        if return_trajectory:
            xs.append(x)
    return _finish(lambda z, t: both(z, t)[0], x, ts, xs, denoise, return_trajectory, path)
