"""Checks for chapter 11, tiny images: the Fréchet distance between two 1D Gaussians (the closed form behind FID),
the replacement step of inpainting, and an experiment: the guidance scale that completes an image-to-image edit
at a given strength, judged by sampling with the chapter's UNet and classifier."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor

from .. import digits
from ..guidance import guided
from ..models import UNet
from ..paths import Linear
from ..samplers import ddim
from ..train import fit
from ._core import Verdict, attempt, check_function

# -- (a) Fréchet distance between 1D Gaussians ------------------------------------------------------------------


def _gauss_inputs(g: torch.Generator) -> dict[str, Any]:
    k = int(torch.randint(3, 8, (1,), generator=g))
    m1, m2 = torch.randn(k, generator=g, dtype=torch.float64), torch.randn(k, generator=g, dtype=torch.float64)
    v1 = 0.2 + 2.0 * torch.rand(k, generator=g, dtype=torch.float64)
    v2 = 0.2 + 2.0 * torch.rand(k, generator=g, dtype=torch.float64)
    return {"m1": m1, "v1": v1, "m2": m2, "v2": v2}


def _ref_fd1(m1: Tensor, v1: Tensor, m2: Tensor, v2: Tensor) -> Tensor:
    return (m1 - m2) ** 2 + v1 + v2 - 2 * torch.sqrt(v1 * v2)


def check_frechet_distance_1d(student: Callable[..., Any]) -> Verdict:
    """``frechet_distance_1d(m1, v1, m2, v2)`` = ``(m1 - m2)^2 + v1 + v2 - 2 sqrt(v1 v2)`` (v are variances)."""
    mistakes = [
        ("you left out the cross term -2 sqrt(v1 v2): without it two identical Gaussians are at distance 2 v, "
         "not 0. The trace term is Tr(S1 + S2 - 2 (S1 S2)^(1/2)).",
         lambda m1, v1, m2, v2: (m1 - m2) ** 2 + v1 + v2),
        ("the cross term needs a square root: (S1 S2)^(1/2) is sqrt(v1 v2) in 1D, not v1 v2 (variances multiply to "
         "a squared variance).",
         lambda m1, v1, m2, v2: (m1 - m2) ** 2 + v1 + v2 - 2 * v1 * v2),
        ("the cross term is subtracted: with + 2 sqrt(v1 v2) the distance grows when the two spreads agree.",
         lambda m1, v1, m2, v2: (m1 - m2) ** 2 + v1 + v2 + 2 * torch.sqrt(v1 * v2)),
        ("the mean term is the squared difference (m1 - m2)^2, not its absolute value.",
         lambda m1, v1, m2, v2: (m1 - m2).abs() + v1 + v2 - 2 * torch.sqrt(v1 * v2)),
        ("you treated v1 and v2 as standard deviations: they are variances, so the trace term is "
         "v1 + v2 - 2 sqrt(v1 v2) = (sqrt(v1) - sqrt(v2))^2, not (v1 - v2)^2.",
         lambda m1, v1, m2, v2: (m1 - m2) ** 2 + (v1 - v2) ** 2),
    ]
    return check_function("frechet_distance_1d", student, _ref_fd1, _gauss_inputs, mistakes=mistakes)


# -- (b) the replacement step of inpainting ------------------------------------------------------------------------


def _replace_inputs(g: torch.Generator) -> dict[str, Any]:
    n = int(torch.randint(2, 6, (1,), generator=g))
    x = torch.randn(n, 1, 8, 8, generator=g, dtype=torch.float64)
    x_known = torch.rand(n, 1, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    mask = (torch.rand(n, 1, 8, 8, generator=g) < 0.5).to(torch.float64)
    alpha = 0.2 + 0.6 * float(torch.rand((), generator=g, dtype=torch.float64))
    sigma = 0.2 + 0.6 * float(torch.rand((), generator=g, dtype=torch.float64))
    eps = torch.randn(n, 1, 8, 8, generator=g, dtype=torch.float64)
    return {"x": x, "x_known": x_known, "mask": mask, "alpha": alpha, "sigma": sigma, "eps": eps}


def _ref_replace(x: Tensor, x_known: Tensor, mask: Tensor, alpha: float, sigma: float, eps: Tensor) -> Tensor:
    return mask * (alpha * x_known + sigma * eps) + (1 - mask) * x


def check_replace_known(student: Callable[..., Any]) -> Verdict:
    """``replace_known(x, x_known, mask, alpha, sigma, eps)``: known pixels (mask 1) become the known image noised
    to the current time, ``alpha x_known + sigma eps``; unknown pixels keep the sampler's x."""
    mistakes = [
        ("the mask is inverted: mask == 1 marks the KNOWN pixels, which take the noised known image; the pixels "
         "with mask == 0 keep the sampler's x.",
         lambda x, x_known, mask, alpha, sigma, eps: (1 - mask) * (alpha * x_known + sigma * eps) + mask * x),
        ("you pasted the clean known pixels: at time t the sample is noisy, so the known pixels must be noised to "
         "the same time, alpha x_known + sigma eps, or they stand out as noise-free patches the model never saw.",
         lambda x, x_known, mask, alpha, sigma, eps: mask * x_known + (1 - mask) * x),
        ("the known pixels are missing their noise: use alpha x_known + sigma eps, not alpha x_known alone.",
         lambda x, x_known, mask, alpha, sigma, eps: mask * (alpha * x_known) + (1 - mask) * x),
        ("alpha and sigma are swapped: x_t = alpha x0 + sigma eps (alpha multiplies the image).",
         lambda x, x_known, mask, alpha, sigma, eps: mask * (sigma * x_known + alpha * eps) + (1 - mask) * x),
        ("you return only the known part: the unknown pixels (mask == 0) must keep the sampler's x.",
         lambda x, x_known, mask, alpha, sigma, eps: mask * (alpha * x_known + sigma * eps)),
    ]
    return check_function("replace_known", student, _ref_replace, _replace_inputs, mistakes=mistakes)


