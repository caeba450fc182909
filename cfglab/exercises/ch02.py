"""Checks for chapter 2 (diffusion models): Tweedie's denoiser, the noise-prediction loss, the DDIM step, and an
ancestral (DDPM) sampler judged by the exact law of the samples it draws.

The first three reference answers come from ``cfglab`` itself (``Path.convert``, :func:`cfglab.denoising_loss`,
:func:`cfglab.ddim`), so an exercise and the package cannot drift apart. The sampler's samples are compared with
the exact law of ancestral sampling for Gaussian data (:func:`ddpm_law`); ``tests/test_exercises_ch02.py`` ties
its reference to :func:`cfglab.ddpm`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..models import MLP
from ..paths import VE, VP, Linear, Path
from ..samplers import ddim
from ..train import denoising_loss
from ._core import Verdict, _not_written, _raised_by_a_raise_statement, check_function

# -- a path pinned to given coefficients -----------------------------------------------------------------------


class _PinnedPath(Path):
    """A path with the given coefficients at t = 1 and at t = 0, linear in between: enough for one conversion
    or one sampler step between the two times, so that the references below are cfglab's own code."""

    def __init__(self, alpha_t: float, sigma_t: float, alpha_s: float, sigma_s: float):
        self.v = (float(alpha_t), float(sigma_t), float(alpha_s), float(sigma_s))

    def _coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        at, st, as_, ss = self.v
        alpha = as_ + (at - as_) * t
        sigma = ss + (st - ss) * t
        return alpha, sigma, torch.full_like(t, at - as_), torch.full_like(t, st - ss)


def _each_path(make: Callable[[torch.Generator, Path], dict[str, Any]], paths: Sequence[Path]
               ) -> Callable[[torch.Generator], dict[str, Any]]:
    """Inputs for successive trials on successive paths, so every check meets alpha != 1 and alpha = 1."""
    turn = itertools.count()
    return lambda g: make(g, paths[next(turn) % len(paths)])


# -- Tweedie: the clean-sample estimate from the score ----------------------------------------------------------


_TWEEDIE_PATHS: tuple[Path, ...] = (VP(), Linear(), VE(sigma_min=0.05, sigma_max=5.0))


def _tweedie_inputs(g: torch.Generator, path: Path) -> dict[str, Any]:
    """Random points and scores, and the coefficients of ``path`` at a random time."""
    t = 0.2 + 0.6 * torch.rand((), generator=g, dtype=torch.float64).item()
    c = path(torch.tensor(t, dtype=torch.float64))
    n = 6
    return dict(score=torch.randn(n, 2, generator=g, dtype=torch.float64),
                x=torch.randn(n, 2, generator=g, dtype=torch.float64),
                alpha=c.alpha.item(), sigma=c.sigma.item())


def _tweedie_reference(score: Tensor, x: Tensor, alpha: float, sigma: float) -> Tensor:
    return _PinnedPath(alpha, sigma, alpha, sigma).convert(score, x, 0.5, "score", "x0")


def check_x0_from_score(fn: Any) -> Verdict:
    """Exercise: ``x0_from_score(score, x, alpha, sigma)`` returns Tweedie's ``E[x0 | x_t = x]``."""
    mistakes = [
        ("you wrote sigma where Tweedie's formula has sigma^2: the denoiser is (x + sigma^2 * score) / alpha "
         "(the score has units 1/sigma^2 at the scale of the noise, so it must be multiplied by a variance).",
         lambda score, x, alpha, sigma: (x + sigma * score) / alpha),
        ("the sign of the score term is wrong: the score points towards the data, so the denoiser moves x along "
         "+score: (x + sigma^2 * score) / alpha.",
         lambda score, x, alpha, sigma: (x - sigma**2 * score) / alpha),
        ("you forgot to divide by alpha: x + sigma^2 * score estimates alpha * x0, the *scaled* clean sample.",
         lambda score, x, alpha, sigma: x + sigma**2 * score),
        ("you multiplied by alpha instead of dividing: x_t = alpha x0 + sigma eps, so x0 = (x - sigma eps) / alpha.",
         lambda score, x, alpha, sigma: alpha * (x + sigma**2 * score)),
        ("you returned the noise estimate E[eps | x] = -sigma * score, not the clean-sample estimate.",
         lambda score, x, alpha, sigma: -sigma * score),
        ("you swapped alpha and sigma: the clean sample is (x + sigma^2 * score) / alpha with alpha the signal "
         "coefficient and sigma the noise standard deviation.",
         lambda score, x, alpha, sigma: (x + alpha**2 * score) / sigma),
    ]
    return check_function("x0_from_score", fn, _tweedie_reference,
                          _each_path(_tweedie_inputs, _TWEEDIE_PATHS), mistakes=mistakes)


