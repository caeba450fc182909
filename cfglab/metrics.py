"""Distances between sample sets and measures of what guidance trades: adherence, diversity, likelihood.

All functions take sample tensors of shape (n, d) (images are flattened) and return Python floats.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from . import _checks
from .data import GaussianMixture
from .paths import Linear

DEFAULT_BANDWIDTHS = (0.1, 0.2, 0.5, 1.0, 2.0)


def _flat(name: str, x: Any) -> Tensor:
    x = _checks.tensor(name, x, min_ndim=2)
    return x.reshape(x.shape[0], -1)


def _mixture(m: Any) -> GaussianMixture:
    if not isinstance(m, GaussianMixture):
        raise TypeError(f"mixture must be a cfglab.GaussianMixture (e.g. cfglab.make('moons')), got "
                        f"{type(m).__name__}")
    return m


def _pair(x: Any, y: Any) -> tuple[Tensor, Tensor]:
    x, y = _flat("x", x), _flat("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have one dimension per sample, got {x.shape[1]} and {y.shape[1]}")
    _checks.same_device(x=x, y=y)
    return x, y.to(x.dtype)


def mmd(x: Tensor, y: Tensor, bandwidths: Sequence[float] = DEFAULT_BANDWIDTHS) -> float:
    """Squared maximum mean discrepancy (Gretton et al. 2012, eq. 3, the unbiased U-statistic) with the kernel
    ``k(a, b) = sum_h exp(-|a - b|^2 / (2 h^2))`` over the bandwidths h. Zero in expectation for equal laws;
    it can be slightly negative for finite samples."""
    x, y = _pair(x, y)
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError("mmd needs at least 2 samples in each set")
    hs = [_checks.scalar("bandwidth", h, positive=True) for h in bandwidths]
    if not hs:
        raise ValueError("bandwidths must name at least one bandwidth")

    def k(a: Tensor, b: Tensor) -> Tensor:
        d2 = torch.cdist(a, b).pow(2)
        total = torch.zeros_like(d2)
        for h in hs:
            total = total + torch.exp(-d2 / (2 * h * h))
        return total

    n, m = x.shape[0], y.shape[0]
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(sxx + syy - 2 * kxy.mean())


def sliced_wasserstein(x: Tensor, y: Tensor, projections: int = 256,
                       generator: torch.Generator | None = None) -> float:
    """Sliced 2-Wasserstein distance (Rabin et al. 2011): the root mean over random unit directions of the
    squared 1D W2 distance between the projected samples, computed from sorted projections (quantiles are
    interpolated when the set sizes differ). Without a generator the directions are fixed (seed 0), so the
    distance is a deterministic function of the two sets."""
    x, y = _pair(x, y)
    projections = _checks.count("projections", projections)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    d = x.shape[1]
    dirs = torch.randn(d, projections, generator=generator, dtype=x.dtype).to(x.device)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    px, _ = (x @ dirs).sort(dim=0)
    py, _ = (y @ dirs).sort(dim=0)
    if px.shape[0] != py.shape[0]:
        q = torch.linspace(0, 1, max(px.shape[0], py.shape[0]), dtype=x.dtype, device=x.device)
        px, py = _quantiles(px, q), _quantiles(py, q)
    return float(((px - py) ** 2).mean().sqrt())


def _quantiles(sorted_vals: Tensor, q: Tensor) -> Tensor:
    n = sorted_vals.shape[0]
    pos = q * (n - 1)
    lo = pos.floor().long().clamp(max=n - 1)
    hi = (lo + 1).clamp(max=n - 1)
    w = (pos - lo.to(pos.dtype))[:, None]
    return sorted_vals[lo] * (1 - w) + sorted_vals[hi] * w


def adherence(x: Tensor, y: Any, classifier: GaussianMixture | Callable[[Tensor], Tensor]) -> float:
    """Fraction of samples whose most probable class is the requested one. ``classifier`` is a ground-truth
    mixture (its exact posterior at t = 0) or a callable returning logits or probabilities (n, K)."""
    x = _flat("x", x)
    if isinstance(classifier, GaussianMixture):
        scores = classifier.posterior(x, 0.0, Linear())
        num_classes = classifier.num_classes
    else:
        scores = _checks.function("classifier", classifier)(x)
        if not isinstance(scores, Tensor) or scores.ndim != 2 or scores.shape[0] != x.shape[0]:
            got = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
            raise ValueError(f"classifier must return scores of shape ({x.shape[0]}, K), got {got}")
        num_classes = scores.shape[1]
    y = _checks.labels("y", y, x.shape[0], num_classes, x.device)
    return float((scores.argmax(1) == y).to(torch.float64).mean())


def class_probability(x: Tensor, y: Any, mixture: GaussianMixture) -> float:
    """Mean exact posterior ``p(y | x)`` of the requested class over the samples (a soft adherence)."""
    x = _flat("x", x)
    y = _checks.labels("y", y, x.shape[0], _mixture(mixture).num_classes, x.device)
    return float(mixture.posterior(x, 0.0, Linear()).gather(1, y[:, None]).mean())


def diversity(x: Tensor) -> float:
    """Mean pairwise Euclidean distance between samples (larger is more diverse)."""
    x = _flat("x", x)
    n = x.shape[0]
    if n < 2:
        raise ValueError("diversity needs at least 2 samples")
    return float(torch.pdist(x).mean())


def log_likelihood(x: Tensor, mixture: GaussianMixture, y: Any = None) -> float:
    """Mean exact log-density of the samples under the ground-truth mixture, ``log p(x)`` or ``log p(x | y)``."""
    return float(_mixture(mixture).log_prob(_flat("x", x), y).mean())


def noise_floor(mixture: GaussianMixture, n: int, metric: Callable[[Tensor, Tensor], float] = sliced_wasserstein,
                y: Any = None, repeats: int = 5, seed: int = 0) -> float:
    """The metric between two independent exact sample sets of size n, averaged over ``repeats``: the best a
    perfect sampler can score at this sample size."""
    _mixture(mixture)
    n = _checks.count("n", n)
    _checks.function("metric", metric)
    g = torch.Generator().manual_seed(_checks.count("seed", seed, minimum=0))
    vals = []
    for _ in range(_checks.count("repeats", repeats)):
        a, _ = mixture.sample(n, y, generator=g, dtype=torch.float64)
        b, _ = mixture.sample(n, y, generator=g, dtype=torch.float64)
        vals.append(metric(a, b))
    return sum(vals) / len(vals)


def frechet_distance(feats_a: Tensor, feats_b: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (the FID of Heusel et al. 2017, eq. 6, on
    whatever features are given): ``|m_a - m_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})`` with sample means m and
    covariances S (unbiased). The trace of the matrix square root is computed in float64 by eigendecomposition:
    ``Tr (S_a S_b)^{1/2} = sum_i sqrt(lambda_i)`` for the eigenvalues of the symmetric ``S_a^{1/2} S_b S_a^{1/2}``,
    which has the same spectrum as ``S_a S_b``. It is the squared 2-Wasserstein distance between the two Gaussians."""
    a, b = _pair(feats_a, feats_b)
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError("frechet_distance needs at least 2 samples in each set")
    a, b = a.to(torch.float64), b.to(torch.float64)
    ma, mb = a.mean(0), b.mean(0)
    sa, sb = torch.cov(a.T).reshape(a.shape[1], a.shape[1]), torch.cov(b.T).reshape(b.shape[1], b.shape[1])
    va, ua = torch.linalg.eigh(sa)
    root_a = (ua * va.clamp_min(0).sqrt()) @ ua.T          # S_a^{1/2}
    lam = torch.linalg.eigvalsh(root_a @ sb @ root_a)
    tr_sqrt = lam.clamp_min(0).sqrt().sum()
    return float(((ma - mb) ** 2).sum() + torch.trace(sa) + torch.trace(sb) - 2 * tr_sqrt)


