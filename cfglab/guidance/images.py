"""Taming strong guidance on images (chapter 18): the rules diffusers added after chapter 9's, the v-prediction in
which ComfyUI rescales, and a model's predictions moved exactly to data shifted in pixel space.

* :func:`to_v`, :func:`from_v`, :func:`rule_in_v`: Salimans & Ho's v-prediction (2022, "Progressive distillation
  for fast sampling of diffusion models", sec. 4), ``v = a eps - s x0`` with the path's alpha and sigma normalised
  to ``a^2 + s^2 = 1``, where Lin et al. (2024) rescale. Not the course's *velocity* dx/dt (``eps - x0``, linear).
* :func:`tangential_cfg`: TCFG (Kwon et al. 2025, "TCFG: Tangential damping classifier-free guidance").
* :func:`mambo_scale`, :func:`mambo_guidance`: MAMBO-G (Zhu et al. 2025, "MAMBO-G: Magnitude-aware mitigation for
  boosted guidance", first circulated as "RAAG: Ratio aware adaptive guidance").
* :func:`laplacian_pyramid`, :func:`from_laplacian_pyramid`, :func:`frequency_decoupled`: frequency-decoupled
  guidance (Sadat et al. 2025, "Guidance in the frequency domain enables high-fidelity sampling at low CFG scales")
  on the Laplacian pyramid of Burt & Adelson (1983).
* :func:`translated`: what a model would predict had it learnt the data moved by an offset (the origin test).

Every rule takes predictions shaped (n, ...) and works per sample, with the course's ``guidance_scale`` (1 = none).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _checks
from ..paths import PREDICTIONS, Path
from .rules import _per_sample, _same_shape, parallel_orthogonal
from .wrappers import Pair, Rule

# -- v-prediction ------------------------------------------------------------------------------------------------


def _normalised(path: Path, x: Tensor, t: Any) -> tuple[Tensor, Tensor, Tensor]:
    c = path(t, x)
    n = torch.sqrt(c.alpha**2 + c.sigma**2)
    return c.alpha / n, c.sigma / n, n


def to_v(value: Tensor, x: Tensor, t: Any, path: Path, src: str) -> Tensor:
    """The v-prediction of Salimans & Ho (2022, sec. 4, ``v = alpha eps - sigma x0`` on a variance-preserving
    path) for a prediction ``value`` of kind ``src`` (eps, x0, score or velocity) at (x, t): with the path's alpha
    and sigma normalised, ``a = alpha / r``, ``s = sigma / r``, ``r = sqrt(alpha^2 + sigma^2)``, it is
    ``v = a eps - s x0``. On the VP path this is diffusers' ``v_prediction``; ComfyUI's RescaleCFG computes the same
    quantity from its VE-scaled input. At high noise ``v -> -x0``, at low noise ``v -> eps``. (The paths' own
    ``"v"`` kind, where a path has it, is ``alpha eps - sigma x0`` without the normalisation: ``r`` times this one,
    the same on VP. CFG rescale does not see the factor, which is the same for both predictions of a sample.)"""
    _checks.path("path", path)
    src = _checks.choice("src", src, PREDICTIONS)
    a, s, _ = _normalised(path, x, t)
    x0, eps = path.convert(value, x, t, src, "x0"), path.convert(value, x, t, src, "eps")
    return a * eps - s * x0


def from_v(v: Tensor, x: Tensor, t: Any, path: Path, dst: str) -> Tensor:
    """The inverse of :func:`to_v`: the prediction of kind ``dst`` at (x, t) whose v-prediction is ``v``. With
    ``x~ = x / r = a x0 + s eps``, ``x0 = a x~ - s v`` (and ``eps = s x~ + a v``)."""
    _checks.path("path", path)
    dst = _checks.choice("dst", dst, PREDICTIONS)
    v = _checks.tensor("v", v, finite=False)
    a, s, r = _normalised(path, x, t)
    x0 = a * (x / r) - s * v
    return path.convert(x0, x, t, "x0", dst)


def rule_in_v(rule: Rule, path: Path) -> Rule:
    """A rule on v-predictions made into a rule on x0 predictions (for :func:`cfglab.guidance.guided_rule` with
    ``space="x0"``): both predictions are converted to v (:func:`to_v`), ``rule`` combines them there, and the result
    is converted back. This is what ComfyUI's RescaleCFG node does whatever the model predicts, so that
    ``guidance_rescale`` means what Lin et al. (2024) tuned it for on v-prediction models."""
    _checks.function("rule", rule)
    _checks.path("path", path)

    def fn(cond: Tensor, uncond: Tensor, x: Tensor, t: Tensor) -> Tensor:
        cv, uv = to_v(cond, x, t, path, "x0"), to_v(uncond, x, t, path, "x0")
        return from_v(rule(cv, uv, x, t), x, t, path, "x0")

    return fn


# -- TCFG and MAMBO-G ---------------------------------------------------------------------------------------------


def tangential_cfg(cond: Tensor, uncond: Tensor, guidance_scale: float) -> Tensor:
    """Tangential damping CFG (Kwon et al. 2025): per sample, stack the two predictions as the rows of a
    2 x D matrix ``[cond; uncond]``, take its top right singular vector ``v1`` (the direction both share most), keep
    only the part of ``uncond`` along it, ``u' = <uncond, v1> v1``, and guide around that:
    ``u' + guidance_scale (cond - u')``. The dropped part of ``uncond`` (along the second singular vector) is the
    "tangential" component the paper damps. Scale 1 returns ``cond``. diffusers' ``TangentialClassifierFreeGuidance``
    (its default form) computes the same in float32; the paper applies it to the noise (score) prediction."""
    w = _checks.scalar("guidance_scale", guidance_scale)
    _same_shape(cond=cond, uncond=uncond)
    n = cond.shape[0]
    m = torch.stack([cond.reshape(n, -1), uncond.reshape(n, -1)], dim=1)  # (n, 2, D)
    _, _, vh = torch.linalg.svd(m, full_matrices=False)                  # vh (n, 2, D), rows = right vectors
    v1 = vh[:, 0]                                                        # (n, D) top right singular vector
    u_flat = uncond.reshape(n, -1)
    u_par = ((u_flat * v1).sum(dim=1, keepdim=True) * v1).reshape(uncond.shape)
    return u_par + w * (cond - u_par)


def mambo_scale(cond: Tensor, uncond: Tensor, guidance_scale: float, alpha: float = 8.0) -> Tensor:
    """The per-sample scale of MAMBO-G (Zhu et al. 2025; diffusers' ``MagnitudeAwareGuidance``, merged by the
    authors): with the update-to-prediction ratio ``r = |cond - uncond| / |uncond|`` (norms per sample),
    ``1 + (guidance_scale - 1) exp(-alpha r)``. Where the guidance update is large next to the prediction itself
    (the first steps of a flow model), the scale falls towards 1 (no guidance); ``alpha = 0`` is plain CFG.
    Shape (n, 1, ..., 1). The paper works with velocities of flow models."""
    w = _checks.scalar("guidance_scale", guidance_scale)
    a = _checks.scalar("alpha", alpha, nonnegative=True)
    _same_shape(cond=cond, uncond=uncond)
    dims = _per_sample(cond)
    num = torch.linalg.vector_norm(cond - uncond, dim=dims, keepdim=True)  # (n, 1, ..., 1)
    den = torch.linalg.vector_norm(uncond, dim=dims, keepdim=True)
    # |uncond| = 0: the ratio is infinite (scale 1) when there is a difference, 0 when there is none
    ratio = torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), torch.where(num > 0, torch.inf, 0.0))
    return 1.0 + (w - 1.0) * torch.exp(-a * ratio)


def mambo_guidance(cond: Tensor, uncond: Tensor, guidance_scale: float, alpha: float = 8.0) -> Tensor:
    """MAMBO-G: ``uncond + s (cond - uncond)`` with the damped per-sample scale ``s`` of :func:`mambo_scale`."""
    return uncond + mambo_scale(cond, uncond, guidance_scale, alpha) * (cond - uncond)


# -- the Laplacian pyramid and frequency-decoupled guidance --------------------------------------------------------

# Burt & Adelson's 5-tap binomial filter (1, 4, 6, 4, 1) / 16 in both directions: the blur of every pyramid level.
_TAPS = (1.0, 4.0, 6.0, 4.0, 1.0)


def _blur(x: Tensor) -> Tensor:  # (n, C, H, W) -> the same, reflect padding (the edge pixel is not repeated)
    k1 = torch.tensor(_TAPS, dtype=x.dtype, device=x.device) / 16.0
    k = (k1[:, None] * k1[None, :]).expand(x.shape[1], 1, 5, 5)       # (C, 1, 5, 5): one filter per channel
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k, groups=x.shape[1])


def _image(name: str, x: Any) -> Tensor:
    return _checks.tensor(name, x, ndim=4, finite=False)  # (n, C, H, W), floating point


def pyramid_down(x: Tensor) -> Tensor:
    """One level down the Gaussian pyramid: blur with the binomial filter, then average each 2x2 block (what a
    bilinear resize to half the size does), (n, C, H, W) -> (n, C, H/2, W/2). H and W must be even and >= 4."""
    x = _image("x", x)
    h, w = x.shape[-2:]
    if h % 2 or w % 2 or h < 4 or w < 4:
        raise ValueError(f"x must have an even height and width of at least 4, got {h}x{w}")
    return F.avg_pool2d(_blur(x), 2)


def pyramid_up(x: Tensor) -> Tensor:
    """One level up: bilinear upsampling to twice the size (``align_corners=False``), then the binomial blur,
    (n, C, H, W) -> (n, C, 2H, 2W). H and W must be >= 2."""
    x = _image("x", x)
    h, w = x.shape[-2:]
    if h < 2 or w < 2:
        raise ValueError(f"x must be at least 2x2, got {h}x{w}")
    return _blur(F.interpolate(x, size=(2 * h, 2 * w), mode="bilinear", align_corners=False))


def laplacian_pyramid(x: Tensor, levels: int = 2) -> list[Tensor]:
    """The Laplacian pyramid of images (n, C, H, W) (Burt & Adelson 1983), as kornia's
    ``build_laplacian_pyramid`` builds it: Gaussian levels ``g_0 = x, g_{i+1} = pyramid_down(g_i)``; band ``i`` is
    ``g_i - pyramid_up(g_{i+1})`` for ``i < levels - 1`` (fine to coarse detail) and the last entry is the coarsest
    Gaussian level itself. For 8x8 digits, ``levels = 2`` gives the 8x8 detail and the 4x4 low-pass image; a
    constant image lies entirely in the last level. :func:`from_laplacian_pyramid` inverts it exactly."""
    x = _image("x", x)
    levels = _checks.count("levels", levels)
    h, w = x.shape[-2:]
    stride = 2 ** (levels - 1)
    if h % stride or w % stride or (levels > 1 and min(h, w) // stride < 2):
        raise ValueError(f"levels={levels} needs a height and width divisible by {stride} with at least 2 pixels "
                         f"left at the coarsest level, got {h}x{w}")
    gauss = [x]
    for _ in range(levels - 1):
        gauss.append(pyramid_down(gauss[-1]))
    return [g - pyramid_up(g_next) for g, g_next in zip(gauss, gauss[1:])] + [gauss[-1]]


def from_laplacian_pyramid(pyramid: Sequence[Tensor]) -> Tensor:
    """The image whose :func:`laplacian_pyramid` is ``pyramid``: start from the coarsest level and repeatedly
    upsample (:func:`pyramid_up`) and add the next finer band."""
    bands = [_image(f"pyramid[{i}]", p) for i, p in enumerate(pyramid)]
    if not bands:
        raise ValueError("pyramid must hold at least one level")
    img = bands[-1]
    for i in range(len(bands) - 2, -1, -1):
        up = pyramid_up(img)
        if up.shape != bands[i].shape:
            raise ValueError(f"pyramid[{i}] must have shape {tuple(up.shape)} (twice the next level), got "
                             f"{tuple(bands[i].shape)}")
        img = up + bands[i]
    return img


def frequency_decoupled(cond: Tensor, uncond: Tensor, guidance_scales: Sequence[float],
                        parallel_weights: Sequence[float] | None = None) -> Tensor:
    """Frequency-decoupled guidance (Sadat et al. 2025): split both predictions (n, C, H, W) into the
    levels of a Laplacian pyramid (:func:`laplacian_pyramid`, as many levels as scales), guide each level with its
    own scale, ``u_l + w_l (c_l - u_l)``, and rebuild the image (:func:`from_laplacian_pyramid`). The scales are
    listed from the finest level to the coarsest, as in diffusers' ``FrequencyDecoupledGuidance``
    (``guidance_scales=[w_high, w_low]``); the paper guides the low frequencies weakly and the high ones strongly.

    Optional ``parallel_weights`` (one per level) scale the part of each level's difference parallel to the
    conditional level, as APG does; ``None`` is all ones. Without them the rule is linear in the two
    predictions with weights summing to one at every level, so, like CFG, it gives the same field in eps, x0, score
    or velocity, and it commutes with moving the data by a constant (which lives in the coarsest level only)."""
    ws = [_checks.scalar("guidance_scales", w) for w in guidance_scales]
    if not ws:
        raise ValueError("guidance_scales must name one scale per pyramid level (at least one)")
    pws = [1.0] * len(ws) if parallel_weights is None else [_checks.scalar("parallel_weights", p)
                                                             for p in parallel_weights]
    if len(pws) != len(ws):
        raise ValueError(f"parallel_weights must have one weight per level ({len(ws)}), got {len(pws)}")
    _same_shape(cond=cond, uncond=uncond)
    pc, pu = laplacian_pyramid(_image("cond", cond), len(ws)), laplacian_pyramid(_image("uncond", uncond), len(ws))
    out = []
    for c, u, w, pw in zip(pc, pu, ws, pws):
        diff = c - u
        if pw != 1.0:
            par, orth = parallel_orthogonal(diff, c)
            diff = pw * par + orth
        out.append(u + w * diff)
    return from_laplacian_pyramid(out)


# -- the origin test ------------------------------------------------------------------------------------------------


def translated(pair: Pair, offset: Any, path: Path, pred: str = "velocity") -> Pair:
    """The (cond, uncond) predictions, of kind ``pred``, of a model that learnt the data moved by ``offset``
    exactly as well as the original model learnt the data: the moved data noised to time t sit at
    ``x + alpha_t offset``, so ``pair'(x, t)`` evaluates ``pair`` at ``x - alpha_t offset`` and moves its x0
    prediction by ``offset`` (the noise prediction does not move). ``offset`` broadcasts against one sample, e.g.
    ``torch.tensor(1.0)`` shifts every pixel (a new pixel range) and a (1, 8, 8) tensor a pattern."""
    _checks.function("pair", pair)
    _checks.path("path", path)
    pred = _checks.choice("pred", pred, PREDICTIONS)
    if isinstance(offset, bool) or not isinstance(offset, (Tensor, int, float)):
        raise TypeError(f"offset must be a number or a torch.Tensor, got {type(offset).__name__}")
    off = _checks.tensor("offset", offset if isinstance(offset, Tensor) else torch.tensor(float(offset)))

    def fn(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        o = off.to(dtype=x.dtype, device=x.device)
        tt = _checks.times("t", t, x).expand(x.shape[0])
        xs = x - path(tt, x).alpha * o
        cond, uncond = (path.convert(path.convert(p, xs, tt, pred, "x0") + o, x, tt, "x0", pred) for p in pair(xs, tt))
        return cond, uncond

    return fn
