"""The exact denoiser of a Gaussian mixture, shaped like a trained model of the course (labels, null label, path,
prediction kind), so that every wrapper and sampler that takes a model takes the exact answer too."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .. import _checks
from ..data import GaussianMixture
from ..paths import PREDICTIONS, Path


class ExactDenoiser:
    """The Bayes-optimal denoiser of ``mix`` noised along ``path``: ``model(x, t, y)`` is the exact conditional
    expectation of the ``pred`` target (eps, x0, score, velocity or v) given ``x_t = x`` and the label, and the null
    label ``num_classes`` (or ``y=None``) gives the marginal one. It is what a network trained with label dropout
    converges to (course chapter 6), with no training error.

    The clean-sample prediction is computed directly, ``E[x0 | x] = sum_k r_k(x) (mu_k + alpha s_k^2 (x - alpha
    mu_k) / (alpha^2 s_k^2 + sigma^2))`` with the exact responsibilities ``r_k`` of the noised components (Bishop
    2006, sec. 2.3.3 for one component), and converted by the path: it stays finite at ``alpha = 0``, where the
    score alone does not determine x0 (zero terminal SNR). No parameters, no gradients: it is not an ``nn.Module``.
    """

    def __init__(self, mix: GaussianMixture, path: Path, pred: str = "eps"):
        if not isinstance(mix, GaussianMixture):
            raise TypeError(f"mix must be a cfglab.GaussianMixture, got {type(mix).__name__}")
        self.mix = mix
        self.path = _checks.path("path", path)
        self.pred = _checks.choice("pred", pred, PREDICTIONS)
        self.num_classes = mix.num_classes
        self.null_label = mix.num_classes

    def x0(self, x: Tensor, t: Any, y: Any = None) -> Tensor:
        """The exact ``E[x0 | x_t = x, y]`` (y None or the null label: ``E[x0 | x_t = x]``), shape like x (n, d)."""
        x = _checks.tensor("x", x, ndim=2, last_dim=self.mix.dim)
        n = x.shape[0]
        yy = _checks.labels("y", self.null_label if y is None else y, n, self.num_classes, x.device,
                            allow_null=True)
        c = self.path(t, x)
        a, s = c.alpha.reshape(-1, 1), c.sigma.reshape(-1, 1)          # (n or 1, 1)
        mu = self.mix.means.to(x)                                     # (K, d)
        var0 = (self.mix.std**2).to(x)                                # (K,)
        var = a**2 * var0 + s**2                                      # (n or 1, K): noised component variances
        sq = ((x[:, None, :] - a[:, :, None] * mu) ** 2).sum(-1)      # (n, K)
        logp = torch.log(self.mix.weights.to(x)) - 0.5 * sq / var - 0.5 * self.mix.dim * torch.log(2 * math.pi * var)
        member = self.mix.classes.to(x.device)[None, :] == yy[:, None]   # (n, K)
        member = member | (yy == self.null_label)[:, None]
        r = torch.softmax(logp.masked_fill(~member, -math.inf), dim=1)   # exact responsibilities (n, K)
        gain = (a * var0 / var)[..., None]                             # (n or 1, K, 1)
        comp = mu + gain * (x[:, None, :] - a[:, :, None] * mu)         # E[x0 | x, component k], (n, K, d)
        return (r[..., None] * comp).sum(1)

    def __call__(self, x: Tensor, t: Any, y: Any = None) -> Tensor:
        """The exact prediction of kind ``self.pred`` at (x, t) for labels y (the null label for the marginal)."""
        x0 = self.x0(x, t, y)
        return self.path.convert(x0, x, t, "x0", self.pred)

    def predict(self, x: Tensor, t: Any, y: Any = None, *, kind: str = "score") -> Tensor:
        """The exact prediction converted to ``kind`` (eps, x0, score, velocity or v), like a model's ``predict``."""
        kind = _checks.choice("kind", kind, PREDICTIONS)
        return self.path.convert(self.x0(x, t, y), x, t, "x0", kind)