# -- (c) the guidance scale that completes an edit at a given strength (an experiment) -----------------------------

EDIT_SCALES = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
EDIT_STEPS = 10  # DDIM steps from t0 to 0, as the exercise states


def _edit_fraction(model: Any, classifier: Any, x0: Tensor, label: int, t0: float, eps: Tensor, w: float) -> float:
    """The fraction of the edits (image-to-image from ``x0`` at strength ``t0``, guided to ``label`` at scale ``w``)
    that the classifier reads as ``label``."""
    with torch.no_grad():
        out = cast(Tensor, ddim(guided(model, label, w), model.path.noise(x0, t0, eps), model.path, EDIT_STEPS,
                                t_max=t0))
        return float((classifier(out).argmax(1) == label).to(torch.float64).mean())


def _ref_scale_for_edit(model: Any, classifier: Any, x0: Tensor, label: int, t0: float, target: float, eps: Tensor,
                        scales: Any) -> float:
    """Reference: the first scale (increasing) at which the classifier reads at least ``target`` of the edits as
    ``label``; the largest scale if none does."""
    for w in scales:
        if _edit_fraction(model, classifier, x0, label, t0, eps, float(w)) >= target:
            return float(w)
    return float(scales[-1])


def _chapter_models() -> tuple[Any, Any]:
    """The UNet and the classifier of chapter 11, with the chapter's settings (both cached by configuration)."""
    model = UNet(8, num_classes=10, path=Linear(), pred="velocity", width=16, seed=0)
    fit(model, digits.dataset("train"), steps=800, batch_size=128, lr=2e-3, p_uncond=0.1)
    return model, digits.train_classifier()