def _one_class(mixture: Any, y: Any) -> GaussianMixture:
    """``p(x | y)`` as a mixture whose every component is its own class (y=None: the whole mixture), so that its
    exact posterior at t = 0 is the component responsibilities."""
    m = _mixture(mixture)
    if y is not None:
        if isinstance(y, Tensor) and y.numel() == 1:
            y = int(y)
        if isinstance(y, bool) or not isinstance(y, int):
            raise TypeError(f"y must be one class label (an int) or None, got {type(y).__name__}")
        m = m.conditional(y)
    return GaussianMixture(m.means, m.std, m.weights)


def _responsibilities(x: Any, m: GaussianMixture) -> tuple[Tensor, Tensor]:
    """Samples (n, d) in float64 and the exact responsibilities ``r_k(x) = p(k | x)`` (n, K) of the components."""
    x = _flat("x", x)
    if x.shape[1] != m.dim:
        raise ValueError(f"x must have {m.dim} dimensions per sample (the mixture's), got {x.shape[1]}")
    x = x.to(torch.float64)
    return x, m.posterior(x, 0.0, Linear())


def mode_weight_error(x: Tensor, mixture: GaussianMixture, y: Any = None) -> float:
    """How far the samples' split over the modes is from the truth: the total variation
    ``1/2 sum_k |mean_i r_k(x_i) - w_k|`` between the mean exact responsibilities of the components of p(x | y)
    and their weights ``w_k``. For exact samples each mean estimates ``E_p[p(k | x)] = w_k`` without bias, so the
    error is sampling noise only (of order ``sqrt(w_k / n)`` per mode); a sampler that empties some modes and
    overfills others (classifier-free guidance, chapter 10) raises it. Coverage per mode in the spirit of the
    precision/recall of Kynkäänniemi et al. (2019), computed exactly from the mixture instead of from k-NN balls."""
    m = _one_class(mixture, y)
    _, r = _responsibilities(x, m)
    return float(0.5 * (r.mean(0) - m.weights).abs().sum())


def mode_spread(x: Tensor, mixture: GaussianMixture, y: Any = None) -> float:
    """The width of the samples around the modes of p(x | y), relative to the truth (1 = exact, < 1 = the modes
    are too tight, > 1 = too wide or off-centre):
    ``sqrt( mean_i sum_k r_k(x_i) |x_i - mu_k|^2 / (d s_k^2) )`` with the exact responsibilities r_k.

    Exactly 1 in expectation (before the square root) for exact samples, however much the components overlap:
    ``p(x) r_k(x) = w_k N(x; mu_k, s_k^2 I)``, so ``E_p[r_k(x) |x - mu_k|^2] = w_k d s_k^2`` (the per-component
    covariance written with responsibilities, by Bayes' rule, as in the M step of EM for mixtures: Dempster, Laird
    and Rubin 1977).
    For well separated modes it is the ratio of the samples' std around each mode to the true one; where modes
    overlap, a shrunk set reads closer to 1 (its points still get some responsibility from the neighbours). The mean
    pairwise distance (:func:`diversity`) hardly sees a shrinkage of every mode, because distances between modes
    dominate it; this does."""
    m = _one_class(mixture, y)
    x, r = _responsibilities(x, m)
    sq = ((x[:, None, :] - m.means[None]) ** 2).sum(-1) / (m.dim * m.std**2)  # (n, K)
    return float((r * sq).sum(1).mean().sqrt())
