"""Input validation shared by the public API.

Every public function checks its arguments here so that bad input fails with a message naming the argument and
what was expected, instead of a deep stack trace from inside torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any, Protocol, cast

import torch
from torch import Tensor

if TYPE_CHECKING:
    from .paths import Path


class Denoiser(Protocol):
    """What guidance wrappers and the training loss use of a denoiser (:class:`cfglab.MLP`, :class:`cfglab.UNet`):
    its path, what it predicts, its labels (``null_label == num_classes``), a forward pass and ``predict``."""

    path: Path
    pred: str
    num_classes: int
    null_label: int

    def __call__(self, x: Tensor, t: Any, y: Any = None) -> Tensor: ...

    def predict(self, x: Tensor, t: Any, y: Any = None, *, kind: str = "score") -> Tensor: ...


def _known(x: Tensor) -> bool:
    """Whether x holds values that can be inspected (a meta tensor has a shape and a device but no data)."""
    return x.device.type != "meta"


def tensor(name: str, x: Any, *, ndim: int | None = None, min_ndim: int | None = None,
           last_dim: int | None = None, floating: bool = True, finite: bool = True) -> Tensor:
    """Check that ``x`` is a (floating, finite) tensor of the stated rank with a non-empty batch; return it.
    ``finite=False`` skips the scan of the values for NaN and infinities."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if min_ndim is not None and x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions, got shape {tuple(x.shape)}")
    if last_dim is not None and x.shape[-1] != last_dim:
        raise ValueError(f"{name} must have last dimension {last_dim}, got shape {tuple(x.shape)}")
    if x.ndim >= 1 and x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(x.shape)}); need at least one sample")
    if floating and finite and _known(x) and not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def scalar(name: str, v: Any, *, positive: bool = False, nonnegative: bool = False) -> float:
    """Check that ``v`` is a finite real number (a Python number or a 0-d tensor); return it as float."""
    if isinstance(v, Tensor):
        if v.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(v.shape)}")
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, Real):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if positive and v <= 0:
        raise ValueError(f"{name} must be > 0, got {v}")
    if nonnegative and v < 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return v


def probability(name: str, v: Any) -> float:
    """Check that ``v`` is a number in [0, 1]."""
    v = scalar(name, v)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {v}")
    return v


def count(name: str, v: Any, *, minimum: int = 1) -> int:
    """Check that ``v`` is an integer >= ``minimum`` (a step count, a batch size)."""
    if isinstance(v, bool) or not isinstance(v, Integral):
        raise TypeError(f"{name} must be an integer, got {type(v).__name__}")
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return int(v)


def choice(name: str, v: Any, options: tuple[str, ...]) -> str:
    """Check that ``v`` is one of ``options``."""
    if v not in options:
        raise ValueError(f"{name} must be one of {options}, got {v!r}")
    return v


def times(name: str, t: Any, like: Tensor) -> Tensor:
    """Return t as a tensor on ``like``'s dtype and device, shape () or (n,), checked to lie in [0, 1].

    ``t`` may be a Python float, a 0-d tensor, or a tensor of shape (n,) or (n, 1) matching the batch of ``like``.
    """
    if isinstance(t, Tensor):
        if not t.is_floating_point():
            t = t.to(like.dtype)
        if t.device != like.device:
            raise ValueError(f"{name} is on device {t.device} but x is on {like.device}; move them to one device")
        if t.ndim == 2 and t.shape[1] == 1:
            t = t[:, 0]
        if t.ndim > 1 or (t.ndim == 1 and like.ndim >= 1 and t.shape[0] not in (1, like.shape[0])):
            raise ValueError(f"{name} must be a scalar or have shape ({like.shape[0]},), got {tuple(t.shape)}")
        t = t.to(like.dtype)
    else:
        t = torch.tensor(scalar(name, t), dtype=like.dtype, device=like.device)
    if not _known(t):
        return t
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if (t < 0).any() or (t > 1).any():
        raise ValueError(f"{name} must lie in [0, 1] (t = 0 is data, t = 1 is noise), got values in "
                         f"[{t.min().item():.4g}, {t.max().item():.4g}]")
    return t


