"""Several attributes per sample: the toy of chapter 8 (negative prompts and composition).

Objects carry a colour and a shape at once; the exact law of every Boolean combination of attributes is a
restricted :class:`GaussianMixture`, so composable diffusion (Liu et al. 2022) and Perp-Neg (Armandpour et al.
2023) can be compared with the truth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .. import _checks
from ..paths import Path
from ._util import _components
from .mixture import GaussianMixture

COLOURS = ("red", "green", "blue")
SHAPES = ("circle", "square")


class AttributeToy:
    """Objects that carry several attributes at once, with the exact law of every Boolean combination of them.

    Each of the K mixture components is one kind of object (e.g. "red circle") and carries a set of *concepts*
    (its colour and its shape); ``has[k, c]`` says whether component k carries concept c. Two views of the same
    data:

    * ``objects``: the K-component :class:`GaussianMixture` of p(x), class k = component k (named "red circle"...),
      so ``objects.posterior(x, t, path)`` is the exact posterior over components at every t;
    * ``concepts``: the same law as a mixture labelled by *concept*. A sample of component k is labelled with one
      of its m concepts chosen uniformly at random, so each component appears once per concept it carries, with
      weight ``w_k / m``. Every object carries the same number m of concepts, so the objects of concept c keep their
      relative weights and the class-conditional ``p(x | label = c)`` is exactly ``p(x | object carries c)``; the
      marginal is p(x). A single-label network trained on ``sample`` with label dropout therefore learns
      ``p(x | c)`` for every concept, and p(x) through the null label.

    ``target(require=..., exclude=...)`` is the exact law of "all of ``require`` and none of ``exclude``", e.g.
    ``p(x | circle, not red)``: the objects restricted to the components that qualify
    (:meth:`GaussianMixture.restrict`), a mixture with exact noised scores, so every composition rule can be compared
    with the truth.
    """

    def __init__(self, objects: GaussianMixture, has: Any, concept_names: Sequence[str]):
        has = torch.as_tensor(has, dtype=torch.bool)
        K = len(objects.weights)
        if has.ndim != 2 or has.shape[0] != K:
            raise ValueError(f"has must have shape ({K}, num_concepts), got {tuple(has.shape)}")
        if len(concept_names) != has.shape[1]:
            raise ValueError(f"concept_names must have {has.shape[1]} entries, got {len(concept_names)}")
        counts = has.sum(1)
        if (counts == 0).any() or (counts != counts[0]).any():
            raise ValueError("every object must carry the same number (>= 1) of concepts, so that the concept "
                             "labels give p(x | concept) exactly")
        if not has.any(0).all():
            raise ValueError("every concept must be carried by at least one object")
        self.objects, self.has, self.concept_names = objects, has, list(concept_names)
        comp, label = has.nonzero(as_tuple=True)  # one row per (component, concept) pair
        self.concepts = GaussianMixture(objects.means[comp], objects.std[comp],
                                        objects.weights[comp] / counts[comp], classes=label,
                                        class_names=self.concept_names)

    @property
    def num_classes(self) -> int:
        """The number of concepts (a conditional model needs this many labels plus the null label)."""
        return self.has.shape[1]

    @property
    def dim(self) -> int:
        """The data dimension."""
        return self.objects.dim

    def __repr__(self) -> str:
        return f"AttributeToy(objects={self.objects.class_names}, concepts={self.concept_names})"

    def fingerprint(self) -> str:
        """A hash of the labelled law (used as part of trained-model cache keys)."""
        return self.concepts.fingerprint()

    def sample(self, n: int, y: Any = None, generator: torch.Generator | None = None, *,
               dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
        """``(x, concept)``: n points with one concept label each (``y`` fixes the concept, as for a mixture)."""
        return self.concepts.sample(n, y, generator, dtype=dtype, device=device)

    def concept(self, c: int | str) -> int:
        """The index of a concept given by index or name."""
        if isinstance(c, str):
            if c not in self.concept_names:
                raise ValueError(f"unknown concept {c!r}; the concepts are {self.concept_names}")
            return self.concept_names.index(c)
        return int(_checks.labels("concept", c, 1, self.num_classes, torch.device("cpu"))[0])

    def mask(self, require: Sequence[int | str] = (), exclude: Sequence[int | str] = ()) -> Tensor:
        """(K,) boolean mask of the objects that carry every concept of ``require`` and none of ``exclude``."""
        m = torch.ones(len(self.objects.weights), dtype=torch.bool)
        for c in require:
            m &= self.has[:, self.concept(c)]
        for c in exclude:
            m &= ~self.has[:, self.concept(c)]
        return m

    def target(self, require: Sequence[int | str] = (), exclude: Sequence[int | str] = ()) -> GaussianMixture:
        """The exact law ``p(x | all of require, none of exclude)`` as a mixture (raises if no object qualifies)."""
        return self.objects.restrict(self.mask(require, exclude))

    def probability(self, x: Tensor, c: int | str, t: Any = 0.0, path: Path | None = None) -> Tensor:
        """Exact ``p_t(concept c | x) = sum_k p_t(k | x) has[k, c]``, shape (n,); at t = 0 by default (the path then
        does not matter, the linear one is used)."""
        from ..paths import Linear

        r = self.objects.posterior(x, t, _checks.path("path", path) if path is not None else Linear())  # (n, K)
        return r @ self.has[:, self.concept(c)].to(r)

    def near(self, x: Tensor, components: Any, radius: float = 3.0) -> Tensor:
        """(n,) booleans: whether each point lies within ``radius`` standard deviations of the mean of one of the
        given components (a mask or indices). A sample "lands on" a wanted object when this is true; points
        pushed past an object (overshoot) are not near it even if the posterior still names it."""
        x = self.objects._check_x(x)
        radius = _checks.scalar("radius", radius, positive=True)
        idx = _components(components, len(self.objects.weights))
        mu, s = self.objects.means[idx].to(x), self.objects.std[idx].to(x)
        d = torch.cdist(x, mu) / s  # (n, k) distances in units of each component's std
        return (d < radius).any(dim=1)


def make_attributes(layout: str = "ring", std: float = 0.3) -> AttributeToy:
    """Six objects, each a colour (red, green, blue) and a shape (circle, square); concepts 0..4 are
    ``red, green, blue, circle, square``, the objects are equally likely, each a Gaussian of std ``std``.

    ``layout="grid"``: colour is the column (x = -1.5, 0, 1.5) and shape the row (y = 0.75 circles, -0.75 squares).
    The density factorises, ``p_t(x) = p_t(x_1) p_t(x_2)``, at every t, so colour and shape are conditionally
    independent given x_t: composing their scores is exact (chapter 8).
    ``layout="ring"``: the objects sit on a hexagon of radius 1.5, at 90, 30, -30, -90, -150, 150 degrees, as red
    circle, red square, green circle, green square, blue circle, blue square: a colour is a pair of neighbours, a
    shape every other object. Colour and shape are *not* conditionally independent given x_t.
    """
    layout = _checks.choice("layout", layout, ("ring", "grid"))
    std = _checks.scalar("std", std, positive=True)
    colour = torch.tensor([0, 0, 1, 1, 2, 2]) if layout == "ring" else torch.tensor([0, 1, 2, 0, 1, 2])
    shape = torch.tensor([0, 1, 0, 1, 0, 1]) if layout == "ring" else torch.tensor([0, 0, 0, 1, 1, 1])
    if layout == "ring":
        ang = torch.tensor([90.0, 30.0, -30.0, -90.0, -150.0, 150.0], dtype=torch.float64) * math.pi / 180
        means = 1.5 * torch.stack([torch.cos(ang), torch.sin(ang)], 1)
    else:
        cols = torch.tensor([-1.5, 0.0, 1.5], dtype=torch.float64)
        means = torch.stack([cols[colour], 0.75 - 1.5 * shape.double()], 1)
    has = torch.zeros(6, len(COLOURS) + len(SHAPES), dtype=torch.bool)
    has[torch.arange(6), colour] = True
    has[torch.arange(6), len(COLOURS) + shape] = True
    names = [f"{COLOURS[int(c)]} {SHAPES[int(s)]}" for c, s in zip(colour, shape)]
    objects = GaussianMixture(means, std, class_names=names)
    return AttributeToy(objects, has, COLOURS + SHAPES)
