"""Small networks for the toys: a conditional denoiser MLP and a noise-aware classifier.

A denoiser knows the path it was trained on and the one quantity it predicts (``pred``: eps, x0, score or
velocity); the path converts that prediction into the others. Labels run 0..num_classes-1 and the extra index
``num_classes`` is the null label, ``model.null_label``, used for label dropout and unconditional prediction.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from . import _checks
from .paths import PREDICTIONS, Linear, Path


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


def _prepare(model: MLP | Classifier, x: Tensor, t: Any) -> tuple[Tensor, Tensor]:
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


class MLP(nn.Module):
    """Conditional denoiser ``(x_t, t, y) -> prediction`` for points in ``dim`` dimensions.

    Args:
        dim: data dimension.
        num_classes: number of classes; 0 makes an unconditional model (only the null label exists).
        path: the noising path the model is trained on (the input is scaled by ``1/sqrt(alpha^2+sigma^2)``).
        pred: what the output is: ``"eps"``, ``"x0"``, ``"score"`` or ``"velocity"``.
        width, depth: hidden width and number of residual blocks.
        seed: seed of the parameter initialisation (the global RNG is left untouched).

    ``forward(x, t, y=None)`` takes x of shape (n, dim), t a float or (n,) tensor in [0, 1] and labels y in
    0..num_classes (``num_classes`` = ``null_label``; y=None means the null label for every row).
    """

    def __init__(self, dim: int = 2, num_classes: int = 0, *, path: Path | None = None, pred: str = "velocity",
                 width: int = 128, depth: int = 3, seed: int = 0):
        super().__init__()
        width = _checks.count("width", width)
        self.dim = _checks.count("dim", dim)
        self.num_classes = _checks.count("num_classes", num_classes, minimum=0)
        self.path = _checks.path("path", path) if path is not None else Linear()
        self.pred = _checks.choice("pred", pred, PREDICTIONS)
        self.null_label = self.num_classes
        self.config = dict(kind="MLP", dim=self.dim, num_classes=self.num_classes, path=repr(self.path),
                           pred=self.pred, width=width, depth=depth, seed=seed)
        with _seeded(seed):
            self.time = TimeEmbedding(width)
            self.label = nn.Embedding(self.num_classes + 1, width)
            self.trunk = _Trunk(self.dim, width, _checks.count("depth", depth), self.dim)

    def forward(self, x: Tensor, t: Any, y: Any = None) -> Tensor:
        """The prediction at (x, t) for labels y (None: the null label), shape (n, dim)."""
        x, t = _prepare(self, x, t)
        y = self.null_label if y is None else y
        y = _checks.labels("y", y, x.shape[0], self.num_classes, x.device, allow_null=True)
        cond = self.time(t) + self.label(y)
        return self.trunk(x * _c_in(self.path, x, t), cond)

    def predict(self, x: Tensor, t: Any, y: Any = None, *, kind: str = "score") -> Tensor:
        """The model's prediction converted to ``kind`` (eps, x0, score or velocity) by its path."""
        _checks.choice("kind", kind, PREDICTIONS)
        return self.path.convert(self(x, t, y), x, t, self.pred, kind)


class Classifier(nn.Module):
    """Noise-aware classifier ``(x_t, t) -> logits`` over ``num_classes`` (Dhariwal & Nichol 2021, sec. 4):
    trained on samples noised along ``path`` at all t, so that ``grad_x log p_t(y | x_t)`` is usable for
    classifier guidance. With t fixed at 0 it is an ordinary clean-data classifier."""

    def __init__(self, dim: int = 2, num_classes: int = 2, *, path: Path | None = None, width: int = 128,
                 depth: int = 2, seed: int = 0):
        super().__init__()
        width = _checks.count("width", width)
        self.dim = _checks.count("dim", dim)
        self.num_classes = _checks.count("num_classes", num_classes, minimum=2)
        self.path = _checks.path("path", path) if path is not None else Linear()
        self.config = dict(kind="Classifier", dim=self.dim, num_classes=self.num_classes, path=repr(self.path),
                           width=width, depth=depth, seed=seed)
        with _seeded(seed):
            self.time = TimeEmbedding(width)
            self.trunk = _Trunk(self.dim, width, _checks.count("depth", depth), self.num_classes)

    def forward(self, x: Tensor, t: Any) -> Tensor:
        """Logits over the classes at (x_t, t), shape (n, num_classes)."""
        x, t = _prepare(self, x, t)
        return self.trunk(x * _c_in(self.path, x, t), self.time(t))

    def log_prob_grad(self, x: Tensor, t: Any, y: Any) -> Tensor:
        """``grad_x log p_t(y | x)`` by autograd through the classifier (one forward and one backward pass);
        see :func:`cfglab.guidance.log_prob_grad`."""
        from .guidance import log_prob_grad

        return log_prob_grad(self, x, t, y)


# -- A tiny conditional UNet for 8x8 images (chapter 11) ------------------------------------------------------------


