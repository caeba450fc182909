"""Guidance with two conditions at two scales (chapter 15): pure rules on predictions, and one batching wrapper.

InstructPix2Pix (Brooks et al. 2023, "InstructPix2Pix: learning to follow image editing instructions", eq. 3)
guides with an image condition c_I and a text condition c_T, nested:

    eps = eps(null, null) + s_I (eps(c_I, null) - eps(null, null)) + s_T (eps(c_I, c_T) - eps(c_I, null)),

which with exact scores is the score of ``p_t(x) p_t(c_I | x)^{s_I} p_t(c_T | c_I, x)^{s_T}``. :func:`nested` is
that rule for any two conditions and either order (the order is which single-condition prediction is passed),
:func:`instruct_pix2pix` the same rule with diffusers' names (``guidance_scale`` = s_T, ``image_guidance_scale`` =
s_I, both in the course's convention where 1 is no guidance), :func:`dual_cfg` ComfyUI's DualCFGGuider (its
"regular" style is the nested rule, its "nested" style multiplies the second scale by the first), and
:func:`interaction` the term by which the two orders differ. Every rule is affine in the predictions with weights
summing to one, so it gives the same field on eps, x0, score or velocity predictions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .. import _checks
from ..models.multi import MultiMLP
from ..paths import PREDICTIONS
from .rules import _same_shape

STYLES = ("regular", "nested")


def nested(uncond: Tensor, first: Tensor, both: Tensor, scale_first: float, scale_second: float) -> Tensor:
    """The nested two-scale rule of InstructPix2Pix (Brooks et al. 2023, eq. 3) in the course's convention,
    ``uncond + scale_first (first - uncond) + scale_second (both - first)``.

    ``first`` is the prediction with the first condition only, ``both`` with both. With exact scores it is the score
    of ``p_t(x) p_t(a | x)^{scale_first} p_t(b | a, x)^{scale_second}`` (a the first condition, b the second).
    ``scale_first == scale_second == w`` is plain CFG on the joint condition, ``cfg(both, uncond, w)``; with the
    second condition dropped (``both == first``) it is CFG on the first at ``scale_first``; with the first dropped
    (``first == uncond``) CFG on the second at ``scale_second``. The other order passes the second condition's
    prediction as ``first``; the two orders differ by ``(scale_a - scale_b) * interaction(...)``."""
    scale_first = _checks.scalar("scale_first", scale_first)
    scale_second = _checks.scalar("scale_second", scale_second)
    _same_shape(uncond=uncond, first=first, both=both)
    _checks.same_device(uncond=uncond, first=first, both=both)
    return uncond + scale_first * (first - uncond) + scale_second * (both - first)


def instruct_pix2pix(noise_pred_uncond: Tensor, noise_pred_image: Tensor, noise_pred_text: Tensor,
                     guidance_scale: float, image_guidance_scale: float) -> Tensor:
    """The combination of diffusers' ``StableDiffusionInstructPix2PixPipeline`` (the same in its SDXL version),
    with its names: ``noise_pred_text`` is the prediction with the text *and* the image, ``noise_pred_image`` with
    the image only, ``noise_pred_uncond`` with neither; the result is
    ``uncond + guidance_scale (text - image) + image_guidance_scale (image - uncond)``, i.e. :func:`nested` with
    the image first. Both scales are the course's (1 = no guidance). The pipeline skips guidance altogether (one
    pass, the text-and-image prediction) unless ``guidance_scale > 1`` and ``image_guidance_scale >= 1``; this rule
    is what it computes otherwise."""
    return nested(noise_pred_uncond, noise_pred_image, noise_pred_text, image_guidance_scale, guidance_scale)


def dual_cfg(negative: Tensor, middle: Tensor, positive: Tensor, cfg_conds: float, cfg_cond2_negative: float,
             style: str = "regular") -> Tensor:
    """ComfyUI's ``DualCFGGuider`` (node inputs ``cond1`` = positive, ``cond2`` = middle, ``negative``, scales
    ``cfg_conds`` and ``cfg_cond2_negative``, ``style``), from its ``Guider_DualCFG.predict_noise``:

    * ``"regular"``: ``negative + cfg_cond2_negative (middle - negative) + cfg_conds (positive - middle)``, the
      nested rule with the middle condition first;
    * ``"nested"``: ``negative + cfg_cond2_negative (middle + cfg_conds (positive - middle) - negative)``, the same
      rule with the second scale multiplied by the first (``cfg_conds * cfg_cond2_negative``).

    ComfyUI applies it to its denoised (x0) predictions; the rule is affine with weights summing to one, so it
    gives the same field in any space."""
    cfg_conds = _checks.scalar("cfg_conds", cfg_conds)
    cfg_cond2_negative = _checks.scalar("cfg_cond2_negative", cfg_cond2_negative)
    style = _checks.choice("style", style, STYLES)
    second = cfg_conds * cfg_cond2_negative if style == "nested" else cfg_conds
    return nested(negative, middle, positive, cfg_cond2_negative, second)


def interaction(uncond: Tensor, first: Tensor, second: Tensor, both: Tensor) -> Tensor:
    """``first + second - uncond - both``: with exact scores, ``-grad_x log [p_t(a, b | x) / (p_t(a | x)
    p_t(b | x))]``, zero at every x exactly when the two conditions are independent given x_t. The nested rule with
    a first minus the nested rule with b first is ``(scale_a - scale_b) * interaction``, and composition
    (:func:`cfglab.guidance.compose` with weights ``scale_a, scale_b``) minus the nested rule with a first is
    ``scale_b * interaction``."""
    _same_shape(uncond=uncond, first=first, second=second, both=both)
    return first + second - uncond - both


def multi_predictions(model: nn.Module, label_sets: Sequence[Any], *, kind: str = "score"
                      ) -> Callable[[Tensor, Tensor], list[Tensor]]:
    """``fn(x, t) -> [prediction for label_sets[0], ...]`` for a :class:`cfglab.models.MultiMLP`, each converted
    to ``kind``, from one forward pass over len(label_sets) copies of the batch. A label set gives one entry per
    condition (a label, an (n,) tensor or None for that condition's null label), e.g. ``[(None, None), (2, None),
    (2, 0)]`` for the unconditional, the first-condition and the joint predictions of the nested rule."""
    if not isinstance(model, MultiMLP):
        raise TypeError(f"model must be a cfglab.models.MultiMLP, got {type(model).__name__}")
    m = model
    kind = _checks.choice("kind", kind, PREDICTIONS)
    sets = list(label_sets)
    if not sets:
        raise ValueError("label_sets must name at least one set of labels")
    for s in sets:  # label sets of plain ints and None are checked when the wrapper is built
        if isinstance(s, Sequence) and not any(isinstance(v, Tensor) for v in s):
            m.label_columns(s, 1)

    def fn(x: Tensor, t: Tensor) -> list[Tensor]:
        x = _checks.tensor("x", x, min_ndim=1, finite=False)
        n = x.shape[0]
        cols = torch.cat([m.label_columns(s, n, x.device) for s in sets])  # (k n, m)
        tt = _checks.times("t", t, x).expand(n).repeat(len(sets))
        xx = x.repeat(len(sets), *[1] * (x.ndim - 1))
        out = m(xx, tt, cols)  # block i holds the prediction for label_sets[i]
        return list(m.path.convert(out, xx, tt, m.pred, kind).split(n))

    return fn
