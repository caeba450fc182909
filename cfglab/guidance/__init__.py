"""Guidance as pure combination rules, plus one batching wrapper.

The course uses one convention for the scale (STYLE principle 6):

    guided = uncond + scale * (cond - uncond)          scale = 1: plain conditional, scale = 0: unconditional

This is the convention of diffusers' ``guidance_scale`` and of Karras et al. (2024). Ho & Salimans (2022, eq. 6)
write ``(1 + w) cond - w uncond``: the same rule with ``scale = 1 + w`` (``paper_w = 0`` is unguided). Because
every conversion between eps, x0, score and velocity is affine in the prediction with weights summing to one, the
rule gives the same guided field whichever of the four quantities it is applied to.

The package holds ``rules`` (the combination rules on predictions), ``wrappers`` (a model or two fields made
into a sampler field ``fn(x, t)``) and ``taming`` (the fixes for strong guidance of chapter 9); every name is
re-exported here, so ``cfglab.guidance.cfg`` and ``from cfglab.guidance import guided`` are the way to use them.
"""

from .rules import (
    Field,
    cfg,
    classifier_guidance,
    combine,
    compose,
    parallel_orthogonal,
    perp_neg,
    scale_from_paper,
    scale_to_paper,
)
from .taming import (
    SCHEDULES,
    apg,
    cfg_zero_star,
    cfg_zero_star_scale,
    dynamic_threshold,
    in_interval,
    interval_scale,
    rescale,
    scale_schedule,
)
from .wrappers import (
    Pair,
    Rule,
    autoguided,
    classifier_guided,
    guided,
    guided_rule,
    label_predictions,
    log_prob_grad,
    predictions,
)

__all__ = [
    # rules: the combination of predictions (rules.py)
    "Field", "cfg", "classifier_guidance", "combine", "compose", "parallel_orthogonal", "perp_neg",
    "scale_from_paper", "scale_to_paper",
    # taming strong guidance, chapter 9 (taming.py)
    "SCHEDULES", "apg", "cfg_zero_star", "cfg_zero_star_scale", "dynamic_threshold", "in_interval",
    "interval_scale", "rescale", "scale_schedule",
    # from a model to a sampler field (wrappers.py)
    "Pair", "Rule", "autoguided", "classifier_guided", "guided", "guided_rule", "label_predictions",
    "log_prob_grad", "predictions",
]