class _ResBlock(nn.Module):
    """``h <- skip(h) + conv(act(norm(conv(act(norm(h))) + emb))))``, the embedding projected to the channels and
    added per channel after the first convolution (the DDPM/ADM residual block, Ho et al. 2020, app. B)."""

    def __init__(self, c_in: int, c_out: int, emb: int):
        super().__init__()
        self.norm1, self.norm2 = nn.GroupNorm(8, c_in), nn.GroupNorm(8, c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.emb = nn.Linear(emb, c_out)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, h: Tensor, e: Tensor) -> Tensor:  # h (n, c_in, H, W), e (n, emb) -> (n, c_out, H, W)
        """One residual block."""
        r = self.conv1(nn.functional.silu(self.norm1(h)))
        r = r + self.emb(e)[:, :, None, None]
        r = self.conv2(nn.functional.silu(self.norm2(r)))
        return self.skip(h) + r


class UNet(nn.Module):
    """Conditional denoiser ``(x_t, t, y) -> prediction`` for small one-channel images, e.g. 8x8 digits.

    Two resolutions (``size`` and ``size/2``) with ``width`` and ``2*width`` channels: a residual block at each
    resolution on the way down, one in the middle, one on the way up after concatenating the skip connection
    (Ronneberger et al. 2015's U shape, with the residual blocks of Ho et al. 2020). The time and label embeddings
    are summed and added inside every block. Same conventions as :class:`MLP`: ``path=``, ``pred=``, ``seed=``,
    labels 0..num_classes-1 and ``null_label = num_classes``, the input scaled by ``1/sqrt(alpha^2 + sigma^2)``,
    and a ``config`` dict for the weights cache.

    ``forward(x, t, y=None)`` takes x of shape (n, channels, size, size) and returns the same shape.
    """

    def __init__(self, size: int = 8, num_classes: int = 0, *, channels: int = 1, path: Path | None = None,
                 pred: str = "velocity", width: int = 32, seed: int = 0):
        super().__init__()
        self.size = _checks.count("size", size, minimum=2)
        if self.size % 2:
            raise ValueError(f"size must be even (the UNet halves it once), got {size}")
        self.channels = _checks.count("channels", channels)
        self.num_classes = _checks.count("num_classes", num_classes, minimum=0)
        self.path = _checks.path("path", path) if path is not None else Linear()
        self.pred = _checks.choice("pred", pred, PREDICTIONS)
        self.null_label = self.num_classes
        width = _checks.count("width", width, minimum=8)
        if width % 8:
            raise ValueError(f"width must be a multiple of 8 (group norm with 8 groups), got {width}")
        self.config = dict(kind="UNet", size=self.size, channels=self.channels, num_classes=self.num_classes,
                           path=repr(self.path), pred=self.pred, width=width, seed=seed)
        emb = 2 * width
        with _seeded(seed):
            self.time = TimeEmbedding(emb)
            self.label = nn.Embedding(self.num_classes + 1, emb)
            self.inp = nn.Conv2d(self.channels, width, 3, padding=1)
            self.down1 = _ResBlock(width, width, emb)                      # size
            self.pool = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)  # size -> size/2
            self.down2 = _ResBlock(2 * width, 2 * width, emb)              # size/2
            self.mid = _ResBlock(2 * width, 2 * width, emb)
            self.unpool = nn.ConvTranspose2d(2 * width, width, 2, stride=2)  # size/2 -> size
            self.up = _ResBlock(2 * width, width, emb)                     # concat with the skip
            self.out = nn.Sequential(nn.GroupNorm(8, width), nn.SiLU(), nn.Conv2d(width, self.channels, 3,
                                                                                  padding=1))

    def _prepare(self, x: Tensor, t: Any) -> tuple[Tensor, Tensor]:
        x = _checks.tensor("x", x, ndim=4)
        want = (self.channels, self.size, self.size)
        if tuple(x.shape[1:]) != want:
            raise ValueError(f"x must have shape (n, {', '.join(map(str, want))}), got {tuple(x.shape)}")
        _check_matches_model(self, x)
        return x, _checks.times("t", t, x).expand(x.shape[0])

    def forward(self, x: Tensor, t: Any, y: Any = None) -> Tensor:
        """The prediction at (x, t) for labels y (None: the null label), the shape of x."""
        x, t = self._prepare(x, t)
        y = self.null_label if y is None else y
        y = _checks.labels("y", y, x.shape[0], self.num_classes, x.device, allow_null=True)
        e = self.time(t) + self.label(y)                       # (n, emb)
        h0 = self.inp(x * _c_in(self.path, x, t))              # (n, w, s, s)
        h1 = self.down1(h0, e)                                 # (n, w, s, s)
        h2 = self.down2(self.pool(h1), e)                      # (n, 2w, s/2, s/2)
        h2 = self.mid(h2, e)
        h = self.up(torch.cat([self.unpool(h2), h1], 1), e)    # (n, w, s, s)
        return self.out(h)

    def predict(self, x: Tensor, t: Any, y: Any = None, *, kind: str = "score") -> Tensor:
        """The model's prediction converted to ``kind`` (eps, x0, score or velocity) by its path."""
        _checks.choice("kind", kind, PREDICTIONS)
        return self.path.convert(self(x, t, y), x, t, self.pred, kind)
