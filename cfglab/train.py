"""Training: the denoising loss, explicit label dropout, and a loop you can iterate step by step.

``fit(model, data, config)`` runs the loop with a progress bar and caches the weights by configuration;
``train_iter`` is the same loop as a generator, so a notebook can watch or stop it one step at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Protocol, cast

import torch
from torch import Tensor, nn

from . import _checks, _progress, cache
from .models import Classifier


class Data(Protocol):
    """Anything with ``sample(n, generator=...) -> (x, y)``: every toy mixture, :class:`cfglab.data.TensorData`."""

    def sample(self, n: int, y: Any = None, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """n samples ``(x, y)`` drawn with ``generator``."""
        ...


@dataclass(frozen=True)
class TrainConfig:
    """Typed defaults of a training run (tuned so the 2D toys train in seconds on two CPU cores).

    ``p_uncond`` is the label-dropout probability of classifier-free guidance (Ho & Salimans 2022, alg. 1):
    that fraction of each batch is trained with the null label, so one network learns both p(x|y) and p(x).
    The learning rate warms up over the first 2 % of steps, then follows a cosine decay to zero.
    """

    steps: int = 2000
    batch_size: int = 512
    lr: float = 3e-3
    p_uncond: float = 0.1
    seed: int = 0
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        _checks.count("steps", self.steps)
        _checks.count("batch_size", self.batch_size)
        _checks.scalar("lr", self.lr, positive=True)
        _checks.probability("p_uncond", self.p_uncond)
        _checks.count("seed", self.seed, minimum=0)
        _checks.scalar("grad_clip", self.grad_clip, positive=True)

    def lr_at(self, step: int) -> float:
        """The learning rate at ``step`` (0-based): linear warm-up over the first 2 % of steps, then cosine decay."""
        step = _checks.count("step", step, minimum=0)
        warmup = max(1, self.steps // 50)
        if step < warmup:
            return self.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, self.steps - warmup)
        return self.lr * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class TrainStep:
    """What one training step reports."""

    step: int
    loss: float
    lr: float


def drop_labels(y: Tensor, p_uncond: float, null_label: int, generator: torch.Generator | None = None) -> Tensor:
    """Replace each label by ``null_label`` with probability ``p_uncond``; returns a new tensor (y is untouched)."""
    p_uncond = _checks.probability("p_uncond", p_uncond)
    null_label = _checks.count("null_label", null_label, minimum=0)
    if not isinstance(y, Tensor) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError("y must be a 1-D integer tensor of labels")
    if y.ndim != 1:
        raise ValueError(f"y must be a 1-D tensor of labels, got shape {tuple(y.shape)}")
    drop = torch.rand(y.shape, generator=generator, device="cpu").to(y.device) < p_uncond
    return torch.where(drop, torch.full_like(y, null_label), y)


def sample_times(n: int, path: Any, generator: torch.Generator | None = None, *, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> Tensor:
    """Training times, uniform on the path's sampling range ``[t_min, t_max]``, shape (n,)."""
    n = _checks.count("n", n)
    path = _checks.path("path", path)
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    t = path.t_min + (path.t_max - path.t_min) * u
    return t.to(dtype=dtype or torch.get_default_dtype(), device=device)


def denoising_loss(model: nn.Module, x0: Tensor, y: Any = None, *, t: Tensor | None = None,
                   eps: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """Mean squared error of the model's prediction against its target on ``x_t = alpha x0 + sigma eps``.

    The target is whatever ``model.pred`` names, computed by ``model.path.target``:
    ``eps`` gives DDPM's simple loss (Ho et al. 2020, eq. 14); ``score`` gives denoising score matching with the
    weighting ``lambda(t) = sigma^2`` (Song et al. 2021, eq. 7), which equals the eps loss; ``velocity`` on the
    linear path gives conditional flow matching (Lipman et al. 2023, eq. 23); ``x0`` regresses the clean sample.
    ``t`` and ``eps`` are drawn from ``generator`` unless given.
    """
    m = _checks.model("model", model, "path", "pred")
    x0 = _checks.tensor("x0", x0, min_ndim=2)
    n = x0.shape[0]
    if t is None:
        t = sample_times(n, m.path, generator, dtype=x0.dtype, device=x0.device)
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device="cpu").to(x0.device)
    elif _checks.tensor("eps", eps).shape != x0.shape:
        raise ValueError(f"eps must have the shape of x0 {tuple(x0.shape)}, got {tuple(eps.shape)}")
    xt = m.path.noise(x0, t, eps)
    target = m.path.target(m.pred, x0, eps, t)
    err = (m(xt, t, y) - target) ** 2
    if m.pred == "score":
        err = err * m.path(t, x0).sigma ** 2
    return err.mean()


def classifier_loss(clf: Classifier, x0: Tensor, y: Tensor, *, t: Tensor | None = None,
                    generator: torch.Generator | None = None) -> Tensor:
    """Cross-entropy of a noise-aware classifier on samples noised to random times along ``clf.path``."""
    if not isinstance(clf, Classifier):
        raise TypeError(f"clf must be a cfglab.Classifier, got {type(clf).__name__}")
    x0 = _checks.tensor("x0", x0, min_ndim=2)
    y = _checks.labels("y", y, x0.shape[0], clf.num_classes, x0.device)
    if t is None:
        t = sample_times(x0.shape[0], clf.path, generator, dtype=x0.dtype, device=x0.device)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device="cpu").to(x0.device)
    return nn.functional.cross_entropy(clf(clf.path.noise(x0, t, eps), t), y)


