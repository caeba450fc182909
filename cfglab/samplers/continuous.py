"""The continuous-time samplers: the probability-flow ODE (Euler or Heun, in t or in Karras' sigma) and
Euler-Maruyama on the reverse SDE."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .. import _checks
from ..paths import Path
from .base import Trajectory, _Field, _finish, _finite, _grid, _progress, _start


def ode(fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, path: Path, steps: int, *, method: str = "heun",
        pred: str = "score", variable: str | None = None, t_max: float | None = None, t_min: float | None = None,
        spacing: str | Tensor | None = None, denoise: bool = True,
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
        return _finish(lambda z, t: field(z, t, "x0"), x, ts, xs, denoise, return_trajectory, path)
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
    return _finish(lambda z, t: field(z, t, "x0"), x, ts, xs, denoise, return_trajectory, path)


def sde(fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, path: Path, steps: int, *,
        generator: torch.Generator | None = None, pred: str = "score", t_max: float | None = None,
        t_min: float | None = None, spacing: str | Tensor | None = None, denoise: bool = True,
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
    return _finish(lambda z, t: field(z, t, "x0"), x, ts, xs, denoise, return_trajectory, path)
