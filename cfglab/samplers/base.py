"""What every sampler shares: the trajectory record, the prediction function converted by the path (counting its
evaluations), the grid, the progress bar and the final denoising step."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .. import _checks
from .._progress import bar as _bar
from ..paths import PREDICTIONS, Path


@dataclass
class Trajectory:
    """States visited by a sampler: ``xs[i]`` at time ``ts[i]`` (shape ``(len(ts), *x.shape)``). For Langevin the
    'times' are step indices; MALA also records the mean acceptance rate of each step in ``accept``."""

    xs: Tensor
    ts: Tensor
    accept: Tensor | None = None


def _start(x: Any) -> Tensor:
    return _checks.tensor("x", x, min_ndim=2)


def _evaluate(fn: Callable[..., Tensor], x: Tensor, *args: Any, name: str = "fn") -> Tensor:
    out = fn(x, *args)
    if not isinstance(out, Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"{name} must return a tensor shaped like x {tuple(x.shape)}, got {got}")
    if out.device != x.device:
        raise ValueError(f"{name} returned a tensor on {out.device} for x on {x.device}; keep them on one device")
    return out


def _finite(x: Tensor, where: str) -> None:
    if x.device.type != "meta" and not torch.isfinite(x).all():
        raise FloatingPointError(f"sampling diverged: non-finite values {where}. Use a smaller step or scale, "
                                 "or more steps")


class _Field:
    """fn evaluated at a grid time and converted by the path (counts evaluations for NFE reports)."""

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor], path: Path, pred: str):
        _checks.function("fn", fn)
        self.fn, self.path, self.pred = fn, path, _checks.choice("pred", pred, PREDICTIONS)
        self.nfe = 0

    def __call__(self, x: Tensor, t: Tensor, kind: str) -> Tensor:
        tt = t.to(dtype=x.dtype, device=x.device).expand(x.shape[0])
        self.nfe += 1
        return self.path.convert(_evaluate(self.fn, x, tt), x, tt, self.pred, kind)


def _progress(steps: int | Tensor, desc: str) -> Iterator[Any]:
    """Iterate over ``range(steps)`` (or a tensor of times); once the loop has run for ``PROGRESS_DELAY`` seconds,
    show a notebook-aware progress bar for the rest. The bar is created only then: short samplers print nothing and
    leave nothing behind in an executed notebook (a long one leaves a one-line summary, see :mod:`cfglab._progress`)."""
    items = range(steps) if isinstance(steps, int) else steps
    delay = sys.modules[__package__].PROGRESS_DELAY  # read at each call: tests and users may change it
    start = time.monotonic()
    it = iter(enumerate(items))
    for i, item in it:
        if time.monotonic() - start >= delay:
            with _bar(len(items), desc, initial=i) as bar:
                yield item
                bar.update()
                for _, rest in it:
                    yield rest
                    bar.update()
            return
        yield item


def _grid(path: Path, steps: int, x: Tensor, t_max: float | None, t_min: float | None,
          spacing: str | Tensor | None) -> Tensor:
    """The sampling grid; ``spacing=None`` is the path's default (``path.spacing``)."""
    if not isinstance(path, Path):
        raise TypeError(f"path must be a cfglab.paths.Path (VE, VP, Linear), got {type(path).__name__}")
    return path.timesteps(steps, t_max=t_max, t_min=t_min, spacing=spacing, device=x.device).to(x.dtype)


def _finish(to_x0: Callable[[Tensor, Tensor], Tensor], x: Tensor, ts: Tensor, xs: list[Tensor], denoise: bool,
            return_trajectory: bool, path: Path) -> Tensor | tuple[Tensor, Trajectory]:
    """Optionally replace x by its clean estimate ``to_x0(x, t_min)``; return x, with the trajectory if asked. A grid
    that ends where ``sigma = 0`` (diffusers' final timestep, t = 0) has already reached the data: nothing to
    denoise, and no evaluation is spent."""
    end = ts[-1]
    if denoise and end.device.type != "meta" and bool(path(end).sigma == 0):
        denoise = False
    if denoise:
        x = to_x0(x, ts[-1])
        _finite(x, "in the final denoising step")
        xs.append(x)
        ts = torch.cat([ts, ts.new_zeros(1)])
    if return_trajectory:
        return x, Trajectory(torch.stack(xs), ts)
    return x
