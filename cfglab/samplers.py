"""Samplers: plain functions with one signature, ``sampler(fn, x, path, steps, ...)``.

``fn(x, t)`` returns a prediction at (x, t) for t a (n,) tensor; by default a score (``pred="score"``), but any of
eps, x0, score or velocity may be named and the path converts. All diffusion samplers integrate from ``t_max`` down
to ``t_min`` (the path's defaults) on ``path.timesteps(steps, spacing=...)`` and, with ``denoise=True``, finish with
the Tweedie estimate ``E[x0 | x_{t_min}]``. ``return_trajectory=True`` also returns a :class:`Trajectory`.
Langevin samplers take a score ``fn(x)`` of a fixed target instead.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from . import _checks
from ._progress import bar as _bar
from .paths import PREDICTIONS, Path


@dataclass
class Trajectory:
    """States visited by a sampler: ``xs[i]`` at time ``ts[i]`` (shape (len(ts), *x.shape)). For Langevin the
    'times' are step indices; MALA also records the mean acceptance rate of each step in ``accept``."""

    xs: Tensor
    ts: Tensor
    accept: Tensor | None = None


def _start(x: Any) -> Tensor:
    return _checks.tensor("x", x, min_ndim=2)


def _evaluate(fn: Callable[..., Tensor], x: Tensor, *args: Any, name: str = "fn") -> Tensor:
    out = fn(x, *args)
    if not isinstance(out, Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"{name} must return a tensor shaped like x {tuple(x.shape)}, got {got}")
    if out.device != x.device:
        raise ValueError(f"{name} returned a tensor on {out.device} for x on {x.device}; keep them on one device")
    return out


def _finite(x: Tensor, where: str) -> None:
    if x.device.type != "meta" and not torch.isfinite(x).all():
        raise FloatingPointError(f"sampling diverged: non-finite values {where}. Use a smaller step or scale, "
                                 "or more steps")


class _Field:
    """fn evaluated at a grid time and converted by the path (counts evaluations for NFE reports)."""

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor], path: Path, pred: str):
        _checks.function("fn", fn)
        self.fn, self.path, self.pred = fn, path, _checks.choice("pred", pred, PREDICTIONS)
        self.nfe = 0

    def __call__(self, x: Tensor, t: Tensor, kind: str) -> Tensor:
        tt = t.to(dtype=x.dtype, device=x.device).expand(x.shape[0])
        self.nfe += 1
        return self.path.convert(_evaluate(self.fn, x, tt), x, tt, self.pred, kind)


PROGRESS_DELAY = 3.0  # seconds a sampler runs before its progress bar appears


def _progress(steps: int | Tensor, desc: str) -> Iterator[Any]:
    """Iterate over ``range(steps)`` (or a tensor of times); once the loop has run for ``PROGRESS_DELAY`` seconds,
    show a notebook-aware progress bar for the rest. The bar is created only then: short samplers print nothing and
    leave nothing behind in an executed notebook (a long one leaves a one-line summary, see :mod:`cfglab._progress`)."""
    items = range(steps) if isinstance(steps, int) else steps
    start = time.monotonic()
    it = iter(enumerate(items))
    for i, item in it:
        if time.monotonic() - start >= PROGRESS_DELAY:
            with _bar(len(items), desc, initial=i) as bar:
                yield item
                bar.update()
                for _, rest in it:
                    yield rest
                    bar.update()
            return
        yield item


def _grid(path: Path, steps: int, x: Tensor, t_max: float | None, t_min: float | None,
          spacing: str | None) -> Tensor:
    """The sampling grid; ``spacing=None`` is the path's default (``path.spacing``)."""
    if not isinstance(path, Path):
        raise TypeError(f"path must be a cfglab.paths.Path (VE, VP, Linear), got {type(path).__name__}")
    return path.timesteps(steps, t_max=t_max, t_min=t_min, spacing=spacing, device=x.device).to(x.dtype)


def _finish(to_x0: Callable[[Tensor, Tensor], Tensor], x: Tensor, ts: Tensor, xs: list[Tensor], denoise: bool,
            return_trajectory: bool) -> Tensor | tuple[Tensor, Trajectory]:
    """Optionally replace x by its clean estimate ``to_x0(x, t_min)``; return x, with the trajectory if asked."""
    if denoise:
        x = to_x0(x, ts[-1])
        _finite(x, "in the final denoising step")
        xs.append(x)
        ts = torch.cat([ts, ts.new_zeros(1)])
    if return_trajectory:
        return x, Trajectory(torch.stack(xs), ts)
    return x


