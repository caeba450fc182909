"""Comparing guidance methods honestly: trade-off curves over seeds, a baseline matched in adherence, intervals.

A taming method moved along its own knob traces a curve in the plane (how hard it guides, what it costs in sample
quality); plain CFG swept densely over its scale traces the baseline. A method helps only if, **at the same
adherence**, it does better than the baseline, on every training seed alike, by more than the seed-to-seed spread.
This module holds that arithmetic, for the 2D toys of chapter 9 and the digits alike:

* :func:`interval`: the mean of per-seed values with a Student-t confidence interval;
* :func:`baseline_at`: the baseline's metric interpolated at a given adherence (piecewise linear along the sweep);
* :func:`versus_baseline`: per knob value, the paired difference "method minus baseline at the method's own
  adherence", seed by seed, with its interval, and a verdict ("better", "worse" or "tie") that is drawn only when
  the interval excludes zero, and only where the method's adherence lies inside the range the baseline swept
  ("outside" otherwise: the sweep says nothing there).

Curves are plain dicts ``{knob: [metrics of seed 0, metrics of seed 1, ...]}``, each metrics a dict of floats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import _checks

# Two-sided 90 % quantiles of Student's t, t_{0.95, df} for df = 1..30 (beyond: the normal's 1.645 is within 2 %).
_T95 = (6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812, 1.796, 1.782, 1.771, 1.761, 1.753,
        1.746, 1.740, 1.734, 1.729, 1.725, 1.721, 1.717, 1.714, 1.711, 1.708, 1.706, 1.703, 1.701, 1.699, 1.697)

Curve = Mapping[float, Sequence[Mapping[str, float]]]


@dataclass(frozen=True)
class Interval:
    """A mean over seeds and its two-sided 90 % Student-t interval ``[lo, hi]`` (``n`` values)."""

    mean: float
    lo: float
    hi: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.3g} [{self.lo:.3g}, {self.hi:.3g}]"


def interval(values: Sequence[float]) -> Interval:
    """Mean of ``values`` (one per seed) with the 90 % interval ``mean ± t_{0.95, n-1} sd / sqrt(n)``."""
    vals = [_checks.scalar("values", v) for v in values]
    if len(vals) < 2:
        raise ValueError(f"interval needs at least 2 values (seeds), got {len(vals)}")
    n = len(vals)
    mean = sum(vals) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    half = (_T95[n - 2] if n - 1 <= len(_T95) else 1.645) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def _seeds(curve: Any, name: str) -> int:
    if not isinstance(curve, Mapping) or not curve:
        raise TypeError(f"{name} must be a non-empty mapping {{knob: [metrics per seed, ...]}}")
    counts = {len(v) for v in curve.values()}
    if len(counts) != 1 or counts.pop() < 1:
        raise ValueError(f"{name} must hold the same number (>= 1) of seeds at every knob value")
    return len(next(iter(curve.values())))


def baseline_at(baseline: Curve, seed: int, x_key: str, y_key: str, x: float) -> float:
    """The baseline's ``y_key`` at adherence ``x`` on one seed: the sweep's points sorted by their ``x_key``,
    joined by straight lines; outside the swept range the end value (no extrapolation)."""
    _seeds(baseline, "baseline")
    pts = sorted((float(m[seed][x_key]), float(m[seed][y_key])) for m in baseline.values())
    x = _checks.scalar("x", x)
    if x <= pts[0][0]:
        return pts[0][1]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x <= x1:
            return y0 if x1 == x0 else y0 + (x - x0) / (x1 - x0) * (y1 - y0)
    return pts[-1][1]


@dataclass(frozen=True)
class Comparison:
    """A method at one knob value against the baseline at the same adherence: the paired difference of ``y``
    (method minus baseline, per seed), its interval, and the verdict for a metric where lower is better."""

    knob: float
    x: Interval
    difference: Interval
    verdict: str


def versus_baseline(method: Curve, baseline: Curve, x_key: str, y_key: str) -> list[Comparison]:
    """For each knob value of ``method``: per seed, its ``y_key`` minus the baseline's at the method's own
    ``x_key`` on the same seed (:func:`baseline_at`); the verdict is "better" when the interval of the difference
    lies below zero (lower ``y`` is better: an off-manifold fraction, a distance), "worse" when above, else "tie".
    Where the method's ``x_key`` falls outside the range the baseline swept on some seed, the baseline value is
    that of the nearest end and the verdict is "outside": there is no baseline at matched adherence."""
    n = _seeds(method, "method")
    if _seeds(baseline, "baseline") != n:
        raise ValueError("method and baseline must be measured on the same seeds")
    out = []
    for knob, runs in sorted(method.items()):
        diffs = [float(runs[s][y_key]) - baseline_at(baseline, s, x_key, y_key, float(runs[s][x_key]))
                 for s in range(n)]
        d = interval(diffs)
        verdict = "better" if d.hi < 0 else "worse" if d.lo > 0 else "tie"
        for s in range(n):
            xs = [float(m[s][x_key]) for m in baseline.values()]
            if not min(xs) <= float(runs[s][x_key]) <= max(xs):
                verdict = "outside"
        out.append(Comparison(float(knob), interval([float(r[x_key]) for r in runs]), d, verdict))
    return out
