"""Checks for chapter 15, several conditions at several scales: the nested two-scale rule of InstructPix2Pix, and
an experiment: measuring when the order of nesting changes the samples (with exact scores of the attribute toy)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from ..data import make_attributes
from ..guidance import compose, nested
from ..paths import Linear
from ..samplers import ode
from ..train_multi import MultiLabelData
from ._core import Verdict, attempt, check_function

# -- (a) the nested rule ---------------------------------------------------------------------------------------------


def _nested_inputs(g: torch.Generator) -> dict[str, Any]:
    n, d = int(torch.randint(3, 8, (1,), generator=g)), int(torch.randint(2, 6, (1,), generator=g))
    uncond, first, both = (torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(3))
    s1 = 1.2 + 2.0 * float(torch.rand((), generator=g, dtype=torch.float64))
    s2 = s1 + 2.5 + 4.0 * float(torch.rand((), generator=g, dtype=torch.float64))  # always unequal scales
    return {"uncond": uncond, "first": first, "both": both, "scale_first": s1, "scale_second": s2}


def _ref_nested(uncond: Tensor, first: Tensor, both: Tensor, scale_first: float, scale_second: float) -> Tensor:
    return nested(uncond, first, both, scale_first, scale_second)


def check_nested_guidance(student: Callable[..., Any]) -> Verdict:
    """``nested_guidance(uncond, first, both, scale_first, scale_second)`` = ``uncond + s1 (first - uncond) +
    s2 (both - first)`` (Brooks et al. 2023, eq. 3, in the course's convention)."""
    mistakes = [
        ("the two scales are swapped: scale_first multiplies the step from the unconditional prediction to the "
         "first condition's, scale_second the step from there to the prediction with both (diffusers' "
         "image_guidance_scale is the first, guidance_scale the second).",
         lambda uncond, first, both, scale_first, scale_second: nested(uncond, first, both, scale_second,
                                                                       scale_first)),
        ("your second term starts from the unconditional prediction, scale_second (both - uncond): that adds two "
         "guidance terms on top of each other. The second step starts where the first one ends: "
         "scale_second (both - first).",
         lambda uncond, first, both, scale_first, scale_second: uncond + scale_first * (first - uncond)
         + scale_second * (both - uncond)),
        ("this is composition (a sum of guidance terms from the unconditional prediction), uncond + s1 (first - "
         "uncond) + s2 (second - uncond) with `both` in the place of the second condition's prediction; the nested "
         "rule's second term is measured from the first condition's prediction, s2 (both - first).",
         lambda uncond, first, both, scale_first, scale_second: compose(uncond, [first, both],
                                                                        [scale_first, scale_second])),
        ("you used Ho & Salimans' weights (1 + w): the course's scale 1 means no guidance, so the result at "
         "scale_first = scale_second = 1 must be `both` itself.",
         lambda uncond, first, both, scale_first, scale_second: nested(uncond, first, both, scale_first + 1,
                                                                       scale_second + 1)),
        ("you multiplied the second scale by the first (ComfyUI's 'nested' style of DualCFGGuider): the rule of "
         "InstructPix2Pix adds the two terms, each with its own scale.",
         lambda uncond, first, both, scale_first, scale_second: nested(uncond, first, both, scale_first,
                                                                       scale_first * scale_second)),
    ]
    return check_function("nested_guidance", student, _ref_nested, _nested_inputs, mistakes=mistakes)


# -- (b) an experiment: when does the order of nesting matter? -------------------------------------------------------

_CASES = (  # layout, request (colour, shape), scale of the colour, scale of the shape, does the order matter
    ("grid", (0, 0), 1.5, 5.0, False),
    ("ring", (1, 1), 4.0, 4.0, False),
    ("ring", (0, 0), 1.5, 5.0, True),
    ("ring", (2, 1), 5.0, 2.0, True),
)


def _runs(layout: str, labels: tuple[int, int], scale_colour: float, scale_shape: float, n: int, steps: int, *,
          dtype: torch.dtype = torch.float64, second: str = "nested") -> float:
    data, path = MultiLabelData.from_attributes(make_attributes(layout)), Linear()
    a, b = labels
    laws = [data.law(list(v)) for v in ((None, None), (a, None), (None, b), (a, b))]

    def field(order: str) -> Callable[[Tensor, Tensor], Tensor]:
        def fn(x: Tensor, t: Tensor) -> Tensor:
            u, sa, sb, sab = (m.score(x, t, path) for m in laws)
            if order == "colour first":
                return nested(u, sa, sab, scale_colour, scale_shape)
            if second == "compose":
                return compose(u, [sa, sb], [scale_colour, scale_shape])
            if second == "scales kept":
                return nested(u, sb, sab, scale_colour, scale_shape)
            return nested(u, sb, sab, scale_shape, scale_colour)
        return fn

    x1 = path.prior(n, 2, generator=torch.Generator().manual_seed(0), dtype=dtype)
    runs = [ode(field(order), start, path, steps, method="euler") for order, start in (("colour first", x1),
                                                                                        ("shape first", x1))]
    xa, xb = (r if isinstance(r, Tensor) else r[0] for r in runs)
    return float((xa - xb).abs().max())


def _order_gap(layout: str, labels: tuple[int, int], scale_colour: float, scale_shape: float, n: int = 200,
               steps: int = 16) -> float:
    """Reference: max |x(colour first) - x(shape first)| from one start, exact scores, Euler, float64."""
    return _runs(layout, labels, scale_colour, scale_shape, n, steps)


def _diagnose(got: float, case: tuple[Any, ...], student: Callable[..., Any]) -> str:
    layout, labels, sc, ss, _ = case
    variants: list[tuple[dict[str, Any], str]] = [
        ({"dtype": torch.float32}, "you sampled in float32, whose round-off hides the exact answer: use "
                                   "dtype=torch.float64 for the starting noise (the exact scores follow it)."),
        ({"second": "scales kept"}, "in the shape-first order the scales must move with their conditions: the "
                                    "shape's scale goes with the shape's prediction (the first step) and the "
                                    "colour's with the joint one."),
        ({"second": "compose"}, "your second run is composition (both terms from the unconditional prediction), not "
                                "the nested rule with the shape first."),
    ]
    for kwargs, why in variants:
        want = _runs(layout, labels, sc, ss, 64, 8, **kwargs)
        if abs(got - want) <= 1e-6 * max(1.0, want) + (1e-4 if "dtype" in kwargs else 0.0):
            return why
    unit, failed = attempt("order_gap", student, layout="grid", labels=(0, 0), scale_colour=1.0, scale_shape=1.0,
                           n=64, steps=8)
    try:
        differs = failed is None and float(unit) > 1e-6
    except (TypeError, ValueError):
        differs = False
    if differs:  # at unit scales both orders are the exact conditional score: only the starts can differ
        return ("even at unit scales, where both orders are the conditional score itself, your two runs differ: "
                "start both from the same noise (one path.prior draw), or the difference measures the noise.")
    return ("re-read the exercise: sample twice from the same float64 noise with the exact scores, once with the "
            "colour first and once with the shape first, and return the largest absolute difference.")


def check_order_gap(student: Callable[..., Any]) -> Verdict:
    """``order_gap(layout, labels, scale_colour, scale_shape, n=200, steps=16)``: the experiment of chapter 15. Run
    on hidden cases, two where the order of nesting cannot matter (conditions independent given x_t, or equal
    scales) and two where it does; the measurement must tell them apart (below 1e-6, above 1e-3)."""
    name = "order_gap"
    verdict = None
    for case in _CASES:
        layout, labels, sc, ss, matters = case
        got, failed = attempt(name, student, layout=layout, labels=labels, scale_colour=sc, scale_shape=ss, n=64,
                              steps=8)
        if failed is not None:
            verdict = failed
            break
        try:
            got = float(got)
        except (TypeError, ValueError):
            verdict = Verdict(False, f"{name} should return a float, got {type(got).__name__}.")
            break
        what = (f"the {layout} layout, request {labels}, scales {sc:g} (colour) and {ss:g} (shape)")
        if not matters and not got < 1e-6:
            why = _diagnose(got, case, student)
            verdict = Verdict(False, f"{name} says that the order matters for {what} (you measured {got:.3g}), but "
                                     f"there the two orders give the same field exactly: {why}")
            break
        if matters and not got > 1e-3:
            verdict = Verdict(False, f"{name} says that the order does not matter for {what} (you measured "
                                     f"{got:.3g}), but it does: check that the second run really nests the shape "
                                     "first, with the shape's scale on its first step.")
            break
    if verdict is None:
        verdict = Verdict(True, f"{name} tells where the order of nesting matters from where it cannot, on "
                                f"{len(_CASES)} hidden cases.")
    verdict = replace(verdict, name=name, student=student, reference=_order_gap)
    print(verdict)
    return verdict
