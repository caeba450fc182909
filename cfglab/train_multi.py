"""Training with several conditions, each dropped on its own (chapter 15).

:class:`MultiLabelData` is a labelled toy whose samples carry several labels at once (a colour *and* a shape), with
the exact law of every subset of them; :func:`drop_each` is the label dropout of InstructPix2Pix (Brooks et al.
2023, sec. 3.2.1) with one probability per condition; :func:`fit_multi` trains a :class:`cfglab.models.MultiMLP`
on such data with the denoising loss of :mod:`cfglab.train`, cached by configuration like :func:`cfglab.fit`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

import torch
from torch import Tensor, nn

from . import _checks, _progress, cache
from .data import AttributeToy, GaussianMixture
from .data._util import _hash
from .models.multi import MultiMLP
from .train import TrainConfig, TrainStep, _resolve_config, denoising_loss


class MultiLabelData:
    """A mixture whose every component carries one label per condition, with the exact law of any request.

    Args:
        objects: the mixture of the data, one component per kind of object (its classes are ignored).
        labels: (K, m) integers, ``labels[k, i]`` the label of condition i carried by component k.
        names: optional names of the labels, one list per condition (for plots and printing).

    ``sample(n)`` returns ``(x, labels)`` with labels of shape (n, m); ``law([a, None])`` is the exact
    ``p(x | condition 0 = a)`` as a :class:`GaussianMixture` (the components that carry every label given,
    weights renormalised), so every rule on several conditions can be compared with exact noised scores.
    """

    def __init__(self, objects: GaussianMixture, labels: Any, names: Sequence[Sequence[str]] | None = None):
        if not isinstance(objects, GaussianMixture):
            raise TypeError(f"objects must be a cfglab.GaussianMixture, got {type(objects).__name__}")
        table = torch.as_tensor(labels)
        K = len(objects.weights)
        if not torch.equal(objects.classes, torch.arange(K)):
            raise ValueError("objects must have one class per component (build it with classes=None)")
        if table.is_floating_point() or table.dtype == torch.bool or table.ndim != 2 or table.shape[0] != K:
            raise ValueError(f"labels must be integers of shape ({K}, m), one row per component, got "
                             f"{tuple(table.shape)} {table.dtype}")
        if (table < 0).any():
            raise ValueError("labels must be non-negative")
        self.objects, self.table = objects, table.long()
        self.num_classes = tuple(int(c.max()) + 1 for c in self.table.unbind(1))
        for i, k in enumerate(self.num_classes):
            if len(torch.unique(self.table[:, i])) != k:
                raise ValueError(f"labels of condition {i} must use every label 0..{k - 1}")
        if names is not None and [len(v) for v in names] != list(self.num_classes):
            raise ValueError(f"names must hold {list(self.num_classes)} names, one list per condition")
        self.names = [list(v) for v in names] if names is not None else None

    @classmethod
    def from_attributes(cls, toy: AttributeToy, groups: Sequence[Sequence[int | str]] = ((0, 1, 2), (3, 4))
                        ) -> MultiLabelData:
        """The attribute toy of chapter 8 with one condition per group of concepts: by default the colour (red,
        green, blue) and the shape (circle, square). Every object must carry exactly one concept of each group."""
        if not isinstance(toy, AttributeToy):
            raise TypeError(f"toy must be a cfglab.data.AttributeToy, got {type(toy).__name__}")
        cols, names = [], []
        for g, group in enumerate(groups):
            idx = [toy.concept(c) for c in group]
            sub = toy.has[:, idx]
            if (sub.sum(1) != 1).any():
                raise ValueError(f"groups[{g}]: every object must carry exactly one of its concepts")
            cols.append(sub.long().argmax(1))
            names.append([toy.concept_names[i] for i in idx])
        return cls(toy.objects, torch.stack(cols, 1), names)

    @property
    def dim(self) -> int:
        """The data dimension."""
        return self.objects.dim

    @property
    def conditions(self) -> int:
        """The number of conditions m."""
        return self.table.shape[1]

    def __repr__(self) -> str:
        return f"MultiLabelData(K={len(self.objects.weights)}, num_classes={self.num_classes})"

    def fingerprint(self) -> str:
        """A hash of the labelled law (part of trained-model cache keys)."""
        return self.objects.fingerprint() + _hash(self.table)

    def mask(self, labels: Sequence[int | None]) -> Tensor:
        """(K,) booleans: the components that carry every label given (None: that condition is not requested)."""
        if isinstance(labels, (str, bytes, Tensor)) or not isinstance(labels, Sequence) \
                or len(labels) != self.conditions:
            raise ValueError(f"labels must be a sequence of {self.conditions} entries (a label or None)")
        m = torch.ones(len(self.objects.weights), dtype=torch.bool)
        for i, y in enumerate(labels):
            if y is not None:
                _checks.labels(f"labels[{i}]", y, 1, self.num_classes[i], torch.device("cpu"))
                m &= self.table[:, i] == int(y)
        if not m.any():
            raise ValueError(f"no component carries the labels {list(labels)}")
        return m

    def law(self, labels: Sequence[int | None]) -> GaussianMixture:
        """The exact law ``p(x | the labels given)`` (None entries not conditioned on) as a mixture."""
        return self.objects.restrict(self.mask(labels))

    def sample(self, n: int, y: Any = None, generator: torch.Generator | None = None, *,
               dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
        """``(x, labels)``: n points and their (n, m) labels. ``y`` must be None (the labels come with the data)."""
        if y is not None:
            raise ValueError("y must be None: draw from law(labels) for samples with given labels")
        x, comp = self.objects.sample(n, generator=generator, dtype=dtype, device=device)  # class = component
        return x, self.table.to(comp.device)[comp]


def drop_each(labels: Tensor, p_drop: Sequence[float], null_labels: Sequence[int],
              generator: torch.Generator | None = None, *, p_all: float = 0.0) -> Tensor:
    """Label dropout with several conditions: column i of ``labels`` (n, m) is replaced by ``null_labels[i]``
    with probability ``p_drop[i]``, independently of the others; with probability ``p_all`` a row loses every
    label at once (InstructPix2Pix drops the image 5 %, the text 5 % and both 5 % of the time). A new tensor."""
    if not isinstance(labels, Tensor) or labels.is_floating_point() or labels.dtype == torch.bool \
            or labels.ndim != 2:
        raise TypeError("labels must be an (n, m) integer tensor")
    m = labels.shape[1]
    if len(p_drop) != m or len(null_labels) != m:
        raise ValueError(f"p_drop and null_labels need one entry per condition ({m}), got {len(p_drop)} and "
                         f"{len(null_labels)}")
    p = torch.tensor([_checks.probability(f"p_drop[{i}]", v) for i, v in enumerate(p_drop)], dtype=torch.float64)
    p_all = _checks.probability("p_all", p_all)
    nulls = torch.tensor([_checks.count(f"null_labels[{i}]", v, minimum=0) for i, v in enumerate(null_labels)])
    drop = torch.rand(labels.shape, generator=generator, dtype=torch.float64) < p
    drop |= torch.rand(labels.shape[0], 1, generator=generator, dtype=torch.float64) < p_all
    drop = drop.to(labels.device)
    return torch.where(drop, nulls.to(labels), labels)


def train_multi_iter(model: MultiMLP, data: MultiLabelData, config: TrainConfig | None = None, *,
                     p_drop: Sequence[float] = (0.1, 0.1), p_all: float = 0.0) -> Iterator[TrainStep]:
    """The training loop of :func:`cfglab.train_iter` for a :class:`MultiMLP`: batches of ``(x, labels)`` from
    ``data``, :func:`drop_each` with ``p_drop`` and ``p_all`` (``config.p_uncond`` is not used), Adam with the
    warm-up and cosine schedule of ``config``, the loss of :func:`cfglab.denoising_loss`."""
    config = _resolve_config(config, {})
    if not isinstance(model, MultiMLP):
        raise TypeError(f"model must be a cfglab.models.MultiMLP, got {type(model).__name__}")
    if not isinstance(data, MultiLabelData):
        raise TypeError(f"data must be a cfglab.train_multi.MultiLabelData, got {type(data).__name__}")
    if tuple(data.num_classes) != model.num_classes or data.dim != model.dim:
        raise ValueError(f"data has num_classes {data.num_classes} in dimension {data.dim} but the model has "
                         f"{model.num_classes} in dimension {model.dim}")
    drop_each(torch.zeros(1, model.conditions, dtype=torch.long), p_drop, model.null_labels, p_all=p_all)
    return _loop(model, data, config, tuple(p_drop), p_all)


def _loop(model: MultiMLP, data: MultiLabelData, config: TrainConfig, p_drop: tuple[float, ...],
          p_all: float) -> Iterator[TrainStep]:
    w = next(model.parameters())
    g = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    model.train()
    for step in range(config.steps):
        lr = config.lr_at(step)
        for group in opt.param_groups:
            group["lr"] = lr
        x0, y = data.sample(config.batch_size, generator=g)
        x0, y = x0.to(device=w.device, dtype=w.dtype), y.to(w.device)
        loss = denoising_loss(model, x0, drop_each(y, p_drop, model.null_labels, g, p_all=p_all), generator=g)
        if not torch.isfinite(loss):
            model.eval()
            raise FloatingPointError(f"training stopped at step {step}: the loss became {loss.item()} "
                                     f"(lr={lr:.3g}); lower config.lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        yield TrainStep(step, loss.item(), lr)
    model.eval()


def fit_multi(model: MultiMLP, data: MultiLabelData, config: TrainConfig | None = None, *,
              p_drop: Sequence[float] = (0.1, 0.1), p_all: float = 0.0, progress: bool = True,
              use_cache: bool = True, **overrides: Any) -> list[float]:
    """Train ``model`` on ``data`` in place with every condition dropped on its own (:func:`drop_each`) and
    return the loss of every step; keyword ``overrides`` replace fields of ``config`` (``steps=1000``). Weights
    trained before with the same model, data, configuration and dropout are loaded from the cache."""
    config = _resolve_config(config, overrides)
    steps = train_multi_iter(model, data, config, p_drop=p_drop, p_all=p_all)
    k = cache.key({"model": model.config, "data": data.fingerprint(), "train": asdict(config),
                   "p_drop": [float(p) for p in p_drop], "p_all": float(p_all),
                   "dtype": str(next(model.parameters()).dtype)}) if use_cache else None
    extras = cache.restore(model, k) if k else None
    if extras is not None:
        model.eval()
        stored = extras.get("__losses__")
        return [float(v) for v in stored.tolist()] if stored is not None else []
    losses: list[float] = []
    with _progress.bar(config.steps, "training MultiMLP", disable=not progress) as bar:
        for rec in steps:
            losses.append(rec.loss)
            if rec.step % 50 == 0 or rec.step == config.steps - 1:
                bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}", refresh=False)
                bar.update(rec.step + 1 - bar.n)
        bar.summary = (f"trained MultiMLP: {len(losses)} steps, final loss "
                       f"{sum(losses[-50:]) / max(1, len(losses[-50:])):.4f}")
    if k:
        cache.save(k, {**model.state_dict(), "__losses__": torch.tensor(losses, dtype=torch.float64)})
    return losses
