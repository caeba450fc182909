"""Checks for chapter 2 (diffusion models): Tweedie's denoiser, the noise-prediction loss and the DDIM step.

Every reference answer comes from ``cfglab`` itself (``Path.convert``, :func:`cfglab.denoising_loss`,
:func:`cfglab.ddim`), so an exercise and the package cannot drift apart.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..models import MLP
from ..paths import VE, VP, Linear, Path
from ..samplers import ddim
from ..train import denoising_loss
from ._core import Verdict, check_function

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
