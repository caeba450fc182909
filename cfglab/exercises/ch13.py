"""Checks for chapter 13, guidance distillation: the distillation target, FluxPipeline's arithmetic around a
distilled model (``guidance``, ``true_cfg_scale`` and the negative prompt), and an experiment: a distillation loop,
judged by the scale the student it trains has learned, against the exact CFG field of a mixture."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from ..data import make
from ..distill import effective_scale
from ..guidance import cfg
from ..models import ExactDenoiser, GuidedMLP
from ..paths import Linear
from ._core import Verdict, _describe, attempt, check_function

# -- (a) the distillation target -----------------------------------------------------------------------------------


def _target_inputs(g: torch.Generator) -> dict[str, Any]:
    n, d = int(torch.randint(5, 9, (1,), generator=g)), int(torch.randint(2, 4, (1,), generator=g))
    w = 1.0 + 4.0 * torch.rand(n, generator=g, dtype=torch.float64)
    w[0], w[1] = 1.0, 0.0                         # the two ends: the conditional and the unconditional prediction
    return {"cond": torch.randn(n, d, generator=g, dtype=torch.float64),
            "uncond": torch.randn(n, d, generator=g, dtype=torch.float64), "w": w}


def _ref_target(cond: Tensor, uncond: Tensor, w: Tensor) -> Tensor:
    return torch.lerp(uncond, cond, w[:, None])


def check_distillation_target(student: Callable[..., Any]) -> Verdict:
    """``distillation_target(cond, uncond, w)``: ``uncond + w (cond - uncond)`` with one scale per row."""
    mistakes = [
        ("this is Meng et al.'s (1 + w) c - w u, the target at the course's scale w + 1: in the course's convention "
         "the target is u + w (c - u), so that w = 1 gives the teacher's conditional prediction.",
         lambda cond, uncond, w: (1 + w[:, None]) * cond - w[:, None] * uncond),
        ("cond and uncond are swapped: the target steps from the unconditional prediction towards the conditional "
         "one, u + w (c - u).",
         lambda cond, uncond, w: cond + w[:, None] * (uncond - cond)),
        ("the target starts from the unconditional prediction: u + w (c - u), not w (c - u).",
         lambda cond, uncond, w: w[:, None] * (cond - uncond)),
        ("you used one scale for every row (the mean of w); each row has its own scale w[i].",
         lambda cond, uncond, w: uncond + w.mean() * (cond - uncond)),
    ]
    return check_function("distillation_target", student, _ref_target, _target_inputs, mistakes=mistakes)


# -- (b) FluxPipeline's arithmetic around a distilled model --------------------------------------------------------


class _Net:
    """A fake distilled network that records its calls: (x, t, labels, guidance) -> a fixed nonlinear function."""

    def __init__(self, d: int, g: torch.Generator):
        self.emb = torch.randn(3, d, generator=g, dtype=torch.float64)
        self.calls: list[tuple[int, float]] = []

    def __call__(self, x: Tensor, t: Tensor, labels: Tensor, guidance: float) -> Tensor:
        self.calls.append((int(x.shape[0]), float(guidance)))
        return torch.tanh(x) * (1 + t[:, None]) + float(guidance) * self.emb[labels.long()]


def _ref_flux(model_fn: Callable[..., Tensor], x: Tensor, t: Tensor, y: Tensor, guidance: float,
              true_cfg_scale: float, negative: Tensor | None) -> Tensor:
    cond = model_fn(x, t, y, guidance)
    if true_cfg_scale > 1 and negative is not None:
        return cfg(cond, model_fn(x, t, negative, guidance), true_cfg_scale)
    return cond


_FLUX_CASES = [(3.5, 1.0, None), (3.5, 4.0, None), (3.5, 1.0, 0), (2.0, 0.5, 0), (3.5, 4.0, 0), (1.0, 2.5, 0)]


def check_flux_prediction(student: Callable[..., Any]) -> Verdict:
    """``flux_prediction(model_fn, x, t, y, guidance, true_cfg_scale, negative)``: what FluxPipeline combines at one
    step. Checked on six settings, counting the network's calls and the guidance each call receives."""
    name = "flux_prediction"
    g = torch.Generator().manual_seed(13)
    verdict = None
    for guidance, scale, neg in _FLUX_CASES:
        x = torch.randn(6, 2, generator=g, dtype=torch.float64)
        t = torch.rand(6, generator=g, dtype=torch.float64)
        y = torch.full((6,), 1)
        negative = None if neg is None else torch.full((6,), neg)
        net, ref_net = _Net(2, torch.Generator().manual_seed(1)), _Net(2, torch.Generator().manual_seed(1))
        got, failed = attempt(name, student, model_fn=net, x=x, t=t, y=y, guidance=guidance,
                              true_cfg_scale=scale, negative=negative)
        if failed is not None:
            verdict = failed
            break
        want = _ref_flux(ref_net, x, t, y, guidance, scale, negative)
        setting = f"guidance={guidance:g}, true_cfg_scale={scale:g}, negative={'None' if neg is None else neg}"
        if not isinstance(got, Tensor) or got.shape != want.shape:
            verdict = Verdict(False, f"{name} should return a tensor of shape {tuple(want.shape)}, got "
                                     f"{_describe(got)} ({setting}).")
            break
        if any(abs(gv - guidance) > 1e-12 for _, gv in net.calls):
            verdict = Verdict(False, f"{name} called the network with guidance {[gv for _, gv in net.calls]} "
                                     f"({setting}): FluxPipeline passes the same guidance to both passes, the "
                                     "negative one included.")
            break
        rows, want_rows = sum(r for r, _ in net.calls), sum(r for r, _ in ref_net.calls)
        if torch.allclose(got, want, rtol=1e-9, atol=1e-9):
            if rows > want_rows:
                verdict = Verdict(False, f"{name} gives the right prediction but evaluates {rows} rows where the "
                                         f"pipeline evaluates {want_rows} ({setting}): the second pass runs only "
                                         "when true_cfg_scale > 1 and a negative prompt is given.")
                break
            continue
        if negative is not None and not scale > 1 and torch.allclose(
                got, cfg(ref_net(x, t, y, guidance), ref_net(x, t, negative, guidance), scale), rtol=1e-9, atol=1e-9):
            why = ("you applied true CFG although true_cfg_scale is not above 1: the pipeline's do_true_cfg is "
                   "true_cfg_scale > 1 and has_neg_prompt, otherwise the negative prompt is ignored.")
        elif negative is not None and torch.allclose(got, cfg(ref_net(x, t, negative, guidance),
                                                              ref_net(x, t, y, guidance), scale), rtol=1e-9):
            why = "the two passes are swapped: the pipeline computes neg + true_cfg_scale * (cond - neg)."
        else:
            why = ("re-read the exercise: one pass at the given guidance, and true CFG between the prompt and the "
                   "negative prompt only when both conditions of the pipeline hold.")
        verdict = Verdict(False, f"{name} gives a wrong prediction with {setting}: {why}")
        break
    if verdict is None:
        verdict = Verdict(True, f"{name} combines the passes as FluxPipeline does, with the pipeline's number of "
                                f"passes, on {len(_FLUX_CASES)} settings.")
    verdict = replace(verdict, name=name, student=student, reference=_ref_flux)
    print(verdict)
    return verdict


