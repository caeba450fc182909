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


class Judge:
    """The image metrics of the chapters on digits, against real digits with the same labels.

    ``Judge(per_class, sets)`` draws ``sets`` disjoint sets of real digits (``per_class`` of each, ordered like
    ``labels``, ``0, 1, ..., 9, 0, 1, ...``) from all 1797 with ``seed``; the first is the reference of the
    Fréchet distance (in the classifier's feature space), the others give its exact-vs-exact floor. Calling it
    on images x (in the order of ``labels``) returns the judge's median log-odds of the requested digit and its
    accuracy, the Fréchet distance, the saturation (mean pixel excess over 1), the mean top probability, the
    per-class diversity over the real digits' (1 when as diverse), and the brightness (mean pixel). Images are
    clipped to [-1, 1] first, as an image file would store them; ``conditional=False`` scores unconditional
    samples, grouping them for the diversity by the classes the judge gives them (no log-odds, no accuracy)."""

    def __init__(self, per_class: int = 20, sets: int = 4, classifier: DigitClassifier | None = None,
                 seed: int = 7):
        per_class, sets = _checks.count("per_class", per_class, minimum=2), _checks.count("sets", sets, minimum=2)
        self.classifier = classifier if classifier is not None else train_classifier()
        x_all, y_all = load("all")
        g = torch.Generator().manual_seed(_checks.count("seed", seed, minimum=0))
        order = [torch.nonzero(y_all == k)[:, 0][torch.randperm(int((y_all == k).sum()), generator=g)]
                 for k in range(NUM_CLASSES)]                 # the indices of each digit, shuffled
        if sets * per_class > min(len(o) for o in order):
            raise ValueError(f"sets * per_class must be at most {min(len(o) for o in order)} (the rarest digit)")
        self.labels = torch.arange(NUM_CLASSES * per_class) % NUM_CLASSES
        self.real = [x_all[torch.stack([o[j * per_class:(j + 1) * per_class] for o in order], 1).reshape(-1)]
                     for j in range(sets)]                   # each (10 per_class, 1, 8, 8), labels self.labels
        self._mask = nn.functional.one_hot(self.labels, NUM_CLASSES).bool()
        with torch.no_grad():
            self.reference = self.classifier.features(self.real[0])
        self.real_diversity = sum(self.per_class_diversity(r, self.labels) for r in self.real) / sets

    @staticmethod
    def per_class_diversity(x: Tensor, labels: Tensor) -> float:
        """Mean pairwise distance within each class, averaged over the ten classes (a class with fewer than two
        samples counts as 0)."""
        from .metrics import diversity

        return sum(diversity(x[labels == k]) for k in range(NUM_CLASSES) if int((labels == k).sum()) > 1) / 10

    def __call__(self, x: Tensor, conditional: bool = True) -> dict[str, float]:
        from .metrics import frechet_distance

        x = _checks.tensor("x", x, ndim=4)
        if x.shape[0] != len(self.labels):
            raise ValueError(f"x must hold {len(self.labels)} images in the order of Judge.labels, got {x.shape[0]}")
        with torch.no_grad():
            shown = x.clamp(-1, 1)
            logits = self.classifier(shown)
            out = {"FD": frechet_distance(self.reference, self.classifier.features(shown)),
                   "saturation": float((x.abs() - 1).clamp_min(0).mean()),
                   "confidence": float(torch.softmax(logits, 1).max(1).values.mean()),
                   "brightness": float(shown.mean())}
            own = self.labels if conditional else logits.argmax(1)
            out["diversity"] = self.per_class_diversity(shown, own) / self.real_diversity
            if conditional:
                others = logits.masked_fill(self._mask, -torch.inf).logsumexp(1)
                out["log-odds"] = float((logits[self._mask] - others).median())
                out["accuracy"] = float((logits.argmax(1) == self.labels).float().mean())
        return out

    def floor(self) -> list[float]:
        """The Fréchet distance of each real set but the first to the reference: what exact samples score."""
        return [self(r)["FD"] for r in self.real[1:]]


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