def labels(name: str, y: Any, n: int, num_classes: int, device: torch.device, *,
           allow_null: bool = False) -> Tensor:
    """Return labels as a long tensor of shape (n,), checked to lie in [0, num_classes) (or == num_classes, the
    null label, when ``allow_null``). ``y`` may be an int or a tensor of shape () or (n,)."""
    top = num_classes + 1 if allow_null else num_classes
    if isinstance(y, Tensor):
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer class labels, got dtype {y.dtype}")
        if y.device != device:
            raise ValueError(f"{name} is on device {y.device} but x is on {device}; move them to one device")
        if y.ndim == 0:
            y = y.expand(n)
        elif y.shape != (n,):
            raise ValueError(f"{name} must be an int or have shape ({n},), got shape {tuple(y.shape)}")
        y = y.long()
    elif isinstance(y, Integral) and not isinstance(y, bool):
        y = torch.full((n,), int(y), dtype=torch.long, device=device)
    else:
        raise TypeError(f"{name} must be an int or an integer tensor, got {type(y).__name__}")
    if y.numel() and _known(y) and (int(y.min()) < 0 or int(y.max()) >= top):
        what = f"0..{num_classes - 1}" + (f" or the null label {num_classes}" if allow_null else "")
        raise ValueError(f"{name} must be class labels in {what}, got values in [{int(y.min())}, {int(y.max())}]")
    return y


def same_device(**tensors: Tensor) -> None:
    """Check that all given tensors live on one device."""
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        raise ValueError("arguments must be on one device, got " + ", ".join(f"{k} on {v}" for k, v in devices.items()))


def same_dtype(**tensors: Tensor) -> None:
    """Check that all given tensors share one dtype."""
    dtypes = {name: t.dtype for name, t in tensors.items()}
    if len(set(dtypes.values())) > 1:
        raise TypeError("arguments must share one dtype, got " + ", ".join(f"{k} {v}" for k, v in dtypes.items()))


def function(name: str, f: Any) -> Callable[..., Any]:
    """Check that ``f`` is callable (a field ``fn(x, t)``, a score, a rule); return it."""
    if not callable(f):
        raise TypeError(f"{name} must be a function, got {type(f).__name__}")
    return cast(Callable[..., Any], f)


def path(name: str, p: Any) -> Path:
    """Check that ``p`` is a noising path (:class:`cfglab.paths.Path`); return it."""
    from .paths import Path

    if not isinstance(p, Path):
        raise TypeError(f"{name} must be a cfglab.paths.Path (VE, VP, Linear), got {type(p).__name__}")
    return p


def model(name: str, m: Any, *needs: str) -> Denoiser:
    """Check that ``m`` has what the caller uses of a denoiser (attribute names in ``needs``); return it."""
    missing = [a for a in needs if not hasattr(m, a)]
    if missing:
        raise TypeError(f"{name} must be a denoiser such as cfglab.MLP (with {', '.join(needs)}), got "
                        f"{type(m).__name__} without {', '.join(missing)}")
    if "path" in needs:
        path(f"{name}.path", m.path)
    return cast(Denoiser, m)


def time_values(name: str, t: Any) -> Tensor:
    """Times of any shape (a float or a tensor), checked to be finite and in [0, 1]; returned as a tensor (a
    number becomes a tensor of the default dtype, a tensor is returned as it is)."""
    if not isinstance(t, Tensor):
        t = torch.tensor(scalar(name, t), dtype=torch.get_default_dtype())
    elif t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold real times, got dtype {t.dtype}")
    if _known(t) and t.numel() and (not torch.isfinite(t).all() or (t < 0).any() or (t > 1).any()):
        raise ValueError(f"{name} must be finite and lie in [0, 1] (t = 0 is data, t = 1 is noise)")
    return t


def tokens(name: str, x: Any, vocab: int, *, min_len: int = 1) -> Tensor:
    """Token sequences: an integer tensor of shape (n, L) with L >= ``min_len`` and values in 0..vocab-1."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids, got {type(x).__name__}")
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token ids, got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[1] < min_len:
        raise ValueError(f"{name} must have shape (n, L) with L >= {min_len}, got {tuple(x.shape)}")
    if x.numel() and _known(x) and (int(x.min()) < 0 or int(x.max()) >= vocab):
        raise ValueError(f"{name} must hold token ids in 0..{vocab - 1}, got values in "
                         f"[{int(x.min())}, {int(x.max())}]")
    return x.long()
