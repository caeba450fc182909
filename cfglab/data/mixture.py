"""The mixture of isotropic Gaussians with exact ground truth at every noise level.

Noising a mixture along a path keeps it a mixture (component k becomes ``N(alpha mu_k, (alpha^2 s_k^2 + sigma^2) I)``),
so the noised log-density, its score and the noisy classifier ``p_t(y | x)`` (by Bayes' rule) are all exact, at
every t. Tempering (``p^(1/T)``, the target of course chapter 1) is approximated by a mixture of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .. import _checks
from ..paths import Path
from ._util import _components, _float_dtype, _hash


class GaussianMixture:
    """A mixture of K isotropic Gaussians in d dimensions, component k with mean ``means[k]`` and std ``std[k]``.

    Args:
        means: (K, d) component means.
        std: a scalar or (K,) per-component standard deviations.
        weights: (K,) mixture weights (normalised here); uniform by default.
        classes: (K,) class of each component; by default component k is class k. Several components may share a
            class, which is how the moons and rings toys are built.
        class_names: optional names of the classes, for plots.

    The conditional ``p(x | y)`` is the mixture restricted to the components of class y. Parameters are stored in
    float64 and cast to the dtype and device of the input at each call, so every method is dtype-preserving.
    """

    def __init__(self, means: Any, std: Any = 1.0, weights: Any = None, *, classes: Any = None,
                 class_names: Sequence[str] | None = None):
        means = torch.as_tensor(means, dtype=torch.float64)
        if means.ndim != 2 or means.shape[0] == 0 or means.shape[1] == 0:
            raise ValueError(f"means must have shape (K, d) with K, d >= 1, got {tuple(means.shape)}")
        if not torch.isfinite(means).all():
            raise ValueError("means contains NaN or infinite values")
        K = means.shape[0]
        std = torch.as_tensor(std, dtype=torch.float64)
        std = std.expand(K).clone() if std.ndim == 0 else std
        if std.shape != (K,) or not ((std > 0) & torch.isfinite(std)).all():
            raise ValueError(f"std must be a positive scalar or have shape ({K},), got {tuple(std.shape)}")
        weights = torch.ones(K, dtype=torch.float64) if weights is None else torch.as_tensor(weights,
                                                                                                 dtype=torch.float64)
        if weights.shape != (K,) or not torch.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"weights must be non-negative with shape ({K},) and positive sum")
        classes = torch.arange(K) if classes is None else torch.as_tensor(classes, dtype=torch.long)
        if classes.shape != (K,) or (classes < 0).any():
            raise ValueError(f"classes must be non-negative integers with shape ({K},)")
        self.means, self.std = means, std
        self.weights = weights / weights.sum()
        self.classes = classes
        self.num_classes = int(classes.max()) + 1
        if self.class_weights.min() <= 0:
            raise ValueError("every class 0..num_classes-1 needs at least one component of positive weight")
        self.class_names = list(class_names) if class_names is not None else [str(k) for k in
                                                                             range(self.num_classes)]
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"class_names must have {self.num_classes} entries, got {len(self.class_names)}")

    @property
    def dim(self) -> int:
        """The data dimension d."""
        return self.means.shape[1]

    @property
    def class_weights(self) -> Tensor:
        """p(y), shape (num_classes,)."""
        return torch.zeros(self.num_classes, dtype=torch.float64).index_add_(0, self.classes, self.weights)

    def fingerprint(self) -> str:
        """A hash of the parameters (used as part of trained-model cache keys)."""
        return _hash(self.means, self.std, self.weights, self.classes)

    def __repr__(self) -> str:
        return (f"GaussianMixture(K={len(self.weights)}, dim={self.dim}, num_classes={self.num_classes}, "
                f"classes={self.class_names})")

    # -- restriction: conditionals and attribute sets are mixtures too ------------------------------------------
    def restrict(self, components: Any) -> GaussianMixture:
        """The mixture conditioned on a subset of components (a boolean mask or indices), weights renormalised.
        Class labels are kept, so ``restrict(classes == 2)`` is ``p(x | y = 2)`` as a mixture of its own."""
        idx = _components(components, len(self.weights))
        classes = self.classes[idx]
        _, relabel = torch.unique(classes, return_inverse=True)
        names = [self.class_names[int(c)] for c in torch.unique(classes)]
        return GaussianMixture(self.means[idx], self.std[idx], self.weights[idx], classes=relabel,
                               class_names=names)

    def conditional(self, y: int) -> GaussianMixture:
        """``p(x | y)`` as a one-class mixture."""
        _checks.labels("y", y, 1, self.num_classes, torch.device("cpu"))
        return self.restrict(self.classes == y)

    # -- sampling -----------------------------------------------------------------------------------------------
    def sample(self, n: int, y: Any = None, generator: torch.Generator | None = None, *,
               dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
        """Draw n samples; returns ``(x, y)`` with x of shape (n, d) and integer labels y of shape (n,).

        ``y=None`` draws classes from p(y); an int or an (n,) tensor fixes the class of each sample.
        Randomness comes only from ``generator`` (a CPU generator; samples are moved to ``device`` afterwards).
        """
        n = _checks.count("n", n)
        dtype = _float_dtype(dtype)
        if y is None:
            comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        else:
            y = _checks.labels("y", y.cpu() if isinstance(y, Tensor) else y, n, self.num_classes,
                               torch.device("cpu"))
            # p(component | class) for each requested class: rows (n, K).
            w = self.weights * (self.classes[None, :] == y[:, None])
            comp = torch.multinomial(w, 1, replacement=True, generator=generator)[:, 0]
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        x = self.means[comp] + self.std[comp, None] * z
        return x.to(dtype=dtype, device=device), self.classes[comp].to(device=device)

    # -- exact densities at time t ------------------------------------------------------------------------------
    def _noised(self, x: Tensor, t: Any, path: Path | None) -> tuple[Tensor, Tensor]:
        """Component means (n or 1, K, d) and variances (n or 1, K) of the mixture noised to time t."""
        mu = self.means.to(x)
        var = (self.std**2).to(x)
        if path is None:
            return mu[None], var[None]
        c = _checks.path("path", path)(t, x[:, 0])  # coefficients shaped (n,) or ()
        a = c.alpha.reshape(-1, 1)
        s = c.sigma.reshape(-1, 1)
        return a[:, :, None] * mu[None], a**2 * var[None] + s**2

    def _component_log_probs(self, x: Tensor, t: Any, path: Path | None) -> tuple[Tensor, Tensor, Tensor]:
        """log(w_k N_k(x)) (n, K), with the noised means and variances."""
        mu, var = self._noised(x, t, path)
        d = self.dim
        sq = ((x[:, None, :] - mu) ** 2).sum(-1)  # (n, K)
        logn = -0.5 * sq / var - 0.5 * d * torch.log(2 * math.pi * var)
        return logn + torch.log(self.weights.to(x)), mu, var

    def _check_x(self, x: Tensor) -> Tensor:
        return _checks.tensor("x", x, ndim=2, last_dim=self.dim)

    def _class_mask(self, x: Tensor, y: Any) -> Tensor | None:
        """(n, K) mask of the components belonging to each sample's class, or None for the marginal."""
        if y is None:
            return None
        y = _checks.labels("y", y, x.shape[0], self.num_classes, x.device)
        return self.classes.to(x.device)[None, :] == y[:, None]

    def log_prob(self, x: Tensor, y: Any = None, *, t: Any = None, path: Path | None = None) -> Tensor:
        """Exact ``log p(x | y)`` (y=None: ``log p(x)``), shape (n,). With ``t`` and ``path``: the density of the
        mixture noised to time t, ``log p_t(x | y)``."""
        x = self._check_x(x)
        if path is not None:
            _checks.path("path", path)
        if (t is None) != (path is None):
            raise ValueError("give both t and path for a noised density, or neither for the clean one")
        lp, _, _ = self._component_log_probs(x, t, path)
        mask = self._class_mask(x, y)
        if mask is None:
            return torch.logsumexp(lp, dim=1)
        lp = lp.masked_fill(~mask, -math.inf)
        cw = self.class_weights.to(x)[self.classes.to(x.device)]  # p(class of component k)
        return torch.logsumexp(lp, dim=1) - torch.log((cw[None, :] * mask).amax(dim=1))

    def score(self, x: Tensor, t: Any, path: Path, y: Any = None) -> Tensor:
        """Exact score ``grad_x log p_t(x | y)`` under the noising of ``path`` (y=None: the marginal), shape (n, d).

        For a mixture the score is the responsibility-weighted sum of component scores:
        ``sum_k r_k(x) (alpha mu_k - x) / (alpha^2 s_k^2 + sigma^2)``.
        """
        x = self._check_x(x)
        lp, mu, var = self._component_log_probs(x, t, _checks.path("path", path))
        mask = self._class_mask(x, y)
        if mask is not None:
            lp = lp.masked_fill(~mask, -math.inf)
        r = torch.softmax(lp, dim=1)  # (n, K)
        return ((mu - x[:, None, :]) / var[..., None] * r[..., None]).sum(1)

    def posterior(self, x: Tensor, t: Any, path: Path) -> Tensor:
        """Exact noisy classifier ``p_t(y | x)`` by Bayes' rule, shape (n, num_classes); rows sum to 1."""
        x = self._check_x(x)
        lp, _, _ = self._component_log_probs(x, t, _checks.path("path", path))
        r = torch.softmax(lp, dim=1)
        out = torch.zeros(x.shape[0], self.num_classes, dtype=x.dtype, device=x.device)
        return out.index_add_(1, self.classes.to(x.device), r)

    def log_posterior(self, x: Tensor, t: Any, path: Path) -> Tensor:
        """``log p_t(y | x)``, shape (n, num_classes), computed stably in log space."""
        x = self._check_x(x)
        lp, _, _ = self._component_log_probs(x, t, _checks.path("path", path))
        lse = torch.logsumexp(lp, dim=1, keepdim=True)
        cols = [torch.logsumexp(lp[:, self.classes == k], dim=1) for k in range(self.num_classes)]
        return torch.stack(cols, dim=1) - lse

    def score_fn(self, path: Path, y: Any = None) -> Callable[[Tensor, Any], Tensor]:
        """The exact score as a sampler callable ``fn(x, t)``."""
        _checks.path("path", path)
        if y is not None and not isinstance(y, Tensor):
            _checks.labels("y", y, 1, self.num_classes, torch.device("cpu"))
        return lambda x, t: self.score(x, t, path, y)

    def mean(self, y: int | None = None) -> Tensor:
        """Exact mean of p(x) or p(x | y), float64."""
        m = self if y is None else self.conditional(y)
        return (m.weights[:, None] * m.means).sum(0)

    def covariance(self, y: int | None = None) -> Tensor:
        """Exact covariance of p(x) or p(x | y), float64, (d, d)."""
        m = self if y is None else self.conditional(y)
        mu = m.mean()
        d = m.means - mu
        within = (m.weights * m.std**2).sum() * torch.eye(m.dim, dtype=torch.float64)
        return within + (m.weights[:, None, None] * d[:, :, None] * d[:, None, :]).sum(0)

    def shift(self, offset: Any) -> GaussianMixture:
        """The same mixture translated by ``offset`` (a (d,) vector): ``x -> x + offset``. Scores and posteriors move
        with it; a rule that is not translation-invariant gives different samples on the two (chapter 9)."""
        offset = torch.as_tensor(offset, dtype=torch.float64)
        if offset.shape != (self.dim,) or not torch.isfinite(offset).all():
            raise ValueError(f"offset must be a finite vector of shape ({self.dim},), got {tuple(offset.shape)}")
        return GaussianMixture(self.means + offset, self.std, self.weights, classes=self.classes,
                               class_names=self.class_names)

    def tempered(self, T: float) -> GaussianMixture:
        """The mixture that approximates ``p^(1/T) / Z`` when the components are well separated.

        Near mode k one component dominates, so ``p^(1/T) ~ w_k^(1/T) N(x; mu_k, s_k^2 I)^(1/T)``, and
        ``N(mu, s^2 I_d)^(1/T) = (2 pi s^2)^(-d/(2T)) (2 pi T s^2)^(d/2) N(mu, T s^2 I_d)``: each component keeps its
        mean, its variance is multiplied by T, and its weight becomes proportional to ``w_k^(1/T) s_k^(d (1 - 1/T))``
        (narrow components gain mass when T < 1). Exact for a single component; for several, the error is in the
        overlap of the tails. The target of Langevin dynamics with the score divided by T (course chapter 1).
        """
        T = _checks.scalar("T", T, positive=True)
        log_w = torch.log(self.weights) / T + self.dim * (1 - 1 / T) * torch.log(self.std)
        return GaussianMixture(self.means, math.sqrt(T) * self.std, torch.softmax(log_w, 0), classes=self.classes,
                               class_names=self.class_names)
