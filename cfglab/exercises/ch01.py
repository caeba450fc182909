"""Checks for chapter 1, "Sampling with scores: Langevin dynamics".

- :func:`check_langevin_step`: one unadjusted Langevin step ``x + h * score + sqrt(2h) * z``.
- :func:`check_mala_accept_log_ratio`: the log Metropolis-Hastings ratio of a MALA proposal.
- :func:`check_tempered_weights`: the mode weights of ``p^(1/T)`` for a well-separated mixture.

Each reference is written out here in a few lines; ``tests/test_exercises_ch01.py`` ties the first two to
:func:`cfglab.langevin` and :func:`cfglab.mala` and the third to :meth:`cfglab.GaussianMixture.tempered`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..data import make
from ..paths import Linear
from ._core import Verdict, check_function


# -- (a) the Langevin step ---------------------------------------------------------------------------------------
def langevin_step_reference(x: Tensor, score: Tensor, h: float, z: Tensor) -> Tensor:
    """``x + h * score + sqrt(2h) * z`` (Roberts & Tweedie 1996): Euler-Maruyama on ``dx = score dt + sqrt(2) dW``."""
    return x + h * score + math.sqrt(2 * h) * z


def _langevin_inputs(g: torch.Generator) -> dict[str, Any]:
    n, d = 6, 2
    h = 0.02 + 0.3 * torch.rand((), generator=g, dtype=torch.float64).item()  # away from h = 1/2 and h = 1
    return {"x": torch.randn(n, d, generator=g, dtype=torch.float64),
            "score": torch.randn(n, d, generator=g, dtype=torch.float64),
            "h": h,
            "z": torch.randn(n, d, generator=g, dtype=torch.float64)}


LANGEVIN_MISTAKES: list[tuple[str, Callable[..., Tensor]]] = [
    ("the noise is scaled by h instead of sqrt(2 h). For small steps h is far smaller than sqrt(2 h), so the "
     "chain collapses onto the modes: it samples p^(1/T) at temperature T = h/2 instead of p. "
     "Use math.sqrt(2 * h) * z.",
     lambda x, score, h, z: x + h * score + h * z),
    ("the noise is scaled by sqrt(h) instead of sqrt(2 h). The chain then samples p^2 (temperature 1/2): every "
     "mode comes out with half its variance. Use math.sqrt(2 * h) * z.",
     lambda x, score, h, z: x + h * score + math.sqrt(h) * z),
    ("the noise is scaled by 2 h instead of sqrt(2 h): the square root is missing. Use math.sqrt(2 * h) * z.",
     lambda x, score, h, z: x + h * score + 2 * h * z),
    ("the score enters with the wrong sign: x - h * score walks downhill in log p, away from the modes. "
     "The drift is + h * score.",
     lambda x, score, h, z: x - h * score + math.sqrt(2 * h) * z),
    ("there is no noise term. Without sqrt(2 h) * z this is gradient ascent on log p: every chain slides to the "
     "nearest mode and stops there instead of sampling.",
     lambda x, score, h, z: x + h * score),
    ("the score is not multiplied by the step size h: the drift is h * score.",
     lambda x, score, h, z: x + score + math.sqrt(2 * h) * z),
]


def check_langevin_step(fn: Callable[..., Tensor], *, quiet: bool = False) -> Verdict:
    """Check ``langevin_step(x, score, h, z)`` against ``x + h * score + sqrt(2h) * z``."""
    return check_function("langevin_step", fn, langevin_step_reference, _langevin_inputs, rtol=1e-7, atol=1e-10,
                          mistakes=LANGEVIN_MISTAKES, quiet=quiet)


# -- (b) the MALA acceptance ratio -------------------------------------------------------------------------------
def _log_q(a: Tensor, b: Tensor, score_b: Tensor, h: float) -> Tensor:
    """``log N(a; b + h score(b), 2h I)`` up to a constant that cancels in the ratio, shape (n,)."""
    return -((a - b - h * score_b) ** 2).flatten(1).sum(1) / (4 * h)


def mala_accept_log_ratio_reference(x: Tensor, x_prop: Tensor, log_p_x: Tensor, log_p_prop: Tensor,
                                    score_x: Tensor, score_prop: Tensor, h: float) -> Tensor:
    """``log [p(x') q(x | x')] - log [p(x) q(x' | x)]`` with ``q(a | b) = N(a; b + h s(b), 2h I)``
    (Roberts & Tweedie 1996, MALA), shape (n,)."""
    return log_p_prop - log_p_x + _log_q(x, x_prop, score_prop, h) - _log_q(x_prop, x, score_x, h)


def _mala_inputs(g: torch.Generator) -> dict[str, Any]:
    mix = make("mixture")
    n = 6
    h = 0.02 + 0.2 * torch.rand((), generator=g, dtype=torch.float64).item()
    x, _ = mix.sample(n, generator=g, dtype=torch.float64)
    x = x + 0.3 * torch.randn(x.shape, generator=g, dtype=torch.float64)  # some chains away from the modes
    score_x = mix.score(x, 0.0, Linear())  # the clean score: t = 0 on the linear path is the data itself
    x_prop = x + h * score_x + math.sqrt(2 * h) * torch.randn(x.shape, generator=g, dtype=torch.float64)
    return {"x": x, "x_prop": x_prop, "log_p_x": mix.log_prob(x), "log_p_prop": mix.log_prob(x_prop),
            "score_x": score_x, "score_prop": mix.score(x_prop, 0.0, Linear()), "h": h}


def _ratio_with(log_q: Callable[..., Tensor]) -> Callable[..., Tensor]:
    def ratio(x: Tensor, x_prop: Tensor, log_p_x: Tensor, log_p_prop: Tensor, score_x: Tensor, score_prop: Tensor,
              h: float) -> Tensor:
        return log_p_prop - log_p_x + log_q(x, x_prop, score_prop, h) - log_q(x_prop, x, score_x, h)
    return ratio


MALA_MISTAKES: list[tuple[str, Callable[..., Tensor]]] = [
    ("the proposal correction is missing: log p(x') - log p(x) is the Metropolis ratio of a symmetric proposal, "
     "but the Langevin proposal is not symmetric (its mean moves along the score). Add "
     "log q(x | x') - log q(x' | x) with q(a | b) = N(a; b + h score(b), 2h I).",
     lambda x, x_prop, log_p_x, log_p_prop, score_x, score_prop, h: log_p_prop - log_p_x),
    ("the proposal density uses variance h instead of 2 h: the Langevin proposal x + h score + sqrt(2h) z has "
     "variance 2 h, so log q(a | b) = -|a - b - h score(b)|^2 / (4 h).",
     _ratio_with(lambda a, b, s, h: -((a - b - h * s) ** 2).flatten(1).sum(1) / (2 * h))),
    ("the proposal correction has the wrong sign: it is + log q(x | x') - log q(x' | x) (the reverse move over "
     "the forward move), not the other way round.",
     lambda x, x_prop, log_p_x, log_p_prop, score_x, score_prop, h:
         log_p_prop - log_p_x - _log_q(x, x_prop, score_prop, h) + _log_q(x_prop, x, score_x, h)),
    ("the reverse move uses the score at x. In q(x | x') the proposal starts from x', so its mean is "
     "x' + h * score(x'): use score_prop there.",
     lambda x, x_prop, log_p_x, log_p_prop, score_x, score_prop, h:
         log_p_prop - log_p_x + _log_q(x, x_prop, score_x, h) - _log_q(x_prop, x, score_x, h)),
    ("the ratio is upside down: it is the proposed state over the current one, "
     "log p(x') + log q(x | x') - log p(x) - log q(x' | x).",
     lambda *a, **k: -mala_accept_log_ratio_reference(*a, **k)),
    ("this is the acceptance probability min(1, exp(ratio)), not the log ratio itself. Return the log ratio "
     "(the sampler compares it with log u).",
     lambda *a, **k: mala_accept_log_ratio_reference(*a, **k).exp().clamp(max=1.0)),
]


def check_mala_accept_log_ratio(fn: Callable[..., Tensor], *, quiet: bool = False) -> Verdict:
    """Check ``mala_accept_log_ratio(x, x_prop, log_p_x, log_p_prop, score_x, score_prop, h)``."""
    return check_function("mala_accept_log_ratio", fn, mala_accept_log_ratio_reference, _mala_inputs,
                          rtol=1e-7, atol=1e-9, mistakes=MALA_MISTAKES, quiet=quiet)


# -- (c) the tempered mode weights -------------------------------------------------------------------------------
def tempered_weights_reference(weights: Tensor, stds: Tensor, T: float, dim: int) -> Tensor:
    """Mode masses of ``p^(1/T)`` for a well-separated mixture of isotropic Gaussians ``N(mu_k, s_k^2 I_d)``:
    ``proportional to w_k^(1/T) s_k^(d (1 - 1/T))``, normalised (see :meth:`cfglab.GaussianMixture.tempered`)."""
    return torch.softmax(torch.log(weights) / T + dim * (1 - 1 / T) * torch.log(stds), dim=0)


def _tempered_inputs(g: torch.Generator) -> dict[str, Any]:
    K = 4
    w = 0.2 + torch.rand(K, generator=g, dtype=torch.float64)
    stds = 0.1 + 0.9 * torch.rand(K, generator=g, dtype=torch.float64)
    T = [0.25, 0.5, 2.0, 3.0][int(torch.randint(4, (), generator=g))]
    dim = int(torch.randint(2, 5, (), generator=g))
    return {"weights": w / w.sum(), "stds": stds, "T": T, "dim": dim}


TEMPERED_MISTAKES: list[tuple[str, Callable[..., Tensor]]] = [
    ("the weights are not normalised: divide by their sum so that they add up to 1.",
     lambda weights, stds, T, dim: torch.exp(torch.log(weights) / T + dim * (1 - 1 / T) * torch.log(stds))),
    ("the width factor is missing. Raising N(mu, s^2 I) to the power 1/T leaves a constant that depends on s: "
     "each mode's mass is proportional to w^(1/T) * s^(d (1 - 1/T)), so narrow modes gain mass when T < 1.",
     lambda weights, stds, T, dim: torch.softmax(torch.log(weights) / T, dim=0)),
    ("the power is T instead of 1/T: the tempered density is p^(1/T).",
     lambda weights, stds, T, dim: torch.softmax(T * torch.log(weights) + dim * (1 - T) * torch.log(stds), dim=0)),
    ("the width factor has the wrong sign in its exponent: it is s^(d (1 - 1/T)), so for T < 1 narrow modes "
     "(small s) gain mass.",
     lambda weights, stds, T, dim: torch.softmax(torch.log(weights) / T + dim * (1 / T - 1) * torch.log(stds),
                                                 dim=0)),
    ("the width factor ignores the dimension: in d dimensions the Gaussian's normaliser is (2 pi s^2)^(-d/2), "
     "so the factor is s^(d (1 - 1/T)).",
     lambda weights, stds, T, dim: torch.softmax(torch.log(weights) / T + (1 - 1 / T) * torch.log(stds), dim=0)),
]


def check_tempered_weights(fn: Callable[..., Tensor], *, quiet: bool = False) -> Verdict:
    """Check ``tempered_weights(weights, stds, T, dim)`` against ``softmax(log w / T + d (1 - 1/T) log s)``."""
    return check_function("tempered_weights", fn, tempered_weights_reference, _tempered_inputs, rtol=1e-7,
                          atol=1e-10, mistakes=TEMPERED_MISTAKES, quiet=quiet)
