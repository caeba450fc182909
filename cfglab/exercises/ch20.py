"""Checks for chapter 20, guidance you can see: two of the explorer's dials written by hand, the guidance interval
(Kynkäänniemi et al. 2024) and a negative prompt with a weight followed by the CFG rescale (Lin et al. 2024), whose
reference answers are :func:`cfglab.explore.guidance_rule`, the rule the explorer itself samples with; and an
experiment: an interval, found with the explorer, that reaches an adherence while keeping the class's diversity,
judged by sampling with the exact scores and measuring with the exact classifier."""

from __future__ import annotations

from collections.abc import Callable
from numbers import Real
from typing import Any

import torch
from torch import Tensor

from ..data import make
from ..explore import Explorer, Setting, guidance_rule
from ..guidance import cfg, rescale
from ..metrics import adherence, diversity
from ..models import MLP
from ..paths import Linear
from ._core import Verdict, _describe, _not_written, _raised_by_a_raise_statement, check_function

# -- (a) the guidance interval ------------------------------------------------------------------------------------


def _interval_inputs(g: torch.Generator) -> dict[str, Any]:
    n, d = int(torch.randint(8, 12, (1,), generator=g)), int(torch.randint(2, 4, (1,), generator=g))
    u = torch.rand(4, generator=g, dtype=torch.float64)
    lo, hi = 0.1 + 0.3 * float(u[0]), 0.6 + 0.3 * float(u[1])
    w = 1.5 + 6.0 * float(u[2])
    # both ends, a point inside, points below and above the interval, then random times
    fixed = torch.tensor([lo / 2, lo, hi, (lo + hi) / 2, (hi + 1) / 2], dtype=torch.float64)
    t = torch.cat([fixed, torch.rand(n - 5, generator=g, dtype=torch.float64)])
    t = t[torch.randperm(n, generator=g)]
    return {"cond": torch.randn(n, d, generator=g, dtype=torch.float64),
            "uncond": torch.randn(n, d, generator=g, dtype=torch.float64), "t": t, "w": w, "lo": lo, "hi": hi}


def _ref_interval(cond: Tensor, uncond: Tensor, t: Tensor, w: float, lo: float, hi: float) -> Tensor:
    return guidance_rule(Setting(scale=w, interval=(lo, hi)), cond, uncond, t=t)


def _gated(on: Callable[[Tensor, float, float], Tensor], inside: Callable[..., Tensor],
           outside: Callable[..., Tensor]) -> Callable[..., Tensor]:
    def wrong(cond: Tensor, uncond: Tensor, t: Tensor, w: float, lo: float, hi: float) -> Tensor:
        mask = on(t, lo, hi)[:, None]
        return torch.where(mask, inside(cond, uncond, w), outside(cond, uncond, w))
    return wrong


def _closed(t: Tensor, lo: float, hi: float) -> Tensor:
    return (t >= lo) & (t <= hi)


def check_interval_cfg(student: Callable[..., Any]) -> Verdict:
    """``interval_cfg(cond, uncond, t, w, lo, hi)``: CFG at scale w for the rows with lo <= t <= hi, the plain
    conditional prediction (scale 1) for the others."""
    guide = lambda c, u, w: cfg(c, u, w)  # noqa: E731
    plain = lambda c, u, w: c  # noqa: E731
    mistakes = [
        ("outside the interval you return the unconditional prediction (scale 0). Outside [lo, hi] guidance is "
         "off, which means scale 1: the plain conditional prediction cond.",
         _gated(_closed, guide, lambda c, u, w: u)),
        ("the interval is inverted: you guide where t is outside [lo, hi] and return cond inside it.",
         _gated(lambda t, lo, hi: ~_closed(t, lo, hi), guide, plain)),
        ("the ends of the interval are excluded: a row with t exactly lo or hi must be guided (lo <= t <= hi, as "
         "in cfglab.guidance.in_interval).",
         _gated(lambda t, lo, hi: (t > lo) & (t < hi), guide, plain)),
        ("you guide every row: the interval is ignored. Use t to switch guidance on only for lo <= t <= hi.",
         lambda cond, uncond, t, w, lo, hi: cfg(cond, uncond, w)),
        ("no row is guided: you return cond everywhere. Rows with lo <= t <= hi need u + w (c - u). (Did you test "
         "only the first t, or the whole tensor with a Python `if`?)",
         lambda cond, uncond, t, w, lo, hi: cond.clone()),
        ("inside the interval you use Ho & Salimans' (1 + w) c - w u; the course's scale is u + w (c - u).",
         _gated(_closed, lambda c, u, w: cfg(c, u, w + 1), plain)),
    ]
    return check_function("interval_cfg", student, _ref_interval, _interval_inputs, mistakes=mistakes)


# -- (b) a weighted negative prompt, then the rescale -----------------------------------------------------------


