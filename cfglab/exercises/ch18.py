"""Checks for chapter 18, taming strong guidance on images: tangential CFG's projection, CFG rescale in the
v-prediction, and an experiment: measuring which rules change when the pixel range is shifted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from ..guidance import (
    apg,
    cfg,
    dynamic_threshold,
    frequency_decoupled,
    guided_rule,
    predictions,
    rescale,
    rule_in_v,
    tangential_cfg,
    translated,
)
from ..models import UNet
from ..paths import Linear
from ..samplers import ode
from ._core import Verdict, attempt, check_function

# -- (a) tangential CFG ----------------------------------------------------------------------------------------------


def _tcfg_inputs(g: torch.Generator) -> dict[str, Any]:
    n = int(torch.randint(3, 7, (1,), generator=g))
    cond = torch.randn(n, 1, 8, 8, generator=g, dtype=torch.float64)
    uncond = 0.8 * cond + 0.6 * torch.randn(n, 1, 8, 8, generator=g, dtype=torch.float64)
    return {"cond": cond, "uncond": uncond, "scale": 2.0 + 5.0 * float(torch.rand((), generator=g))}


def _ref_tcfg(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
    return tangential_cfg(cond, uncond, scale)


def _singular_vectors(cond: Tensor, uncond: Tensor) -> Tensor:  # (n, 2, D)
    n = cond.shape[0]
    return torch.linalg.svd(torch.stack([cond.reshape(n, -1), uncond.reshape(n, -1)], 1), full_matrices=False)[2]


def _along(v: Tensor, direction: Tensor) -> Tensor:  # the part of v (n, ...) along unit rows direction (n, D)
    flat = v.reshape(v.shape[0], -1)
    return ((flat * direction).sum(1, keepdim=True) * direction).reshape(v.shape)


def check_tcfg(student: Callable[..., Any]) -> Verdict:
    """``tcfg(cond, uncond, scale)`` (Kwon et al. 2025): uncond projected on the top right singular vector of
    the per-sample matrix [cond; uncond], then CFG around it."""
    def second(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
        u2 = _along(uncond, _singular_vectors(cond, uncond)[:, 1])
        return u2 + scale * (cond - u2)

    def cond_projected(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
        c1 = _along(cond, _singular_vectors(cond, uncond)[:, 0])
        return uncond + scale * (c1 - uncond)

    def only_base(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
        u1 = _along(uncond, _singular_vectors(cond, uncond)[:, 0])
        return u1 + scale * (cond - uncond)

    def whole_batch(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
        m = torch.stack([cond.reshape(-1), uncond.reshape(-1)])          # one 2 x (n D) matrix
        v1 = torch.linalg.svd(m, full_matrices=False)[2][0]
        u1 = ((uncond.reshape(-1) * v1).sum() * v1).reshape(uncond.shape)
        return u1 + scale * (cond - u1)

    mistakes = [
        ("you kept the part of uncond along the SECOND singular vector: TCFG keeps the dominant direction (the first "
         "row of Vh, largest singular value) and drops the tangential rest.", second),
        ("you projected cond; TCFG keeps cond as it is and replaces uncond by its projection on the top singular "
         "vector.", cond_projected),
        ("the projected uncond must replace uncond everywhere: u' + scale (cond - u'), also inside the difference.",
         only_base),
        ("the SVD is per sample: stack the two flattened predictions of each sample as a 2 x D matrix (shape "
         "(n, 2, D)), not the whole batch as one matrix.", whole_batch),
        ("this is plain CFG: nothing was projected.", lambda cond, uncond, scale: cfg(cond, uncond, scale)),
    ]
    return check_function("tcfg", student, _ref_tcfg, _tcfg_inputs, mistakes=mistakes, rtol=1e-6, atol=1e-8)


# -- (b) CFG rescale in the v-prediction ----------------------------------------------------------------------------


def _rescale_v_inputs(g: torch.Generator) -> dict[str, Any]:
    n = int(torch.randint(3, 7, (1,), generator=g))
    cond = torch.randn(n, 1, 8, 8, generator=g, dtype=torch.float64).clamp(-1, 1)
    uncond = 0.7 * cond + 0.3 * torch.randn(n, 1, 8, 8, generator=g, dtype=torch.float64)
    t = 0.1 + 0.8 * torch.rand(n, generator=g, dtype=torch.float64)
    x = (1 - t)[:, None, None, None] * cond + t[:, None, None, None] * torch.randn(n, 1, 8, 8, generator=g,
                                                                                  dtype=torch.float64)
    return {"cond": cond, "uncond": uncond, "x": x, "t": t, "scale": 2.0 + 4.0 * float(torch.rand((), generator=g)),
            "phi": 0.3 + 0.6 * float(torch.rand((), generator=g))}


def _offset_rescale(k: Callable[[Tensor, Tensor], Tensor]) -> Callable[..., Tensor]:
    """Rescale applied to ``x0 - k(alpha, sigma) x``: every space of the course is one such offset (x0: k = 0)."""
    def fn(cond: Tensor, uncond: Tensor, x: Tensor, t: Tensor, scale: float, phi: float) -> Tensor:
        a, s = (1 - t)[:, None, None, None], t[:, None, None, None]
        off = k(a, s) * x
        return off + rescale(cfg(cond - off, uncond - off, scale), cond - off, phi)
    return fn


def _ref_rescale_v(cond: Tensor, uncond: Tensor, x: Tensor, t: Tensor, scale: float, phi: float) -> Tensor:
    rule = rule_in_v(lambda c, u, x_, t_: rescale(cfg(c, u, scale), c, phi), Linear())
    return rule(cond, uncond, x, t)


def check_rescale_in_v(student: Callable[..., Any]) -> Verdict:
    """``rescale_in_v(cond, uncond, x, t, scale, phi)``: CFG and rescale done on v-predictions, returned as x0."""
    mistakes = [
        ("you rescaled the x0 predictions themselves: convert them to v first (equation ch18-v), rescale there, and "
         "convert back.", _offset_rescale(lambda a, s: torch.zeros_like(a))),
        ("you rescaled the course's velocity eps - x0 (dx/dt on the linear path), not the v-prediction "
         "alpha eps - sigma x0 of Salimans and Ho.", _offset_rescale(lambda a, s: torch.ones_like(a))),
        ("you rescaled the eps predictions: the v-prediction is alpha eps - sigma x0 (normalised), not eps.",
         _offset_rescale(lambda a, s: 1 / a)),
        ("the blend is missing: phi * rescaled + (1 - phi) * guided, as in equation (ch09-rescale).",
         lambda cond, uncond, x, t, scale, phi: _ref_rescale_v(cond, uncond, x, t, scale, 1.0)),
        ("the standard deviations are per sample, over each image's pixels (dim (1, 2, 3), keepdim=True), not over "
         "the batch.", lambda cond, uncond, x, t, scale, phi: rule_in_v(
             lambda c, u, x_, t_: phi * cfg(c, u, scale) * c.std() / cfg(c, u, scale).std()
             + (1 - phi) * cfg(c, u, scale), Linear())(cond, uncond, x, t)),
    ]
    return check_function("rescale_in_v", student, _ref_rescale_v, _rescale_v_inputs, mistakes=mistakes,
                          rtol=1e-6, atol=1e-8)


# -- (c) an experiment: which rules care where pixel 0 is? --------------------------------------------------------


def _range_shift_gap(pair: Callable[..., Any], rule: Callable[..., Tensor], space: str, offset: Tensor,
                     x1: Tensor, steps: int) -> float:
    """Reference: sample with ``pair`` and with the pair moved by ``offset``, from matching starts; max |gap|."""
    return _gap_runs(pair, rule, space, offset, x1, steps, move_start=True, sign=1.0)


def _gap_runs(pair: Callable[..., Any], rule: Callable[..., Tensor], space: str, offset: Tensor, x1: Tensor,
              steps: int, move_start: bool, sign: float) -> float:
    path = Linear()
    off = offset.to(x1.dtype)
    moved = translated(pair, sign * off, path, "velocity")
    start = x1 + (path(path.t_max).alpha * off if move_start else 0.0)
    a = ode(guided_rule(pair, rule, path, pred="velocity", space=space), x1, path, steps, method="euler")
    b = ode(guided_rule(moved, rule, path, pred="velocity", space=space), start, path, steps, method="euler")
    assert isinstance(a, Tensor) and isinstance(b, Tensor)
    return float((b - off - a).abs().max())


_RANGE_RULES: list[tuple[str, Callable[..., Tensor], str, bool]] = [
    ("plain CFG at w = 4", lambda c, u, x, t: cfg(c, u, 4.0), "x0", True),
    ("frequency-decoupled guidance [4, 2]", lambda c, u, x, t: frequency_decoupled(c, u, [4.0, 2.0]), "x0", True),
    ("CFG rescale in eps at w = 4", lambda c, u, x, t: rescale(cfg(c, u, 4.0), c, 0.7), "eps", True),
    ("CFG rescale in x0 at w = 4", lambda c, u, x, t: rescale(cfg(c, u, 4.0), c, 0.7), "x0", False),
    ("APG with eta = 0 at w = 4", lambda c, u, x, t: apg(c, u, 4.0, 0.0)[0], "x0", False),
    ("dynamic thresholding at w = 4", lambda c, u, x, t: dynamic_threshold(cfg(c, u, 4.0), 0.995, 1.0), "x0", False),
]


def _probe_pair() -> tuple[Callable[..., Any], Tensor]:
    """A small untrained UNet in float64 (equivariance is a property of the rule, not of the weights) and a start."""
    model = UNet(8, 10, path=Linear(), pred="velocity", width=8, seed=3).double()
    x1 = Linear().prior(6, (1, 8, 8), torch.Generator().manual_seed(4), dtype=torch.float64)
    return predictions(model, torch.arange(6) % 10), x1


def check_range_shift_gap(student: Callable[..., Any]) -> Verdict:
    """``range_shift_gap(pair, rule, space, offset, x1, steps)``: the experiment of chapter 18. Run on hidden rules
    with a probe network, three that commute with moving the pixel range and three that do not; the measurement
    must tell them apart (below 1e-6 for the first, above 1e-4 for the others)."""
    name, offset, steps = "range_shift_gap", torch.tensor(1.0, dtype=torch.float64), 4
    pair, x1 = _probe_pair()
    verdict = None
    with torch.no_grad():
        for label, rule, space, equivariant in _RANGE_RULES:
            got, failed = attempt(name, student, pair=pair, rule=rule, space=space, offset=offset, x1=x1,
                                  steps=steps)
            if failed is not None:
                verdict = failed
                break
            try:
                got = float(got)
            except (TypeError, ValueError):
                verdict = Verdict(False, f"{name} should return a float, got {type(got).__name__}.")
                break
            if equivariant and not got < 1e-6:
                variants = {"start": _gap_runs(pair, rule, space, offset, x1, steps, False, 1.0),
                            "sign": _gap_runs(pair, rule, space, offset, x1, steps, True, -1.0)}
                if abs(got - variants["start"]) < 1e-8 * max(1.0, got):
                    why = ("the second run starts from the same noise as the first, but at t_max the noised data have "
                           "moved by alpha(t_max) * offset: move the start by that much too.")
                elif abs(got - variants["sign"]) < 1e-8 * max(1.0, got):
                    why = ("the moved model must predict the data moved by +offset (cfglab.guidance.translated with "
                           "the offset itself), so that its samples shifted back by -offset match the first run.")
                elif abs(got - float(offset)) < 1e-3:
                    why = "shift the second run's samples back by the offset before comparing them with the first's."
                else:
                    why = ("re-read the exercise: run the same sampler with the pair and with the translated pair from "
                           "matching starts, and compare the second run, shifted back, with the first.")
                verdict = Verdict(False, f"{name} says that {label} depends on the pixel range (you measured "
                                         f"{got:.3g}), but it commutes with the shift exactly: {why}")
                break
            if not equivariant and not got > 1e-4:
                verdict = Verdict(False, f"{name} says that {label} commutes with the shift (you measured {got:.3g}), "
                                         "but it does not: check that the second run uses the translated pair.")
                break
    if verdict is None:
        verdict = Verdict(True, f"{name} tells apart the rules that commute with a pixel shift, on "
                                f"{len(_RANGE_RULES)} hidden rules.")
    verdict = replace(verdict, name=name, student=student, reference=_range_shift_gap)
    print(verdict)
    return verdict
