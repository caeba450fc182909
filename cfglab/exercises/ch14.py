"""Checks for chapter 14, guidance learned in training: the effective scale of a one-pass prediction (least squares
against the exact conditional and unconditional fields), and an experiment: a model-guidance loss, judged by the
scale that a network trained with it reaches, against the fixed point 1 / (1 - w)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from ..data import make
from ..distill import _steps, effective_scale
from ..models import MLP, ExactDenoiser
from ..paths import Linear
from ..train import TrainConfig, sample_times
from ..train_guided import scale_of_model_guidance
from ._core import Verdict, attempt, check_function

# -- (a) the effective scale ----------------------------------------------------------------------------------------


def _scale_inputs(g: torch.Generator) -> dict[str, Any]:
    n, d = int(torch.randint(20, 60, (1,), generator=g)), int(torch.randint(2, 4, (1,), generator=g))
    cond = torch.randn(n, d, generator=g, dtype=torch.float64)
    uncond = torch.randn(n, d, generator=g, dtype=torch.float64)
    scale = 1.0 + 5.0 * float(torch.rand((), generator=g, dtype=torch.float64))
    pred = uncond + scale * (cond - uncond) + 0.3 * torch.randn(n, d, generator=g, dtype=torch.float64)
    return {"pred": pred, "cond": cond, "uncond": uncond}


def _ref_scale(pred: Tensor, cond: Tensor, uncond: Tensor) -> float:
    return effective_scale(pred, cond, uncond)


def check_effective_scale(student: Callable[..., Any]) -> Verdict:
    """``effective_scale(pred, cond, uncond)``: the least-squares scale of ``pred - uncond ≈ w (cond - uncond)``."""
    def per_row(pred: Tensor, cond: Tensor, uncond: Tensor) -> float:
        d = cond - uncond
        return float(((pred - uncond) * d).sum(1).div((d * d).sum(1)).mean())

    mistakes = [
        ("you averaged one ratio per row; the least-squares scale pools every row first, <p - u, c - u> summed "
         "over all entries divided by |c - u|^2 summed over all entries.", per_row),
        ("you divided by |pred - u|^2: the scale is the coefficient of (c - u), so the denominator is |c - u|^2.",
         lambda pred, cond, uncond: float(((pred - uncond) * (cond - uncond)).sum() / ((pred - uncond) ** 2).sum())),
        ("a ratio of norms loses the sign and counts the part of pred - u that is not along c - u: project on "
         "c - u instead (an inner product).",
         lambda pred, cond, uncond: float((pred - uncond).norm() / (cond - uncond).norm())),
        ("the scale is measured from the unconditional prediction: project pred - uncond, not pred, on "
         "cond - uncond.",
         lambda pred, cond, uncond: float((pred * (cond - uncond)).sum() / ((cond - uncond) ** 2).sum())),
    ]
    return check_function("effective_scale", student, _ref_scale, _scale_inputs, rtol=1e-6, atol=1e-9,
                          mistakes=mistakes)


# -- (b) an experiment: the model-guidance loss ---------------------------------------------------------------------

W_MG = 0.5


def _ref_mg_loss(model: MLP, x0: Tensor, y: Tensor, w: float, generator: torch.Generator) -> Tensor:
    """Reference: Tang et al.'s target, the guidance difference of the model itself under no_grad."""
    t = sample_times(x0.shape[0], model.path, generator)
    eps = torch.randn(x0.shape, generator=generator)
    xt = model.path.noise(x0, t, eps)
    with torch.no_grad():
        diff = model(xt, t, y) - model(xt, t, model.null_label)
    target = model.path.target(model.pred, x0, eps, t) + w * diff
    return ((model(xt, t, y) - target) ** 2).mean()


def check_model_guidance_loss(student: Callable[..., Any]) -> Verdict:
    """``model_guidance_loss(model, x0, y, w, generator)``: the experiment of chapter 14. The checker trains a small MLP
    on the overlap toy for 400 steps with your loss at w = 0.5 (label dropout 10 %, Adam) and measures the effective
    scale of its one-pass prediction against the exact conditional and unconditional velocities: it must be within
    0.3 of the fixed point 1 / (1 - w) = 2."""
    name = "model_guidance_loss"
    mix, path = make("overlap"), Linear()
    model = MLP(2, mix.num_classes, path=path, width=32, depth=2, seed=0)
    x0, y = mix.sample(8, generator=torch.Generator().manual_seed(1))
    probe, failed = attempt(name, student, model=model, x0=x0, y=y, w=W_MG, generator=torch.Generator().manual_seed(2))
    if failed is None and not (isinstance(probe, Tensor) and probe.ndim == 0 and probe.requires_grad):
        failed = Verdict(False, f"{name} should return the loss as a 0-d tensor that carries gradients (a mean of "
                                f"squares), got {probe!r}.")
    crash = None
    if failed is None:
        try:
            for _ in _steps(model, mix, TrainConfig(steps=400, batch_size=256, seed=0),
                            lambda xb, yb, g: student(model=model, x0=xb, y=yb, w=W_MG, generator=g)):
                pass
        except Exception as err:  # report, never re-raise
            crash = f"{type(err).__name__}: {err}"
    want = scale_of_model_guidance(W_MG)
    if failed is not None:
        verdict = failed
    elif crash is not None:
        verdict = Verdict(False, f"training with {name} stopped: {crash}")
    else:
        exact = ExactDenoiser(mix, path, pred="velocity")
        g = torch.Generator().manual_seed(8)
        xq0, yq = mix.sample(1500, generator=g)
        tq = 0.05 + 0.9 * torch.rand(1500, generator=g)
        xq = path.noise(xq0, tq, torch.randn(1500, 2, generator=g))
        with torch.no_grad():
            got = effective_scale(model(xq, tq, yq), exact(xq, tq, yq), exact(xq, tq, exact.null_label))
        if abs(got - want) < 0.3:
            verdict = Verdict(True, f"a network trained with your {name} at w = {W_MG:g} guides at {got:.2f}, the "
                                    f"fixed point 1 / (1 - w) = {want:g}.")
        elif abs(got - 1 / (1 + W_MG)) < 0.15:
            verdict = Verdict(False, f"the trained network guides at {got:.2f}, below 1 (the conditional model): your "
                                     "target subtracts the guidance difference; MG adds w times D(y) - D(null).")
        elif abs(got - 1.0) < 0.15:
            verdict = Verdict(False, f"the trained network guides at {got:.2f}, which is no guidance: the target "
                                     "needs w times the model's own difference D(x_t, t, y) - D(x_t, t, null).")
        else:
            verdict = Verdict(False, f"the trained network guides at {got:.2f}, where MG's fixed point is {want:g}: "
                                     "check the noised input, the velocity target (model.path.target) and the "
                                     "guidance difference, computed without gradients.")
    verdict = replace(verdict, name=name, student=student, reference=_ref_mg_loss)
    print(verdict)
    return verdict