def ode(fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, path: Path, steps: int, *, method: str = "heun",
        pred: str = "score", variable: str | None = None, t_max: float | None = None, t_min: float | None = None,
        spacing: str | None = None, denoise: bool = True,
        return_trajectory: bool = False) -> Tensor | tuple[Tensor, Trajectory]:
    """Integrate the probability-flow ODE (Song et al. 2021, eq. 13) from t_max to t_min.

    ``variable`` is what the steps are taken in:

    * ``"t"``: the ODE as written, ``dx/dt = v(x, t)`` (the velocity). Euler is ``x <- x + h v``; Heun averages
      the velocities at both ends of the step (Heun's method, second order, ``2 steps`` evaluations).
    * ``"sigma"``: the scaled coordinates of Karras et al. (2022, sec. 3 and alg. 1), ``x~ = x / alpha`` against
      ``sigma~ = sigma / alpha``, where the ODE reads ``dx~/dsigma~ = eps_hat(x, t)``. Euler there *is* DDIM
      (:func:`ddim` with ``eta=0``); Heun averages the two eps predictions.

    On the linear path the two Euler methods coincide; Heun does not. Each path names its accurate default
    (``path.ode_variable``, ``path.spacing``), chosen from the error-vs-NFE measurements of
    ``benchmarks/samplers.py``: Heun in t where sigma~ spans many orders of magnitude within one step (the linear
    and VP paths, whose sigma~ runs from about 1000 or 6 to 0), Heun in sigma on the VE path, where Euler in t is
    Euler in log sigma and very stiff. ``x`` is the start at t_max, e.g. ``path.prior(n, dim)``.
    """
    x = _start(x)
    steps = _checks.count("steps", steps)
    _checks.choice("method", method, ("euler", "heun"))
    ts = _grid(path, steps, x, t_max, t_min, spacing)
    variable = _checks.choice("variable", path.ode_variable if variable is None else variable, ("t", "sigma"))
    field = _Field(fn, path, pred)
    xs = [x] if return_trajectory else []
    c = path(ts)
    if variable == "t":
        if field.pred != "velocity" and c.alpha.device.type != "meta" and not bool((c.alpha > 0).all()):
            raise ValueError(f"ode in variable='t' converts the {field.pred} prediction to a velocity, which needs "
                             f"alpha > 0, but alpha(t_max={ts[0].item():.4g}) = 0: start below t = 1 (the Linear "
                             "path's default t_max is 0.999) or give a velocity prediction (pred='velocity')")
        for i in _progress(steps, "ode"):
            h = ts[i + 1] - ts[i]  # < 0
            d = field(x, ts[i], "velocity")
            x_next = x + h * d
            if method == "heun":
                x_next = x + h * 0.5 * (d + field(x_next, ts[i + 1], "velocity"))
            x = x_next
            _finite(x, f"at step {i + 1} (t={ts[i + 1].item():.4g})")
            if return_trajectory:
                xs.append(x)
        return _finish(lambda z, t: field(z, t, "x0"), x, ts, xs, denoise, return_trajectory)
    if c.alpha.device.type != "meta" and not bool((c.alpha > 0).all()):  # meta: shapes only, no values
        raise ValueError(f"ode in variable='sigma' integrates in x / alpha and needs alpha > 0 on the whole grid, "
                         f"but alpha(t_max={ts[0].item():.4g}) = 0: start below t = 1 (the Linear path's default "
                         "t_max is 0.999) or use variable='t'")
    alpha, sig = c.alpha, c.sigma / c.alpha  # sigma~ along the grid
    for i in _progress(steps, "ode"):
        h = sig[i + 1] - sig[i]
        d = field(x, ts[i], "eps")
        xt_next = x / alpha[i] + h * d
        if method == "heun":
            d2 = field(alpha[i + 1] * xt_next, ts[i + 1], "eps")
            xt_next = x / alpha[i] + h * 0.5 * (d + d2)
        x = alpha[i + 1] * xt_next
        _finite(x, f"at step {i + 1} (t={ts[i + 1].item():.4g})")
        if return_trajectory:
            xs.append(x)
    return _finish(lambda z, t: field(z, t, "x0"), x, ts, xs, denoise, return_trajectory)


def sde(fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, path: Path, steps: int, *,
        generator: torch.Generator | None = None, pred: str = "score", t_max: float | None = None,
        t_min: float | None = None, spacing: str | None = None, denoise: bool = True,
        return_trajectory: bool = False) -> Tensor | tuple[Tensor, Trajectory]:
    """Euler–Maruyama on the reverse SDE ``dx = [f x - g^2 score] dt + g dW`` from t_max to t_min
    (Anderson 1982; Song et al. 2021, eq. 6). Noise is drawn from ``generator`` (a CPU generator)."""
    x = _start(x)
    steps = _checks.count("steps", steps)
    ts = _grid(path, steps, x, t_max, t_min, spacing)
    field = _Field(fn, path, pred)
    xs = [x] if return_trajectory else []
    for i in _progress(steps, "sde"):
        h = ts[i + 1] - ts[i]  # < 0
        drift, g = path.reverse_sde(x, ts[i], field(x, ts[i], "score"))
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x = x + h * drift + g * torch.sqrt(-h) * z
        _finite(x, f"at step {i + 1} (t={ts[i + 1].item():.4g})")
        if return_trajectory:
            xs.append(x)
    return _finish(lambda z, t: field(z, t, "x0"), x, ts, xs, denoise, return_trajectory)


def ddim(fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, path: Path, steps: int, *, eta: float = 0.0,
         generator: torch.Generator | None = None, pred: str = "score", t_max: float | None = None,
         t_min: float | None = None, spacing: str | None = None, denoise: bool = True,
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
    return _finish(lambda z, t: field(z, t, "x0"), x, ts, xs, denoise, return_trajectory)


def ddpm(fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, path: Path, steps: int, *,
         generator: torch.Generator | None = None, **kwargs: Any) -> Tensor | tuple[Tensor, Trajectory]:
    """DDPM ancestral sampling (Ho et al. 2020, alg. 2): each step draws from the Gaussian posterior
    ``q(x_s | x_t, x0 = x0_hat)``; identical to :func:`ddim` with ``eta=1``."""
    return ddim(fn, x, path, steps, eta=1.0, generator=generator, **kwargs)


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


def ddim_cfgpp(pair: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]], x: Tensor, path: Path, steps: int, *,
               guidance_scale: float, pred: str = "score", t_max: float | None = None, t_min: float | None = None,
               spacing: str | None = None, denoise: bool = True,
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
    return _finish(lambda z, t: both(z, t)[0], x, ts, xs, denoise, return_trajectory)
