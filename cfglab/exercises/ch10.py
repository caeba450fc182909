"""Checks for chapter 10, autoguidance: the guidance rule with a weaker model as the guide (and its two classic
mix-ups with CFG), and the alignment of the guidance difference with the class direction, against exact mixture
scores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..data import GaussianMixture
from ..guidance import cfg
from ..paths import VP, Linear, Path
from ._core import Verdict, check_function

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
