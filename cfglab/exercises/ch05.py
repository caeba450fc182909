"""Checks for chapter 5, classifier guidance: the guided score, its eps form, the log-probability of the
requested class (the row-indexing bug of a popular snippet), and an experiment: the guidance scale that reaches a
target adherence, judged by sampling with the exact scores of the overlap toy."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor

from ..data import make
from ..guidance import classifier_guided
from ..metrics import adherence
from ..paths import Linear
from ..samplers import ode
from ._core import Verdict, _not_written, _raised_by_a_raise_statement, check_function

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


# -- (d) the scale that reaches a target adherence (an experiment) ------------------------------------------------
ADHERENCE_TOL = 0.01   # how close adherence_at(w) must come to the target
ADHERENCE_CALLS = 20   # the most calls of adherence_at the exercise allows
_W_MAX = 8.0


class AdherenceCurve:
    """``adherence_at(w)``: ideal classifier guidance (the exact score of the overlap toy plus ``w`` times the
    exact noisy classifier's gradient) for class 1, "right", sampled with :func:`cfglab.ode` from ``n`` fixed
    prior points, and scored with :func:`cfglab.adherence`. It grows with ``w`` (from about 0.84 at w = 1 to 1).
    Counts its calls (``calls``); :meth:`measure` gives the same value without counting."""

    def __init__(self, n: int = 1000, seed: int = 0, steps: int = 16):
        self.mix, self.path, self.y, self.steps = make("overlap"), Linear(), 1, steps
        self.x1 = self.path.prior(n, 2, generator=torch.Generator().manual_seed(seed), dtype=_F64)
        self.calls = 0

    def measure(self, w: float) -> float:
        def exact(x: Tensor, t: Tensor) -> Tensor:
            return self.mix.log_posterior(x, t, self.path)
        field = classifier_guided(self.mix.score_fn(self.path), exact, self.y, float(w))
        x = cast(Tensor, ode(field, self.x1, self.path, steps=self.steps))   # no trajectory asked for
        return adherence(x, self.y, self.mix)

    def __call__(self, w: Any) -> float:
        self.calls += 1
        return self.measure(float(w))


def _scale_for_adherence(adherence_at: Callable[[float], float], target: float, w_max: float = _W_MAX) -> float:
    """Reference: bisection on [1, w_max], stopping once the measured adherence is within half the tolerance."""
    lo, hi = 1.0, float(w_max)
    mid = 0.5 * (lo + hi)
    for _ in range(ADHERENCE_CALLS):
        mid = 0.5 * (lo + hi)
        a = adherence_at(mid)
        if abs(a - target) <= 0.5 * ADHERENCE_TOL:
            break
        lo, hi = (mid, hi) if a < target else (lo, mid)
    return mid


def _as_scale(w: Any) -> float | None:
    if isinstance(w, bool):
        return None
    if isinstance(w, Tensor):
        return float(w) if w.numel() == 1 else None
    try:
        return float(w)
    except (TypeError, ValueError):
        return None


def check_scale_for_adherence(student: Callable[..., Any], *, quiet: bool = False) -> Verdict:
    """``scale_for_adherence(adherence_at, target, w_max=8.0)``: a scale w in [1, w_max] whose adherence is within
    0.01 of ``target``, found with at most 20 calls of ``adherence_at``. Judged on two hidden targets: the
    student's own measurement at w, then the adherence of fresh exact-score samples at w (a new noise draw,
    within the combined sampling error of the two sets)."""
    name = "scale_for_adherence"

    def verdict(passed: bool, message: str, *, prefix: bool = True) -> Verdict:
        v = Verdict(passed, f"{name}: {message}" if prefix and not passed else message, name, student,
                    _scale_for_adherence)
        if not quiet:
            print(v)
        return v

    if not callable(student):
        return verdict(False, f"expected a function, got {type(student).__name__}.")
    g = torch.Generator().manual_seed(20261105)
    targets = (0.89 + 0.04 * float(torch.rand((), generator=g)), 0.94 + 0.03 * float(torch.rand((), generator=g)))
    reached = []
    for k, target in enumerate(targets):
        curve = AdherenceCurve(n=1000, seed=k)
        try:
            out = student(curve, target, w_max=_W_MAX)
        except NotImplementedError as err:
            if _raised_by_a_raise_statement(err):
                return verdict(False, _not_written(name, err), prefix=False)
            return verdict(False, f"raised NotImplementedError: {err}.")
        except Exception as err:  # report, never re-raise
            return verdict(False, f"raised {type(err).__name__}: {err} (target {target:.3f}).")
        w = _as_scale(out)
        if w is None:
            return verdict(False, f"should return the scale as a float, got {type(out).__name__}.")
        if not math.isfinite(w):
            return verdict(False, f"returned {w}; the scale must be a finite number.")
        if math.isclose(w, target, rel_tol=1e-9):
            return verdict(False, f"returned {w:.3f}, the target adherence itself. Return the *scale* w at which "
                                  "adherence_at(w) reaches the target.")
        if not 1.0 <= w <= _W_MAX:
            return verdict(False, f"returned w = {w:.3f}, outside [1, w_max] = [1, {_W_MAX:g}]. Adherence is "
                                  "already about 0.84 at w = 1 and grows with w: search between the two ends.")
        if curve.calls > ADHERENCE_CALLS:
            return verdict(False, f"called adherence_at {curve.calls} times (each call runs a sampler); at most "
                                  f"{ADHERENCE_CALLS} are allowed. Halving a bracket [1, w_max] gains a factor 2 "
                                  "per call: a dozen calls pin w down far better than needed.")
        a = curve.measure(w)
        if abs(a - target) > ADHERENCE_TOL:
            end = " (an end of the bracket)" if w in (1.0, _W_MAX) else ""
            more = ("too little guidance, the scale must grow" if a < target else
                    "too much guidance, the scale must shrink")
            more += (". Adherence grows with w: a measurement below the target means the answer lies above w (move "
                     "the lower end of the bracket up), one above it that it lies below; swapping the two runs the "
                     "search to the wrong end")
            return verdict(False, f"at your w = {w:.3f}{end} the adherence is {a:.3f}, more than "
                                  f"{ADHERENCE_TOL} from the target {target:.3f}: {more}.")
        fresh = AdherenceCurve(n=3000, seed=100 + k).measure(w)
        p = min(max(target, 0.5), 0.995)
        tol = ADHERENCE_TOL + 4 * math.sqrt(p * (1 - p) * (1 / 1000 + 1 / 3000))
        if abs(fresh - target) > tol:
            return verdict(False, f"w = {w:.3f} reaches {a:.3f} on the starting noise it was tuned on but "
                                  f"{fresh:.3f} on 3000 fresh exact-score samples, more than {tol:.3f} from the "
                                  f"target {target:.3f}.")
        reached.append(f"  target {target:.3f}: w = {w:.3f} gives {a:.3f} ({curve.calls} calls), {fresh:.3f} on "
                       "3000 fresh samples")
    return verdict(True, f"{name} reaches both hidden targets (adherence with the exact scores):\n"
                   + "\n".join(reached))
