"""Multistep samplers: DPM-Solver++(2M), which reuses the previous step's clean-sample prediction to reach second
order at one evaluation per step (the default sampler of many diffusers pipelines)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .. import _checks
from ..paths import Path
from .base import Trajectory, _Field, _finish, _finite, _grid, _progress, _start


def dpmpp_2m(fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, path: Path, steps: int, *, pred: str = "score",
             t_max: float | None = None, t_min: float | None = None, spacing: str | Tensor | None = None,
             denoise: bool = True, return_trajectory: bool = False) -> Tensor | tuple[Tensor, Trajectory]:
    """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++: fast solver for guided sampling of diffusion probabilistic
    models", alg. 2), the multistep second-order solver of the probability-flow ODE written for the clean-sample
    prediction ``x0_hat`` in the log-SNR ``lambda = log(alpha / sigma)``.

    From ``t_i`` to ``t_{i+1}``, with ``h_i = lambda_{i+1} - lambda_i``, ``r_i = h_{i-1} / h_i`` and the
    clean-sample predictions ``d_i = x0_hat(x_i, t_i)``::

        D_i     = (1 + 1/(2 r_i)) d_i - 1/(2 r_i) d_{i-1}         (D_0 = d_0)
        x_{i+1} = (sigma_{i+1} / sigma_i) x_i + alpha_{i+1} (1 - e^{-h_i}) D_i

    The first step is DPM-Solver++(1), which is DDIM; a step that lands on ``sigma = 0`` (a grid ending at the clean
    sample, as diffusers' ``final_sigmas_type="zero"``) is first order too and returns ``D = x0_hat``. One
    evaluation per step; second order in the step (``benchmarks/samplers.py`` measures it on a Gaussian). The
    same update as diffusers' ``DPMSolverMultistepScheduler`` (``algorithm_type="dpmsolver++"``,
    ``solver_order=2``, ``solver_type="midpoint"``) and k-diffusion's ``sample_dpmpp_2m``, which writes it in
    ``t = -log sigma~``; ``e^{-h_i} = sigma~_{i+1} / sigma~_i`` with ``sigma~ = sigma / alpha``, so the step never
    divides by alpha and may start at ``alpha = 0`` (zero terminal SNR) with an x0 or v prediction.
    """
    x = _start(x)
    steps = _checks.count("steps", steps)
    ts = _grid(path, steps, x, t_max, t_min, spacing)
    field = _Field(fn, path, pred)
    c = path(ts)
    alpha, sigma, lam = c.alpha, c.sigma, c.logsnr
    if sigma.device.type != "meta" and not bool((sigma[:-1] > 0).all()):
        raise ValueError("dpmpp_2m needs sigma > 0 at every grid time but the last: the grid reaches the data "
                         "before its end")
    xs = [x] if return_trajectory else []
    prev: Tensor | None = None
    for i in _progress(steps, "dpmpp_2m"):
        x0 = field(x, ts[i], "x0")
        h = lam[i + 1] - lam[i]
        d = x0
        if prev is not None and bool(torch.isfinite(h)) and sigma[i + 1] > 0:
            h_prev = lam[i] - lam[i - 1]
            d = x0 + (h / (2 * h_prev)) * (x0 - prev)       # 1/(2 r) = h / (2 h_prev); 0 after an infinite step
        ratio = sigma[i + 1] / sigma[i]
        x = ratio * x + (alpha[i + 1] - alpha[i] * ratio) * d   # alpha_{i+1} (1 - e^{-h}) = alpha_{i+1} - alpha_i ratio
        prev = x0
        _finite(x, f"at step {i + 1} (t={ts[i + 1].item():.4g})")
        if return_trajectory:
            xs.append(x)
    return _finish(lambda z, t: field(z, t, "x0"), x, ts, xs, denoise, return_trajectory, path)
