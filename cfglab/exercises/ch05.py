"""Checks for chapter 5, classifier guidance: the guided score, its eps form, and the log-probability of the
requested class (the row-indexing bug of a popular snippet)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..paths import Linear
from ._core import Verdict, check_function

_F64 = torch.float64


# -- (a) the guided score ---------------------------------------------------------------------------------------
def _score_inputs(g: torch.Generator) -> dict[str, Any]:
    n = int(torch.randint(3, 9, (1,), generator=g))
    scale = float(torch.empty(1, dtype=_F64).uniform_(1.5, 6.0, generator=g))
    return dict(uncond_score=torch.randn(n, 2, generator=g, dtype=_F64),
                grad_log_p=torch.randn(n, 2, generator=g, dtype=_F64), scale=scale)


def _score_reference(uncond_score: Tensor, grad_log_p: Tensor, scale: float) -> Tensor:
    return uncond_score + scale * grad_log_p


_SCORE_MISTAKES = [
    ("the classifier gradient is added with a minus sign. Guidance moves *towards* the class: "
     "grad log p(x | y) = grad log p(x) + grad log p(y | x), so the sign is plus.",
     lambda uncond_score, grad_log_p, scale: uncond_score - scale * grad_log_p),
    ("the scale is missing: this is the plain conditional score (scale 1). Multiply the classifier gradient by "
     "`scale`.", lambda uncond_score, grad_log_p, scale: uncond_score + grad_log_p),
    ("the scale multiplies the unconditional score too. Only the classifier term is scaled: "
     "score(x) + scale * grad log p(y | x) is the score of p(x) p(y | x)^scale.",
     lambda uncond_score, grad_log_p, scale: scale * (uncond_score + grad_log_p)),
    ("this is a CFG-style interpolation, (1 - scale) * uncond + scale * grad. The classifier gradient is not a "
     "score of x; it is *added* to the unconditional score.",
     lambda uncond_score, grad_log_p, scale: (1 - scale) * uncond_score + scale * grad_log_p),
]


def check_classifier_guided_score(fn: Callable[..., Tensor]) -> Verdict:
    """Check ``classifier_guided_score(uncond_score, grad_log_p, scale)`` = ``uncond + scale * grad``."""
    return check_function("classifier_guided_score", fn, _score_reference, _score_inputs,
                          mistakes=_SCORE_MISTAKES)


# -- (b) the eps form ---------------------------------------------------------------------------------------------
def _eps_inputs(g: torch.Generator) -> dict[str, Any]:
    # Coefficients of the linear path at random times: there sigma = t differs from sqrt(1 - alpha^2), so the
    # DDPM-only formula is caught.
    n = int(torch.randint(3, 9, (1,), generator=g))
    t = torch.empty(n, dtype=_F64).uniform_(0.05, 0.95, generator=g)
    eps = torch.randn(n, 2, generator=g, dtype=_F64)
    c = Linear()(t, eps)  # alpha, sigma shaped (n, 1)
    scale = float(torch.empty(1, dtype=_F64).uniform_(1.5, 6.0, generator=g))
    return dict(eps_uncond=eps, grad_log_p=torch.randn(n, 2, generator=g, dtype=_F64), alpha=c.alpha,
                sigma=c.sigma, scale=scale)


def _eps_reference(eps_uncond: Tensor, grad_log_p: Tensor, alpha: Tensor, sigma: Tensor, scale: float) -> Tensor:
    return eps_uncond - sigma * scale * grad_log_p


_EPS_MISTAKES = [
    ("the factor sigma is missing. eps = -sigma * score, so adding scale * grad to the score subtracts "
     "sigma * scale * grad from eps.",
     lambda eps_uncond, grad_log_p, alpha, sigma, scale: eps_uncond - scale * grad_log_p),
    ("wrong sign: eps points *away* from the data (eps = -sigma * score), so a push of the score towards the "
     "class is a subtraction in eps: eps - sigma * scale * grad.",
     lambda eps_uncond, grad_log_p, alpha, sigma, scale: eps_uncond + sigma * scale * grad_log_p),
    ("sqrt(1 - alpha^2) is DDPM's sqrt(1 - alpha_bar), which equals sigma only on the variance-preserving path. "
     "These inputs come from the linear path (alpha = 1 - t, sigma = t): use sigma itself.",
     lambda eps_uncond, grad_log_p, alpha, sigma, scale:
     eps_uncond - torch.sqrt(1 - alpha**2) * scale * grad_log_p),
    ("sqrt(1 - alpha) is not the noise level. In DDPM's notation sigma = sqrt(1 - alpha_bar) with "
     "alpha_bar = alpha^2, and even that holds only on the variance-preserving path: use sigma.",
     lambda eps_uncond, grad_log_p, alpha, sigma, scale:
     eps_uncond - torch.sqrt(1 - alpha) * scale * grad_log_p),
    ("the gradient is divided by sigma instead of multiplied: score = -eps / sigma, so eps = -sigma * score and "
     "the classifier term enters eps as sigma * scale * grad.",
     lambda eps_uncond, grad_log_p, alpha, sigma, scale: eps_uncond - scale * grad_log_p / sigma),
    ("sigma is squared: the conversion score -> eps multiplies by -sigma once.",
     lambda eps_uncond, grad_log_p, alpha, sigma, scale: eps_uncond - sigma**2 * scale * grad_log_p),
]


def check_guided_eps(fn: Callable[..., Tensor]) -> Verdict:
    """Check ``guided_eps(eps_uncond, grad_log_p, alpha, sigma, scale)`` = ``eps - sigma * scale * grad``."""
    return check_function("guided_eps", fn, _eps_reference, _eps_inputs, mistakes=_EPS_MISTAKES)


# -- (c) log p(y | x) of the requested class --------------------------------------------------------------------
def _logit_inputs(g: torch.Generator) -> dict[str, Any]:
    # More rows than classes, so the row-indexing bug runs without an error (as it does in practice).
    k = int(torch.randint(3, 6, (1,), generator=g))
    n = int(torch.randint(k + 2, 12, (1,), generator=g))
    return dict(logits=3 * torch.randn(n, k, generator=g, dtype=_F64),
                y=torch.randint(0, k, (n,), generator=g))


def _logit_reference(logits: Tensor, y: Tensor) -> Tensor:
    return torch.log_softmax(logits, dim=-1).gather(1, y[:, None])[:, 0]


_ROW_BUG = ("`log_softmax(-1)[y]` picks *rows* (samples) number y, not the column of class y in each row: it "
            "returns an (n, K) tensor of the wrong samples' log-probabilities, and after `.sum()` no error is "
            "raised. Take one entry per row: `.gather(1, y[:, None])[:, 0]` or `[torch.arange(n), y]`.")

_RAW_TOO = " The log-softmax is missing as well: a raw logit is not log p(y | x)."

_LOGIT_MISTAKES = [
    ("the log-softmax is missing: a raw logit is not log p(y | x). Its gradient misses the term "
     "-grad logsumexp(logits), so it ignores the other classes.",
     lambda logits, y: logits.gather(1, y[:, None])[:, 0]),
    ("this is p(y | x), not its logarithm: use log_softmax (softmax then log loses accuracy for confident "
     "rows).", lambda logits, y: torch.softmax(logits, -1).gather(1, y[:, None])[:, 0]),
    ("the log-softmax runs over the batch (dim 0) instead of the classes (dim -1): each row must be "
     "normalised over its own K classes.",
     lambda logits, y: torch.log_softmax(logits, 0).gather(1, y[:, None])[:, 0]),
]


def check_log_prob_of_class(fn: Callable[..., Tensor]) -> Verdict:
    """Check ``log_prob_of_class(logits, y)`` = ``log_softmax(logits)[i, y_i]`` for each row i, shape (n,).
    The row-indexing bug ``logits.log_softmax(-1)[y]`` changes the shape, so it is diagnosed before the shape
    check of :func:`check_function`."""
    probe = _logit_inputs(torch.Generator().manual_seed(5))
    try:
        got = fn(probe["logits"].clone(), probe["y"].clone())
    except Exception:
        got = None  # check_function reports exceptions and stubs in its own words
    if isinstance(got, Tensor) and got.shape == probe["logits"].shape:
        rows_log = torch.log_softmax(probe["logits"], -1)[probe["y"]]
        rows_raw = probe["logits"][probe["y"]]
        for bug, extra in ((rows_log, ""), (rows_raw, _RAW_TOO)):
            if torch.allclose(got.to(bug.dtype), bug, rtol=1e-6, atol=1e-8):
                verdict = Verdict(False, f"log_prob_of_class: {_ROW_BUG}{extra}", "log_prob_of_class", fn,
                                  _logit_reference)
                print(verdict)
                return verdict
    return check_function("log_prob_of_class", fn, _logit_reference, _logit_inputs, mistakes=_LOGIT_MISTAKES)