def _negative_inputs(g: torch.Generator) -> dict[str, Any]:
    n = int(torch.randint(5, 9, (1,), generator=g))
    u = torch.rand(3, generator=g, dtype=torch.float64)
    preds = torch.randn(3, n, 2, generator=g, dtype=torch.float64)
    return {"cond": preds[0], "uncond": preds[1], "neg": preds[2], "w": 1.5 + 5.0 * float(u[0]),
            "w_neg": 0.5 + 2.0 * float(u[1]), "phi": 0.2 + 0.6 * float(u[2])}


def _ref_negative(cond: Tensor, uncond: Tensor, neg: Tensor, w: float, w_neg: float, phi: float) -> Tensor:
    return guidance_rule(Setting(scale=w, negative=0, negative_weight=w_neg, rescale=phi), cond, uncond, neg)


def _rms(x: Tensor) -> Tensor:
    return x.pow(2).mean(dim=1, keepdim=True).sqrt()


def _combined(cond: Tensor, uncond: Tensor, neg: Tensor, w: float, w_neg: float, sign: float = -1.0) -> Tensor:
    return uncond + w * (cond - uncond) + sign * w_neg * (neg - uncond)


def check_negative_rescale(student: Callable[..., Any]) -> Verdict:
    """``negative_rescale(cond, uncond, neg, w, w_neg, phi)`` for 2D predictions (n, 2): ``g = u + w (c - u) -
    w_neg (n - u)``, then ``phi * g * rms(c) / rms(g) + (1 - phi) * g`` with the root mean square per row."""
    def blend(g: Tensor, ratio: Tensor, phi: float, inverted: bool = False) -> Tensor:
        r = g * ratio  # g rescaled by a per-row ratio
        return (1 - phi) * r + phi * g if inverted else phi * r + (1 - phi) * g

    mistakes = [
        ("the negative term has the wrong sign: it is SUBTRACTED, g = u + w (c - u) - w_neg (n - u), to push away "
         "from the negative prompt.",
         lambda cond, uncond, neg, w, w_neg, phi: rescale(_combined(cond, uncond, neg, w, w_neg, +1.0), cond, phi,
                                                          center=False)),
        ("you put neg in place of uncond, n + w (c - n) (cl.guided's negative=): that is this rule with w_neg = "
         "w - 1. The exercise asks for the separate weight w_neg on top of u + w (c - u).",
         lambda cond, uncond, neg, w, w_neg, phi: rescale(cfg(cond, neg, w), cond, phi, center=False)),
        ("the rescale is missing or phi is ignored: blend phi * g * rms(c) / rms(g) + (1 - phi) * g.",
         lambda cond, uncond, neg, w, w_neg, phi: _combined(cond, uncond, neg, w, w_neg)),
        ("you rescale towards the size of uncond; the target size is that of the conditional prediction, "
         "rms(cond).",
         lambda cond, uncond, neg, w, w_neg, phi: rescale(_combined(cond, uncond, neg, w, w_neg), uncond, phi,
                                                          center=False)),
        ("you used the standard deviation (centred) per row; for a 2D point use the root mean square "
         "sqrt(mean(x^2)) per row (the std of two coordinates is |a - b| / sqrt(2), not a size).",
         lambda cond, uncond, neg, w, w_neg, phi: rescale(_combined(cond, uncond, neg, w, w_neg), cond, phi)),
        ("you rescaled the CFG part before subtracting the negative term; rescale the whole combination g.",
         lambda cond, uncond, neg, w, w_neg, phi: rescale(cfg(cond, uncond, w), cond, phi, center=False)
         - w_neg * (neg - uncond)),
        ("the blend is the wrong way round: phi weights the RESCALED prediction, (1 - phi) the plain g.",
         lambda cond, uncond, neg, w, w_neg, phi: blend(_combined(cond, uncond, neg, w, w_neg),
                                                        _rms(cond) / _rms(_combined(cond, uncond, neg, w, w_neg)),
                                                        phi, inverted=True)),
        ("the ratio is upside down: multiply g by rms(cond) / rms(g), not rms(g) / rms(cond).",
         lambda cond, uncond, neg, w, w_neg, phi: blend(_combined(cond, uncond, neg, w, w_neg),
                                                        _rms(_combined(cond, uncond, neg, w, w_neg)) / _rms(cond),
                                                        phi)),
        ("the root mean square is taken over the whole batch; take it per row (per sample, dim=1, keepdim=True).",
         lambda cond, uncond, neg, w, w_neg, phi: blend(_combined(cond, uncond, neg, w, w_neg),
                                                        cond.pow(2).mean().sqrt()
                                                        / _combined(cond, uncond, neg, w, w_neg).pow(2).mean().sqrt(),
                                                        phi)),
    ]
    return check_function("negative_rescale", student, _ref_negative, _negative_inputs, mistakes=mistakes)


# -- (c) an experiment: the interval that keeps the diversity and reaches the adherence -------------------------------

FIND_TASK = (4.0, 0.95, 0.9)  # scale w, adherence to reach, share of the unguided (w = 1) diversity to keep


