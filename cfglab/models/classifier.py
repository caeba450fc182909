"""A noise-aware classifier for points in d dimensions (classifier guidance, chapter 5)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from .. import _checks
from ..paths import Linear, Path
from .blocks import TimeEmbedding, _c_in, _prepare, _seeded, _Trunk


class Classifier(nn.Module):
    """Noise-aware classifier ``(x_t, t) -> logits`` over ``num_classes`` (Dhariwal & Nichol 2021, sec. 4):
    trained on samples noised along ``path`` at all t, so that ``grad_x log p_t(y | x_t)`` is usable for
    classifier guidance. With t fixed at 0 it is an ordinary clean-data classifier."""

    def __init__(self, dim: int = 2, num_classes: int = 2, *, path: Path | None = None, width: int = 128,
                 depth: int = 2, seed: int = 0):
        super().__init__()
        width = _checks.count("width", width)
        self.dim = _checks.count("dim", dim)
        self.num_classes = _checks.count("num_classes", num_classes, minimum=2)
        self.path = _checks.path("path", path) if path is not None else Linear()
        self.config = dict(kind="Classifier", dim=self.dim, num_classes=self.num_classes, path=repr(self.path),
                           width=width, depth=depth, seed=seed)
        with _seeded(seed):
            self.time = TimeEmbedding(width)
            self.trunk = _Trunk(self.dim, width, _checks.count("depth", depth), self.num_classes)

    def forward(self, x: Tensor, t: Any) -> Tensor:
        """Logits over the classes at (x_t, t), shape (n, num_classes)."""
        x, t = _prepare(self, x, t)
        return self.trunk(x * _c_in(self.path, x, t), self.time(t))

    def log_prob_grad(self, x: Tensor, t: Any, y: Any) -> Tensor:
        """``grad_x log p_t(y | x)`` by autograd through the classifier (one forward and one backward pass);
        see :func:`cfglab.guidance.log_prob_grad`."""
        from ..guidance import log_prob_grad

        return log_prob_grad(self, x, t, y)


# -- A tiny conditional UNet for 8x8 images (chapter 11) ------------------------------------------------------------
