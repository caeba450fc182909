"""What every network of the course shares: Fourier time features, the residual MLP trunk, seeded initialisation
that leaves the global RNG alone, EDM's input scaling, and the checks of (x, t) against a model."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from .. import _checks
from ..paths import Path


class TimeEmbedding(nn.Module):
    """Fourier features of t in [0, 1] (frequencies 1 .. 2^(n-1), times pi), then a small MLP."""

    freqs: Tensor

    def __init__(self, width: int, n_freqs: int = 8):
        super().__init__()
        width, n_freqs = _checks.count("width", width), _checks.count("n_freqs", n_freqs)
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(n_freqs, dtype=torch.float32))
        self.mlp = nn.Sequential(nn.Linear(2 * n_freqs + 1, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: Tensor) -> Tensor:  # t: (n,) -> (n, width)
        """Embed times t of shape (n,) into (n, width)."""
        _checks.tensor("t", t, ndim=1, finite=False)
        ang = t[:, None] * self.freqs.to(t)[None, :]
        return self.mlp(torch.cat([t[:, None], torch.sin(ang), torch.cos(ang)], dim=1))


class _Trunk(nn.Module):
    """Residual MLP on x conditioned additively on an embedding: ``h <- h + block(h + cond)``."""

    def __init__(self, dim: int, width: int, depth: int, out_dim: int):
        super().__init__()
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
            for _ in range(depth))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(width, out_dim))

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """The trunk on points x (n, dim) with a conditioning embedding (n, width)."""
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h + cond)
        return self.out(h)


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Initialise parameters from ``seed`` without touching the global RNG state (it is restored after)."""
    _checks.count("seed", seed, minimum=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _prepare(model: Any, x: Tensor, t: Any) -> tuple[Tensor, Tensor]:
    """Check (x, t) for a network on ``model.dim``-dimensional points; return t as an (n,) tensor."""
    x = _checks.tensor("x", x, ndim=2, last_dim=model.dim)
    _check_matches_model(model, x)
    return x, _checks.times("t", t, x).expand(x.shape[0])


def _check_matches_model(model: nn.Module, x: Tensor) -> None:
    """x must share the model parameters' dtype and device."""
    w = next(model.parameters())
    if x.dtype != w.dtype:
        raise TypeError(f"x has dtype {x.dtype} but the model's parameters are {w.dtype}; "
                        f"convert one of them (x.to({w.dtype}) or model.to({x.dtype}))")
    if x.device != w.device:
        raise ValueError(f"x is on {x.device} but the model is on {w.device}; move them to one device")


def _c_in(path: Path, x: Tensor, t: Tensor) -> Tensor:
    """Input scaling ``1/sqrt(alpha^2 + sigma^2)`` so that x_t has about unit variance for unit-scale data
    (EDM's c_in, Karras et al. 2022, table 1)."""
    c = path(t, x)
    return torch.rsqrt(c.alpha**2 + c.sigma**2)
