"""Checks for chapter 16, guidance without a null label: the independent-condition-guidance field (judged by what
it returns over many calls: one random class per sample, drawn uniformly, combined by the CFG rule), and an
experiment: finding the ICG scale that reaches a target adherence, or saying that none does."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from ..data import GaussianMixture, make
from ..guidance import expected_icg, icg
from ..paths import Linear
from ..samplers import ode
from ._core import Verdict, attempt

LINE = GaussianMixture([[-1.5, 0.0], [0.0, 0.0], [1.5, 0.0]], 0.35, class_names=["left", "middle", "right"])
TRIANGLE = make("mixture")  # the field's checker uses it: no class score is the average of the others there

# -- (a) the ICG field -----------------------------------------------------------------------------------------------


def _cond_score(x: Tensor, t: Tensor, labels: Tensor) -> Tensor:
    return TRIANGLE.score(x, t, Linear(), labels)


def _icg_field(cond_score: Callable[..., Tensor], y: int, scale: float, num_classes: int,
               generator: torch.Generator) -> Callable[[Tensor, Tensor], Tensor]:
    """Reference: ICG with one random class per sample, drawn uniformly at every call."""
    def fn(x: Tensor, t: Tensor) -> Tensor:
        c = torch.randint(num_classes, (x.shape[0],), generator=generator)
        return icg(cond_score(x, t, torch.full((x.shape[0],), y)), cond_score(x, t, c), scale)
    return fn


def check_icg_field(student: Callable[..., Any]) -> Verdict:
    """``icg_field(cond_score, y, scale, num_classes, generator) -> fn(x, t)``: each call returns, row by row,
    ``c~ + scale (c - c~)`` with ``c`` the conditional score of y and ``c~`` that of a class drawn uniformly for
    that row (independently of y); judged over many calls: every row one of the candidates, each class about a
    third of the time, independently across rows and calls."""
    name, path = "icg_field", Linear()
    y, scale, k, n, calls = 0, 3.0, 3, 64, 60
    x = 1.5 * torch.randn(n, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    t = torch.full((n,), 0.4, dtype=torch.float64)
    fn, failed = attempt(name, student, cond_score=_cond_score, y=y, scale=scale, num_classes=k,
                         generator=torch.Generator().manual_seed(11))
    verdict = failed
    counts = torch.zeros(n, k)
    each = [TRIANGLE.score(x, t, path, c) for c in range(k)]
    cands = torch.stack([icg(each[y], v, scale) for v in each])  # (k, n, 2): the row's value for each class c~
    averaged = icg(each[y], expected_icg(each), scale)
    if verdict is None and not callable(fn):
        verdict = Verdict(False, f"{name} should return a function fn(x, t), got {type(fn).__name__}.")
    for _ in range(calls if verdict is None else 0):
        out, failed = attempt(f"the field returned by {name}", fn, x=x, t=t)
        if failed is not None:
            verdict = failed
            break
        if not isinstance(out, Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            verdict = Verdict(False, f"the field returned by {name} should return a tensor of shape {tuple(x.shape)}, "
                                     f"got {got}.")
            break
        if (out.to(cands) - averaged).abs().max() < 1e-6:
            verdict = Verdict(False, f"{name}: you averaged over the classes (the expected ICG branch); ICG uses "
                                     "one random class per sample and call, and only its average over calls is "
                                     "that expectation.")
            break
        err = (out.to(cands)[None] - cands).abs().amax(-1)  # (k, n): distance of each row to each candidate
        best = err.argmin(0)
        if (err.min(0).values > 1e-6).any():
            verdict = Verdict(False, _not_a_candidate(out.to(cands), x, t, y, scale))
            break
        counts[torch.arange(n), best] += 1
    if verdict is None:
        freq = counts.sum(0) / (n * calls)
        se = math.sqrt((1 / k) * (1 - 1 / k) / (n * calls))
        same_rows = bool((counts.max(1).values == calls).all())
        if freq[y] == 0:
            verdict = Verdict(False, f"{name} never draws y itself: ICG's random condition is independent of y, "
                                     "so it is y a third of the time (and then that sample is not guided).")
        elif same_rows:
            verdict = Verdict(False, f"{name} gives each sample the same random class at every call: draw a new "
                                     "label for every row at every call (torch.randint with the generator inside fn).")
        elif (counts == counts[:1]).all():
            verdict = Verdict(False, f"{name} draws one random class for the whole batch: each sample needs its own.")
        elif ((freq - 1 / k).abs() > 5 * se).any():
            verdict = Verdict(False, f"{name} does not draw the classes uniformly: frequencies "
                                     f"{[round(float(v), 3) for v in freq]}, expected {1 / k:.3f} each.")
        else:
            verdict = Verdict(True, f"{name} returns the ICG rule with a fresh uniform random class per sample, on "
                                    f"{calls} calls of {n} samples.")
    verdict = replace(verdict, name=name, student=student, reference=_icg_field)
    print(verdict)
    return verdict


def _not_a_candidate(out: Tensor, x: Tensor, t: Tensor, y: int, scale: float) -> str:
    path = Linear()
    c = TRIANGLE.score(x, t, path, y)
    each = [TRIANGLE.score(x, t, path, j) for j in range(3)]

    def rowwise(cands: list[Tensor]) -> bool:  # every row equals one of the candidates' rows
        err = torch.stack([(out - v).abs().amax(-1) for v in cands])  # (k, n)
        return bool((err.min(0).values < 1e-6).all())

    if (out - c).abs().max() < 1e-6:
        return "icg_field: you returned the conditional score of y, without guidance."
    if rowwise([icg(v, c, scale) for v in each]):
        return ("icg_field: the roles are swapped: the random class's prediction is the base point, c~ + scale "
                "(c - c~), with c the conditional score of y.")
    if rowwise([c + scale * (c - v) for v in each]):
        return ("icg_field: you used Ho & Salimans' (1 + w) convention; in the course's, scale 1 returns the "
                "conditional score: c~ + scale (c - c~).")
    return ("icg_field: some rows are not c~ + scale (c - c~) for any class c~; re-read the exercise (cond_score "
            "takes labels of shape (n,), one per row).")


# -- (b) an experiment: the ICG scale that matches a target adherence ------------------------------------------------


def _log_odds(x: Tensor, y: int) -> float:
    """Median exact log-odds ``log p(y | x) - log p(not y | x)`` of the samples (at t = 0)."""
    lp = LINE.log_posterior(x, 0.0, Linear())  # (n, 3)
    others = torch.cat([lp[:, :y], lp[:, y + 1:]], 1)
    return float((lp[:, y] - torch.logsumexp(others, 1)).median())


def _expected_icg_samples(y: int, scale: float, n: int, steps: int, seed: int) -> Tensor:
    path = Linear()
    x1 = path.prior(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)

    def fn(x: Tensor, t: Tensor) -> Tensor:
        return icg(LINE.score(x, t, path, y), expected_icg([LINE.score(x, t, path, c) for c in range(3)]), scale)

    out = ode(fn, x1, path, steps, method="euler")
    return out if isinstance(out, Tensor) else out[0]


def _matching_icg_scale(target: float, y: int, n: int = 500, steps: int = 16) -> float | None:
    """Reference: bisection on [1, 8] of the median log-odds of expected-ICG samples (exact scores of the line)."""
    f = lambda w: _log_odds(_expected_icg_samples(y, w, n, steps, 0), y) - target  # noqa: E731
    lo, hi = 1.0, 8.0
    f_lo, f_hi = f(lo), f(hi)
    if f_lo * f_hi > 0:
        return None
    for _ in range(14):
        mid = 0.5 * (lo + hi)
        f_mid = f(mid)
        if (f_mid > 0) == (f_hi > 0):
            hi, f_hi = mid, f_mid
        else:
            lo, f_lo = mid, f_mid
    return 0.5 * (lo + hi)


def _cfg_log_odds(y: int, scale: float, n: int = 500, steps: int = 16) -> float:
    path = Linear()
    x1 = path.prior(n, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    out = ode(lambda x, t: icg(LINE.score(x, t, path, y), LINE.score(x, t, path), scale), x1, path, steps,
              method="euler")
    return _log_odds(out if isinstance(out, Tensor) else out[0], y)


def check_matching_icg_scale(student: Callable[..., Any]) -> Verdict:
    """``matching_icg_scale(target, y, n=500, steps=16)``: the ICG scale in [1, 8] whose samples (expected ICG,
    exact scores of the line of three classes) reach median log-odds ``target``, or None if none does. Judged on
    hidden targets (CFG's adherence at some scale) by the adherence of samples drawn at the returned scale."""
    name = "matching_icg_scale"
    cases = [(0, 2.0), (2, 4.0), (1, 3.0)]  # (class, CFG scale whose adherence is the target)
    verdict = None
    for y, w in cases:
        target = _cfg_log_odds(y, w)
        got, failed = attempt(name, student, target=target, y=y)
        if failed is not None:
            verdict = failed
            break
        if y == 1:
            if got is not None:
                verdict = Verdict(False, f"{name} returned {got!r} for the middle class, whose expected ICG field is "
                                         "its conditional score at every scale (the average of the other two classes "
                                         "sits on it): no scale reaches CFG's adherence there; return None.")
                break
            continue
        if got is None:
            verdict = Verdict(False, f"{name} returned None for class {y} and target {target:.3g}, but a scale in "
                                     "[1, 8] reaches it: ICG's adherence grows with the scale for an outer class.")
            break
        try:
            scale = float(got)
        except (TypeError, ValueError):
            verdict = Verdict(False, f"{name} should return a float or None, got {type(got).__name__}.")
            break
        x = _expected_icg_samples(y, scale, 2000, 16, 7)
        lp = LINE.log_posterior(x, 0.0, Linear())
        odds = lp[:, y] - torch.logsumexp(torch.cat([lp[:, :y], lp[:, y + 1:]], 1), 1)
        tol = 5 * math.sqrt(1 / 2000 + 1 / 500) * 1.2533 * float(odds.std()) + 0.05
        reached = float(odds.median())
        if abs(reached - target) > tol:
            hint = (" That is the CFG scale itself: ICG reaches the same adherence at another scale."
                    if abs(scale - w) < 1e-6 else "")
            verdict = Verdict(False, f"{name}: at your scale {scale:.3g} the ICG samples of class {y} reach median "
                                     f"log-odds {reached:.3g}, not the target {target:.3g} (tolerance {tol:.2g})."
                                     + hint)
            break
    if verdict is None:
        verdict = Verdict(True, f"{name} finds the matching ICG scale, and says when there is none, on "
                                f"{len(cases)} hidden targets.")
    verdict = replace(verdict, name=name, student=student, reference=_matching_icg_scale)
    print(verdict)
    return verdict
