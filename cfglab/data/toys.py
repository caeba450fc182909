"""The named labelled 2D toys of the course, each a :class:`GaussianMixture` with exact scores, and :func:`make`."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .mixture import GaussianMixture


def _arc(center: tuple[float, float], radius: float, start: float, stop: float, k: int) -> Tensor:
    ang = torch.linspace(start, stop, k, dtype=torch.float64)
    return torch.stack([center[0] + radius * torch.cos(ang), center[1] + radius * torch.sin(ang)], 1)


def _toy_mixture() -> GaussianMixture:
    """Three well-separated classes, one Gaussian each, at the corners of a triangle."""
    ang = torch.tensor([90.0, 210.0, 330.0], dtype=torch.float64) * math.pi / 180
    means = 1.5 * torch.stack([torch.cos(ang), torch.sin(ang)], 1)
    return GaussianMixture(means, 0.35, class_names=["A", "B", "C"])


def _toy_overlap() -> GaussianMixture:
    """Two broad classes that overlap in the middle: the setting where conditional samples come out 'bland'."""
    means = torch.tensor([[-0.6, 0.0], [0.6, 0.0]], dtype=torch.float64)
    return GaussianMixture(means, 0.6, class_names=["left", "right"])


def _toy_moons() -> GaussianMixture:
    """Two interleaved half-moons, each a chain of 12 small Gaussians along its arc."""
    upper = _arc((-0.5, -0.25), 1.0, 0.0, math.pi, 12)
    lower = _arc((0.5, 0.25), 1.0, math.pi, 2 * math.pi, 12)
    means = torch.cat([upper, lower])
    classes = torch.cat([torch.zeros(12), torch.ones(12)]).long()
    return GaussianMixture(means, 0.1, classes=classes, class_names=["upper", "lower"])


def _toy_rings() -> GaussianMixture:
    """Two concentric rings (radii 0.6 and 1.5), each a ring of small Gaussians; the inner ring is one class."""
    inner = _arc((0.0, 0.0), 0.6, 0.0, 2 * math.pi * (1 - 1 / 10), 10)
    outer = _arc((0.0, 0.0), 1.5, 0.0, 2 * math.pi * (1 - 1 / 24), 24)
    means = torch.cat([inner, outer])
    classes = torch.cat([torch.zeros(10), torch.ones(24)]).long()
    weights = torch.cat([torch.full((10,), 1 / 20), torch.full((24,), 1 / 48)])
    return GaussianMixture(means, 0.08, weights, classes=classes, class_names=["inner", "outer"])


def _toy_checkerboard() -> GaussianMixture:
    """A 4x4 board of Gaussian blobs; the two colours of the squares are the two classes."""
    c = torch.tensor([-1.5, -0.5, 0.5, 1.5], dtype=torch.float64)
    gx, gy = torch.meshgrid(c, c, indexing="ij")
    means = torch.stack([gx.flatten(), gy.flatten()], 1)
    classes = ((torch.arange(4)[:, None] + torch.arange(4)[None, :]) % 2).flatten()
    return GaussianMixture(means, 0.15, classes=classes, class_names=["dark", "light"])


TOYS = {
    "mixture": _toy_mixture,
    "overlap": _toy_overlap,
    "moons": _toy_moons,
    "rings": _toy_rings,
    "checkerboard": _toy_checkerboard,
}


def make(name: str) -> GaussianMixture:
    """A named labelled 2D toy, every one a :class:`GaussianMixture` with exact scores:
    ``"mixture"`` (3 separated classes), ``"overlap"`` (2 overlapping classes), ``"moons"``, ``"rings"``,
    ``"checkerboard"``. Sampling is seeded by the generator you pass to ``sample``."""
    if name not in TOYS:
        raise ValueError(f"name must be one of {sorted(TOYS)}, got {name!r}")
    return TOYS[name]()