def _task_explorer(seed: int = 7) -> Explorer:
    """The checker's explorer: the overlap toy, class "right", 1000 samples. With ``exact=True`` settings the
    network is not used, so an untrained one will do."""
    mix = make("overlap")
    model = MLP(2, mix.num_classes, path=Linear(), pred="velocity", seed=0)
    return Explorer(model, mix, 1, seed=seed)


def _interval_metrics(ex: Explorer, w: float, lo: float, hi: float, exact: bool = True) -> tuple[float, float]:
    x = ex.sample(Setting(scale=w, interval=(lo, hi), exact=exact))
    return adherence(x, ex.y, ex.mixture), diversity(x)


def _find_interval(ex: Explorer, w: float, min_adherence: float, min_diversity: float) -> tuple[float, float]:
    """Reference: for hi = 1, 0.9, 0.8, lower lo in steps of 0.05 from just below hi until the adherence is
    reached (guiding over more noise levels raises it and lowers the diversity); return the first interval that
    meets both targets."""
    for hi in (1.0, 0.9, 0.8):
        lo = hi - 0.05
        while lo >= -1e-9:
            a, d = _interval_metrics(ex, w, max(lo, 0.0), hi)
            if a >= min_adherence:
                if d >= min_diversity:
                    return (max(lo, 0.0), hi)
                break
            lo -= 0.05
    raise ValueError("no interval found")


def check_find_interval(student: Callable[..., Any]) -> Verdict:
    """``find_interval(ex, w, min_adherence, min_diversity)`` returns ``(lo, hi)``: guided at scale w only for
    lo <= t <= hi, with the exact scores (``Setting(scale=w, interval=(lo, hi), exact=True)``), the explorer's samples
    must reach ``adherence >= min_adherence`` and keep ``diversity >= min_diversity``. The checker asks for w = 4,
    adherence 0.95 and 90 % of the unguided diversity on an explorer of its own, samples the returned interval the
    same way and measures both with the exact classifier and the mean pairwise distance."""
    name = "find_interval"

    def verdict(passed: bool, message: str) -> Verdict:
        v = Verdict(passed, message, name=name, student=student, reference=_find_interval)
        print(v)
        return v

    if not callable(student):
        return verdict(False, f"{name}: expected a function, got {_describe(student)}.")
    ex = _task_explorer()
    w, min_adh, share = FIND_TASK
    min_div = share * diversity(ex.sample(Setting(exact=True)))
    try:
        got = student(ex=ex, w=w, min_adherence=min_adh, min_diversity=min_div)
    except NotImplementedError as err:
        if _raised_by_a_raise_statement(err):
            return verdict(False, _not_written(name, err))
        return verdict(False, f"{name} raised NotImplementedError: {err}.")
    except Exception as err:  # report, never re-raise
        return verdict(False, f"{name} raised {type(err).__name__}: {err} (called with an Explorer, w={w:g}, "
                              f"min_adherence={min_adh:g}, min_diversity={min_div:.3f}).")
    if (not isinstance(got, (tuple, list)) or len(got) != 2
            or not all(isinstance(v, Real) and not isinstance(v, bool) for v in got)):
        return verdict(False, f"{name} should return the interval as a pair of numbers (lo, hi), got "
                              f"{got!r:.60}.")
    lo, hi = float(got[0]), float(got[1])
    try:
        a, d = _interval_metrics(ex, w, lo, hi)
    except (TypeError, ValueError) as err:
        return verdict(False, f"{name} returned ({lo:g}, {hi:g}), which is not an interval of times: {err}.")
    shown = f"[{lo:.3g}, {hi:.3g}]: adherence {a:.3f}, diversity {d:.3f}"
    if a >= min_adh and d >= min_div:
        return verdict(True, f"{name}: {shown} (targets {min_adh:g} and {min_div:.3f}).")
    if 0 <= 1 - hi <= 1 - lo <= 1:
        a2, d2 = _interval_metrics(ex, w, 1 - hi, 1 - lo)
        if a2 >= min_adh and d2 >= min_div:
            return verdict(False, f"{name}: {shown}. The mirrored interval [1 - hi, 1 - lo] meets both targets: on "
                                  "the linear path t = 1 is pure noise and t = 0 the data.")
    a3, d3 = _interval_metrics(ex, w, lo, hi, exact=False)
    if a3 >= min_adh and d3 >= min_div:
        return verdict(False, f"{name}: {shown}, measured with the exact scores; your interval meets the targets "
                              "with the network. Sample with Setting(..., exact=True).")
    if a < min_adh and d >= min_div:
        return verdict(False, f"{name}: {shown}: diversity kept, but the adherence is below {min_adh:g}. Guide "
                              "over more of the noise levels.")
    if a >= min_adh:
        return verdict(False, f"{name}: {shown}: the adherence is reached, but the diversity is below "
                              f"{min_div:.3f}. Guidance over this interval squeezes the class: try guiding over fewer "
                              "noise levels, and ask at which end of the sampling the spread is decided.")
    return verdict(False, f"{name}: {shown}: below both targets ({min_adh:g}, {min_div:.3f}).")
