"""A finite labelled data set (e.g. 8x8 digits) with the sampling interface of the toys."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import _checks
from ._util import _hash


class TensorData:
    """A finite labelled data set (e.g. 8x8 digits) with the same ``sample(n, generator=)`` interface as a toy:
    minibatches are drawn uniformly with replacement."""

    def __init__(self, x: Tensor, y: Tensor, num_classes: int | None = None):
        x = _checks.tensor("x", x, min_ndim=2)
        if not isinstance(y, Tensor) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise TypeError(f"y must be an integer tensor of labels, got {type(y).__name__}"
                            + (f" of dtype {y.dtype}" if isinstance(y, Tensor) else ""))
        if y.shape != (x.shape[0],):
            raise ValueError(f"y must have shape ({x.shape[0]},) (one label per row of x), got {tuple(y.shape)}")
        if num_classes is not None:
            num_classes = _checks.count("num_classes", num_classes)
        self.num_classes = int(y.max()) + 1 if num_classes is None else num_classes
        self.x = x
        self.y = _checks.labels("y", y, x.shape[0], self.num_classes, y.device)

    def __len__(self) -> int:
        return self.x.shape[0]

    def fingerprint(self) -> str:
        """A hash of the data (used as part of trained-model cache keys)."""
        return _hash(self.x, self.y)

    def sample(self, n: int, y: Any = None, generator: torch.Generator | None = None, **_: Any
               ) -> tuple[Tensor, Tensor]:
        """n pairs ``(x, y)`` drawn uniformly with replacement from the data set (``y`` must be None)."""
        n = _checks.count("n", n)
        if y is not None:
            raise ValueError("TensorData.sample draws labelled pairs; filter by label yourself")
        idx = torch.randint(len(self), (n,), generator=generator)
        return self.x[idx], self.y[idx]
