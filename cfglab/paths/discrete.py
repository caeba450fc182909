"""Discrete-time schedules as paths: diffusers' beta schedules, its integer timesteps and zero terminal SNR.

A DDPM-style model is trained on ``T`` integer timesteps ``k = 0 .. T-1`` (``num_train_timesteps``, 1000 in DDPM
and Stable Diffusion) with ``x_k = sqrt(abar_k) x0 + sqrt(1 - abar_k) eps`` and ``abar_k = prod_{i <= k}
(1 - beta_i)`` (Ho et al. 2020, eq. 4; diffusers' ``alphas_cumprod``). :class:`Discrete` reads that table as a path
of the course: timestep k sits at ``t = (k + 1) / T``, so ``t = 0`` is the data (``abar = 1``) and ``t = 1`` is the
last training timestep ``T - 1`` (:meth:`Discrete.t_of_timestep`). Between two timesteps Karras' noise level
``sigma~ = sigma / alpha = sqrt((1 - abar) / abar)`` is linear in the timestep, which is how diffusers' Euler
schedulers read fractional timesteps, so a grid of scheduler timesteps is the same grid here.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch
from torch import Tensor

from .. import _checks
from .base import SPACINGS, Path

BETA_SCHEDULES = ("linear", "scaled_linear")
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")  # Lin et al. (2024), table 2; diffusers' timestep_spacing
_DEFAULT_BETAS = {"linear": (1e-4, 0.02), "scaled_linear": (0.00085, 0.012)}


def beta_schedule(kind: str = "linear", num_train_timesteps: int = 1000, beta_start: float | None = None,
                  beta_end: float | None = None) -> Tensor:
    """The betas of a diffusers ``beta_schedule``, float64, shape (num_train_timesteps,).

    ``"linear"``: ``beta`` linear from ``beta_start`` to ``beta_end`` (DDPM, Ho et al. 2020, sec. 4: 1e-4 to 0.02,
    the defaults); ``"scaled_linear"``: ``sqrt(beta)`` linear, the schedule of latent diffusion and Stable Diffusion
    (Rombach et al. 2022; 0.00085 to 0.012, the defaults)."""
    kind = _checks.choice("kind", kind, BETA_SCHEDULES)
    n = _checks.count("num_train_timesteps", num_train_timesteps, minimum=2)
    lo, hi = _DEFAULT_BETAS[kind]
    lo = lo if beta_start is None else _checks.scalar("beta_start", beta_start, positive=True)
    hi = hi if beta_end is None else _checks.scalar("beta_end", beta_end, positive=True)
    if not lo <= hi < 1:
        raise ValueError(f"need 0 < beta_start <= beta_end < 1, got beta_start={lo}, beta_end={hi}")
    if kind == "linear":
        return torch.linspace(lo, hi, n, dtype=torch.float64)
    return torch.linspace(math.sqrt(lo), math.sqrt(hi), n, dtype=torch.float64) ** 2


def rescale_zero_terminal_snr(betas: Tensor) -> Tensor:
    """Zero terminal SNR (Lin et al. 2024, "Common diffusion noise schedules and sample steps are flawed", alg. 1):
    shift ``sqrt(abar)`` so that its last value is 0 and scale it so that its first value is unchanged, then return
    the betas of the new ``abar`` (the last beta is 1: the last timestep is pure noise). Float64 in, float64 out."""
    betas = _checks.tensor("betas", betas, ndim=1)
    if betas.shape[0] < 2 or not ((betas > 0) & (betas < 1)).all():
        raise ValueError("betas must hold at least two values in (0, 1)")
    root = torch.cumprod(1 - betas.to(torch.float64), 0).sqrt()   # sqrt(abar), decreasing
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * (first / (first - last))
    abar = root**2
    alphas = torch.cat([abar[:1], abar[1:] / abar[:-1]])
    return 1 - alphas


class Discrete(Path):
    """A diffusers-style discrete schedule as a path of the course (see the module docstring for the map t <-> k).

    Built from a ``beta_schedule`` (:func:`beta_schedule`) with diffusers' argument names, optionally rescaled to
    zero terminal SNR (``rescale_betas_zero_snr``, :func:`rescale_zero_terminal_snr`), or from a table
    ``alphas_cumprod`` itself (e.g. a scheduler's, ``torch.as_tensor(scheduler.alphas_cumprod)``). It is variance
    preserving: ``alpha = sqrt(abar)``, ``sigma = sqrt(1 - abar)`` at every timestep. With zero terminal SNR the last
    interval is linear in the angle ``atan(sigma~)`` instead, so that ``alpha(1) = 0`` exactly.

    Sampling grids may be the course's (``"uniform"``, ``"logsnr"``, ``"edm"``) or diffusers' timestep spacings
    (``"leading"``, ``"trailing"``, ``"linspace"``, :meth:`scheduler_timesteps`), which end at ``t = 0``. The
    defaults are diffusers' ``"trailing"`` grid (Lin et al. 2024, sec. 3.3) and Euler in Karras' variable
    ``sigma~`` (diffusers' ``EulerDiscreteScheduler``, which is DDIM).
    """

    spacing = "trailing"
    ode_variable = "sigma"

    def __init__(self, beta_schedule: str | None = None, num_train_timesteps: int = 1000, *,
                 beta_start: float | None = None, beta_end: float | None = None,
                 rescale_betas_zero_snr: bool = False, alphas_cumprod: Any = None):
        if alphas_cumprod is not None:
            if beta_schedule is not None or beta_start is not None or beta_end is not None or rescale_betas_zero_snr:
                raise ValueError("alphas_cumprod replaces the beta schedule: give one or the other")
            acp = _checks.tensor("alphas_cumprod", torch.as_tensor(alphas_cumprod), ndim=1).to(torch.float64)
            self.beta_schedule = "table"
            self.beta_start = self.beta_end = None
            self.rescale_betas_zero_snr = False
        else:
            self.beta_schedule = _checks.choice("beta_schedule", beta_schedule or "linear", BETA_SCHEDULES)
            lo, hi = _DEFAULT_BETAS[self.beta_schedule]
            self.beta_start = lo if beta_start is None else beta_start
            self.beta_end = hi if beta_end is None else beta_end
            betas = _beta_schedule(self.beta_schedule, num_train_timesteps, self.beta_start, self.beta_end)
            self.rescale_betas_zero_snr = bool(rescale_betas_zero_snr)
            if self.rescale_betas_zero_snr:
                betas = rescale_zero_terminal_snr(betas)
            acp = torch.cumprod(1 - betas, 0)
        n = acp.shape[0]
        if n < 2 or not ((acp >= 0) & (acp < 1)).all() or not (acp[1:] < acp[:-1]).all() or (acp[:-1] <= 0).any():
            raise ValueError("alphas_cumprod must hold at least two strictly decreasing values in [0, 1), only the "
                             "last of which may be 0")
        self.num_train_timesteps = n
        self.t_min = 1.0 / n                  # timestep 0, the least noisy one
        self._acp = acp
        self._sig = torch.cat([acp.new_zeros(1), ((1 - acp) / acp).sqrt()])  # sigma~ at k = -1, 0, ..., T-1

    # -- the table and the map between t and timesteps ----------------------------------------------------------
    @property
    def alphas_cumprod(self) -> Tensor:
        """diffusers' ``alphas_cumprod``, ``abar_k`` for k = 0 .. T-1 (float64, a copy)."""
        return self._acp.clone()

    @property
    def zero_terminal_snr(self) -> bool:
        """Whether the last timestep is pure noise, ``abar_{T-1} = 0``."""
        return bool(self._acp[-1] == 0)

    def t_of_timestep(self, timestep: Any) -> Tensor:
        """The course's time of a diffusers timestep k (an int, a float or a tensor; ``-1 <= k <= T-1``):
        ``t = (k + 1) / T``, float64."""
        try:
            k = torch.as_tensor(timestep).to(torch.float64)
        except (TypeError, ValueError, RuntimeError):
            kind = type(timestep).__name__
            raise TypeError(f"timestep must be a number or a tensor of numbers, got {kind}") from None
        last = self.num_train_timesteps - 1
        if k.is_complex() or not torch.isfinite(k).all() or (k < -1).any() or (k > last).any():
            raise ValueError(f"timestep must lie in [-1, {self.num_train_timesteps - 1}], got {timestep!r}")
        return (k + 1) / self.num_train_timesteps

    def timestep_of_t(self, t: Any) -> Tensor:
        """The (fractional) diffusers timestep of the course's time t: ``k = T t - 1``, float64."""
        t = _checks.time_values("t", t).to(torch.float64)
        return self.num_train_timesteps * t - 1

    def scheduler_timesteps(self, steps: int, spacing: str = "trailing") -> Tensor:
        """The integer timesteps of ``steps`` sampling steps, largest first, by diffusers' DDIMScheduler rules
        (Lin et al. 2024, table 2): ``"linspace"`` rounds ``linspace(0, T-1, steps)``; ``"leading"`` is
        ``(T // steps) * [steps-1, ..., 1, 0]`` (it never visits the last timestep); ``"trailing"`` rounds
        ``T - i T/steps`` and subtracts one (it starts at ``T - 1``). Other schedulers differ in details (the
        DPM-Solver scheduler's "leading" divides by ``steps + 1``); pass their own timesteps where it matters."""
        steps = _checks.count("steps", steps)
        spacing = _checks.choice("spacing", spacing, TIMESTEP_SPACINGS)
        n = self.num_train_timesteps
        if steps > n:
            raise ValueError(f"steps must be <= num_train_timesteps = {n}, got {steps}")
        i = torch.arange(steps, dtype=torch.float64)
        if spacing == "linspace":
            k = torch.linspace(0, n - 1, steps, dtype=torch.float64).round().flip(0)
        elif spacing == "leading":
            k = (i * (n // steps)).flip(0)
        else:
            k = (n - i * (n / steps)).round() - 1
        return k.to(torch.int64)

    def timesteps(self, steps: int, *, t_max: float | None = None, t_min: float | None = None,
                  spacing: str | Tensor | None = None, dtype: torch.dtype = torch.float64,
                  device: torch.device | str | None = None) -> Tensor:
        """A decreasing grid of ``steps + 1`` times. The course's spacings and explicit grids as in
        :meth:`cfglab.paths.Path.timesteps`; diffusers' ``"leading"``, ``"trailing"`` and ``"linspace"`` (the
        default is ``"trailing"``) are the times of :meth:`scheduler_timesteps` followed by ``t = 0``, where the
        last step lands on the clean sample (DDIM's ``set_alpha_to_one``, the final sigma 0 of the Euler and
        DPM-Solver schedulers); ``t_max`` and ``t_min`` do not apply to them."""
        spacing = self.spacing if spacing is None else spacing
        if isinstance(spacing, Tensor) or spacing in SPACINGS:
            return super().timesteps(steps, t_max=t_max, t_min=t_min, spacing=spacing, dtype=dtype, device=device)
        _checks.choice("spacing", spacing, SPACINGS + TIMESTEP_SPACINGS)
        if t_max is not None or t_min is not None:
            raise ValueError(f"t_max and t_min do not apply to diffusers' {spacing!r} spacing")
        t = self.t_of_timestep(self.scheduler_timesteps(steps, spacing))
        return torch.cat([t, t.new_zeros(1)]).to(dtype=dtype, device=device)

    # -- coefficients -------------------------------------------------------------------------------------------
    def _coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        n, sig = self.num_train_timesteps, self._sig.to(t.device)
        k = n * t.to(torch.float64) - 1                                  # fractional timestep in [-1, T-1]
        j = torch.floor(k).clamp(-1, n - 2).long()                       # the interval [j, j+1] holding k
        u = k - j
        s0, s1 = sig[j + 1], sig[j + 2]
        inf = torch.isinf(s1)                                            # the last interval of a zero-SNR table
        s1f = torch.where(inf, s0, s1)
        st = s0 + u * (s1f - s0)                                         # sigma~, linear in the timestep
        ds = n * (s1f - s0)
        a = torch.rsqrt(1 + st**2)
        alpha, sigma, d_alpha, d_sigma = a, st * a, -st * ds * a**3, ds * a**3
        if t.device.type == "meta" or bool(inf.any()):
            p0 = torch.atan(s0)
            phi = p0 + u * (math.pi / 2 - p0)                            # the angle, linear in the timestep
            dp = n * (math.pi / 2 - p0)
            end = k >= n - 1
            alpha = torch.where(inf, torch.where(end, torch.zeros_like(phi), torch.cos(phi)), alpha)
            sigma = torch.where(inf, torch.where(end, torch.ones_like(phi), torch.sin(phi)), sigma)
            d_alpha = torch.where(inf, -torch.sin(phi) * dp, d_alpha)
            d_sigma = torch.where(inf, torch.cos(phi) * dp, d_sigma)
        return tuple(c.to(t.dtype) for c in (alpha, sigma, d_alpha, d_sigma))  # type: ignore[return-value]

    def _t_of_logsnr(self, lam: Tensor) -> Tensor:
        n, sig = self.num_train_timesteps, self._sig
        st = torch.exp(-lam.to(torch.float64))                            # sigma~ = alpha / sigma ... inverted
        finite = sig[torch.isfinite(sig)]
        i = torch.searchsorted(finite, st.clamp(max=finite[-1].item())).clamp(1, finite.shape[0] - 1)
        lo, hi = finite[i - 1], finite[i]
        k = (i - 2) + (st.clamp(max=finite[-1].item()) - lo) / (hi - lo)  # table index i - 1 is timestep i - 2
        if self.zero_terminal_snr:                                       # beyond the last finite sigma~: the angle
            p0 = math.atan(finite[-1].item())
            last = (n - 2) + (torch.atan(st) - p0) / (math.pi / 2 - p0)
            k = torch.where(st > finite[-1], last, k)
        return ((k + 1) / n).clamp(0.0, 1.0).to(lam.dtype)

    # -- identity -----------------------------------------------------------------------------------------------
    def _key(self) -> tuple[Any, ...]:
        if self.beta_schedule == "table":
            digest = hashlib.sha1(self._acp.numpy().tobytes()).hexdigest()[:12]
            return ("table", self.num_train_timesteps, digest)
        return (self.beta_schedule, self.num_train_timesteps, self.beta_start, self.beta_end,
                self.rescale_betas_zero_snr)

    def __repr__(self) -> str:
        if self.beta_schedule == "table":
            return f"Discrete(alphas_cumprod=<{self.num_train_timesteps} values, sha1 {self._key()[2]}>)"
        return (f"Discrete(beta_schedule={self.beta_schedule!r}, num_train_timesteps={self.num_train_timesteps}, "
                f"beta_start={self.beta_start!r}, beta_end={self.beta_end!r}, "
                f"rescale_betas_zero_snr={self.rescale_betas_zero_snr!r})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Discrete) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(("Discrete",) + self._key())


_beta_schedule = beta_schedule  # the constructor's argument of the same name shadows the function