def check_scale_for_edit(student: Callable[..., Any], model: Any = None, classifier: Any = None, *,
                         quiet: bool = False) -> Verdict:
    """``scale_for_edit(model, classifier, x0, label, t0, target, eps, scales)``: the smallest scale at which the
    classifier reads at least ``target`` of the image-to-image edits of ``x0`` (strength ``t0``, 10 DDIM steps) as
    ``label``. Judged by outcome on a hidden strength, with the chapter's ``model`` and ``classifier`` (trained with
    the chapter's settings when not given): the checker runs the edit at the student's scale and at the next smaller
    one, on the same images and noise. The first must reach the target, the second must not (up to one image)."""
    name = "scale_for_edit"

    def verdict(passed: bool, message: str) -> Verdict:
        v = Verdict(passed, message if passed or message.startswith(name) else f"{name}: {message}", name, student,
                    _ref_scale_for_edit)
        if not quiet:
            print(v)
        return v

    g = torch.Generator().manual_seed(20261209)
    if model is None or classifier is None:  # first a cheap probe with tiny untrained networks: a stub stops here
        tiny = UNet(8, num_classes=10, path=Linear(), width=8, seed=0)
        probe = torch.rand(4, 1, 8, 8, generator=g) * 2 - 1
        _, failed = attempt(name, student, model=tiny, classifier=digits.DigitClassifier(hidden=8, features=4),
                            x0=probe, label=7, t0=0.5, target=0.9, eps=torch.randn(probe.shape, generator=g),
                            scales=[1.0, 2.0])
        if failed is not None:
            return verdict(False, failed.message)
        model, classifier = _chapter_models()
    x_all, y_all = digits.load("all")
    ones = x_all[y_all == 1]
    x0 = ones[torch.randperm(len(ones), generator=g)[:60]]
    eps = torch.randn(x0.shape, generator=g)
    t0 = round(0.4 + 0.1 * float(torch.rand((), generator=g)), 3)
    target, label, n = 0.9, 7, x0.shape[0]
    out, failed = attempt(name, student, model=model, classifier=classifier, x0=x0, label=label, t0=t0,
                          target=target, eps=eps, scales=list(EDIT_SCALES))
    if failed is not None:
        return verdict(False, failed.message)
    w = None if isinstance(out, bool) else out
    try:
        w = float(w) if w is not None else None
    except (TypeError, ValueError):
        w = None
    if w is None or not math.isfinite(w):
        return verdict(False, f"should return the chosen scale as a float, got {out!r}.")
    if 0 <= w < 1:
        return verdict(False, f"returned {w:.3f}, below every scale offered: return the SCALE at which the edits "
                              "reach the target, not the fraction of edits.")
    if not EDIT_SCALES[0] <= w <= EDIT_SCALES[-1]:
        return verdict(False, f"returned {w:g}, outside the scales offered ({EDIT_SCALES[0]:g} to "
                              f"{EDIT_SCALES[-1]:g}).")
    frac = _edit_fraction(model, classifier, x0, label, t0, eps, w)
    if frac < target - 1 / n:
        extra = (" If you sampled from t = 1 (without t_max=t0), the source was erased and every scale 'reached' "
                 "the target." if w == EDIT_SCALES[0] else "")
        return verdict(False, f"at your w = {w:g} only {frac:.2f} of the edits (strength t0 = {t0}) read as a "
                              f"{label}, below the target {target}: noise x0 to t0 with path.noise, run cl.ddim "
                              f"with cl.guided(model, label, w) and t_max=t0 ({EDIT_STEPS} steps), and count "
                              f"classifier(x).argmax(1) == label.{extra}")
    smaller = [s for s in EDIT_SCALES if s < w - 1e-9]
    if smaller:
        before = _edit_fraction(model, classifier, x0, label, t0, eps, smaller[-1])
        if before >= target + 1 / n:
            return verdict(False, f"at w = {smaller[-1]:g} already {before:.2f} of the edits read as a {label} "
                                  f"(target {target}): your w = {w:g} is larger than needed. Guidance costs "
                                  "faithfulness to the source: return the FIRST scale that reaches the target.")
    return verdict(True, f"{name} picks w = {w:g} at t0 = {t0}: {frac:.2f} of {n} edits read as a {label} "
                         f"(target {target}).")