def train_iter(model: nn.Module, data: Data, config: TrainConfig | None = None) -> Iterator[TrainStep]:
    """The training loop as a generator: each ``next`` runs one Adam step and yields its :class:`TrainStep`.

    Batches are fresh samples from ``data`` drawn with a generator seeded by ``config.seed``. Denoisers get label
    dropout to ``model.null_label`` with probability ``config.p_uncond``; a :class:`Classifier` gets the
    cross-entropy loss. A non-finite loss raises ``FloatingPointError`` naming the step. The arguments are
    checked when the generator is created, before the first step.
    """
    config = _resolve_config(config, {})
    _check_trainable(model, data)
    return _loop(model, data, config)


def _check_trainable(model: Any, data: Any) -> None:
    """model: a module with parameters and the attributes its loss needs; data: a sampler whose labels fit."""
    if not isinstance(model, nn.Module) or not any(True for _ in model.parameters()):
        raise TypeError(f"model must be a torch.nn.Module with parameters (e.g. cfglab.MLP), got "
                        f"{type(model).__name__}")
    if not callable(getattr(data, "sample", None)):
        raise TypeError(f"data must have a sample(n, generator=...) method (a toy from cfglab.make, a "
                        f"TensorData), got {type(data).__name__}")
    if not isinstance(model, Classifier):
        _checks.model("model", model, "num_classes", "null_label", "path", "pred")
    data_classes, model_classes = getattr(data, "num_classes", None), getattr(model, "num_classes", None)
    if isinstance(data_classes, int) and isinstance(model_classes, int) and 0 < model_classes < data_classes:
        raise ValueError(f"data has {data_classes} classes but the model has num_classes={model_classes}; "
                         f"build the model with num_classes={data_classes}")
    data_dim, model_dim = getattr(data, "dim", None), getattr(model, "dim", None)
    if isinstance(data_dim, int) and isinstance(model_dim, int) and data_dim != model_dim:
        raise ValueError(f"data has dimension {data_dim} but the model has dim={model_dim}")


def _resolve_config(config: TrainConfig | None, overrides: dict[str, Any]) -> TrainConfig:
    """``config`` (default :class:`TrainConfig`) with the fields named in ``overrides`` replaced."""
    if config is not None and not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a cfglab.TrainConfig, got {type(config).__name__}")
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown training option(s) {unknown}; TrainConfig fields are {sorted(known)}")
    return replace(config or TrainConfig(), **overrides)


def _loop(model: nn.Module, data: Data, config: TrainConfig) -> Iterator[TrainStep]:
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    g = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    den = None if isinstance(model, Classifier) else _checks.model("model", model, "num_classes", "null_label")
    model.train()
    for step in range(config.steps):
        lr = config.lr_at(step)
        for group in opt.param_groups:
            group["lr"] = lr
        x0, y = data.sample(config.batch_size, generator=g)
        x0, y = x0.to(device=device, dtype=dtype), y.to(device)
        if den is None:
            loss = classifier_loss(cast(Classifier, model), x0, y, generator=g)
        else:
            labels = drop_labels(y, config.p_uncond, den.null_label, g) if den.num_classes else None
            loss = denoising_loss(model, x0, labels, generator=g)
        if not torch.isfinite(loss):
            model.eval()
            raise FloatingPointError(
                f"training stopped at step {step}: the loss became {loss.item()} (lr={lr:.3g}). "
                "Lower config.lr or check the data for NaN/inf; the model's weights are no longer usable.")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        yield TrainStep(step, loss.item(), lr)
    model.eval()


def _cache_key(model: nn.Module, data: Data, config: TrainConfig) -> str | None:
    fingerprint = getattr(data, "fingerprint", None)
    if fingerprint is None or not hasattr(model, "config"):
        return None
    return cache.key({"model": model.config, "data": fingerprint(), "train": asdict(config),
                      "dtype": str(next(model.parameters()).dtype)})


def fit(model: nn.Module, data: Data, config: TrainConfig | None = None, *, progress: bool = True,
        use_cache: bool = True, **overrides: Any) -> list[float]:
    """Train ``model`` on ``data`` in place and return the loss of every step.

    Keyword ``overrides`` replace fields of ``config`` (``fit(model, data, steps=500)``). With ``use_cache``,
    weights trained before with the same model configuration (including its init seed), data and training
    configuration are loaded instead of retrained (see :mod:`cfglab.cache`). ``progress`` shows a notebook-aware
    tqdm bar with the running loss.
    """
    config = _resolve_config(config, overrides)
    _check_trainable(model, data)
    k = _cache_key(model, data, config) if use_cache else None
    extras = cache.restore(model, k) if k else None
    if extras is not None:
        model.eval()
        stored = extras.get("__losses__")
        return [float(v) for v in stored.tolist()] if stored is not None else []
    losses: list[float] = []
    with _progress.bar(config.steps, f"training {type(model).__name__}", disable=not progress) as bar:
        for rec in train_iter(model, data, config):
            losses.append(rec.loss)
            if rec.step % 50 == 0 or rec.step == config.steps - 1:
                window = losses[-50:]
                bar.set_postfix(loss=f"{sum(window) / len(window):.4f}", refresh=False)
                bar.update(rec.step + 1 - bar.n)
        bar.summary = (f"trained {type(model).__name__}: {len(losses)} steps, final loss "
                       f"{sum(losses[-50:]) / max(1, len(losses[-50:])):.4f}")
    if k:
        cache.save(k, {**model.state_dict(), "__losses__": torch.tensor(losses, dtype=torch.float64)})
    return losses
