"""The three continuous paths of the course: variance exploding (VE), variance preserving (VP) and the linear
interpolation of flow matching (Linear)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import _checks
from .base import Path


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
