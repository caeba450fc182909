"""Checks for chapter 9, taming strong guidance: the guidance interval, CFG rescale, APG's projection, and an
experiment: measuring whether a rule commutes with moving the data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from ..data import make
from ..guidance import apg, cfg, guided_rule, interval_scale, parallel_orthogonal, rescale
from ..paths import Linear
from ..samplers import ode
from ._core import Verdict, attempt, check_function

# -- (a) the guidance interval ---------------------------------------------------------------------------------------


def _interval_inputs(g: torch.Generator) -> dict[str, Any]:
    t = torch.rand(64, generator=g, dtype=torch.float64)
    a, b = sorted(float(v) for v in torch.rand(2, generator=g, dtype=torch.float64) * 0.8 + 0.1)
    t[:2] = torch.tensor([a, b], dtype=torch.float64)  # the ends themselves belong to the interval
    scale = 2.0 + 6.0 * float(torch.rand((), generator=g, dtype=torch.float64))
    return {"t": t, "start": a, "stop": b, "scale": scale}


def _ref_interval(t: Tensor, start: float, stop: float, scale: float) -> Tensor:
    return interval_scale(t, scale, start, stop).to(t.dtype)


def check_guidance_interval(student: Callable[..., Any]) -> Verdict:
    """``guidance_interval(t, start, stop, scale)``: ``scale`` for start <= t <= stop, 1 elsewhere."""
    on = lambda t, a, b: (t >= a) & (t <= b)  # noqa: E731
    mistakes = [
        ("outside the interval the scale must be 1 (no guidance, the plain conditional prediction), not 0: scale 0 "
         "is the unconditional model, which drops the condition altogether.",
         lambda t, start, stop, scale: torch.where(on(t, start, stop), scale, 0.0).to(t.dtype)),
        ("the interval is inverted: you guide outside [start, stop] and switch guidance off inside it.",
         lambda t, start, stop, scale: torch.where(on(t, start, stop), 1.0, scale).to(t.dtype)),
        ("the ends are excluded: the interval is closed, start <= t <= stop.",
         lambda t, start, stop, scale: torch.where((t > start) & (t < stop), scale, 1.0).to(t.dtype)),
        ("you measured the interval in sampling progress 1 - t instead of in the time t (t = 1 is noise).",
         lambda t, start, stop, scale: torch.where(on(1 - t, start, stop), scale, 1.0).to(t.dtype)),
    ]
    return check_function("guidance_interval", student, _ref_interval, _interval_inputs, mistakes=mistakes)


# -- (b) CFG rescale -------------------------------------------------------------------------------------------------


def _rescale_inputs(g: torch.Generator) -> dict[str, Any]:
    n, d = int(torch.randint(3, 7, (1,), generator=g)), int(torch.randint(8, 20, (1,), generator=g))
    cond = torch.randn(n, d, generator=g, dtype=torch.float64)
    uncond = torch.randn(n, d, generator=g, dtype=torch.float64)
    guided = uncond + 5.0 * (cond - uncond)
    phi = 0.2 + 0.6 * float(torch.rand((), generator=g, dtype=torch.float64))
    return {"guided": guided, "cond": cond, "phi": phi}


def _ref_rescale(guided: Tensor, cond: Tensor, phi: float) -> Tensor:
    return rescale(guided, cond, phi)


def check_cfg_rescale(student: Callable[..., Any]) -> Verdict:
    """``cfg_rescale(guided, cond, phi)`` (Lin et al. 2024, eq. 15-16), std per sample over the features."""
    def ratio(guided: Tensor, cond: Tensor, **kw: Any) -> Tensor:
        return cond.std(**kw) / guided.std(**kw)
    mistakes = [
        ("the ratio is upside down: multiply by std(cond) / std(guided), which shrinks the over-long guided "
         "prediction back to the conditional one's size.",
         lambda guided, cond, phi: phi * guided / ratio(guided, cond, dim=1, keepdim=True) + (1 - phi) * guided),
        ("phi is applied the wrong way round: phi = guidance_rescale weighs the RESCALED prediction, "
         "phi * rescaled + (1 - phi) * guided.",
         lambda guided, cond, phi: (1 - phi) * guided * ratio(guided, cond, dim=1, keepdim=True) + phi * guided),
        ("you took one std over the whole batch; the std is per sample (over each row's features), "
         "std(dim=1, keepdim=True).",
         lambda guided, cond, phi: phi * guided * ratio(guided, cond) + (1 - phi) * guided),
        ("you returned the fully rescaled prediction and forgot the blend with phi.",
         lambda guided, cond, phi: guided * ratio(guided, cond, dim=1, keepdim=True)),
    ]
    return check_function("cfg_rescale", student, _ref_rescale, _rescale_inputs, mistakes=mistakes)


# -- (c) APG's projection --------------------------------------------------------------------------------------------


def _proj_inputs(g: torch.Generator) -> dict[str, Any]:
    n, d = int(torch.randint(3, 7, (1,), generator=g)), int(torch.randint(2, 9, (1,), generator=g))
    return {"diff": torch.randn(n, d, generator=g, dtype=torch.float64),
            "cond": 3.0 * torch.randn(n, d, generator=g, dtype=torch.float64)}


def _ref_proj(diff: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
    return parallel_orthogonal(diff, cond)


def check_apg_parallel_orthogonal(student: Callable[..., Any]) -> Verdict:
    """``apg_parallel_orthogonal(diff, cond) -> (par, orth)``: per-sample projection of diff on cond."""
    def coef(diff: Tensor, cond: Tensor, denom: Tensor) -> Tensor:
        return (diff * cond).sum(1, keepdim=True) / denom
    mistakes = [
        ("you divided by |cond| instead of |cond|^2: the projection is (<diff, cond> / |cond|^2) cond, "
         "or <diff, u> u with the unit vector u = cond / |cond|.",
         lambda diff, cond: (lambda p: (p, diff - p))(coef(diff, cond, cond.norm(dim=1, keepdim=True)) * cond)),
        ("you projected cond onto diff; APG projects the guidance difference diff onto the conditional "
         "prediction cond.",
         lambda diff, cond: (lambda p: (p, diff - p))(
             (diff * cond).sum(1, keepdim=True) / (diff * diff).sum(1, keepdim=True) * diff)),
        ("the two parts are returned in the wrong order: return (parallel, orthogonal).",
         lambda diff, cond: tuple(reversed(parallel_orthogonal(diff, cond)))),
        ("the dot products are taken over the batch instead of per sample: sum over dim=1 with keepdim=True.",
         lambda diff, cond: (lambda p: (p, diff - p))((diff * cond).sum() / (cond * cond).sum() * cond)),
    ]
    return check_function("apg_parallel_orthogonal", student, _ref_proj, _proj_inputs, mistakes=mistakes)


# -- (d) an experiment: does a rule commute with moving the data? -----------------------------------------------------


def _shift_error(rule: Callable[..., Tensor], space: str, offset: Tensor, n: int = 200, steps: int = 16) -> float:
    """Reference: max |x(moved moons) - (x(moons) + offset)| with the exact scores of class 0, Euler, float64."""
    return _shift_runs(rule, space, offset, n, steps, True, torch.float64)


def _shift_runs(rule: Callable[..., Tensor], space: str, offset: Tensor, n: int, steps: int, move_start: bool,
                dtype: torch.dtype) -> float:
    mix, path = make("moons"), Linear()
    far = mix.shift(offset.double())
    x1 = path.prior(n, 2, generator=torch.Generator().manual_seed(0), dtype=dtype)
    moved = x1 + (path(path.t_max).alpha * offset.to(dtype) if move_start else 0.0)
    runs = []
    for m, start in ((mix, x1), (far, moved)):
        pair = lambda x, t, m=m: (m.score(x, t, path, 0), m.score(x, t, path))  # noqa: E731
        out = ode(guided_rule(pair, rule, path, pred="score", space=space), start, path, steps, method="euler")
        runs.append(out if isinstance(out, Tensor) else out[0])
    return float((runs[1] - (runs[0] + offset.to(dtype))).abs().max())


_SHIFT_RULES: list[tuple[str, Callable[..., Tensor], str, bool]] = [
    ("plain CFG at w = 5", lambda c, u, x, t: cfg(c, u, 5.0), "x0", True),
    ("the guidance interval [0.3, 0.7] at w = 4",
     lambda c, u, x, t: u + interval_scale(t, 4.0, 0.3, 0.7)[:, None].to(c) * (c - u), "eps", True),
    ("APG with eta = 0 at w = 5", lambda c, u, x, t: apg(c, u, 5.0, 0.0)[0], "x0", False),
    ("a static clip of x0 to [-1.5, 1.5] at w = 4", lambda c, u, x, t: cfg(c, u, 4.0).clamp(-1.5, 1.5), "x0",
     False),
]


def check_shift_error(student: Callable[..., Any]) -> Verdict:
    """``shift_error(rule, space, offset, n=200, steps=16)``: the experiment of chapter 9. Run on hidden rules, two
    that commute with translations and two that do not; the measurement must tell them apart (below 1e-6 for the
    first, above 1e-3 for the others)."""
    name, offset = "shift_error", torch.tensor([2.0, -1.0])
    verdict = None
    for label, rule, space, equivariant in _SHIFT_RULES:
        got, failed = attempt(name, student, rule=rule, space=space, offset=offset, n=64, steps=8)
        if failed is not None:
            verdict = failed
            break
        try:
            got = float(got)
        except (TypeError, ValueError):
            verdict = Verdict(False, f"{name} should return a float, got {type(got).__name__}.")
            break
        if equivariant and not got < 1e-6:
            if abs(got - _shift_runs(rule, space, offset, 64, 8, False, torch.float64)) < 1e-6 * max(1.0, got):
                why = ("the second run starts from the same noise as the first, but at t_max the noised data have "
                       "moved by alpha(t_max) * offset: move the start by that much too.")
            elif abs(got - _shift_runs(rule, space, offset, 64, 8, True, torch.float32)) < 1e-4:
                why = "you sampled in float32, whose round-off hides the exact answer: use dtype=torch.float64."
            else:
                why = ("re-read the exercise: run the same sampler on both mixtures from matching starts and compare "
                       "the second run with the first moved by the offset.")
            verdict = Verdict(False, f"{name} says that {label} depends on the origin (you measured {got:.3g}), "
                                     f"but it commutes with translations exactly: {why}")
            break
        if not equivariant and not got > 1e-3:
            verdict = Verdict(False, f"{name} says that {label} commutes with translations (you measured {got:.3g}), "
                                     "but it does not: check that the second run really uses the moved mixture's "
                                     "scores.")
            break
    if verdict is None:
        verdict = Verdict(True, f"{name} tells the rules that commute with translations from those that do not, on "
                                f"{len(_SHIFT_RULES)} hidden rules.")
    verdict = replace(verdict, name=name, student=student, reference=_shift_error)
    print(verdict)
    return verdict
