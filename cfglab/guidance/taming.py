"""Taming strong guidance (chapter 9): pure rules on tensors, to sample with through
:func:`cfglab.guidance.guided_rule`.

CFG rescale (Lin et al. 2024, sec. 3.4), dynamic thresholding (Saharia et al. 2022, Imagen, sec. 2.3), adaptive
projected guidance (Sadat et al. 2024, alg. 1), CFG-Zero* (Fan et al. 2025, eq. 6-8), guidance scales that vary
with time (Wang et al. 2024's schedules) and the guidance interval (Kynkäänniemi et al. 2024, eq. 3).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import _checks
from .rules import _per_sample, _same_shape, cfg, parallel_orthogonal

# Every rule below takes predictions shaped (n, ...) and works per sample over the non-batch dimensions. The scale
# is always the course's ``guidance_scale`` (1 = no guidance, diffusers' convention).


def rescale(guided: Tensor, cond: Tensor, guidance_rescale: float, *, center: bool = True) -> Tensor:
    """CFG rescale (Lin et al. 2024, "Common diffusion noise schedules and sample steps are flawed", sec. 3.4,
    eq. 15-16): rescale the guided prediction so that its per-sample standard deviation (over the non-batch
    dimensions) equals the conditional one's, ``rescaled = guided * std(cond) / std(guided)``, then blend
    ``phi * rescaled + (1 - phi) * guided`` with ``phi = guidance_rescale``. ``phi = 0`` returns ``guided``; the
    paper applies it to v- or eps-predictions. Needs at least two values per sample (a std).

    ``center=False`` uses the root mean square instead of the std (the same for an image whose mean is near 0).
    Use it for low-dimensional data: the std of the two coordinates of a 2D point is ``|a - b| / sqrt(2)``, not a
    size, and it vanishes whenever the coordinates are equal."""
    phi = _checks.scalar("guidance_rescale", guidance_rescale, nonnegative=True)
    _same_shape(guided=guided, cond=cond)
    dims = _per_sample(guided)
    if not dims or guided[0].numel() < 2:
        raise ValueError("rescale needs at least two values per sample to compute a standard deviation")
    if center:
        std_c, std_g = cond.std(dim=dims, keepdim=True), guided.std(dim=dims, keepdim=True)
    else:
        std_c = cond.pow(2).mean(dim=dims, keepdim=True).sqrt()
        std_g = guided.pow(2).mean(dim=dims, keepdim=True).sqrt()
    return phi * guided * (std_c / std_g) + (1 - phi) * guided


def dynamic_threshold(x0: Tensor, percentile: float = 0.995, bound: float = 1.0) -> Tensor:
    """Dynamic thresholding of an x0 prediction (Saharia et al. 2022, Imagen, sec. 2.3): per sample,
    ``s = max(bound, quantile_p(|x0|))``, then clip to ``[-s, s]`` and rescale by ``bound / s``. With the paper's
    data range ``bound = 1`` this is "clip to [-s, s], divide by s"; ``percentile = 1`` and a huge ``bound`` leave
    x0 unchanged, and a sample already inside ``[-bound, bound]`` is never touched. Static clipping is
    ``x0.clamp(-bound, bound)``."""
    p = _checks.scalar("percentile", percentile)
    if not 0.0 < p <= 1.0:
        raise ValueError(f"percentile must lie in (0, 1], got {p}")
    bound = _checks.scalar("bound", bound, positive=True)
    x0 = _checks.tensor("x0", x0, min_ndim=1)
    flat = x0.abs().reshape(x0.shape[0], -1)
    s = torch.quantile(flat, p, dim=1).clamp_min(bound).reshape(-1, *([1] * (x0.ndim - 1)))  # (n, 1, ...)
    return torch.maximum(torch.minimum(x0, s), -s) * (bound / s)


def apg(cond: Tensor, uncond: Tensor, guidance_scale: float, eta: float = 1.0, norm_threshold: float = 0.0,
        momentum: float = 0.0, running: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Adaptive projected guidance (Sadat et al. 2024, "Eliminating oversaturation and artifacts of high guidance
    scales in diffusion models", sec. 4-5, alg. 1). With ``diff = cond - uncond``:

    1. momentum (their "reverse momentum", beta < 0): ``running = diff + momentum * running``, used as diff;
    2. norm threshold r > 0: ``diff *= min(1, r / |diff|)`` per sample;
    3. split diff into its part parallel to ``cond`` and the orthogonal rest, keep ``orth + eta * par``;
    4. ``guided = cond + (guidance_scale - 1) * (orth + eta * par)``.

    ``eta = 1`` without threshold or momentum is plain CFG. The paper applies it to the x0 (denoised)
    prediction. Returns ``(guided, running)``: pass ``running`` back at the next step (``None`` at the first).
    diffusers' ``AdaptiveProjectedGuidance`` with ``use_original_formulation=True`` uses the paper's form with
    its ``guidance_scale = ours - 1``; its default form adds the update to ``uncond`` instead, which differs from
    this one by ``(1 - eta) * par`` whenever eta != 1."""
    w = _checks.scalar("guidance_scale", guidance_scale)
    eta = _checks.scalar("eta", eta)
    r = _checks.scalar("norm_threshold", norm_threshold, nonnegative=True)
    beta = _checks.scalar("momentum", momentum)
    _same_shape(cond=cond, uncond=uncond)
    dims = _per_sample(cond)
    diff = cond - uncond
    if running is not None:
        _same_shape(cond=cond, running=running)
        diff = diff + beta * running
    running = diff
    if r > 0:
        diff = diff * torch.clamp(r / torch.linalg.vector_norm(diff, dim=dims, keepdim=True), max=1.0)
    par, orth = parallel_orthogonal(diff, cond)
    return cond + (w - 1.0) * (orth + eta * par), running


