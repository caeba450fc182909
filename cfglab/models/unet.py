"""A tiny conditional UNet for 8x8 images (chapter 11)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .. import _checks
from ..paths import PREDICTIONS, Linear, Path
from .blocks import TimeEmbedding, _c_in, _check_matches_model, _seeded


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
