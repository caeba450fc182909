"""Guidance away from a damaged copy of the model itself (chapter 17): one rule and one batching wrapper.

Perturbed-attention guidance (PAG, Ahn et al. 2024), smoothed-energy guidance (SEG, Hong 2024),
skip-layer guidance (SLG: Stability AI's SD3.5, and STG, Hyung et al. 2024) and the layer-skip ``AutoGuidance`` of
diffusers all combine the prediction ``D`` of the network with the prediction ``D_p`` of the same network with
something removed, exactly as autoguidance (Karras et al. 2024, eq. 2) combines a good network with a separately
trained weak one and as CFG combines the conditional with the unconditional prediction:

    guided = D_p + w (D - D_p)                     w = 1: no guidance (the course's scale, chapter 6)

The papers write ``D + s (D - D_p)``: the same rule at ``w = 1 + s``. With CFG on top (three predictions), PAG
and SEG add the two guidance terms, ``u + w_cfg (c - u) + (w_p - 1) (c - c_p)``.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import Tensor, nn

from .. import _checks
from ..paths import PREDICTIONS
from .rules import Field, cfg


def _like(**tensors: Tensor) -> None:
    shapes = {k: tuple(_checks.tensor(k, v).shape) for k, v in tensors.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError("predictions must have one shape, got " + ", ".join(f"{k} {s}" for k, s in shapes.items()))
    _checks.same_device(**tensors)
    _checks.same_dtype(**tensors)


def perturbed_guidance(pred: Tensor, pred_perturbed: Tensor, scale: float) -> Tensor:
    """``pred_perturbed + scale * (pred - pred_perturbed)``: guidance away from a perturbed (or weaker) copy of
    the model (Ahn et al. 2024's ``D + s (D - D_p)`` with ``s = scale - 1``; Karras et al. 2024, eq. 2). Scale 1 returns
    ``pred``. It is :func:`cfg` with the perturbed prediction in place of the unconditional one."""
    scale = _checks.scalar("scale", scale)
    _like(pred=pred, pred_perturbed=pred_perturbed)
    return cfg(pred, pred_perturbed, scale)


def cfg_perturbed(cond: Tensor, uncond: Tensor, cond_perturbed: Tensor, cfg_scale: float, scale: float) -> Tensor:
    """CFG and perturbed guidance together, from three predictions, as PAG (Ahn et al. 2024) and SEG (Hong 2024)
    combine them: ``uncond + cfg_scale (cond - uncond) + (scale - 1) (cond - cond_perturbed)``. ``scale = 1`` is
    plain CFG, ``cfg_scale = 1`` is :func:`perturbed_guidance` of ``cond`` and ``cond_perturbed``."""
    cfg_scale, scale = _checks.scalar("cfg_scale", cfg_scale), _checks.scalar("scale", scale)
    _like(cond=cond, uncond=uncond, cond_perturbed=cond_perturbed)
    return cfg(cond, uncond, cfg_scale) + (scale - 1.0) * (cond - cond_perturbed)


def scale_from_diffusers(perturbed_guidance_scale: float, guidance_scale: float, *,
                         use_original_formulation: bool = False) -> tuple[float, float]:
    """The course's ``(scale, cfg_scale)`` for the knobs of diffusers' ``PerturbedAttentionGuidance``,
    ``SmoothedEnergyGuidance`` and ``SkipLayerGuidance`` (``perturbed_guidance_scale``, ``seg_guidance_scale``,
    ``skip_layer_guidance_scale``; and ``guidance_scale``).

    With CFG on, diffusers returns ``u + guidance_scale (c - u) + s (c - c_p)``: the papers' ``s``, so
    ``scale = 1 + s``. With CFG off (``guidance_scale == 1``) its default formulation returns ``c_p + s (c - c_p)``,
    so ``scale = s``: the same knob means one unit less guidance as soon as ``guidance_scale`` reaches 1. With
    ``use_original_formulation=True`` both scales are the papers' (``cfg_scale = 1 + guidance_scale``) and
    ``scale = 1 + s`` throughout."""
    s = _checks.scalar("perturbed_guidance_scale", perturbed_guidance_scale)
    g = _checks.scalar("guidance_scale", guidance_scale)
    if use_original_formulation:
        return 1.0 + s, 1.0 + g
    return (s if math.isclose(g, 1.0) else 1.0 + s), g


def _guide_kind(guide: Any, model: Any) -> str:
    from ..models import Perturbation

    if isinstance(guide, Perturbation):
        forward = getattr(model, "forward", None)
        if not callable(forward) or "perturb" not in inspect.signature(forward).parameters:
            raise TypeError(f"model must take perturb= (a cfglab.models.AttentionDenoiser) to be guided by a "
                            f"Perturbation, got {type(model).__name__}")
        return "perturbation"
    g = _checks.model("guide", guide, "num_classes", "null_label", "path", "pred")
    if repr(g.path) != repr(model.path) or g.num_classes != model.num_classes:
        raise ValueError(f"guide must be trained on the model's path with its classes, got path {g.path!r} and "
                         f"num_classes {g.num_classes} against {model.path!r} and {model.num_classes}")
    return "network"


def perturbed_guided(model: nn.Module, y: Any, scale: float, guide: Any, *, cfg_scale: float = 1.0,
                     guide_y: Any = None, kind: str = "score") -> Field:
    """A sampler field ``fn(x, t)`` guided away from ``guide``: a :class:`cfglab.models.Perturbation` of ``model``
    itself (PAG, SEG, SLG, layer-skip autoguidance) or a separately trained weaker denoiser (Karras et al. 2024).

    ``y`` may be the null label (unconditional generation: no CFG needed). ``guide_y`` is the label of the guide's
    prediction (default ``y``; ``model.null_label`` is what diffusers' ``AutoGuidance`` does, its second pass runs
    on the negative prompt). With ``cfg_scale == 1`` the field is :func:`perturbed_guidance` of ``D(x, y)`` and
    ``D_p(x, guide_y)``, from one forward pass over ``[x, x]`` whose second half is perturbed (``rows=``); with
    ``cfg_scale != 1`` it is :func:`cfg_perturbed` from one pass over ``[x, x, x]`` with labels
    ``[y, null, guide_y]``. A separate guide network costs its own pass. ``scale == cfg_scale == 1`` is one plain
    pass. Predictions are combined in the model's parameterization and converted to ``kind``."""
    scale, cfg_scale = _checks.scalar("scale", scale), _checks.scalar("cfg_scale", cfg_scale)
    m = _checks.model("model", model, "num_classes", "null_label", "path", "pred")
    how = _guide_kind(guide, m)
    kind = _checks.choice("kind", kind, PREDICTIONS)
    for name, lab in (("y", y), ("guide_y", guide_y)):
        if lab is not None and not isinstance(lab, Tensor):
            _checks.labels(name, lab, 1, m.num_classes, torch.device("cpu"), allow_null=True)

    def fn(x: Tensor, t: Tensor) -> Tensor:
        x = _checks.tensor("x", x, min_ndim=1, finite=False)
        n = x.shape[0]
        yy = _checks.labels("y", y, n, m.num_classes, x.device, allow_null=True)
        gy = yy if guide_y is None else _checks.labels("guide_y", guide_y, n, m.num_classes, x.device,
                                                          allow_null=True)
        tt = _checks.times("t", t, x).expand(n)
        null = torch.full_like(yy, m.null_label)
        if scale == 1.0 and cfg_scale == 1.0:
            out = m(x, tt, yy)
        elif scale == 1.0:                                                   # plain CFG
            c, u = m(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([yy, null])).split(n)
            out = cfg(c, u, cfg_scale)
        else:
            labels = [yy] if cfg_scale == 1.0 else [yy, null]
            if how == "perturbation":
                rows = torch.zeros((len(labels) + 1) * n, dtype=torch.bool, device=x.device)
                rows[len(labels) * n:] = True                                # the last copy is perturbed
                k = len(labels) + 1
                net: Any = m                                                 # an AttentionDenoiser
                preds = net(torch.cat([x] * k), tt.repeat(k), torch.cat(labels + [gy]), perturb=guide,
                            rows=rows).split(n)
            else:
                k = len(labels)
                preds = m(torch.cat([x] * k), tt.repeat(k), torch.cat(labels)).split(n)
                weak = guide(x, tt, gy)
                preds = (*preds, guide.path.convert(weak, x, tt, guide.pred, m.pred))
            out = perturbed_guidance(preds[0], preds[-1], scale) if cfg_scale == 1.0 else \
                cfg_perturbed(preds[0], preds[1], preds[2], cfg_scale, scale)
        return m.path.convert(out, x, tt, m.pred, kind)

    return fn

