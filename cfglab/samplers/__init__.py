"""Samplers: plain functions with one signature, ``sampler(fn, x, path, steps, ...)``.

``fn(x, t)`` returns a prediction at (x, t) for t a (n,) tensor; by default a score (``pred="score"``), but any of
eps, x0, score, velocity or v may be named and the path converts. All diffusion samplers integrate from ``t_max``
down to ``t_min`` (the path's defaults) on ``path.timesteps(steps, spacing=...)`` (``spacing`` may also be the grid
itself, a tensor of ``steps + 1`` times) and, with ``denoise=True``, finish with the Tweedie estimate
``E[x0 | x_{t_min}]``. ``return_trajectory=True`` also returns a :class:`Trajectory`. Langevin samplers take a score
``fn(x)`` of a fixed target instead.

The package holds ``continuous`` (the probability-flow ODE and the reverse SDE), ``discrete`` (DDIM, DDPM and DDIM
with CFG++), ``multistep`` (DPM-Solver++(2M)) and ``mcmc`` (Langevin, MALA, annealed Langevin), on the shared pieces
of ``base``; every name is re-exported here (``cl.ode``, ``cl.samplers.ddim_cfgpp``, ...).
"""

from .base import Trajectory
from .continuous import ode, sde
from .discrete import ddim, ddim_cfgpp, ddpm
from .mcmc import annealed_langevin, langevin, mala
from .multistep import dpmpp_2m

PROGRESS_DELAY = 3.0  # seconds a sampler runs before its progress bar appears (read at each call)

__all__ = ["PROGRESS_DELAY", "Trajectory", "annealed_langevin", "ddim", "ddim_cfgpp", "ddpm", "dpmpp_2m", "langevin",
           "mala", "ode", "sde"]
