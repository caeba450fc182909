"""Scikit-learn's 8x8 handwritten digits as a small image data set, a digit classifier to score samples, and
inpainting by replacement.

``load_digits`` ships inside scikit-learn (1797 images, 10 classes, pixel values 0..16), so nothing is
downloaded. Pixels are scaled to [-1, 1] and images shaped (n, 1, 8, 8), what :class:`cfglab.models.UNet` takes.
The classifier plays the role of the Inception network of FID (Heusel et al. 2017): its accuracy on the requested
label measures adherence and its penultimate-layer features feed :func:`cfglab.metrics.frechet_distance`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from . import _checks, cache
from .data import TensorData
from .models.blocks import _seeded
from .paths import PREDICTIONS, Path

NUM_CLASSES = 10
SIZE = 8


def load(split: str = "train", *, test_fraction: float = 0.25, seed: int = 0) -> tuple[Tensor, Tensor]:
    """The digits as ``(x, y)``: x float32 of shape (n, 1, 8, 8) in [-1, 1] (``x = pixel / 8 - 1``), y long (n,).

    ``split`` is ``"train"``, ``"test"`` or ``"all"``; the split is a fixed random permutation (``seed``) with
    ``test_fraction`` of the images held out. Needs scikit-learn (``pip install cfglab[digits]``)."""
    _checks.choice("split", split, ("train", "test", "all"))
    test_fraction = _checks.scalar("test_fraction", test_fraction)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    seed = _checks.count("seed", seed, minimum=0)
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("cfglab.digits needs scikit-learn: pip install 'cfglab[digits]'") from err
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 8.0 - 1.0  # (1797, 1, 8, 8)
    y = torch.tensor(d.target, dtype=torch.long)
    if split == "all":
        return x, y
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(test_fraction * len(y)))
    idx = perm[:n_test] if split == "test" else perm[n_test:]
    return x[idx], y[idx]


def dataset(split: str = "train", **kwargs: Any) -> TensorData:
    """The digits as a :class:`cfglab.TensorData` (the ``sample(n, generator=)`` interface that ``cl.fit`` uses)."""
    x, y = load(split, **kwargs)
    return TensorData(x, y, NUM_CLASSES)


class DigitClassifier(nn.Module):
    """A small MLP on the 64 pixels of clean digits: ``64 -> hidden -> features -> 10``.

    ``features(x)`` is the penultimate layer (what a Fréchet distance compares); ``forward(x)`` the logits.
    Accepts images (n, 1, 8, 8) or flat (n, 64)."""

    def __init__(self, hidden: int = 128, features: int = 32, seed: int = 0):
        super().__init__()
        hidden, features = _checks.count("hidden", hidden), _checks.count("features", features)
        self.config = dict(kind="DigitClassifier", hidden=hidden, features=features, seed=seed)
        with _seeded(seed):
            self.body = nn.Sequential(nn.Linear(SIZE * SIZE, hidden), nn.SiLU(), nn.Linear(hidden, features),
                                      nn.SiLU())
            self.head = nn.Linear(features, NUM_CLASSES)

    def features(self, x: Tensor) -> Tensor:  # (n, 1, 8, 8) or (n, 64) -> (n, features)
        """The penultimate-layer features of images (n, 1, 8, 8) or flat pixels (n, 64)."""
        x = _checks.tensor("x", x, min_ndim=2)
        if x[0].numel() != SIZE * SIZE:
            raise ValueError(f"x must hold {SIZE * SIZE} pixels per image, (n, 1, {SIZE}, {SIZE}) or "
                             f"(n, {SIZE * SIZE}), got shape {tuple(x.shape)}")
        return self.body(x.reshape(x.shape[0], -1).to(self.head.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:  # -> logits (n, 10)
        """Logits over the ten digits, shape (n, 10)."""
        return self.head(self.features(x))


def train_classifier(steps: int = 400, *, lr: float = 3e-3, weight_decay: float = 1e-4, noise: float = 0.1,
                     seed: int = 0, use_cache: bool = True) -> DigitClassifier:
    """Train a :class:`DigitClassifier` on the training split (full-batch Adam, small Gaussian pixel noise of std
    ``noise`` as augmentation) and return it in eval mode. Cached by configuration like ``cl.fit``."""
    steps = _checks.count("steps", steps)
    lr = _checks.scalar("lr", lr, positive=True)
    weight_decay = _checks.scalar("weight_decay", weight_decay, nonnegative=True)
    noise = _checks.scalar("noise", noise, nonnegative=True)
    clf = DigitClassifier(seed=seed)
    x, y = load("train")
    k = cache.key({"model": clf.config, "data": TensorData(x, y).fingerprint(), "train": dict(
        steps=steps, lr=lr, weight_decay=weight_decay, noise=noise, seed=seed)}) if use_cache else None
    if k and cache.restore(clf, k) is not None:
        return clf.eval()
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(clf.parameters(), lr=lr, weight_decay=weight_decay)
    clf.train()
    for step in range(steps):
        xb = x + noise * torch.randn(x.shape, generator=g)
        loss = nn.functional.cross_entropy(clf(xb), y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training stopped at step {step}: the loss became {loss.item()} (lr={lr:.3g}); "
                                     "lower lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    clf.eval()
    if k:
        cache.save(k, clf.state_dict())
    return clf


def inpaint(fn: Callable[[Tensor, Tensor], Tensor], x_known: Tensor, mask: Tensor, path: Path, steps: int, *,
            generator: torch.Generator | None = None, pred: str = "score", t_max: float | None = None,
            t_min: float | None = None, spacing: str | None = None) -> Tensor:
    """Inpainting by replacement (Song et al. 2021, "Score-based generative modeling through SDEs", app. G;
    the one-resampling case of RePaint, Lugmayr et al. 2022, eq. 8): run deterministic DDIM steps from the prior,
    and after every step overwrite the known pixels (``mask == 1``) by the known image noised to the new time,
    ``alpha_s x_known + sigma_s z`` with fresh noise z. The last step returns the model's x0 estimate on the
    unknown pixels and ``x_known`` itself on the known ones, so known pixels are preserved exactly.

    ``fn(x, t)`` is any prediction of kind ``pred`` (e.g. ``cl.guided(model, y, scale)``); ``mask`` broadcasts
    against ``x_known`` (1 = known, 0 = to fill). Randomness comes from ``generator``."""
    _checks.function("fn", fn)
    path = _checks.path("path", path)
    x_known = _checks.tensor("x_known", x_known, min_ndim=2)
    mask = torch.as_tensor(mask).to(dtype=x_known.dtype, device=x_known.device)
    if not ((mask == 0) | (mask == 1)).all():
        raise ValueError("mask must hold only 0 (unknown) and 1 (known)")
    try:
        fits = torch.broadcast_shapes(mask.shape, x_known.shape) == x_known.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(f"mask must broadcast against x_known {tuple(x_known.shape)}, got {tuple(mask.shape)}")
    mask = mask.expand_as(x_known)
    steps = _checks.count("steps", steps)
    pred = _checks.choice("pred", pred, PREDICTIONS)
    ts = path.timesteps(steps, t_max=t_max, t_min=t_min, spacing=spacing).to(x_known.dtype)

    def noised(t: Tensor) -> Tensor:
        z = torch.randn(x_known.shape, generator=generator, dtype=x_known.dtype).to(x_known.device)
        return path.noise(x_known, t, z)

    def predict(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        tt = t.expand(x.shape[0])
        out = fn(x, tt)
        return path.convert(out, x, tt, pred, "x0"), path.convert(out, x, tt, pred, "eps")

    x = mask * noised(ts[0]) + (1 - mask) * path.prior(x_known.shape[0], tuple(x_known.shape[1:]), generator,
                                                       dtype=x_known.dtype, device=x_known.device)
    for i in range(steps):
        x0, eps = predict(x, ts[i])
        cs = path(ts[i + 1])
        x = cs.alpha * x0 + cs.sigma * eps                  # DDIM (eta = 0) on every pixel
        x = mask * noised(ts[i + 1]) + (1 - mask) * x       # replace the known pixels
    x0, _ = predict(x, ts[-1])
    return mask * x_known + (1 - mask) * x0
