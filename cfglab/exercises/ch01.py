"""Checks for chapter 1, "Sampling with scores: Langevin dynamics".

- :func:`check_langevin_step`: one unadjusted Langevin step ``x + h * score + sqrt(2h) * z``.
- :func:`check_mala_accept_log_ratio`: the log Metropolis-Hastings ratio of a MALA proposal.
- :func:`check_tempered_weights`: the mode weights of ``p^(1/T)`` for a well-separated mixture.
- :func:`check_annealed_langevin`: an annealed-Langevin loop, judged by the class frequencies and the spread of
  the samples it produces on a hidden mixture against the exact weights and variances.

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
from ._core import Verdict, _not_written, _raised_by_a_raise_statement, check_function


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


# -- (d) annealed Langevin dynamics, judged by the samples it produces ---------------------------------------------
# A hidden three-class mixture with unequal weights and widths, far apart: plain Langevin from a broad start gets its
# class frequencies wrong (each chain stays in the basin it slid into), annealing gets them right.
_AL_MEANS = torch.tensor([[0.0, 1.5], [-1.299, -0.75], [1.299, -0.75]], dtype=torch.float64)
_AL_STDS = torch.tensor([0.35, 0.25, 0.30], dtype=torch.float64)
_AL_WEIGHTS = torch.tensor([0.15, 0.30, 0.55], dtype=torch.float64)
AL_CHAINS, AL_LEVELS, AL_STEPS = 2000, 30, 10
AL_SIGMA_MAX, AL_SIGMA_MIN = 3.0, 0.05
AL_STEP_SCALE = 0.5 * AL_SIGMA_MIN**2
# Annealing with 30 levels of 10 steps is not exact: measured with the reference on 40 000 chains, its class
# frequencies miss the weights by up to 0.02 and its pooled mode variance exceeds the stationary ULA value by 3 %.
# The checker allows a little more than that on top of five standard errors of its 2000 chains.
AL_FREQ_BIAS, AL_VAR_BIAS = 0.025, 0.06


def _blurred_score(x: Tensor, sigma: float) -> Tensor:
    """Exact score of the hidden mixture convolved with N(0, sigma^2 I): component k becomes N(mu_k, (s_k^2 +
    sigma^2) I), and the score is the responsibility-weighted average of the component scores."""
    sigma = float(sigma)
    v = _AL_STDS.to(x) ** 2 + sigma**2                                     # (K,)
    diff = _AL_MEANS.to(x)[None] - x[:, None, :]                           # (n, K, d)
    log_r = torch.log(_AL_WEIGHTS.to(x)) - (diff**2).sum(-1) / (2 * v) - x.shape[1] / 2 * torch.log(v)
    r = torch.softmax(log_r, dim=1)                                        # (n, K)
    return (r[..., None] * diff / v[None, :, None]).sum(1)


def annealed_langevin_reference(score: Callable[[Tensor, float], Tensor], x: Tensor, sigmas: Any,
                                steps_per_level: int, step_scale: float, generator: torch.Generator) -> Tensor:
    """Annealed Langevin dynamics (Song & Ermon 2019, alg. 1): at each noise level sigma (largest first),
    ``steps_per_level`` ULA steps on p_sigma with step ``step_scale * sigma^2 / sigma_min^2``."""
    levels = [float(s) for s in sigmas]
    for sigma in levels:
        h = step_scale * sigma**2 / levels[-1] ** 2
        for _ in range(steps_per_level):
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x = langevin_step_reference(x, score(x, sigma), h, z)
    return x


def _al_outcome(x: Tensor) -> tuple[Tensor, float, Tensor]:
    """Class frequencies (nearest mean), the mode variance relative to its exact value at sigma_min (pooled over
    all chains and coordinates; ULA's own widening at the last step size included), and the chains per mode."""
    k = torch.cdist(x, _AL_MEANS).argmin(1)
    counts = torch.bincount(k, minlength=3).to(torch.float64)
    v = _AL_STDS**2 + AL_SIGMA_MIN**2
    exact = v / (1 - AL_STEP_SCALE / (2 * v))                               # ULA's stationary variance, eq. ar1
    ratio = (((x - _AL_MEANS[k]) ** 2).mean(1) / exact[k]).mean().item()
    return counts / len(x), ratio, counts


def check_annealed_langevin(fn: Callable[..., Tensor], *, quiet: bool = False) -> Verdict:
    """``annealed_langevin_sample(score, x, sigmas, steps_per_level, step_scale, generator)``, judged by its
    samples: 2000 chains from N(0, 3^2 I) on a hidden three-class mixture with weights (0.15, 0.30, 0.55), 30
    levels of 10 steps. Their class frequencies must match the exact weights, and their spread around each mode
    the exact variance of p_sigma_min, within five standard errors plus the known error of annealing itself."""
    name = "annealed_langevin_sample"

    def verdict(passed: bool, message: str) -> Verdict:
        v = Verdict(passed, message, name=name, student=fn,
                    reference=annealed_langevin_reference)
        if not quiet:
            print(v)
        return v

    if not callable(fn):
        return verdict(False, f"{name}: expected a function, got {type(fn).__name__}.")
    g = torch.Generator().manual_seed(20260101)
    x = AL_SIGMA_MAX * torch.randn(AL_CHAINS, 2, generator=g, dtype=torch.float64)
    sigmas = torch.logspace(math.log10(AL_SIGMA_MAX), math.log10(AL_SIGMA_MIN), AL_LEVELS, dtype=torch.float64)
    shown = (f"x of shape {tuple(x.shape)}, {AL_LEVELS} levels from sigma = {AL_SIGMA_MAX:g} to "
             f"{AL_SIGMA_MIN:g}, {AL_STEPS} steps per level")
    try:
        out = fn(score=_blurred_score, x=x.clone(), sigmas=sigmas.clone(), steps_per_level=AL_STEPS,
                 step_scale=AL_STEP_SCALE, generator=g)
    except NotImplementedError as err:
        if _raised_by_a_raise_statement(err):
            return verdict(False, _not_written(name, err))
        return verdict(False, f"{name} raised NotImplementedError: {err} ({shown}).")
    except Exception as err:  # report, never re-raise
        return verdict(False, f"{name} raised {type(err).__name__}: {err} ({shown}).")
    if not isinstance(out, Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        return verdict(False, f"{name} should return the final points, a tensor shaped like x {tuple(x.shape)}; "
                              f"got {got}.")
    if not torch.isfinite(out).all():
        return verdict(False, f"{name} returned NaN or infinite values: the chains diverged. Each step moves along "
                              "+ h * score(x, sigma) with the level's own sigma, and the step h grows with sigma^2 "
                              "(at sigma_min it is step_scale).")
    freq, ratio, counts = _al_outcome(out.detach().to(torch.float64))
    w = _AL_WEIGHTS
    f_tol = 5 * (w * (1 - w) / AL_CHAINS).sqrt() + AL_FREQ_BIAS
    v_tol = 5 * math.sqrt(2 / (2 * AL_CHAINS)) + AL_VAR_BIAS
    fs, ws = _fmt3(freq), _fmt3(w)
    if ratio > 1 + v_tol:
        return verdict(False, f"{name}: your samples are too wide: their spread around the modes is {ratio:.3g} "
                              "times the exact variance of p at the last level. Run the levels in the order given "
                              "(largest sigma first, so the last level is sigma_min), move along + h * score, and "
                              "take the step of each level from step_scale and that level's sigma^2.")
    if ratio < 1 - v_tol:
        return verdict(False, f"{name}: your samples are too narrow: their spread around the modes is {ratio:.2g} "
                              "of the exact variance, as if the chains were cold. The noise of a Langevin step "
                              "is sqrt(2 h) z (noise of standard deviation c samples p^(1/T) with T = c^2 / (2 h)).")
    if ((freq - w).abs() > f_tol).any():
        return verdict(False, f"{name}: the spread around each mode is right, but the class frequencies {fs} are "
                              f"not the weights {ws}: the chains did not move between the modes while they still "
                              "could. The early levels must use the score of the strongly blurred p_sigma "
                              "(score(x, sigma) at that level) and large steps, h = step_scale * sigma^2 / "
                              "sigma_min^2.")
    return verdict(True, f"{name} recovers the mixture: class frequencies {fs} against the exact weights {ws} "
                         f"(allowed: 5 standard errors + {AL_FREQ_BIAS}), spread around the modes {ratio:.3f} of "
                         f"the exact variance, from {AL_CHAINS} chains started far from equilibrium.")


def _fmt3(v: Tensor) -> str:
    return "[" + ", ".join(f"{x:.3f}" for x in v.tolist()) + "]"

