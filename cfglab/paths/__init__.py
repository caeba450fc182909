"""Noising paths: ``x_t = alpha(t) * x_0 + sigma(t) * eps`` with t in [0, 1], t = 0 data, t = 1 noise.

A path owns every conversion between the five quantities a network can predict (STYLE principle 4):

    eps      the noise,                      eps   = (x - alpha x0) / sigma
    x0       the clean sample (Tweedie),     x0    = (x - sigma eps) / alpha
    score    grad_x log p_t(x),              score = -eps / sigma
    velocity d x_t / dt along the path,      velocity = alpha' x0 + sigma' eps
    v        Salimans & Ho's v,              v     = alpha eps - sigma x0   (diffusers' "v_prediction")

Conditional expectations of these given x_t are related by the same linear maps, so a network that predicts one of
them predicts all five. The course's *velocity* is the time derivative of x_t and the probability-flow ODE drift
(Song et al. 2021, eq. 13); Salimans and Ho's *v* (2022, "Progressive distillation", sec. 4) is a different quantity
(on a variance-preserving path it is the derivative of x_t with respect to the angle atan(sigma/alpha), not t). The
reverse SDE is ``dx = [f x - g^2 score] dt + g dW`` run from t = 1 to 0 with ``f = alpha'/alpha`` and
``g^2 = 2 sigma^2 (sigma'/sigma - alpha'/alpha)`` (Kingma et al. 2021, "Variational Diffusion Models", app. A).

The package holds ``base`` (:class:`Path`, the conversions and grids), ``continuous`` (the course's VE, VP and
Linear paths) and ``discrete`` (diffusers-style beta schedules over integer timesteps, :class:`Discrete`, and zero
terminal SNR); every name is re-exported here.
"""

from .base import PREDICTIONS, SPACINGS, Coefficients, Path
from .continuous import VE, VP, Linear
from .discrete import BETA_SCHEDULES, TIMESTEP_SPACINGS, Discrete, beta_schedule, rescale_zero_terminal_snr

__all__ = [
    "PREDICTIONS", "SPACINGS", "Coefficients", "Path",
    "VE", "VP", "Linear",
    "BETA_SCHEDULES", "TIMESTEP_SPACINGS", "Discrete", "beta_schedule", "rescale_zero_terminal_snr",
]
