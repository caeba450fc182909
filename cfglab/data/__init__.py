"""Toy distributions with exact ground truth.

Every toy in the course is a :class:`GaussianMixture`: isotropic Gaussian components, each belonging to one class.
Noising a mixture along a path keeps it a mixture (component k becomes ``N(alpha mu_k, (alpha^2 s_k^2 + sigma^2) I)``),
so the noised log-density, its score and the noisy classifier ``p_t(y | x)`` are all exact, at every t.

The package holds ``mixture`` (:class:`GaussianMixture`), ``toys`` (the named 2D toys and :func:`make`),
``attributes`` (:class:`AttributeToy`, objects with several attributes, and :func:`make_attributes`) and ``tensor``
(:class:`TensorData`, a finite data set with the same sampling interface); every name is re-exported here.
"""

from .attributes import COLOURS, SHAPES, AttributeToy, make_attributes
from .mixture import GaussianMixture
from .tensor import TensorData
from .toys import TOYS, make

__all__ = [
    "GaussianMixture",
    "TOYS", "make",
    "COLOURS", "SHAPES", "AttributeToy", "make_attributes",
    "TensorData",
]
