"""Checks for chapter 10, autoguidance: the guidance rule with a weaker model as the guide (and its two classic
mix-ups with CFG), the alignment of the guidance difference with the class direction, against exact mixture
scores, and an experiment: the autoguidance scale that gives a too-wide model's modes their true width."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor

from ..data import GaussianMixture, make
from ..guidance import cfg, combine
from ..metrics import mode_spread
from ..paths import VP, Linear, Path
from ..samplers import ode
from ._core import Verdict, attempt, check_function

# -- (a) autoguide(good, bad, x, t, y, w) ----------------------------------------------------------------------------


class ToyNet:
    """A deterministic stand-in for a conditional denoiser, ``net(x, t, y)``: ``tanh(x * a[y] * (1 + t)) + b[y]``
    with one row of ``a`` and ``b`` per class 0..K-1 and one for the null label K; ``y=None`` means the null label
    for every row (as for :class:`cfglab.MLP`)."""

    def __init__(self, num_classes: int, dim: int, g: torch.Generator):
        self.num_classes = self.null_label = num_classes
        self.a = 0.5 + torch.rand(num_classes + 1, dim, generator=g, dtype=torch.float64)
        self.b = torch.randn(num_classes + 1, dim, generator=g, dtype=torch.float64)

    def __call__(self, x: Tensor, t: Tensor, y: Any = None) -> Tensor:
        if y is None:
            y = torch.full((x.shape[0],), self.null_label, dtype=torch.long)
        y = torch.as_tensor(y, dtype=torch.long).expand(x.shape[0])
        if int(y.min()) < 0 or int(y.max()) > self.num_classes:
            raise ValueError(f"the network knows the labels 0..{self.num_classes} (the last is the null label), got "
                             f"{int(y.min())}..{int(y.max())}")
        tt = torch.as_tensor(t, dtype=x.dtype).reshape(-1, 1)
        return torch.tanh(x * self.a[y] * (1 + tt)) + self.b[y]


def _ag_inputs(g: torch.Generator) -> dict[str, Any]:
    K = int(torch.randint(2, 5, (1,), generator=g))
    n, d = int(torch.randint(3, 8, (1,), generator=g)), int(torch.randint(2, 4, (1,), generator=g))
    return {"good": ToyNet(K, d, g), "bad": ToyNet(K, d, g),
            "x": torch.randn(n, d, generator=g, dtype=torch.float64),
            "t": torch.rand(n, generator=g, dtype=torch.float64),
            "y": torch.randint(0, K, (n,), generator=g),
            "w": 1.5 + 4.0 * float(torch.rand((), generator=g, dtype=torch.float64))}


def _ref_autoguide(good: Callable[..., Tensor], bad: Callable[..., Tensor], x: Tensor, t: Tensor, y: Tensor,
                   w: float) -> Tensor:
    return cfg(good(x, t, y), bad(x, t, y), w)


def check_autoguide(student: Callable[..., Any]) -> Verdict:
    """``autoguide(good, bad, x, t, y, w)`` = ``bad(x,t,y) + w (good(x,t,y) - bad(x,t,y))`` (Karras et al. 2024)."""
    mistakes = [
        ("good and bad are swapped: you start from the good prediction and step along (bad - good), i.e. TOWARD the "
         "weak model's errors. The weak model is the base the step starts from: bad + w * (good - bad).",
         lambda good, bad, x, t, y, w: cfg(bad(x, t, y), good(x, t, y), w)),
        ("this is classifier-free guidance, not autoguidance: you used the good network's UNCONDITIONAL prediction "
         "(null label) as the base. Autoguidance replaces it by the bad network, conditional on the same y.",
         lambda good, bad, x, t, y, w: cfg(good(x, t, y), good(x, t, None), w)),
        ("the bad network is called without the label (null label). In autoguidance both networks see the same "
         "condition y; the guide differs from the good model only by being weaker.",
         lambda good, bad, x, t, y, w: cfg(good(x, t, y), bad(x, t, None), w)),
        ("off by one: (1 + w) * good - w * bad is the rule at scale w + 1. The course (and Karras et al. 2024) write "
         "bad + w * (good - bad), so that w = 1 returns the good model unchanged.",
         lambda good, bad, x, t, y, w: (1 + w) * good(x, t, y) - w * bad(x, t, y)),
        ("you return only the guidance term w * (good - bad); add it to the bad prediction.",
         lambda good, bad, x, t, y, w: w * (good(x, t, y) - bad(x, t, y))),
    ]
    return check_function("autoguide", student, _ref_autoguide, _ag_inputs, mistakes=mistakes)


# -- (b) difference_alignment(x, t, path, good, bad, y) -------------------------------------------------------------


def _mixture(g: torch.Generator) -> GaussianMixture:
    K = int(torch.randint(3, 7, (1,), generator=g))
    means = torch.randn(K, 2, generator=g, dtype=torch.float64)
    std = 0.4 + 0.4 * torch.rand(K, generator=g, dtype=torch.float64)
    classes = torch.cat([torch.tensor([0, 1]), torch.randint(0, 2, (K - 2,), generator=g)])
    return GaussianMixture(means, std, classes=classes)


def _align_inputs(g: torch.Generator) -> dict[str, Any]:
    good = _mixture(g)
    f = 1.3 + 0.7 * float(torch.rand((), generator=g, dtype=torch.float64))
    bad = GaussianMixture(good.means, good.std * f, good.weights, classes=good.classes)
    n = int(torch.randint(4, 10, (1,), generator=g))
    path = Linear() if bool(torch.rand((), generator=g) < 0.5) else VP()
    # points and times where both directions are well away from zero (far out, p_t(y|x) saturates to 0 or 1)
    return {"x": torch.randn(n, 2, generator=g, dtype=torch.float64),
            "t": 0.1 + 0.6 * float(torch.rand((), generator=g, dtype=torch.float64)),
            "path": path, "good": good, "bad": bad,
            "y": torch.randint(0, 2, (n,), generator=g)}


def _cos(a: Tensor, b: Tensor) -> Tensor:
    return torch.nn.functional.cosine_similarity(a, b, dim=1)


def _ref_align(x: Tensor, t: float, path: Path, good: GaussianMixture, bad: GaussianMixture, y: int) -> Tensor:
    diff = good.score(x, t, path, y) - bad.score(x, t, path, y)
    return _cos(diff, good.score(x, t, path, y) - good.score(x, t, path))


def check_difference_alignment(student: Callable[..., Any]) -> Verdict:
    """``difference_alignment(x, t, path, good, bad, y)``: the (n,) cosine between the autoguidance difference
    ``s_good(x|y) - s_bad(x|y)`` and the class direction ``grad log p_t(y|x) = s_good(x|y) - s_good(x)``."""
    mistakes: list[tuple[str, Callable[..., Any]]] = [
        ("the sign is flipped: either good and bad are swapped in the difference, or the class direction is written "
         "s(x) - s(x|y). Both should point the way the good conditional model pulls: good - bad, and "
         "grad log p_t(y|x) = s(x|y) - s(x).",
         lambda **kw: -_ref_align(**kw)),
        ("the autoguidance difference uses the marginal (unconditional) scores; both scores must be conditional on y: "
         "good.score(x, t, path, y) - bad.score(x, t, path, y).",
         lambda x, t, path, good, bad, y: _cos(good.score(x, t, path) - bad.score(x, t, path),
                                               good.score(x, t, path, y) - good.score(x, t, path))),
        ("you measured the alignment with the conditional score s(x|y) (the direction toward the data), not with the "
         "class direction grad log p_t(y|x) = s(x|y) - s(x).",
         lambda x, t, path, good, bad, y: _cos(good.score(x, t, path, y) - bad.score(x, t, path, y),
                                               good.score(x, t, path, y))),
        ("you return the dot product of the two vectors; divide by both norms to get a cosine in [-1, 1].",
         lambda x, t, path, good, bad, y: ((good.score(x, t, path, y) - bad.score(x, t, path, y))
                                           * (good.score(x, t, path, y) - good.score(x, t, path))).sum(1)),
        ("the class direction uses the bad mixture; grad log p_t(y|x) is a property of the true (good) distribution: "
         "good.score(x, t, path, y) - good.score(x, t, path).",
         lambda x, t, path, good, bad, y: _cos(good.score(x, t, path, y) - bad.score(x, t, path, y),
                                               bad.score(x, t, path, y) - bad.score(x, t, path))),
    ]
    return check_function("difference_alignment", student, _ref_align, _align_inputs, mistakes=mistakes)


# -- (c) tune_autoguidance(good, bad, path, mixture, y, scales, generator): an experiment ----------------------------

TUNE_SCALES = (1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0)
_TUNE_N = 2000  # the checker's own samples per measured scale


def _ref_tune(good: Callable[..., Tensor], bad: Callable[..., Tensor], path: Path, mixture: GaussianMixture, y: int,
              scales: Any, generator: torch.Generator) -> float:
    """Reference: one prior draw of 1000 points, the autoguided ODE at every scale, the scale whose per-mode spread
    is closest to the truth's."""
    x1 = path.prior(1000, mixture.dim, generator=generator)
    spread = {float(w): mode_spread(cast(Tensor, ode(combine(good, bad, float(w)), x1, path, steps=30)), mixture, y)
              for w in scales}
    return min(spread, key=lambda w: abs(spread[w] - 1))


