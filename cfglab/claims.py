"""Claims a page makes, checked where the reader can see them.

Every quantitative sentence of the course is backed by one call of :func:`check`, which prints one line (what was
measured, the bound the words state, a pass mark) and raises :class:`ClaimError` with the same line when the claim
does not hold, so an executed page shows what it verified and a page whose claim fails does not build::

    cl.check("tempered weight of class A", w[0], ">", 0.5)
    # ✓ tempered weight of class A: 0.6712 > 0.5

    cl.check("ULA variance against s^2 / (1 - h / 2s^2)", var, "≈", exact, tol=5 * se)
    # ✓ ULA variance against s^2 / (1 - h / 2s^2): 0.2654 ≈ 0.2631 ± 0.0125

A tensor or a list checks every element and prints the one nearest to failing (the largest for ``<``, the
smallest for ``>``, the farthest for ``≈``). A check that cannot fail, such as an algebraic identity or two closed
forms compared with each other, is not evidence: pass ``identity=True`` and it prints as a consistency check of the
code (``= identity``), never as a checked claim.

For authors only: with ``CFGLAB_CLAIMS=report`` in the environment a failing claim prints its ``✗`` line and the page
runs on, so that all of a draft's measurements can be read in one run. The book and the tests never set it.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Sequence
from numbers import Real
from typing import Any

import torch
from torch import Tensor

OPS = ("<", "<=", ">", ">=", "≈", "in")
WIDTH = 110  # characters of a printed line that the book shows (book/_vendor/cfglab.css)
_ALIASES = {"~": "≈", "approx": "≈", "near": "≈", "between": "in"}
PASS, FAIL, IDENTITY = "✓", "✗", "="


class ClaimError(AssertionError):
    """A claim of the page does not hold: the message is the printed line."""


def _values(name: str, value: Any) -> list[float]:
    """``value`` as a non-empty list of finite floats (a number, a 0-d or n-d tensor, or a sequence of numbers)."""
    if isinstance(value, Tensor):
        if value.numel() == 0:
            raise ValueError(f"{name} is an empty tensor; a claim needs at least one measured value")
        vals = [float(v) for v in value.detach().to("cpu", torch.float64).reshape(-1)]
    elif isinstance(value, Real) and not isinstance(value, bool):
        vals = [float(value)]
    elif isinstance(value, Sequence) and not isinstance(value, str):
        vals = [v for item in value for v in _values(name, item)]
        if not vals:
            raise ValueError(f"{name} is empty; a claim needs at least one measured value")
    else:
        raise TypeError(f"{name} must be a number, a tensor or a sequence of numbers, got {type(value).__name__}")
    if not all(math.isfinite(v) for v in vals):
        raise ClaimError(f"{FAIL} {name} is not finite: {vals if len(vals) <= 4 else vals[:4] + ['...']}")
    return vals


def _bound(name: str, v: Any) -> float:
    if isinstance(v, Tensor) and v.numel() == 1:
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(float(v)):
        raise TypeError(f"{name} must be a finite number, got {v!r}")
    return float(v)


def _wrap(line: str) -> str:
    """A claim line broken to the page width, continued on indented lines."""
    return textwrap.fill(line, width=WIDTH, subsequent_indent="    ", break_long_words=False,
                         break_on_hyphens=False)


def _fmt(v: float, digits: int = 4) -> str:
    """A number with ``digits`` significant digits, integers as integers (1e-15 as 1e-15, 0.67123 as 0.6712)."""
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    return f"{v:.{digits}g}"


def check(claim: str, value: Any, op: str, bound: Any, *, tol: Any = None, identity: bool = False,
          digits: int = 4) -> None:
    """Check that ``value op bound`` holds and print one line saying so; raise :class:`ClaimError` if it does not.

    Args:
        claim: what the page claims, in words ("annealing recovers the weights: total variation").
        value: the measured number, or a tensor / sequence of numbers that must all satisfy the bound.
        op: ``"<"``, ``"<="``, ``">"``, ``">="``, ``"≈"`` (within ``tol`` of ``bound``; ``"~"`` also works) or
            ``"in"`` (``bound`` is a pair ``(lo, hi)``, both ends included).
        bound: the number the words state (0.25 for "more than a quarter"), or ``(lo, hi)`` for ``"in"``.
        tol: the allowed distance for ``"≈"``, e.g. 5 standard errors of a Monte Carlo estimate.
        identity: the check cannot fail by construction (an algebraic identity, round-off of a conversion): it is
            printed as a consistency check of the code, not as evidence of a claim.
        digits: significant digits printed.
    """
    if not isinstance(claim, str) or not claim.strip():
        raise TypeError(f"claim must be a non-empty sentence saying what is checked, got {claim!r}")
    op = _ALIASES.get(op, op)
    if op not in OPS:
        raise ValueError(f"op must be one of {OPS}, got {op!r}")
    vals = _values(claim, value)
    if op == "in":
        if not isinstance(bound, (tuple, list)) or len(bound) != 2:
            raise TypeError(f"bound must be a pair (lo, hi) for op 'in', got {bound!r}")
        lo, hi = _bound("bound[0]", bound[0]), _bound("bound[1]", bound[1])
        if lo > hi:
            raise ValueError(f"bound must be (lo, hi) with lo <= hi, got {bound!r}")
        ok = [lo <= v <= hi for v in vals]
        worst = min(vals, key=lambda v: min(v - lo, hi - v))
        stated = f"{_fmt(worst, digits)} in [{_fmt(lo, digits)}, {_fmt(hi, digits)}]"
    elif op == "≈":
        if tol is None:
            raise TypeError("op '≈' needs tol=, the distance the claim allows (e.g. 5 standard errors)")
        b, t = _bound("bound", bound), _bound("tol", tol)
        if t < 0:
            raise ValueError(f"tol must be >= 0, got {t}")
        ok = [abs(v - b) <= t for v in vals]
        worst = max(vals, key=lambda v: abs(v - b))
        stated = f"{_fmt(worst, digits)} ≈ {_fmt(b, digits)} ± {_fmt(t, 2)}"
    else:
        if tol is not None:
            raise TypeError(f"tol applies to op '≈' only, not {op!r}")
        b = _bound("bound", bound)
        tests = {"<": lambda v: v < b, "<=": lambda v: v <= b, ">": lambda v: v > b, ">=": lambda v: v >= b}
        ok = [tests[op](v) for v in vals]
        worst = max(vals) if op in ("<", "<=") else min(vals)
        stated = f"{_fmt(worst, digits)} {op} {_fmt(b, digits)}"
    if len(vals) > 1:
        stated = f"{'all ' + str(len(vals)) + ', worst'} {stated}"
    if all(ok):
        print(_wrap(f"{IDENTITY if identity else PASS} {claim}: {stated}{' (identity)' if identity else ''}"))
        return
    failed = sum(not k for k in ok)
    line = f"{FAIL} {claim}: {stated} does not hold" + (f" ({failed} of {len(vals)})" if len(vals) > 1 else "")
    if os.environ.get("CFGLAB_CLAIMS") == "report":
        print(_wrap(line))
        return
    raise ClaimError(line)
