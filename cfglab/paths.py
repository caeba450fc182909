"""Noising paths: ``x_t = alpha(t) * x_0 + sigma(t) * eps`` with t in [0, 1], t = 0 data, t = 1 noise.

A path owns every conversion between the four quantities a network can predict (STYLE principle 4):

    eps      the noise,                      eps   = (x - alpha x0) / sigma
    x0       the clean sample (Tweedie),     x0    = (x - sigma eps) / alpha
    score    grad_x log p_t(x),              score = -eps / sigma
    velocity d x_t / dt along the path,      v     = alpha' x0 + sigma' eps

Conditional expectations of these given x_t are related by the same linear maps, so a network that predicts one of
them predicts all four. The velocity is also the probability-flow ODE drift (Song et al. 2021, eq. 13), and the
reverse SDE is ``dx = [f x - g^2 score] dt + g dW`` run from t = 1 to 0 with ``f = alpha'/alpha`` and
``g^2 = 2 sigma^2 (sigma'/sigma - alpha'/alpha)`` (Kingma et al. 2021, "Variational Diffusion Models", app. A).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any

import torch
from torch import Tensor

from . import _checks

PREDICTIONS = ("eps", "x0", "score", "velocity")


def _pair(name: str, x: Any, other_name: str, other: Any) -> None:
    """Check that ``x`` and ``other`` are batches of one shape (a prediction and the point it was made at)."""
    _checks.tensor(name, x, min_ndim=1, finite=False)
    _checks.tensor(other_name, other, min_ndim=1, finite=False)
    if other.shape != x.shape:
        raise ValueError(f"{other_name} must have the shape of {name} {tuple(x.shape)}, got {tuple(other.shape)}")


@dataclass(frozen=True)
class Coefficients:
    """The path's coefficients at time t, each a tensor shaped to broadcast against x (e.g. (n, 1) for 2D data)."""

    alpha: Tensor
    sigma: Tensor
    d_alpha: Tensor
    d_sigma: Tensor

    @property
    def f(self) -> Tensor:
        """Drift coefficient of the forward SDE, ``alpha'/alpha``."""
        return self.d_alpha / self.alpha

    @property
    def g2(self) -> Tensor:
        """Squared diffusion of the forward SDE, ``2 sigma^2 (sigma'/sigma - alpha'/alpha)``."""
        return 2 * (self.sigma * self.d_sigma - self.sigma**2 * self.d_alpha / self.alpha)

    @property
    def logsnr(self) -> Tensor:
        """Log signal-to-noise ratio ``log(alpha / sigma)`` (half of VDM's log SNR)."""
        return torch.log(self.alpha) - torch.log(self.sigma)


