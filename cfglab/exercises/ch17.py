"""Checks for chapter 17, guiding with a perturbed self: SEG's blur of the queries over the token grid, and an
experiment: guiding two correlated tokens away from a token-local copy of the model, judged on the correlation of
the samples against the exact law ``tanh(w atanh rho)``."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from ..models import grid_blur
from ..paths import Linear, Path
from ..samplers import ode
from ._core import Verdict, attempt, check_function

# -- (a) the blur of the queries ---------------------------------------------------------------------------------------


def _blur_inputs(g: torch.Generator) -> dict[str, Any]:
    side = int(torch.randint(3, 6, (1,), generator=g))
    return {"side": side, "sigma": 0.4 + 2.0 * float(torch.rand((), generator=g, dtype=torch.float64))}


def _ref_blur(side: int, sigma: float) -> Tensor:
    return grid_blur(side, sigma, dtype=torch.float64)


def _positions(side: int) -> Tensor:
    r = torch.arange(side, dtype=torch.float64)
    return torch.stack(torch.meshgrid(r, r, indexing="ij"), -1).reshape(side * side, 2)


def _line(side: int) -> Tensor:
    return torch.arange(side * side, dtype=torch.float64)[:, None]      # the tokens on a line, not a grid


def _weights(side: int, sigma: float, power: float = 2.0, two: float = 2.0) -> Tensor:
    d = torch.cdist(_positions(side), _positions(side))
    return torch.exp(-d**power / (two * sigma**2))


def check_blur_matrix(student: Callable[..., Any]) -> Verdict:
    """``blur_matrix(side, sigma)``: the (side^2, side^2) Gaussian blur over a side x side grid of tokens, each row
    normalised to sum to one (:func:`cfglab.models.grid_blur`)."""
    mistakes = [
        ("the rows must sum to one: divide each row of Gaussian weights by its sum, so that a blurred query is a "
         "weighted mean of queries (otherwise blurring also scales the logits).",
         lambda side, sigma: _weights(side, sigma)),
        ("you normalised the columns: the weights of one output token (one row) must sum to one.",
         lambda side, sigma: _weights(side, sigma) / _weights(side, sigma).sum(0, keepdim=True)),
        ("the exponent uses the squared distance between grid positions, |p_i - p_j|^2, not the distance.",
         lambda side, sigma: (lambda w: w / w.sum(1, keepdim=True))(_weights(side, sigma, power=1.0))),
        ("a Gaussian of std sigma has exp(-d^2 / (2 sigma^2)): the factor 2 is missing.",
         lambda side, sigma: (lambda w: w / w.sum(1, keepdim=True))(_weights(side, sigma, two=1.0))),
        ("the positions are those of a side x side grid, token i at row i // side and column i % side: one "
         "coordinate per token is not enough.",
         lambda side, sigma: (lambda w: w / w.sum(1, keepdim=True))(
             torch.exp(-torch.cdist(_line(side), _line(side)) ** 2 / (2 * sigma**2)))),
    ]
    return check_function("blur_matrix", student, _ref_blur, _blur_inputs, mistakes=mistakes)


# -- (b) an experiment: guidance away from the token-local self ---------------------------------------------------


def reference_away_from_local(x: Tensor, t: Any, path: Path, rho: float, w: float) -> Tensor:
    """The exact score of ``N(0, [[1, rho], [rho, 1]])`` guided away from the product of its marginals
    ``N(0, I)``: ``s_local + w (s - s_local)`` at (x, t) on ``path``, x of shape (n, 2)."""
    c = path(t, x)                                      # alpha, sigma broadcast against x
    v, cov = c.alpha**2 + c.sigma**2, c.alpha**2 * rho  # the noised covariance [[v, cov], [cov, v]]
    full = -(v * x - cov * x.flip(1)) / (v**2 - cov**2)
    local = -x / v
    return local + w * (full - local)


CASES = ((0.6, 2.0), (-0.4, 3.0), (0.3, 1.5))
N, STEPS = 3000, 24


def _sample_correlation(fn: Callable[..., Any], rho: float, w: float, seed: int) -> tuple[float, float]:
    """Correlation and mean variance of the samples of ``cl.ode`` through ``fn(x, t, path, rho, w)``."""
    path = Linear()
    x1 = path.prior(N, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    with torch.no_grad():
        x = ode(lambda x, t: fn(x, t, path, rho, w), x1, path, STEPS)
    if not isinstance(x, Tensor):
        raise TypeError("the sampler returned a trajectory")
    c = torch.cov(x.T)
    return float(c[0, 1] / torch.sqrt(c[0, 0] * c[1, 1])), float(c.diagonal().mean())


def _judge_away_from_local(name: str, student: Callable[..., Any]) -> Verdict:
    path = Linear()
    probe = torch.randn(4, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out, failed = attempt(name, student, x=probe, t=torch.full((4,), 0.5, dtype=torch.float64), path=path,
                          rho=0.5, w=2.0)
    if failed is not None:
        return failed
    if not isinstance(out, Tensor) or out.shape != probe.shape:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        return Verdict(False, f"{name} should return a tensor of the shape of x, (4, 2), got {got}.")
    for k, (rho, w) in enumerate(CASES):
        try:
            corr, var = _sample_correlation(student, rho, w, seed=10 + k)
        except Exception as err:  # report, never re-raise
            return Verdict(False, f"{name} raised {type(err).__name__} inside the sampler: {err}.")
        if not (math.isfinite(corr) and math.isfinite(var)):
            return Verdict(False, f"{name}: the samples at rho = {rho}, w = {w} are not finite.")
        law = lambda v: (math.tanh(v * math.atanh(rho)), ((1 + rho) ** v + (1 - rho) ** v) / 2)  # noqa: E731
        tol = 5 * (1 - law(w)[0] ** 2) / math.sqrt(N) + 0.01    # 5 standard errors of a correlation, plus the ODE's
        vtol = 5 * math.sqrt(2 / N) + 0.02                      # relative, for the variance
        fits = lambda v: abs(corr - law(v)[0]) <= tol and abs(var / law(v)[1] - 1) <= vtol  # noqa: E731
        shown = f"{name}: at rho = {rho}, w = {w} the samples' correlation is {corr:.3f}"
        if fits(w):
            continue
        if fits(1.0):
            why = "the data's own: your field does not guide (it is the unguided score)."
        elif fits(2.0 - w):
            why = ("so the guidance points the wrong way, towards the token-local model: the rule is "
                   "s_local + w (s - s_local).")
        elif fits(w + 1.0):
            why = ("one unit of guidance too much: s + w (s - s_local) is the papers' form with their s = w - 1; "
                   "the course's rule is s_local + w (s - s_local).")
        elif abs(corr - law(w)[0]) <= tol:
            why = (f"as it should be, but the variance of the samples is {var:.3f} instead of {law(w)[1]:.3f}: "
                   "check the noise level of both scores (alpha^2 + sigma^2 on the diagonal).")
        else:
            why = (f"but the exact answer is tanh(w atanh rho) = {law(w)[0]:.3f} with a variance of "
                   f"{law(w)[1]:.3f} (yours {var:.3f}): check both scores against the noised covariances "
                   "alpha^2 Sigma + sigma^2 I (the model) and (alpha^2 + sigma^2) I (the token-local one).")
        return Verdict(False, f"{shown}, {why}")
    return Verdict(True, f"{name}: sampled with the probability-flow ODE, the two tokens' correlation is "
                         f"tanh(w atanh rho) within 5 standard errors, and their variance is right, in {len(CASES)} "
                         "cases.")


def check_away_from_local(student: Callable[..., Any]) -> Verdict:
    """``away_from_local(x, t, path, rho, w)``: the checker samples two correlated tokens with your guided score by
    the probability-flow ODE and compares the correlation of the samples with the exact ``tanh(w atanh rho)``,
    and their variance with the exact ``((1 + rho)^w + (1 - rho)^w) / 2``."""
    name = "away_from_local"
    verdict = replace(_judge_away_from_local(name, student), name=name, student=student,
                      reference=reference_away_from_local)
    print(verdict)
    return verdict