def cfg_zero_star_scale(cond: Tensor, uncond: Tensor, eps: float = 1e-8) -> Tensor:
    """The optimized scale of CFG-Zero* (Fan et al. 2025, eq. 6-7): per sample,
    ``s* = <cond, uncond> / (|uncond|^2 + eps)``, the least-squares coefficient of projecting ``cond`` on
    ``uncond`` (argmin over s of ``|cond - s uncond|^2``). Shape (n, 1, ..., 1)."""
    eps = _checks.scalar("eps", eps, nonnegative=True)
    _same_shape(cond=cond, uncond=uncond)
    dims = _per_sample(cond)
    return (cond * uncond).sum(dim=dims, keepdim=True) / ((uncond * uncond).sum(dim=dims, keepdim=True) + eps)


def cfg_zero_star(cond: Tensor, uncond: Tensor, guidance_scale: float) -> Tensor:
    """CFG-Zero* (Fan et al. 2025, eq. 8) for velocity predictions: CFG around the rescaled unconditional velocity,
    ``s* uncond + guidance_scale * (cond - s* uncond)`` with ``s* = cfg_zero_star_scale(cond, uncond)``. Its other
    half, "zero-init" (a zero velocity for the first ``zero_init_steps`` steps), lives in the sampler loop."""
    w = _checks.scalar("guidance_scale", guidance_scale)
    s = cfg_zero_star_scale(cond, uncond)
    return cfg(cond, s * uncond, w)


SCHEDULES = ("constant", "linear", "cosine", "decaying")


def scale_schedule(kind: str, t: Any, guidance_scale: float) -> Tensor:
    """A guidance scale that varies with the time t (t = 1 noise, t = 0 data), ``1 + (guidance_scale - 1) p(t)``
    with a profile p whose mean over t in [0, 1] is 1, so every schedule spends the same guidance on average:
    ``constant`` p = 1; ``linear`` p = 2 (1 - t) (grows as sampling proceeds, as in Wang et al. 2024's increasing
    schedules); ``cosine`` p = 1 - cos(pi (1 - t)) (grows smoothly); ``decaying`` p = 1 + cos(pi (1 - t)) (strong
    at the start, no guidance at the end: a cosine-annealed weight)."""
    kind = _checks.choice("kind", kind, SCHEDULES)
    w = _checks.scalar("guidance_scale", guidance_scale)
    t = _checks.time_values("t", t)
    s = 1.0 - t  # sampling progress, 0 at the start and 1 at the end
    if kind == "constant":
        p = torch.ones_like(s)
    elif kind == "linear":
        p = 2.0 * s
    elif kind == "cosine":
        p = 1.0 - torch.cos(torch.pi * s)
    else:
        p = 1.0 + torch.cos(torch.pi * s)
    return 1.0 + (w - 1.0) * p


def in_interval(t: Any, start: float, stop: float) -> Tensor:
    """Whether guidance is on at time t: ``start <= t <= stop`` (the guidance interval of Kynkäänniemi et al. 2024,
    "Applying guidance in a limited interval improves sample and distribution quality", eq. 3, written in time
    instead of noise level sigma; on a path sigma is increasing in t, so the two are the same interval)."""
    t = _checks.time_values("t", t)
    start, stop = _checks.scalar("start", start), _checks.scalar("stop", stop)
    if start > stop:
        raise ValueError(f"start must be <= stop, got start={start}, stop={stop}")
    return (t >= start) & (t <= stop)


def interval_scale(t: Any, guidance_scale: float, start: float, stop: float) -> Tensor:
    """The effective scale of interval guidance: ``guidance_scale`` inside [start, stop], 1 (no guidance)
    outside (Kynkäänniemi et al. 2024, eq. 3)."""
    w = _checks.scalar("guidance_scale", guidance_scale)
    on = in_interval(t, start, stop)
    return torch.where(on, torch.full(on.shape, w), torch.ones(on.shape))