class Path:
    """Base class of a noising path. Subclasses define the coefficients and their inverse in log-SNR.

    ``t_min`` and ``t_max`` are the default ends of sampling grids: the coefficients are finite and invertible
    strictly inside them (e.g. the linear path has ``alpha(1) = 0``, so the score alone cannot give x0 there).
    """

    t_min: float = 0.0
    t_max: float = 1.0
    spacing: str = "logsnr"      # the samplers' default grid (``timesteps(spacing=...)``)
    ode_variable: str = "sigma"  # what :func:`cfglab.ode` steps in by default: "t" or "sigma"

    def _coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def t_of_logsnr(self, lam: Any) -> Tensor:
        """The time at which ``log(alpha/sigma)`` equals ``lam`` (a number or a floating tensor; +-inf allowed)."""
        if not isinstance(lam, Tensor):
            if isinstance(lam, bool) or not isinstance(lam, Real):
                raise TypeError(f"lam must be a real number or a floating-point tensor, got {type(lam).__name__}")
            lam = torch.tensor(float(lam), dtype=torch.float64)
        elif not lam.is_floating_point():
            raise TypeError(f"lam must be a floating-point tensor, got dtype {lam.dtype}")
        if lam.device.type != "meta" and torch.isnan(lam).any():
            raise ValueError("lam contains NaN values")
        return self._t_of_logsnr(lam)

    def _t_of_logsnr(self, lam: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not define t_of_logsnr")

    # -- coefficients -------------------------------------------------------------------------------------------
    def __call__(self, t: Any, like: Tensor | None = None) -> Coefficients:
        """Coefficients at time ``t``. With ``like`` (a batch x), t is checked and shaped to broadcast against it:
        a scalar stays 0-d, a (n,) tensor becomes (n, 1, ..., 1)."""
        if like is None:
            like = torch.zeros((), dtype=t.dtype if isinstance(t, Tensor) and t.is_floating_point()
                               else torch.get_default_dtype(),
                               device=t.device if isinstance(t, Tensor) else None)
        t = _checks.times("t", t, like)
        if t.ndim == 1 and like.ndim >= 1:
            t = t.reshape(-1, *([1] * (like.ndim - 1)))
        return Coefficients(*self._coefficients(t))

    def prior(self, n: int, dim: int | tuple[int, ...], generator: torch.Generator | None = None, *,
              dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Tensor:
        """Sample the prior at t = 1, ``N(0, sigma(1)^2 I)``, shape (n, *dim)."""
        n = _checks.count("n", n)
        shape = (dim,) if isinstance(dim, int) else tuple(dim)
        for d in shape:
            _checks.count("dim", d)
        dtype = dtype or torch.get_default_dtype()
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
        sigma1 = self(torch.tensor(1.0, dtype=torch.float64)).sigma.item()
        return sigma1 * torch.randn((n, *shape), generator=generator, dtype=dtype, device=device)

    def timesteps(self, steps: int, *, t_max: float | None = None, t_min: float | None = None,
                  spacing: str | None = None, dtype: torch.dtype = torch.float64,
                  device: torch.device | str | None = None) -> Tensor:
        """A decreasing grid of ``steps + 1`` times from ``t_max`` to ``t_min``.

        ``spacing="edm"`` is Karras et al. (2022, eq. 5) with rho = 7 in ``sigma/alpha`` (steps concentrate at low
        noise, where samples take shape); ``"logsnr"`` is uniform in log(alpha/sigma) (DPM-Solver's choice; for VE
        it is uniform t); ``"uniform"`` is uniform in t. ``None`` is the path's own default, ``path.spacing`` (the
        grid on which the course's samplers are most accurate per evaluation, see :func:`cfglab.ode`).
        """
        steps = _checks.count("steps", steps)
        spacing = self.spacing if spacing is None else spacing
        _checks.choice("spacing", spacing, ("edm", "logsnr", "uniform"))
        hi = self.t_max if t_max is None else _checks.scalar("t_max", t_max)
        lo = self.t_min if t_min is None else _checks.scalar("t_min", t_min)
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"need 0 <= t_min < t_max <= 1, got t_min={lo}, t_max={hi}")
        if spacing == "uniform":
            return torch.linspace(hi, lo, steps + 1, dtype=dtype, device=device)
        ends = self(torch.tensor([hi, lo], dtype=torch.float64)).logsnr
        if not torch.isfinite(ends).all():
            raise ValueError(f"{spacing} spacing needs finite log(alpha/sigma) at t_max={hi} and t_min={lo}; "
                             "move them inside (0, 1) or use spacing='uniform'")
        lam = torch.linspace(ends[0].item(), ends[1].item(), steps + 1, dtype=torch.float64)
        if spacing == "edm":  # sigma~ = exp(-lam), interpolated linearly in sigma~^(1/rho)
            rho = 7.0
            smax, smin = math.exp(-ends[0].item()), math.exp(-ends[1].item())
            ramp = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
            sig = (smax ** (1 / rho) + ramp * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
            lam = -torch.log(sig)
        t = self.t_of_logsnr(lam).clamp(lo, hi)
        t[0], t[-1] = hi, lo
        return t.to(dtype=dtype, device=device)

    # -- noising and training targets ---------------------------------------------------------------------------
    def noise(self, x0: Tensor, t: Any, eps: Tensor) -> Tensor:
        """``x_t = alpha(t) x0 + sigma(t) eps``; ``eps`` has the shape of ``x0``."""
        _pair("x0", x0, "eps", eps)
        _checks.tensor("x0", x0, min_ndim=1)
        _checks.tensor("eps", eps, min_ndim=1)
        c = self(t, x0)
        return c.alpha * x0 + c.sigma * eps

    def target(self, pred: str, x0: Tensor, eps: Tensor, t: Any) -> Tensor:
        """What a network predicting ``pred`` regresses onto for the pair (x0, eps) noised at t."""
        _checks.choice("pred", pred, PREDICTIONS)
        _pair("x0", x0, "eps", eps)
        c = self(t, x0)
        if pred == "eps":
            return eps
        if pred == "x0":
            return x0
        if pred == "score":
            return -eps / c.sigma
        return c.d_alpha * x0 + c.d_sigma * eps

    # -- conversions --------------------------------------------------------------------------------------------
    def convert(self, value: Tensor, x: Tensor, t: Any, src: str, dst: str) -> Tensor:
        """Convert a prediction ``value`` of kind ``src`` at (x, t) into kind ``dst``.

        All four kinds are affine in (x0, eps); we go through the pair (x0, eps). With ``D = alpha sigma' -
        sigma alpha'`` (> 0 on every path here), velocity gives ``x0 = (sigma' x - sigma v)/D`` and
        ``eps = (alpha v - alpha' x)/D``.
        """
        _checks.choice("src", src, PREDICTIONS)
        _checks.choice("dst", dst, PREDICTIONS)
        _pair("x", x, "value", value)
        if src == dst:
            return value
        c = self(t, x)
        a, s, da, ds = c.alpha, c.sigma, c.d_alpha, c.d_sigma
        # (x0, eps) from the source, computing only the member(s) the destination needs.
        if src == "eps":
            eps = value
            x0 = (x - s * eps) / a
        elif src == "score":
            eps = -s * value
            x0 = (x + s**2 * value) / a
        elif src == "x0":
            x0 = value
            eps = (x - a * x0) / s
        else:
            det = a * ds - s * da
            x0 = (ds * x - s * value) / det
            eps = (a * value - da * x) / det
        if dst == "eps":
            return eps
        if dst == "x0":
            return x0
        if dst == "score":
            return -eps / s
        return da * x0 + ds * eps

    def ode_drift(self, x: Tensor, t: Any, score: Tensor) -> Tensor:
        """Probability-flow ODE drift ``f x - g^2/2 score`` (which equals the velocity) for a given score."""
        _pair("x", x, "score", score)
        c = self(t, x)
        return c.f * x - 0.5 * c.g2 * score

    def reverse_sde(self, x: Tensor, t: Any, score: Tensor) -> tuple[Tensor, Tensor]:
        """Drift ``f x - g^2 score`` and diffusion ``g`` of the reverse-time SDE, written for dt < 0."""
        _pair("x", x, "score", score)
        c = self(t, x)
        return c.f * x - c.g2 * score, torch.sqrt(c.g2)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(vars(self).items()))))


