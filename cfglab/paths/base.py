"""The base class of every noising path: coefficients at time t, the sampling grid, noising, training targets and
every conversion between the five quantities a network can predict."""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any

import torch
from torch import Tensor

from .. import _checks

PREDICTIONS = ("eps", "x0", "score", "velocity", "v")
SPACINGS = ("edm", "logsnr", "uniform")  # the named grids of every path (:meth:`Path.timesteps`)


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


def _explicit_grid(steps: int, grid: Tensor, dtype: torch.dtype, device: torch.device | str | None) -> Tensor:
    """Check a grid of times given as a tensor: 1-D, ``steps + 1`` finite times in [0, 1], strictly decreasing."""
    if grid.ndim != 1 or grid.shape[0] != steps + 1:
        raise ValueError(f"spacing given as a tensor must be the grid itself, a 1-D tensor of steps + 1 = "
                         f"{steps + 1} times, got shape {tuple(grid.shape)}")
    if not grid.is_floating_point():
        raise TypeError(f"spacing given as a tensor must hold floating-point times, got dtype {grid.dtype}")
    g = grid.detach().to(torch.float64)
    if g.device.type != "meta" and not (torch.isfinite(g).all() and (g >= 0).all() and (g <= 1).all()
                                        and (g[1:] < g[:-1]).all()):
        raise ValueError("spacing given as a tensor must hold finite times in [0, 1], strictly decreasing (from "
                         "noise to data)")
    return grid.to(dtype=dtype, device=device)


class Path:
    """Base class of a noising path. Subclasses define the coefficients and their inverse in log-SNR.

    ``t_min`` and ``t_max`` are the default ends of sampling grids: the coefficients are finite and invertible
    strictly inside them (e.g. the linear path has ``alpha(1) = 0``, so the score alone cannot give x0 there).
    """

    t_min: float = 0.0
    t_max: float = 1.0
    spacing: str = "logsnr"      # the samplers' default grid (``timesteps(spacing=...)``)
    ode_variable: str = "sigma"  # what :func:`cfglab.samplers.ode` steps in by default: "t" or "sigma"

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
        """Sample the prior at t = 1, ``N(0, sigma(1)^2 I)``, shape ``(n, *dim)``."""
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
                  spacing: str | Tensor | None = None, dtype: torch.dtype = torch.float64,
                  device: torch.device | str | None = None) -> Tensor:
        """A decreasing grid of ``steps + 1`` times from ``t_max`` to ``t_min``.

        ``spacing="edm"`` is Karras et al. (2022, eq. 5) with rho = 7 in ``sigma/alpha`` (steps concentrate at low
        noise, where samples take shape); ``"logsnr"`` is uniform in log(alpha/sigma) (DPM-Solver's choice; for VE
        it is uniform t); ``"uniform"`` is uniform in t. ``None`` is the path's own default, ``path.spacing`` (the
        grid on which the course's samplers are most accurate per evaluation, see :func:`cfglab.samplers.ode`).
        A tensor is the grid itself (``steps + 1`` decreasing times, e.g. a diffusers scheduler's timesteps mapped to
        t by :meth:`cfglab.paths.Discrete.t_of_timestep`), checked and returned; ``t_max``, ``t_min`` must be None.
        """
        steps = _checks.count("steps", steps)
        if isinstance(spacing, Tensor):
            if t_max is not None or t_min is not None:
                raise ValueError("t_max and t_min come from the grid when spacing is a tensor; leave them out")
            return _explicit_grid(steps, spacing, dtype, device)
        spacing = self.spacing if spacing is None else spacing
        _checks.choice("spacing", spacing, SPACINGS)
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
        make = {"eps": lambda: eps, "x0": lambda: x0, "score": lambda: -eps / c.sigma,
                "v": lambda: c.alpha * eps - c.sigma * x0, "velocity": lambda: c.d_alpha * x0 + c.d_sigma * eps}
        return make[pred]()

    # -- conversions --------------------------------------------------------------------------------------------
    def convert(self, value: Tensor, x: Tensor, t: Any, src: str, dst: str) -> Tensor:
        """Convert a prediction ``value`` of kind ``src`` at (x, t) into kind ``dst``.

        All five kinds are affine in (x0, eps); we go through the pair (x0, eps). With ``D = alpha sigma' -
        sigma alpha'`` (> 0 on every path here), the velocity gives ``x0 = (sigma' x - sigma v)/D`` and
        ``eps = (alpha v - alpha' x)/D``. Salimans and Ho's ``v = alpha eps - sigma x0`` (2022, sec. 4; diffusers'
        ``v_prediction``) gives, with ``r = alpha^2 + sigma^2`` (1 on variance-preserving paths),
        ``x0 = (alpha x - sigma v)/r`` and ``eps = (sigma x + alpha v)/r``.
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
        elif src == "v":
            r = a**2 + s**2
            x0 = (a * x - s * value) / r
            eps = (s * x + a * value) / r
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
        if dst == "v":
            return a * eps - s * x0
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
