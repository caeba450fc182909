"""Checks for chapter 7, what CFG actually samples: the exact guided score of the 1D Gaussian example, the closed
form of the variance that guided reverse-SDE sampling produces, a guided reverse-SDE sampler written by hand and
judged by the variance its samples reach, and a Langevin corrector step on the tilted density
``p_t(x)^(1 - w) p_t(x | y)^w``.

The 1D example: ``c ~ N(0, 1)``, ``x | c ~ N(c, 1)``, conditioned on ``c = 0``. Noised by ``x_t = a x + s eps``,
the conditional is ``N(0, a^2 + s^2)`` and the marginal ``N(0, 2 a^2 + s^2)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from ._core import Verdict, _close, _describe, _not_written, _raised_by_a_raise_statement, check_function

# -- the guided score of the 1D example -----------------------------------------------------------------------------


def _guided_score_1d(x: Tensor, alpha: float, sigma: float, w: float) -> Tensor:
    """Reference: ``(1 - w) grad log N(0, 2 alpha^2 + sigma^2) + w grad log N(0, alpha^2 + sigma^2)`` at x."""
    return -((1 - w) / (2 * alpha**2 + sigma**2) + w / (alpha**2 + sigma**2)) * x


def _score_inputs(g: torch.Generator) -> dict[str, Any]:
    u = torch.rand(3, generator=g, dtype=torch.float64)
    return dict(x=2.0 * torch.randn(64, 1, generator=g, dtype=torch.float64), alpha=0.3 + 0.7 * float(u[0]),
                sigma=0.2 + 2.0 * float(u[1]), w=2.0 + 6.0 * float(u[2]))  # w away from 0 and 1


def _noised(alpha: float, sigma: float) -> tuple[float, float]:
    """Variances of the noised conditional N(0, alpha^2 + sigma^2) and marginal N(0, 2 alpha^2 + sigma^2)."""
    return alpha**2 + sigma**2, 2 * alpha**2 + sigma**2


_SCORE_MISTAKES = [
    ("the two variances are swapped. Given c = 0 the noised conditional is N(0, alpha^2 + sigma^2); the marginal, "
     "which also carries the spread of c, is N(0, 2 alpha^2 + sigma^2). The weight w goes with the conditional.",
     lambda x, alpha, sigma, w: -((1 - w) / _noised(alpha, sigma)[0] + w / _noised(alpha, sigma)[1]) * x),
    ("this is Ho & Salimans' convention (1 + w) cond - w uncond. The course writes uncond + w (cond - uncond), "
     "so the weights are w and 1 - w (w = 1 is the plain conditional).",
     lambda x, alpha, sigma, w: -((1 + w) / _noised(alpha, sigma)[0] - w / _noised(alpha, sigma)[1]) * x),
    ("the data term is not scaled by alpha: the noised variances are alpha^2 + sigma^2 and 2 alpha^2 + sigma^2, "
     "not 1 + sigma^2 and 2 + sigma^2 (x_t = alpha x_0 + sigma eps multiplies the data variance by alpha^2).",
     lambda x, alpha, sigma, w: -((1 - w) / (2 + sigma**2) + w / (1 + sigma**2)) * x),
    ("the score of N(0, v) is -x / v, divided by the variance, not by the standard deviation.",
     lambda x, alpha, sigma, w: -((1 - w) / math.sqrt(_noised(alpha, sigma)[1])
                                  + w / math.sqrt(_noised(alpha, sigma)[0])) * x),
    ("the sign is flipped: the score of a centred Gaussian points back to 0, so it is -x times a positive number.",
     lambda x, alpha, sigma, w: ((1 - w) / _noised(alpha, sigma)[1] + w / _noised(alpha, sigma)[0]) * x),
    ("this is the score of the *noised tilted law*: the clean tilted density N(0, 2/(1+w)) noised to "
     "N(0, 2 alpha^2/(1+w) + sigma^2). CFG does not compute that: it mixes the two noised scores, "
     "(1 - w) score(marginal_t) + w score(conditional_t). The two differ at every noise level sigma > 0 (when w "
     "is not 0 or 1), which is the point of this chapter.",
     lambda x, alpha, sigma, w: -x / (2 * alpha**2 / (1 + w) + sigma**2)),
    ("it returns the plain conditional score -x / (alpha^2 + sigma^2): the guidance scale w is not used.",
     lambda x, alpha, sigma, w: -x / _noised(alpha, sigma)[0]),
]


def check_guided_score_1d(student: Callable[..., Any]) -> Verdict:
    """``guided_score_1d(x, alpha, sigma, w)``: the CFG score ``(1 - w) s_uncond + w s_cond`` of the 1D example at
    noise level ``(alpha, sigma)``, for x of shape (n, 1)."""
    return check_function("guided_score_1d", student, _guided_score_1d, _score_inputs, rtol=1e-9, atol=1e-12,
                          mistakes=_SCORE_MISTAKES)


# -- the variance that the guided reverse SDE samples ---------------------------------------------------------------


def _sde_guided_variance(w: float) -> float:
    """Reference: ``(2 - 4^(1 - w)) / (2 w - 1)``, and its limit ``2 ln 2`` at w = 1/2 (continuous-time reverse SDE
    from infinite noise, any path)."""
    if abs(2 * w - 1) < 1e-9:
        return 2 * math.log(2)
    return (2 - 4 ** (1 - w)) / (2 * w - 1)


def _variance_inputs(g: torch.Generator) -> dict[str, Any]:
    w = 8.0 * float(torch.rand((), generator=g, dtype=torch.float64))
    if w < 0.2 or abs(w - 1) < 0.3 or abs(w - 0.5) < 0.05:  # at w = 0 and w = 1 several candidates agree
        w += 1.5
    return dict(w=w)


_VARIANCE_MISTAKES = [
    ("this is 1/w, the formula 'Flow Models IV' gives for the SDE. It is right only at w = 1 and as w -> "
     "infinity (the exact answer behaves like 1/(w - 1/2)); at w = 0 it is infinite although unguided sampling "
     "must return the marginal variance 2, and at w = 2 it gives 0.5 instead of 7/12. Solve the variance ODE.",
     lambda w: 1 / w),
    ("this is 2^(1 - w), the variance the probability-flow ODE produces. The SDE adds noise at every level, "
     "which the drift then has to shrink: solve dm/dv = 2 Lambda(v) m - 1, not the noise-free equation.",
     lambda w: 2 ** (1 - w)),
    ("this is 2^(-w), the ODE formula of 'Flow Models IV' read in the course's convention (it is the ODE's "
     "variance 2^(1 - w) only if w is Ho & Salimans' weight). The question is the SDE: solve "
     "dm/dv = 2 Lambda(v) m - 1.",
     lambda w: 2 ** (-w)),
    ("this is 2/(1 + w), the variance of the tilted density p(x)^(1-w) p(x | c = 0)^w. That is what CFG is "
     "often said to sample; the SDE does not (that is the point of the exercise).",
     lambda w: 2 / (1 + w)),
    ("this is the integral of mu(v) alone. The solution is m(0) = [int_0^inf mu(v) dv] / mu(0): divide by the "
     "integrating factor at v = 0, mu(0) = 2^(-2 (1 - w)) (i.e. multiply by 4^(1 - w)).",
     lambda w: (1 - 2 ** (2 * w - 1)) / (1 - 2 * w)),
    ("this has the wrong sign (it is negative for w > 1/2). Check the integral of r^(-2w) from 1/2 to 1: "
     "(1 - 2^(2w - 1)) / (1 - 2w), which is positive for every w.",
     lambda w: -(2 - 4 ** (1 - w)) / (2 * w - 1)),
]


def check_sde_guided_variance(student: Callable[..., Any]) -> Verdict:
    """``sde_guided_variance(w)``: the variance of the law that the continuous-time reverse SDE, driven by the
    exact CFG score of the 1D example at scale w and started from (infinitely wide) noise, ends at."""
    verdict = check_function("sde_guided_variance", student, _sde_guided_variance, _variance_inputs, rtol=1e-6,
                             atol=1e-9, mistakes=_VARIANCE_MISTAKES, quiet=True)
    if verdict:  # the removable singularity at w = 1/2 is invisible to random inputs
        want = _sde_guided_variance(0.5)
        try:
            got = student(w=0.5)
            ok = _close(got, want, 1e-6, 1e-9)
        except Exception as err:  # a ZeroDivisionError is the typical failure
            got, ok = f"an error ({type(err).__name__})", False
        if not ok:
            verdict = replace(verdict, passed=False, message=(
                f"sde_guided_variance is right for generic w but not at w = 1/2, where the closed form is 0/0 "
                f"(got {got}). There the integral of r^(-2w) = 1/r is ln 2, so the variance is 4^(1/2) ln 2 = "
                f"2 ln 2 = {want:.6f}: return that limit when 2w - 1 is (close to) zero."))
    print(verdict)
    return verdict


# -- a guided reverse-SDE sampler, judged by the variance its samples reach -----------------------------------------

SDE_GRID = (80.0, 0.002, 500)   # sigma_max, sigma_min and the number of steps of the checker's geometric grid
SDE_SAMPLES = 20_000
SDE_SCALES = (4.0, 0.0)         # guided, then unguided (the marginal, variance 2)


def sde_grid() -> Tensor:
    """The decreasing noise levels the checker hands to ``cfg_reverse_sde``: geometric from 80 to 0.002."""
    hi, lo, steps = SDE_GRID
    return torch.exp(torch.linspace(math.log(hi), math.log(lo), steps + 1, dtype=torch.float64))


def _example_score(var0: float) -> Callable[[Tensor, Any], Tensor]:
    """The exact score at noise level sigma of ``N(0, var0)`` noised on VE, ``-x / (var0 + sigma^2)``."""
    def score(x: Tensor, sigma: Any) -> Tensor:
        s = torch.as_tensor(sigma, dtype=x.dtype)
        s = s.reshape(-1, *([1] * (x.ndim - 1))) if s.ndim == 1 else s  # one level per row, if given so
        return -x / (var0 + s**2)
    return score


def _em_law(w: float, sigmas: Tensor, *, drift: float = 1.0, noise: float = 1.0, dsigma: bool = False) -> float:
    """The exact variance that ``x <- x + drift dv s~(x) + sqrt(noise dv) z`` (dv the decrease of sigma^2, or of
    sigma with ``dsigma``; the CFG score s~ = -Lambda x of the 1D example at the start of the step) reaches from
    N(0, sigma_0^2): each step maps the variance m to ``(1 - drift dv Lambda)^2 m + noise dv``."""
    sig = sigmas.tolist()
    m = sig[0] ** 2
    for hi, lo in zip(sig, sig[1:]):
        dv = hi - lo if dsigma else hi**2 - lo**2
        lam = w / (1 + hi**2) + (1 - w) / (2 + hi**2)
        m = (1 - drift * dv * lam) ** 2 * m + noise * dv
    return m


def _cfg_reverse_sde(score_cond: Callable[..., Tensor], score_uncond: Callable[..., Tensor], w: float,
                     sigmas: Tensor, x: Tensor, generator: torch.Generator) -> Tensor:
    """Reference: Euler–Maruyama for the VE reverse SDE in v = sigma^2 with the CFG score at the start of each
    step, ``x <- x + dv s~(x, sigma_i) + sqrt(dv) z``, ``dv = sigma_i^2 - sigma_{i+1}^2``."""
    levels = sigmas.tolist()
    for hi, lo in zip(levels, levels[1:]):
        dv = hi**2 - lo**2
        su = score_uncond(x, hi)
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = x + dv * (su + w * (score_cond(x, hi) - su)) + math.sqrt(dv) * z
    return x


_SDE_MISTAKES: list[tuple[str, Callable[[float, Tensor], float]]] = [
    ("the noise is too large: lowering the noise variance by dv, the reverse SDE adds noise of variance dv, so "
     "the factor in front of z is sqrt(dv). sqrt(2 dv) is Langevin's factor for a step of size dv; it doubles "
     "the variance your samples reach.",
     lambda w, sig: _em_law(w, sig, noise=2.0)),
    ("this is the probability-flow ODE, not the reverse SDE: half the drift and no noise (your variance is the "
     "ODE's 2^(1 - w) up to step-size error). The reverse SDE takes the full drift, dv times the guided score, "
     "and adds sqrt(dv) z.",
     lambda w, sig: _em_law(w, sig, drift=0.5, noise=0.0)),
    ("the noise term is missing: with the full drift and no sqrt(dv) z the samples collapse onto 0.",
     lambda w, sig: _em_law(w, sig, noise=0.0)),
    ("the drift is halved: with half the drift and the full noise the chain cannot undo the noise it adds, and "
     "the variance grows far too large. The reverse SDE's drift is dv times the guided score (the ODE's is half "
     "of it).",
     lambda w, sig: _em_law(w, sig, drift=0.5)),
    ("this is Ho & Salimans' convention, (1 + w) cond - w uncond: your samples have the variance of the course's "
     "scale w + 1. The course's rule is uncond + w (cond - uncond).",
     lambda w, sig: _em_law(w + 1, sig)),
    ("the weights are swapped: the unconditional score gets 1 - w and the conditional one w "
     "(uncond + w (cond - uncond)).",
     lambda w, sig: _em_law(1 - w, sig)),
    ("the guidance scale is not used: your samples reach the conditional's variance 1 whatever w is.",
     lambda w, sig: _em_law(1.0, sig)),
    ("each step uses the decrease of sigma, not of the noise variance sigma^2: in the variable v = sigma^2 the "
     "reverse SDE is dx = -s~ dv + dW, so both the drift and the noise variance go with dv = sigma_i^2 - "
     "sigma_{i+1}^2.",
     lambda w, sig: _em_law(w, sig, dsigma=True)),
]


def check_cfg_reverse_sde(student: Callable[..., Any]) -> Verdict:
    """``cfg_reverse_sde(score_cond, score_uncond, w, sigmas, x, generator)``: a guided reverse-SDE sampler on VE.
    The checker runs it with the exact scores of the 1D example (``p(x | c = 0) = N(0, 1)``, ``p(x) = N(0, 2)``)
    at w = 4 and w = 0 from ``N(0, 80^2)`` on a geometric grid, and compares the variance of its samples with the
    closed form ``(2 - 4^(1 - w)) / (2w - 1)``, allowing five standard errors of the sample variance plus twice the
    step-size error of Euler–Maruyama on that grid. Known mistakes are recognised from the variance they reach."""
    name = "cfg_reverse_sde"

    def verdict(passed: bool, message: str) -> Verdict:
        v = Verdict(passed, message, name=name, student=student, reference=_cfg_reverse_sde)
        print(v)
        return v

    if not callable(student):
        return verdict(False, f"{name}: expected a function, got {_describe(student)}.")
    sigmas, n = sde_grid(), SDE_SAMPLES
    reached = []
    for k, w in enumerate(SDE_SCALES):
        g = torch.Generator().manual_seed(20260707 + k)
        x1 = sigmas[0].item() * torch.randn(n, 1, generator=g, dtype=torch.float64)
        try:
            out = student(score_cond=_example_score(1.0), score_uncond=_example_score(2.0), w=w,
                          sigmas=sigmas.clone(), x=x1.clone(), generator=g)
        except NotImplementedError as err:
            if _raised_by_a_raise_statement(err):
                return verdict(False, _not_written(name, err))
            return verdict(False, f"{name} raised NotImplementedError: {err} (w = {w:g}).")
        except Exception as err:  # report, never re-raise
            return verdict(False, f"{name} raised {type(err).__name__}: {err} (w = {w:g}, x of shape {(n, 1)}, "
                                  f"{len(sigmas)} noise levels).")
        if not isinstance(out, Tensor) or out.shape != x1.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else _describe(out)
            return verdict(False, f"{name} should return the samples at sigma_min, a tensor shaped like x "
                                  f"{(n, 1)}; got {got}.")
        if not torch.isfinite(out).all():
            return verdict(False, f"{name} returned NaN or infinite values at w = {w:g}: check the sign of the "
                                  "drift (the score pulls x back towards 0) and the step dv > 0.")
        var, want = out.double().var().item(), _sde_guided_variance(w)
        law = _em_law(w, sigmas)
        tol = 5 * want * math.sqrt(2 / (n - 1)) + 2 * abs(law - want)
        if abs(var - want) <= tol:
            mean_tol = 5 * math.sqrt(want / n)
            if abs(out.double().mean().item()) > mean_tol:
                return verdict(False, f"{name}: at w = {w:g} the samples have the right spread but are not "
                                      f"centred on 0 (mean {out.double().mean().item():.3f}); the noise z must be "
                                      "standard normal and the score evaluated at the current x.")
            reached.append((w, var, want))
            continue
        for explanation, law_of in _SDE_MISTAKES:
            cand = law_of(w, sigmas)
            if abs(var - cand) <= 5 * cand * math.sqrt(2 / (n - 1)):  # cand is the exact law of the mistake
                return verdict(False, f"{name}: {explanation}")
        return verdict(False, f"{name}: at w = {w:g} your samples have variance {var:.4g}, but the guided reverse "
                              f"SDE reaches (2 - 4^(1 - w)) / (2w - 1) = {want:.4g} (allowed: +/- {tol:.2g}). "
                              "Re-read the update x <- x + dv s~(x) + sqrt(dv) z derived in the chapter.")
    shown = ", ".join(f"{v:.4f} at w = {w:g} (exact {e:.4g})" for w, v, e in reached)
    return verdict(True, f"{name}: sample variance {shown}.")


# -- a Langevin corrector step on the tilted density ----------------------------------------------------------------


def _tilted_langevin_step(x: Tensor, score_cond: Tensor, score_uncond: Tensor, w: float, h: float,
                          z: Tensor) -> Tensor:
    """Reference: one unadjusted Langevin step on ``p_t^(1-w) p_t(.|y)^w``, whose score is the CFG score."""
    return x + h * ((1 - w) * score_uncond + w * score_cond) + math.sqrt(2 * h) * z


def _step_inputs(g: torch.Generator) -> dict[str, Any]:
    u = torch.rand(2, generator=g, dtype=torch.float64)
    shape = (32, 2)
    return dict(x=torch.randn(shape, generator=g, dtype=torch.float64),
                score_cond=torch.randn(shape, generator=g, dtype=torch.float64),
                score_uncond=torch.randn(shape, generator=g, dtype=torch.float64),
                w=2.0 + 6.0 * float(u[0]), h=0.01 + 0.2 * float(u[1]),
                z=torch.randn(shape, generator=g, dtype=torch.float64))


def _tilted(sc: Tensor, su: Tensor, w: float) -> Tensor:
    return (1 - w) * su + w * sc


_STEP_MISTAKES = [
    ("the weights are swapped: the tilted density p_t^(1-w) p_t(x|y)^w has score (1 - w) score_uncond + "
     "w score_cond (the conditional gets the weight w).",
     lambda x, score_cond, score_uncond, w, h, z: x + h * _tilted(score_uncond, score_cond, w)
     + math.sqrt(2 * h) * z),
    ("this uses Ho & Salimans' (1 + w) cond - w uncond. The course's scale w weights the conditional by w and "
     "the unconditional by 1 - w.",
     lambda x, score_cond, score_uncond, w, h, z: x + h * ((1 + w) * score_cond - w * score_uncond)
     + math.sqrt(2 * h) * z),
    ("the noise is scaled by sqrt(h); Langevin needs sqrt(2 h) for its stationary law to be the target "
     "(with sqrt(h) it samples the target at temperature 1/2).",
     lambda x, score_cond, score_uncond, w, h, z: x + h * _tilted(score_cond, score_uncond, w)
     + math.sqrt(h) * z),
    ("the noise is scaled by h; Langevin needs sqrt(2 h). With h z the chain freezes as h -> 0.",
     lambda x, score_cond, score_uncond, w, h, z: x + h * _tilted(score_cond, score_uncond, w) + h * z),
    ("the step goes down the score (x - h score): Langevin moves *up* the log-density.",
     lambda x, score_cond, score_uncond, w, h, z: x - h * _tilted(score_cond, score_uncond, w)
     + math.sqrt(2 * h) * z),
    ("the noise is missing: without sqrt(2 h) z this is gradient ascent, which collapses onto a mode of the "
     "tilted density instead of sampling it.",
     lambda x, score_cond, score_uncond, w, h, z: x + h * _tilted(score_cond, score_uncond, w)),
    ("the step uses only the conditional score; the corrector targets the tilted density, whose score is the "
     "CFG combination (1 - w) score_uncond + w score_cond.",
     lambda x, score_cond, score_uncond, w, h, z: x + h * score_cond + math.sqrt(2 * h) * z),
]


def check_tilted_langevin_step(student: Callable[..., Any]) -> Verdict:
    """``tilted_langevin_step(x, score_cond, score_uncond, w, h, z)``: one unadjusted Langevin step of size h on
    the tilted density ``p_t(x)^(1 - w) p_t(x | y)^w`` with the noise z given."""
    return check_function("tilted_langevin_step", student, _tilted_langevin_step, _step_inputs, rtol=1e-9,
                          atol=1e-12, mistakes=_STEP_MISTAKES)