# -- the noise-prediction (eps) loss ---------------------------------------------------------------------------

_LOSS_PATHS: tuple[Path, ...] = (VP(), VE(sigma_min=0.05, sigma_max=5.0), VP(beta_min=0.5, beta_max=10.0))


def _loss_inputs(g: torch.Generator, path: Path) -> dict[str, Any]:
    """A small random eps-model on ``path``, data, times inside (0, 1) and noise."""
    seed = int(torch.randint(1000, (), generator=g))
    model = MLP(2, 0, path=path, pred="eps", width=16, depth=1, seed=seed).double()
    n = 8
    return dict(model=model,
                x0=torch.randn(n, 2, generator=g, dtype=torch.float64),
                t=0.1 + 0.8 * torch.rand(n, generator=g, dtype=torch.float64),
                eps=torch.randn(n, 2, generator=g, dtype=torch.float64))


def _loss_reference(model: MLP, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
    with torch.no_grad():
        return denoising_loss(model, x0, t=t, eps=eps)


def _loss_wrong(noised: Callable[..., Tensor], target: Callable[..., Tensor],
                reduce: Callable[[Tensor], Tensor] = lambda e: e.mean()) -> Callable[..., Tensor]:
    """A wrong eps-loss: ``noised(a, s, x0, eps)`` is the model input, ``target(...)`` the regression target."""

    def wrong(model: MLP, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        c = model.path(t, x0)
        a, s = c.alpha, c.sigma
        with torch.no_grad():
            xt = noised(a, s, x0, eps)
            return reduce((model(xt, t) - target(a, s, x0, eps, xt)) ** 2)

    return wrong


def check_eps_loss(fn: Any) -> Verdict:
    """Exercise: ``eps_loss(model, x0, t, eps)``, the mean squared error of the model's noise prediction on
    ``x_t = alpha(t) x0 + sigma(t) eps``, as :func:`cfglab.denoising_loss` computes it for ``pred="eps"``."""
    right = lambda a, s, x0, eps: a * x0 + s * eps  # noqa: E731
    mistakes = [
        ("you noised with sigma^2 instead of sigma: x_t = alpha x0 + sigma eps, where sigma(t) is the standard "
         "deviation of the noise, not its variance.",
         _loss_wrong(lambda a, s, x0, eps: a * x0 + s**2 * eps, lambda a, s, x0, eps, xt: eps)),
        ("you swapped alpha and sigma: alpha(t) multiplies the data and sigma(t) the noise.",
         _loss_wrong(lambda a, s, x0, eps: s * x0 + a * eps, lambda a, s, x0, eps, xt: eps)),
        ("the regression target is the noisy point x_t; an eps-model must predict the noise eps that was added.",
         _loss_wrong(right, lambda a, s, x0, eps, xt: xt)),
        ("the regression target is the clean sample x0; an eps-model must predict the noise eps (an x0-model "
         "would be a different parameterisation).",
         _loss_wrong(right, lambda a, s, x0, eps, xt: x0)),
        ("the regression target is the score target -eps/sigma; for an eps-model it is eps itself (the two "
         "losses differ by the weighting sigma^2).",
         _loss_wrong(right, lambda a, s, x0, eps, xt: -eps / s)),
        ("the model was fed the clean x0 instead of the noisy x_t = alpha x0 + sigma eps.",
         _loss_wrong(lambda a, s, x0, eps: x0, lambda a, s, x0, eps, xt: eps)),
        ("your loss sums the squared error over the coordinates: average over every entry (batch and "
         "coordinates), like torch.mean of the squared difference.",
         _loss_wrong(right, lambda a, s, x0, eps, xt: eps, reduce=lambda e: e.sum(-1).mean())),
        ("you returned the root mean squared error; the loss is the mean of the squared error, without a sqrt.",
         _loss_wrong(right, lambda a, s, x0, eps, xt: eps, reduce=lambda e: e.mean().sqrt())),
    ]
    return check_function("eps_loss", fn, _loss_reference, _each_path(_loss_inputs, _LOSS_PATHS),
                          mistakes=mistakes)


# -- the deterministic DDIM step -------------------------------------------------------------------------------

_STEP_PATHS: tuple[Path, ...] = (VP(), Linear(), VE(sigma_min=0.05, sigma_max=5.0))


def _step_inputs(g: torch.Generator, path: Path) -> dict[str, Any]:
    """One step from t to s < t on ``path``; its coefficients at t and s are passed as floats."""
    t = 0.4 + 0.5 * torch.rand((), generator=g, dtype=torch.float64).item()
    s = t * (0.2 + 0.6 * torch.rand((), generator=g, dtype=torch.float64).item())
    ct, cs = path(torch.tensor(t, dtype=torch.float64)), path(torch.tensor(s, dtype=torch.float64))
    n = 6
    return dict(x=torch.randn(n, 2, generator=g, dtype=torch.float64),
                eps_hat=torch.randn(n, 2, generator=g, dtype=torch.float64),
                alpha_t=ct.alpha.item(), sigma_t=ct.sigma.item(), alpha_s=cs.alpha.item(), sigma_s=cs.sigma.item())


def _step_reference(x: Tensor, eps_hat: Tensor, alpha_t: float, sigma_t: float, alpha_s: float,
                    sigma_s: float) -> Tensor:
    # One step of cfglab's DDIM sampler on a path with exactly these coefficients at t = 1 and s = 0.
    path = _PinnedPath(alpha_t, sigma_t, alpha_s, sigma_s)
    out = ddim(lambda xx, tt: eps_hat, x, path, 1, pred="eps", t_max=1.0, t_min=0.0, spacing="uniform",
               denoise=False)
    assert isinstance(out, Tensor)  # no trajectory was asked for
    return out


def check_ddim_step(fn: Any) -> Verdict:
    """Exercise: ``ddim_step(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s)``, the deterministic DDIM update
    from time t to an earlier time s: ``alpha_s * x0_hat + sigma_s * eps_hat`` with Tweedie's ``x0_hat``."""

    def x0(x: Tensor, eps_hat: Tensor, alpha_t: float, sigma_t: float) -> Tensor:
        return (x - sigma_t * eps_hat) / alpha_t

    mistakes = [
        ("you forgot to rescale the clean estimate by alpha_s: the new point is alpha_s * x0_hat + sigma_s * "
         "eps_hat, since x_s = alpha(s) x0 + sigma(s) eps on the path.",
         lambda x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s: x0(x, eps_hat, alpha_t, sigma_t)
         + sigma_s * eps_hat),
        ("you rescaled x0_hat by alpha_t, the coefficient of the current step (the same as a naive step "
         "x + (sigma_s - sigma_t) * eps_hat on x itself); the new point lives at time s, so it needs alpha_s. "
         "DDIM moves in the scaled coordinates x/alpha and sigma/alpha.",
         lambda x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s: alpha_t * x0(x, eps_hat, alpha_t, sigma_t)
         + sigma_s * eps_hat),
        ("x0_hat was computed with the coefficients of the wrong step (alpha_s, sigma_s): the prediction eps_hat "
         "was made at time t, so x0_hat = (x - sigma_t * eps_hat) / alpha_t.",
         lambda x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s: alpha_s * x0(x, eps_hat, alpha_s, sigma_s)
         + sigma_s * eps_hat),
        ("you re-noised with sigma_t: DDIM keeps the predicted noise but at the new step's level, "
         "alpha_s * x0_hat + sigma_s * eps_hat.",
         lambda x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s: alpha_s * x0(x, eps_hat, alpha_t, sigma_t)
         + sigma_t * eps_hat),
        ("you returned x0_hat (a jump straight to the data); add back the noise at level s: alpha_s * x0_hat "
         "+ sigma_s * eps_hat.",
         lambda x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s: x0(x, eps_hat, alpha_t, sigma_t)),
        ("the sign in x0_hat is wrong: x_t = alpha_t x0 + sigma_t eps gives x0_hat = (x - sigma_t eps_hat) / "
         "alpha_t.",
         lambda x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s: alpha_s * (x + sigma_t * eps_hat) / alpha_t
         + sigma_s * eps_hat),
    ]
    return check_function("ddim_step", fn, _step_reference, _each_path(_step_inputs, _STEP_PATHS),
                          mistakes=mistakes)


# -- the ancestral (DDPM) sampler, judged by the law of its samples ---------------------------------------------
# Data N(m, s^2 I): every eps prediction is affine in x, so one DDPM step is x_s = a x_t + b + c z and the law of the
# whole chain (its mean, its variance, and the part of the variance that comes from the fresh noise) is computed
# exactly by a scalar recursion. The student's samples are compared with that law, and the law with the exact p_t.
DDPM_SAMPLES = 10_000
_NOT_WRITTEN = "\0not written\0"  # marks a stub's verdict inside check_ddpm_sample
_DDPM_CASES: tuple[tuple[Path, int], ...] = ((VP(), 40), (Linear(), 30))


def _gaussian_eps(m: Tensor, s: float, path: Path) -> Callable[[Tensor, Any], Tensor]:
    """The exact noise prediction E[eps | x_t = x] for data N(m, s^2 I): ``sigma (x - alpha m) / S^2`` with
    ``S^2 = alpha^2 s^2 + sigma^2``. ``t`` may be a number, a 0-d tensor or a (n,) tensor."""
    def eps_fn(x: Tensor, t: Any) -> Tensor:
        c = path(torch.as_tensor(t, dtype=x.dtype), x)
        return c.sigma * (x - c.alpha * m.to(x)) / (c.alpha**2 * s**2 + c.sigma**2)
    return eps_fn


def ddpm_sample_reference(eps_fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, path: Path, ts: Tensor,
                          generator: torch.Generator) -> Tensor:
    """DDPM's ancestral sampler (Ho et al. 2020, alg. 2) on the grid ``ts``: each step draws x_s from the Gaussian
    posterior q(x_s | x_t, x0 = x0_hat) of the forward process; returns x at ts[-1] (no final denoising)."""
    for t, s in zip(ts[:-1], ts[1:]):
        ct, cs = path(t), path(s)
        x0 = (x - ct.sigma * eps_fn(x, t)) / ct.alpha                       # Tweedie, from the noise prediction
        a_ts = ct.alpha / cs.alpha
        var_ts = ct.sigma**2 - a_ts**2 * cs.sigma**2                         # sigma_{t|s}^2
        mean = a_ts * cs.sigma**2 / ct.sigma**2 * x + cs.alpha * var_ts / ct.sigma**2 * x0
        std = cs.sigma * var_ts.sqrt() / ct.sigma
        x = mean + std * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x


def ddpm_law(m: Tensor, s: float, path: Path, ts: Tensor) -> tuple[Tensor, float, float]:
    """The exact law of :func:`ddpm_sample_reference` with the exact eps of N(m, s^2 I), started from exact samples
    of p at ts[0]: mean (d,), variance per coordinate, and the variance due to the noise drawn on the way (the
    variance of the output given the start)."""
    c0 = path(ts[0])
    mu, var, var_noise = c0.alpha * m, (c0.alpha**2 * s**2 + c0.sigma**2).item(), 0.0
    for t, u in zip(ts[:-1], ts[1:]):
        ct, cs = path(t), path(u)
        S2 = ct.alpha**2 * s**2 + ct.sigma**2
        p, q = (1 - ct.sigma**2 / S2) / ct.alpha, ct.sigma**2 / S2 * m      # x0_hat = p x + q
        a_ts = ct.alpha / cs.alpha
        var_ts = ct.sigma**2 - a_ts**2 * cs.sigma**2
        A, B = a_ts * cs.sigma**2 / ct.sigma**2, cs.alpha * var_ts / ct.sigma**2
        a, c2 = (A + B * p).item(), (cs.sigma**2 * var_ts / ct.sigma**2).item()
        mu = a * mu + B * q
        var, var_noise = a**2 * var + c2, a**2 * var_noise + c2
    return mu, var, var_noise


def _posterior(path: Path, t: float, s: float, x: Tensor, x0: Tensor) -> tuple[Tensor, float]:
    """Mean and standard deviation of q(x_s | x_t = x, x0) for the forward process of ``path`` (eq. ch02-eq-ddpm)."""
    ct, cs = path(torch.tensor(t, dtype=torch.float64)), path(torch.tensor(s, dtype=torch.float64))
    a_ts = ct.alpha / cs.alpha
    var_ts = ct.sigma**2 - a_ts**2 * cs.sigma**2
    mean = a_ts * cs.sigma**2 / ct.sigma**2 * x + cs.alpha * var_ts / ct.sigma**2 * x0
    return mean, (cs.sigma * var_ts.sqrt() / ct.sigma).item()


def check_ddpm_sample(fn: Any, *, quiet: bool = False) -> Verdict:
    """``ddpm_sample(eps_fn, x, path, ts, generator)``, judged by its samples, with the exact noise prediction of
    Gaussian data. First one step (VP, t = 0.6 to 0.4) from 10 000 copies of one point: the samples must have the
    mean and the spread of the posterior q(x_s | x_t, x0_hat). Then whole chains from exact samples of p at ts[0],
    on VP (40 steps) and the linear path (30 steps): mean and variance must match the exact law of ancestral
    sampling on that grid (:func:`ddpm_law`), within five standard errors. The verdict also says how far that law
    is from the exact p at the end of the grid: DDPM's own discretisation error."""
    name = "ddpm_sample"

    def verdict(passed: bool, message: str) -> Verdict:
        v = Verdict(passed, message, name=name, student=fn, reference=ddpm_sample_reference)
        if not quiet:
            print(v)
        return v

    def run(eps_fn: Callable[..., Tensor], x: Tensor, path: Path, ts: Tensor, seed: int, where: str
            ) -> Tensor | str:
        try:
            out = fn(eps_fn=eps_fn, x=x.clone(), path=path, ts=ts.clone(),
                     generator=torch.Generator().manual_seed(seed))
        except NotImplementedError as err:
            if _raised_by_a_raise_statement(err):
                return _NOT_WRITTEN + _not_written(name, err)
            return f"{name} raised NotImplementedError: {err} ({where})."
        except Exception as err:  # report, never re-raise
            return f"{name} raised {type(err).__name__}: {err} ({where})."
        if not isinstance(out, Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            return f"{name} should return the samples at ts[-1], a tensor shaped like x {tuple(x.shape)}; got {got} " \
                   f"({where})."
        if not torch.isfinite(out).all():
            return f"{name} returned NaN or infinite values ({where}): check that the loop runs from ts[0] down to " \
                   "ts[-1] and that each step uses the coefficients of its own two times."
        return out.detach().to(torch.float64)

    def _failed(message: str) -> Verdict:
        if message.startswith(_NOT_WRITTEN):  # a stub's message ends with its hint: keep it in one piece
            return verdict(False, message[len(_NOT_WRITTEN):])
        return verdict(False, message)

    if not callable(fn):
        return verdict(False, f"{name}: expected a function, got {type(fn).__name__}.")
    g = torch.Generator().manual_seed(20260214)
    n = DDPM_SAMPLES
    m = 2 * torch.rand(2, generator=g, dtype=torch.float64) - 1
    s = 0.3 + 0.5 * torch.rand((), generator=g, dtype=torch.float64).item()

    # (1) one step from one point: the posterior's mean and spread, separately
    path: Path = VP()
    t, u = 0.6, 0.4
    point = torch.randn(1, 2, generator=g, dtype=torch.float64)
    eps_fn = _gaussian_eps(m, s, path)
    ct = path(torch.tensor(t, dtype=torch.float64))
    x0_hat = (point - ct.sigma * eps_fn(point, t)) / ct.alpha
    mean, std = _posterior(path, t, u, point, x0_hat)
    where = f"one step of VP from t = {t} to {u}, x = {n} copies of one point"
    out = run(eps_fn, point.expand(n, 2), path, torch.tensor([t, u], dtype=torch.float64), 1, where)
    if isinstance(out, str):
        return _failed(out)
    got_std = out.std(0).mean().item()
    if torch.equal(out, point.expand(n, 2)):
        return verdict(False, f"{name} returned x unchanged ({where}): take one step for each pair of consecutive "
                              "times in ts (here one step, from ts[0] to ts[1]).")
    if got_std < 0.05 * std:
        return verdict(False, f"{name} gives the same sample for every copy of the point ({where}): it draws no fresh "
                              "noise. That is DDIM (eta = 0). DDPM draws x_s from the posterior q(x_s | x_t, x0_hat) "
                              "of eq. (ch02-eq-ddpm): its mean plus its standard deviation times "
                              "torch.randn(x.shape, generator=generator, dtype=x.dtype).")
    cu = path(torch.tensor(u, dtype=torch.float64))
    gain = ((1 - cu.sigma**2 / (cu.alpha**2 * s**2 + cu.sigma**2)) / cu.alpha).item()  # x0_hat = gain x + ...
    if abs(got_std / (abs(gain) * std) - 1) < 5 * math.sqrt(1 / (4 * n)) and abs(gain - 1) > 0.05:
        return verdict(False, f"{name} ends with a jump to Tweedie's x0_hat ({where}): its samples have the spread "
                              "of the clean estimate at ts[-1], not of x at ts[-1]. Return x after the last "
                              "ancestral step, without a final denoising step.")
    if abs(got_std / std - 1) > 5 * math.sqrt(1 / (4 * n)):
        more = "more" if got_std > std else "less"
        return verdict(False, f"{name} draws {more} fresh noise than the posterior ({where}): the samples spread with "
                              f"standard deviation {got_std:.4f}, q(x_s | x_t, x0) has {std:.4f}. That standard "
                              "deviation is the square root of the posterior variance in eq. (ch02-eq-ddpm), not "
                              "sigma_s or sigma_t.")
    if ((out.mean(0) - mean[0]).abs() / (std / math.sqrt(n))).max() > 5:
        return verdict(False, f"{name} draws the right amount of noise, but around the wrong point ({where}): the "
                              f"samples' mean is {_vec(out.mean(0))}, the posterior mean is {_vec(mean[0])}. Check "
                              "the posterior mean of eq. (ch02-eq-ddpm): the coefficients of x_t and of x0_hat, "
                              "with x0_hat from Tweedie's formula at time t, (x_t - sigma_t eps_hat) / alpha_t.")

    # (2) whole chains: the law of ancestral sampling on the grid
    found = []
    for path, steps in _DDPM_CASES:
        ts = path.timesteps(steps)
        c0 = path(ts[0])
        x = c0.alpha * m + (c0.alpha**2 * s**2 + c0.sigma**2).sqrt() * torch.randn(n, 2, generator=g,
                                                                                      dtype=torch.float64)
        where = f"{type(path).__name__} path, {steps} steps, x of shape {tuple(x.shape)}"
        out = run(_gaussian_eps(m, s, path), x, path, ts, 2, where)
        if isinstance(out, str):
            return _failed(out)
        mu, var, _ = ddpm_law(m, s, path, ts)
        got_mu, got_var = out.mean(0), out.var(0).mean().item()
        if ((got_mu - mu).abs() / math.sqrt(var / n)).max() > 5 or abs(got_var / var - 1) > 5 * math.sqrt(1 / n):
            return verdict(False, f"{name} takes one step correctly, but the whole chain ends with mean "
                                  f"{_vec(got_mu)} and variance {got_var:.4f} where ancestral sampling on this grid "
                                  f"gives {_vec(mu)} and {var:.4f} ({where}). Take one step for each pair of "
                                  "consecutive times in ts, from ts[0] down to ts[-1], and return x at ts[-1] (no "
                                  "final denoising).")
        c_end = path(ts[-1])
        exact_var = (c_end.alpha**2 * s**2 + c_end.sigma**2).item()
        found.append(f"{type(path).__name__}, {steps} steps: variance {got_var:.4f} (DDPM's law {var:.4f}, exact "
                     f"p_t {exact_var:.4f})")
    return verdict(True, f"{name} draws from the posterior of each step and its chains match the exact law of "
                         f"ancestral sampling (within 5 standard errors of {n} samples): " + "; ".join(found)
                   + ". The gap between DDPM's law and the exact p_t is the sampler's own discretisation error.")


def _vec(v: Tensor) -> str:
    return "(" + ", ".join(f"{x:.3f}" for x in v.tolist()) + ")"

