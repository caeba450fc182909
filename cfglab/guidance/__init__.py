"""Guidance as pure combination rules, plus one batching wrapper.

The course uses one convention for the scale (STYLE principle 6):

    guided = uncond + scale * (cond - uncond)          scale = 1: plain conditional, scale = 0: unconditional

This is the convention of diffusers' ``guidance_scale`` and of Karras et al. (2024). Ho & Salimans (2022, eq. 6)
write ``(1 + w) cond - w uncond``: the same rule with ``scale = 1 + w`` (``paper_w = 0`` is unguided). Because
every conversion between eps, x0, score and velocity is affine in the prediction with weights summing to one, the
rule gives the same guided field whichever of the four quantities it is applied to.

The package holds ``rules`` (the combination rules on predictions), ``wrappers`` (a model or two fields made
into a sampler field ``fn(x, t)``), ``taming`` (the fixes for strong guidance of chapter 9) and ``images`` (the
rules of chapter 18, on images); every name is re-exported here, so ``cfglab.guidance.cfg`` and
``from cfglab.guidance import guided`` are the way to use them.
"""

from .images import (
    frequency_decoupled,
    from_laplacian_pyramid,
    from_v,
    laplacian_pyramid,
    mambo_guidance,
    mambo_scale,
    pyramid_down,
    pyramid_up,
    rule_in_v,
    tangential_cfg,
    to_v,
    translated,
)
from .multi import STYLES, dual_cfg, instruct_pix2pix, interaction, multi_predictions, nested
from .nonull import (
    expected_icg,
    icg,
    icg_guided,
    icg_negative_scale,
    random_conditions,
    time_perturbed,
    tsg,
    tsg_guided,
)
from .perturbed import cfg_perturbed, perturbed_guidance, perturbed_guided, scale_from_diffusers
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
    # taming strong guidance on images, chapter 18 (images.py)
    "frequency_decoupled", "from_laplacian_pyramid", "from_v", "laplacian_pyramid", "mambo_guidance", "mambo_scale",
    "pyramid_down", "pyramid_up", "rule_in_v", "tangential_cfg", "to_v", "translated",
    # guidance from a perturbed self, chapter 17 (perturbed.py)
    "cfg_perturbed", "perturbed_guidance", "perturbed_guided", "scale_from_diffusers",
    # from a model to a sampler field (wrappers.py)
    "Pair", "Rule", "autoguided", "classifier_guided", "guided", "guided_rule", "label_predictions",
    "log_prob_grad", "predictions",
    # several conditions at several scales, chapter 15 (multi.py)
    "STYLES", "dual_cfg", "instruct_pix2pix", "interaction", "multi_predictions", "nested",
    # guidance without a null label, chapter 16 (nonull.py)
    "expected_icg", "icg", "icg_guided", "icg_negative_scale", "random_conditions", "time_perturbed", "tsg",
    "tsg_guided",
]