def _as_float(w: Any) -> float | None:
    if isinstance(w, bool):
        return None
    if isinstance(w, Tensor):
        return float(w) if w.numel() == 1 else None
    try:
        return float(w)
    except (TypeError, ValueError):
        return None


def check_tune_autoguidance(student: Callable[..., Any], *, quiet: bool = False) -> Verdict:
    """``tune_autoguidance(good, bad, path, mixture, y, scales, generator)``: the scale among ``scales`` whose
    autoguided samples have the per-mode spread (:func:`cfglab.metrics.mode_spread`) closest to the truth's.

    Judged by outcome on a hidden setting with exact fields: the true mixture is the moons, the "good model" the
    same mixture with every blob widened (a model whose modes are too wide) and the guide widened more. The checker
    samples 2000 fresh points at the student's scale and at its neighbours on the grid: the student's scale must
    come closer to the true spread than no guidance does, and no neighbour may be closer by more than three
    standard errors."""
    name = "tune_autoguidance"

    def verdict(passed: bool, message: str) -> Verdict:
        v = Verdict(passed, message if passed or message.startswith(name) else f"{name}: {message}", name, student,
                    _ref_tune)
        if not quiet:
            print(v)
        return v

    g = torch.Generator().manual_seed(20261207)
    truth, path = make("moons"), Linear()
    y = int(torch.randint(0, 2, (1,), generator=g))
    a = 1.25 + 0.2 * float(torch.rand((), generator=g))
    b = 1.9 + 0.4 * float(torch.rand((), generator=g))

    def widened(f: float) -> GaussianMixture:
        return GaussianMixture(truth.means, truth.std * f, truth.weights, classes=truth.classes)
    good, bad = widened(a).score_fn(path, y), widened(b).score_fn(path, y)
    out, failed = attempt(name, student, good=good, bad=bad, path=path, mixture=truth, y=y,
                          scales=list(TUNE_SCALES), generator=torch.Generator().manual_seed(1))
    if failed is not None:
        return verdict(False, failed.message)
    w = _as_float(out)
    if w is None or not math.isfinite(w):
        return verdict(False, f"should return the chosen scale as a float, got {out!r}.")
    if w < 1.0 and 0.0 < w:
        return verdict(False, f"returned {w:.3f}, below every scale offered: return the SCALE whose spread is "
                              "closest to 1, not the spread itself.")
    if not TUNE_SCALES[0] <= w <= TUNE_SCALES[-1]:
        return verdict(False, f"returned {w:.3f}, outside the scales offered ({TUNE_SCALES[0]:g} to "
                              f"{TUNE_SCALES[-1]:g}).")
    x1 = path.prior(_TUNE_N, 2, generator=torch.Generator().manual_seed(2))
    measured: dict[float, float] = {}

    def spread(scale: float) -> float:
        """The per-mode spread of the checker's own autoguided samples at ``scale`` (one prior draw for all)."""
        if scale not in measured:
            measured[scale] = mode_spread(cast(Tensor, ode(combine(good, bad, scale), x1, path, steps=30)), truth, y)
        return measured[scale]
    s_w, s_1 = spread(w), spread(1.0)
    # sampling noise of a spread near 1 (chi-square terms of variance ~1 over two dimensions): se = 1 / (2 sqrt(n)),
    # for the student's 1000 points and the checker's 2000, combined
    tol = 3 * math.sqrt(1 / (4 * 1000) + 1 / (4 * _TUNE_N))
    if abs(s_w - 1) >= abs(s_1 - 1) - tol:
        if s_w < 1:
            return verdict(False, f"at your w = {w:g} the per-mode spread is {s_w:.3f}: the modes are tighter than "
                                  f"the truth by more than the unguided good model's are too wide ({s_1:.3f} at w = "
                                  "1). You over-shrink (maximising the log-likelihood or minimising the spread does "
                                  "that): keep the scale whose spread is closest to 1, |spread - 1| smallest.")
        return verdict(False, f"at your w = {w:g} the per-mode spread is {s_w:.3f}, no closer to 1 than without "
                              f"guidance ({s_1:.3f} at w = 1). This good model's modes are too wide; autoguidance "
                              "narrows every mode as w grows: measure mode_spread at each scale and keep the one "
                              "closest to 1.")
    # the spread falls as w grows: walk the grid from w towards the truth to find the best scale the grid offers
    grid = sorted(TUNE_SCALES)
    k = min(range(len(grid)), key=lambda i: abs(grid[i] - w))
    step = 1 if s_w > 1 else -1
    best = w
    while 0 <= k + step < len(grid) and abs(spread(grid[k + step]) - 1) < abs(spread(best) - 1):
        k += step
        best = grid[k]
    if abs(spread(best) - 1) < abs(s_w - 1) - tol:
        what = ("too tight: you over-shrink the modes (maximising the log-likelihood or minimising the spread "
                "does that; aim at a spread of 1, |spread - 1| smallest)" if s_w < 1 else
                "still too wide: more guidance brings them closer to the truth")
        return verdict(False, f"at your w = {w:g} the per-mode spread is {s_w:.3f}, {what}. The scale {best:g} "
                              f"gives {spread(best):.3f}, closer to 1 by more than the sampling noise allows "
                              f"({tol:.3f}).")
    return verdict(True, f"{name} picks w = {w:g}: per-mode spread {s_w:.3f} on fresh samples ({s_1:.3f} "
                         "unguided, 1 exact).")


def _per_sample_spread(x: Tensor, mixture: GaussianMixture, y: int) -> Tensor:
    """The per-sample terms ``sum_k r_k(x) |x - mu_k|^2 / (d s_k^2)`` whose mean is ``mode_spread`` squared."""
    m = mixture.conditional(y)
    one = GaussianMixture(m.means, m.std, m.weights)
    x = x.to(torch.float64)
    r = one.posterior(x, 0.0, Linear())
    return (r * ((x[:, None, :] - m.means[None]) ** 2).sum(-1) / (m.dim * m.std**2)).sum(1)
