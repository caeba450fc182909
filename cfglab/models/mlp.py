"""The conditional denoiser MLP for points in d dimensions (the 2D toys)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from .. import _checks
from ..paths import PREDICTIONS, Linear, Path
from .blocks import TimeEmbedding, _c_in, _prepare, _seeded, _Trunk


class MLP(nn.Module):
    """Conditional denoiser ``(x_t, t, y) -> prediction`` for points in ``dim`` dimensions.

    Args:
        dim: data dimension.
        num_classes: number of classes; 0 makes an unconditional model (only the null label exists).
        path: the noising path the model is trained on (the input is scaled by ``1/sqrt(alpha^2+sigma^2)``).
        pred: what the output is: ``"eps"``, ``"x0"``, ``"score"`` or ``"velocity"``.
        width, depth: hidden width and number of residual blocks.
        seed: seed of the parameter initialisation (the global RNG is left untouched).

    ``forward(x, t, y=None)`` takes x of shape (n, dim), t a float or (n,) tensor in [0, 1] and labels y in
    0..num_classes (``num_classes`` = ``null_label``; y=None means the null label for every row).
    """

    def __init__(self, dim: int = 2, num_classes: int = 0, *, path: Path | None = None, pred: str = "velocity",
                 width: int = 128, depth: int = 3, seed: int = 0):
        super().__init__()
        width = _checks.count("width", width)
        self.dim = _checks.count("dim", dim)
        self.num_classes = _checks.count("num_classes", num_classes, minimum=0)
        self.path = _checks.path("path", path) if path is not None else Linear()
        self.pred = _checks.choice("pred", pred, PREDICTIONS)
        self.null_label = self.num_classes
        self.config = dict(kind="MLP", dim=self.dim, num_classes=self.num_classes, path=repr(self.path),
                           pred=self.pred, width=width, depth=depth, seed=seed)
        with _seeded(seed):
            self.time = TimeEmbedding(width)
            self.label = nn.Embedding(self.num_classes + 1, width)
            self.trunk = _Trunk(self.dim, width, _checks.count("depth", depth), self.dim)

    def forward(self, x: Tensor, t: Any, y: Any = None) -> Tensor:
        """The prediction at (x, t) for labels y (None: the null label), shape (n, dim)."""
        x, t = _prepare(self, x, t)
        y = self.null_label if y is None else y
        y = _checks.labels("y", y, x.shape[0], self.num_classes, x.device, allow_null=True)
        cond = self.time(t) + self.label(y)
        return self.trunk(x * _c_in(self.path, x, t), cond)

    def predict(self, x: Tensor, t: Any, y: Any = None, *, kind: str = "score") -> Tensor:
        """The model's prediction converted to ``kind`` (eps, x0, score or velocity) by its path."""
        _checks.choice("kind", kind, PREDICTIONS)
        return self.path.convert(self(x, t, y), x, t, self.pred, kind)