class VE(Path):
    """Variance exploding (Song et al. 2021, NCSN++): ``alpha = 1``, ``sigma = s_min (s_max/s_min)^t``."""

    spacing = "edm"        # Heun in sigma on Karras' grid: the most accurate per NFE here (benchmarks/samplers.py)
    ode_variable = "sigma"  # Euler in t would be Euler in log sigma, which is very stiff

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0):
        self.sigma_min = _checks.scalar("sigma_min", sigma_min, positive=True)
        self.sigma_max = _checks.scalar("sigma_max", sigma_max, positive=True)
        if self.sigma_max <= self.sigma_min:
            raise ValueError(f"sigma_max must exceed sigma_min, got {sigma_max} <= {sigma_min}")

    def _coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        log_ratio = math.log(self.sigma_max / self.sigma_min)
        sigma = self.sigma_min * torch.exp(t * log_ratio)
        one = torch.ones_like(t)
        return one, sigma, torch.zeros_like(t), sigma * log_ratio

    def _t_of_logsnr(self, lam: Tensor) -> Tensor:
        return (-lam - math.log(self.sigma_min)) / math.log(self.sigma_max / self.sigma_min)


class VP(Path):
    """Variance preserving with linear beta (DDPM, Ho et al. 2020; score SDE, Song et al. 2021, eq. 11).

    ``beta(t) = b_min + t (b_max - b_min)``, ``alpha = exp(-B(t)/2)`` with ``B = int_0^t beta``,
    ``sigma = sqrt(1 - alpha^2)``. ``sigma(0) = 0``, so samplers stop at ``t_min = 1e-3``.
    """

    t_min = 1e-3
    spacing = "logsnr"
    ode_variable = "t"  # sigma/alpha spans 0.03 .. 6.4: one Heun step in it averages eps over too wide a range

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        self.beta_min = _checks.scalar("beta_min", beta_min, positive=True)
        self.beta_max = _checks.scalar("beta_max", beta_max, positive=True)
        if self.beta_max < self.beta_min:
            raise ValueError(f"beta_max must be >= beta_min, got {beta_max} < {beta_min}")

    def _coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        B = self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2
        beta = self.beta_min + (self.beta_max - self.beta_min) * t
        alpha = torch.exp(-0.5 * B)
        sigma = torch.sqrt(-torch.expm1(-B))
        d_alpha = -0.5 * beta * alpha
        d_sigma = 0.5 * beta * alpha**2 / sigma
        return alpha, sigma, d_alpha, d_sigma

    def _t_of_logsnr(self, lam: Tensor) -> Tensor:
        # alpha^2/sigma^2 = e^{2 lam}  =>  B = softplus(-2 lam); solve b t + (db/2) t^2 = B for t >= 0.
        B = torch.nn.functional.softplus(-2 * lam)
        db = self.beta_max - self.beta_min
        if db == 0:
            return B / self.beta_min
        return (-self.beta_min + torch.sqrt(self.beta_min**2 + 2 * db * B)) / db


class Linear(Path):
    """Linear interpolation of rectified flow / flow matching (Liu et al. 2023; Lipman et al. 2023):
    ``alpha = 1 - t``, ``sigma = t``. Both ends are singular for some conversions, so grids default to
    ``[1e-3, 1 - 1e-3]``; a velocity prediction may be integrated on all of [0, 1]."""

    t_min = 1e-3
    t_max = 1.0 - 1e-3
    spacing = "uniform"  # the velocity changes evenly in t: uniform steps in t, Heun on dx/dt = v
    ode_variable = "t"   # sigma/alpha = t/(1 - t) runs from 999 to 0: Heun in it is poor at few steps

    def _coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return 1 - t, t, -torch.ones_like(t), torch.ones_like(t)

    def _t_of_logsnr(self, lam: Tensor) -> Tensor:
        return torch.sigmoid(-lam)
