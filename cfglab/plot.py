"""Matplotlib helpers: each takes an ``Axes`` first, draws on it and returns it; none calls ``plt.show()``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch
from matplotlib.axes import Axes
from torch import Tensor

from . import _checks
from .samplers import Trajectory

CLASS_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def _np(x: Tensor) -> Any:
    return x.detach().cpu().double().numpy()


def _axes(ax: Any) -> Axes:
    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes (fig, ax = plt.subplots()), got {type(ax).__name__}")
    return ax


def _points(name: str, x: Any, ndim: int = 2) -> Tensor:
    """2D points (..., 2) for drawing; an empty set and NaN are allowed (matplotlib draws nothing for them)."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor, got "
                        + (f"dtype {x.dtype}" if isinstance(x, Tensor) else type(x).__name__))
    if x.ndim != ndim or x.shape[-1] != 2:
        raise ValueError(f"{name} must have {ndim} dimensions and last dimension 2, got shape {tuple(x.shape)}")
    return x


def scatter(ax: Axes, x: Tensor, y: Tensor | None = None, *, names: Sequence[str] | None = None, s: float = 3,
            alpha: float = 0.6, **kwargs: Any) -> Axes:
    """Scatter 2D points, coloured by class when labels ``y`` are given (legend from ``names``)."""
    _axes(ax)
    pts = _points("x", x)
    if y is not None:
        top = len(names) if names is not None else sys.maxsize  # without names, any label >= 0 is drawn
        y = _checks.labels("y", y, pts.shape[0], top, pts.device)
    x = _np(pts)
    if y is None:
        ax.scatter(x[:, 0], x[:, 1], s=s, alpha=alpha, **kwargs)
    else:
        yy = y.detach().cpu().numpy()
        for k in sorted(set(yy.tolist())):
            m = yy == k
            label = names[k] if names is not None else str(k)
            ax.scatter(x[m, 0], x[m, 1], s=s, alpha=alpha, color=CLASS_COLORS[k % len(CLASS_COLORS)],
                       label=label, **kwargs)
        ax.legend(markerscale=3, fontsize="small", loc="upper right")
    ax.set_aspect("equal")
    return ax


def grid(lim: float = 3.0, n: int = 200, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor, Tensor]:
    """A square grid on [-lim, lim]^2: returns (points (n*n, 2), X (n, n), Y (n, n))."""
    lim, n = _checks.scalar("lim", lim, positive=True), _checks.count("n", n, minimum=2)
    u = torch.linspace(-lim, lim, n, dtype=dtype)
    X, Y = torch.meshgrid(u, u, indexing="xy")
    return torch.stack([X.flatten(), Y.flatten()], 1), X, Y


def density(ax: Axes, log_prob: Callable[[Tensor], Tensor], *, lim: float = 3.0, n: int = 200,
            cmap: str = "Greys", levels: int = 20, **kwargs: Any) -> Axes:
    """Filled contours of ``exp(log_prob(points))`` on a grid, e.g. ``lambda x: mix.log_prob(x)``."""
    _axes(ax)
    _checks.function("log_prob", log_prob)
    pts, X, Y = grid(lim, n)
    with torch.no_grad():
        lp = log_prob(pts)
    if not isinstance(lp, Tensor) or lp.shape != (n * n,):
        got = tuple(lp.shape) if isinstance(lp, Tensor) else type(lp).__name__
        raise ValueError(f"log_prob must return one value per point, shape ({n * n},), got {got}")
    Z = torch.exp(lp).reshape(n, n)
    ax.contourf(_np(X), _np(Y), _np(Z), levels=levels, cmap=cmap, **kwargs)
    ax.set_aspect("equal")
    return ax


def vector_field(ax: Axes, fn: Callable[[Tensor], Tensor], *, lim: float = 3.0, n: int = 20,
                 normalize: bool = False, color: str = "k", **kwargs: Any) -> Axes:
    """Quiver plot of a field ``fn(points) -> (m, 2)`` on an n x n grid (e.g. a score or velocity at fixed t)."""
    _axes(ax)
    _checks.function("fn", fn)
    pts, X, Y = grid(lim, n)
    with torch.no_grad():
        out = fn(pts)
    if not isinstance(out, Tensor) or out.shape != pts.shape:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"fn must return one 2D vector per point, shape {tuple(pts.shape)}, got {got}")
    V = out.double()
    if normalize:
        V = V / V.norm(dim=1, keepdim=True).clamp_min(1e-12)
    ax.quiver(_np(X), _np(Y), _np(V[:, 0].reshape(n, n)), _np(V[:, 1].reshape(n, n)), color=color, **kwargs)
    ax.set_aspect("equal")
    return ax


def trajectories(ax: Axes, traj: Trajectory | Tensor, *, count: int = 50, color: str | None = None,
                 lw: float = 0.6, alpha: float = 0.5, ends: bool = True, **kwargs: Any) -> Axes:
    """Draw the paths of the first ``count`` samples of a trajectory (states (T, n, 2)); ends marked by dots."""
    _axes(ax)
    count = _checks.count("count", count)
    states = _points("traj", traj.xs if isinstance(traj, Trajectory) else traj, ndim=3)
    xs = _np(states)[:, :count]
    for i in range(xs.shape[1]):
        ax.plot(xs[:, i, 0], xs[:, i, 1], lw=lw, alpha=alpha, color=color or "C0", **kwargs)
    if ends:
        ax.scatter(xs[0, :, 0], xs[0, :, 1], s=6, color="0.5", zorder=3)
        ax.scatter(xs[-1, :, 0], xs[-1, :, 1], s=8, color=color or "C3", zorder=3)
    ax.set_aspect("equal")
    return ax
