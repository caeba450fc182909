"""A denoiser with several conditions at once, each with its own null label (chapter 15).

InstructPix2Pix (Brooks et al. 2023, sec. 3.2.1) conditions one network on an input image and an edit instruction
and drops each of them during training, so that one network predicts ``eps(x, t, a, b)``, ``eps(x, t, a, null)``,
``eps(x, t, null, b)`` and ``eps(x, t, null, null)``. :class:`MultiMLP` is that network for points: condition i
takes labels ``0 .. num_classes[i] - 1`` and its own null label ``num_classes[i]`` (``model.null_labels[i]``);
the label embeddings of the conditions are added to the time embedding, on the residual trunk of :class:`MLP`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .. import _checks
from ..paths import PREDICTIONS, Linear, Path
from .blocks import TimeEmbedding, _c_in, _prepare, _seeded, _Trunk


class MultiMLP(nn.Module):
    """Denoiser ``(x_t, t, labels) -> prediction`` for points in ``dim`` dimensions with several conditions.

    Args:
        dim: data dimension.
        num_classes: the number of labels of each condition, e.g. ``(3, 2)`` for a colour and a shape; condition
            i has the null label ``num_classes[i]``.
        path: the noising path the model is trained on (the input is scaled by ``1/sqrt(alpha^2+sigma^2)``).
        pred: what the output is: ``"eps"``, ``"x0"``, ``"score"`` or ``"velocity"``.
        width, depth: hidden width and number of residual blocks.
        seed: seed of the parameter initialisation (the global RNG is left untouched).

    ``forward(x, t, labels=None)`` takes labels as an integer tensor of shape (n, m) (one column per condition),
    or a sequence of m entries, each an int, an (n,) tensor or None (that condition's null label); None for all
    of them is the unconditional prediction.
    """

    def __init__(self, dim: int = 2, num_classes: Sequence[int] = (3, 2), *, path: Path | None = None,
                 pred: str = "velocity", width: int = 128, depth: int = 3, seed: int = 0):
        super().__init__()
        width = _checks.count("width", width)
        self.dim = _checks.count("dim", dim)
        if isinstance(num_classes, (str, bytes)) or not isinstance(num_classes, Sequence) or not num_classes:
            raise TypeError(f"num_classes must be a non-empty sequence of label counts, one per condition, got "
                            f"{num_classes!r}")
        self.num_classes = tuple(_checks.count(f"num_classes[{i}]", k) for i, k in enumerate(num_classes))
        self.null_labels = self.num_classes
        self.path = _checks.path("path", path) if path is not None else Linear()
        self.pred = _checks.choice("pred", pred, PREDICTIONS)
        self.config = dict(kind="MultiMLP", dim=self.dim, num_classes=list(self.num_classes), path=repr(self.path),
                           pred=self.pred, width=width, depth=depth, seed=seed)
        with _seeded(seed):
            self.time = TimeEmbedding(width)
            self.labels = nn.ModuleList(nn.Embedding(k + 1, width) for k in self.num_classes)
            self.trunk = _Trunk(self.dim, width, _checks.count("depth", depth), self.dim)

    @property
    def conditions(self) -> int:
        """The number of conditions m."""
        return len(self.num_classes)

    def label_columns(self, labels: Any, n: int, device: torch.device | str = "cpu") -> Tensor:
        """``labels`` as a checked (n, m) long tensor: None entries (or ``labels=None``) become the null labels."""
        m, device = self.conditions, torch.device(device)
        if labels is None:
            labels = [None] * m
        if isinstance(labels, Tensor) and labels.ndim == 2:
            if labels.shape != (n, m):
                raise ValueError(f"labels must have shape ({n}, {m}), got {tuple(labels.shape)}")
            labels = list(labels.unbind(1))
        if isinstance(labels, Tensor) or not isinstance(labels, Sequence) or len(labels) != m:
            raise ValueError(f"labels must be an (n, {m}) integer tensor or a sequence of {m} labels (int, (n,) "
                             f"tensor or None), one per condition, got {type(labels).__name__}")
        cols = [_checks.labels(f"labels[{i}]", self.null_labels[i] if y is None else y, n, self.num_classes[i],
                               device, allow_null=True) for i, y in enumerate(labels)]
        return torch.stack(cols, 1)

    def forward(self, x: Tensor, t: Any, labels: Any = None) -> Tensor:
        """The prediction at (x, t) for the given labels of every condition, shape (n, dim)."""
        x, t = _prepare(self, x, t)
        cols = self.label_columns(labels, x.shape[0], x.device)  # (n, m)
        cond = self.time(t)
        for i, emb in enumerate(self.labels):
            cond = cond + emb(cols[:, i])
        return self.trunk(x * _c_in(self.path, x, t), cond)

    def predict(self, x: Tensor, t: Any, labels: Any = None, *, kind: str = "score") -> Tensor:
        """The model's prediction converted to ``kind`` (eps, x0, score or velocity) by its path."""
        _checks.choice("kind", kind, PREDICTIONS)
        return self.path.convert(self(x, t, labels), x, t, self.pred, kind)