# -- (c) an experiment: a distillation loop ------------------------------------------------------------------------


def _ref_loop(model: GuidedMLP, teacher: Any, data: Any, w_range: tuple[float, float], steps: int,
              generator: torch.Generator) -> list[float]:
    """Reference: Adam on Meng et al.'s stage-one loss, batches of 256, t uniform on [0.02, 0.98]."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    path, losses = model.path, []
    for _ in range(steps):
        x0, y = data.sample(256, generator=generator)
        t = 0.02 + 0.96 * torch.rand(256, generator=generator)
        w = w_range[0] + (w_range[1] - w_range[0]) * torch.rand(256, generator=generator)
        xt = path.noise(x0, t, torch.randn(x0.shape, generator=generator))
        with torch.no_grad():
            target = torch.lerp(teacher(xt, t, teacher.null_label), teacher(xt, t, y), w[:, None])
        loss = ((model(xt, t, y, w) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


PROBE_SCALES = (1.5, 2.0, 3.0, 3.5)


def _probe(student: GuidedMLP, teacher: ExactDenoiser) -> list[tuple[float, float, float]]:
    """(w, the student's effective scale, its relative error against the exact CFG field) at each probe scale."""
    mix, path = teacher.mix, teacher.path
    g = torch.Generator().manual_seed(3)
    x0, y = mix.sample(1500, generator=g)
    t = 0.05 + 0.9 * torch.rand(1500, generator=g)
    x = path.noise(x0, t, torch.randn(1500, 2, generator=g))
    c, u = teacher(x, t, y), teacher(x, t, teacher.null_label)
    out = []
    with torch.no_grad():
        for w in PROBE_SCALES:
            pred, exact = student(x, t, y, w), cfg(c, u, w)
            out.append((w, effective_scale(pred, c, u), float(((pred - exact) ** 2).sum() / ((exact - u) ** 2).sum())))
    return out


def check_distill_loop(student: Callable[..., Any]) -> Verdict:
    """``distill_loop(model, teacher, data, w_range, steps, generator)``: the experiment of chapter 13. The checker
    distils the *exact* velocity of the overlap toy into a small GuidedMLP for 300 steps on w in [1, 4] with your loop
    and measures what the student learned at four scales inside the range: its effective scale must be within 0.25 of
    w and its field within 10 % (relative squared error) of the exact CFG field."""
    name = "distill_loop"
    mix, path = make("overlap"), Linear()
    teacher = ExactDenoiser(mix, path, pred="velocity")
    net = GuidedMLP(2, mix.num_classes, path=path, width=32, depth=2, seed=0)
    got, failed = attempt(name, student, model=net, teacher=teacher, data=mix, w_range=(1.0, 4.0), steps=300,
                          generator=torch.Generator().manual_seed(0))
    if failed is not None:
        verdict = failed
    else:
        probes = _probe(net, teacher)
        shown = ", ".join(f"w = {w:g}: {s:.2f}" for w, s, _ in probes)
        offsets = [s - w for w, s, _ in probes]
        if all(abs(o) < 0.25 for o in offsets) and all(e < 0.1 for _, _, e in probes):
            verdict = Verdict(True, f"{name} trains a student that guides like the exact CFG field: effective scales "
                                    f"{shown}; largest relative error {max(e for _, _, e in probes):.3f}.")
        elif all(abs(o - 1) < 0.3 for o in offsets):
            verdict = Verdict(False, f"{name}'s student guides at w + 1 ({shown}): the target is Meng et al.'s "
                                     "(1 + w) c - w u; in the course's convention it is u + w (c - u).")
        elif max(s for _, s, _ in probes) - min(s for _, s, _ in probes) < 0.5:
            verdict = Verdict(False, f"{name}'s student guides at the same scale whatever w is ({shown}): pass each "
                                     "row's scale to the student (its fourth argument, guidance) and to the target.")
        else:
            verdict = Verdict(False, f"{name}'s student does not guide like the exact CFG field ({shown}; it should "
                                     "be w): check the target (the teacher's two predictions, no gradient), the "
                                     "noised input x_t and that the optimiser steps the student's parameters.")
    verdict = replace(verdict, name=name, student=student, reference=_ref_loop)
    print(verdict)
    return verdict
