"""A tiny attention denoiser for 8x8 images whose forward pass can perturb itself (chapter 17).

A 3x3 convolution lifts the pixels to ``stem`` features, the image is cut into 2x2 patches (16 tokens on a 4x4
grid) that a few pre-norm transformer blocks (Vaswani et al. 2017) mix, conditioned on the time and the label by
adaptive layer norm (DiT, Peebles & Xie 2023, sec. 3.2), and a last 3x3 convolution on the tokens' patches and the
first convolution's features (a skip connection, as in a UNet) gives the prediction. One network then gives the
prediction of the guides that diffusers and ComfyUI build from a damaged copy of the model itself, through the
optional ``perturb=`` of :meth:`AttentionDenoiser.forward`:

* ``"identity"``: the attention map of the chosen blocks replaced by the identity, so every token's attention
  output is its own value (perturbed-attention guidance, Ahn et al. 2024: ``Att(Q, K, V) = V``);
* ``"blur"``: the queries of the chosen blocks blurred over the 4x4 grid by a Gaussian of std ``sigma`` patches
  (smoothed-energy guidance, Hong 2024, whose query blur equals a blur of the attention logits; ``sigma = inf``
  makes every query the mean query);
* ``"skip"``: the chosen blocks skipped, their output equal to their input (skip-layer guidance of SD3.5 and STG,
  Hyung et al. 2024; diffusers' ``AutoGuidance`` with ``dropout=1``).

``rows=`` applies the perturbation to some rows of the batch only, so the clean and the perturbed prediction come
from one batched pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .. import _checks
from ..paths import PREDICTIONS, Linear, Path
from .blocks import TimeEmbedding, _c_in, _check_matches_model, _seeded

PERTURBATIONS = ("identity", "blur", "skip")


@dataclass(frozen=True)
class Perturbation:
    """Which blocks to damage and how: ``kind`` is ``"identity"`` (PAG), ``"blur"`` (SEG, with the Gaussian's
    ``sigma`` in patches; 0 is no blur, ``math.inf`` the mean query) or ``"skip"`` (SLG, layer-skip autoguidance);
    ``blocks`` are block indices (0 = the first)."""

    kind: str
    blocks: tuple[int, ...]
    sigma: float = math.inf

    def __post_init__(self) -> None:
        _checks.choice("kind", self.kind, PERTURBATIONS)
        if isinstance(self.blocks, (int, bool)) or not isinstance(self.blocks, tuple) or not self.blocks:
            raise TypeError(f"blocks must be a non-empty tuple of block indices, got {self.blocks!r}")
        for b in self.blocks:
            _checks.count("blocks", b, minimum=0)
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, (int, float)) or math.isnan(self.sigma) \
                or self.sigma < 0:
            raise ValueError(f"sigma must be a number >= 0 (math.inf allowed), got {self.sigma!r}")
        if self.kind != "blur" and self.sigma != math.inf:
            raise ValueError(f"sigma applies to kind 'blur' only, got kind {self.kind!r} with sigma {self.sigma}")


def grid_blur(side: int, sigma: float, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """The (side^2, side^2) row-stochastic matrix of a Gaussian blur over a side x side grid of tokens (row-major):
    ``B[i, j] = exp(-|p_i - p_j|^2 / (2 sigma^2)) / sum_k exp(-|p_i - p_k|^2 / (2 sigma^2))``, p the grid
    positions. Each row is normalised over the grid itself (no padding), so ``sigma = 0`` is the identity and
    ``sigma = inf`` replaces every token by the mean token."""
    side = _checks.count("side", side)
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or math.isnan(sigma) or sigma < 0:
        raise ValueError(f"sigma must be a number >= 0 (math.inf allowed), got {sigma!r}")
    k = side * side
    if sigma == 0:
        return torch.eye(k, dtype=dtype)
    if sigma == math.inf:
        return torch.full((k, k), 1.0 / k, dtype=dtype)
    r = torch.arange(side, dtype=torch.float64)
    pos = torch.stack(torch.meshgrid(r, r, indexing="ij"), -1).reshape(k, 2)     # (k, 2) row-major positions
    w = torch.exp(-torch.cdist(pos, pos).pow(2) / (2 * sigma**2))
    return (w / w.sum(1, keepdim=True)).to(dtype)


def _rows(rows: Tensor | None, h: Tensor) -> Tensor:
    """The perturbed-rows mask broadcast for h (n, ...): (n, 1, ..., 1); None means every row."""
    if rows is None:
        return torch.ones((h.shape[0],) + (1,) * (h.ndim - 1), dtype=torch.bool, device=h.device)
    return rows.reshape(-1, *([1] * (h.ndim - 1)))


class _Attention(nn.Module):
    """Multi-head self-attention ``softmax(q k^T / sqrt(d_head)) v`` over the tokens, with the perturbations of
    PAG (the map replaced by the identity) and SEG (queries blurred by ``grid_blur``) on the selected rows."""

    def __init__(self, width: int, heads: int, side: int):
        super().__init__()
        self.heads, self.side = heads, side
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, h: Tensor, kind: str | None = None, sigma: float = math.inf,
                rows: Tensor | None = None) -> Tensor:  # h (n, L, width) -> (n, L, width)
        """Attention on tokens h; ``kind`` ("identity" or "blur") applies to the rows where ``rows`` is True."""
        n, L, d = h.shape
        q, k, v = (z.transpose(1, 2) for z in self.qkv(h).view(n, L, 3, self.heads, d // self.heads).unbind(2))
        if kind == "blur":                                                 # q, k, v: (n, heads, L, d_head)
            qb = torch.einsum("ij,nhjd->nhid", grid_blur(self.side, sigma, dtype=q.dtype).to(q.device), q)
            q = torch.where(_rows(rows, q), qb, q)
        o = nn.functional.scaled_dot_product_attention(q, k, v)          # softmax(q k^T / sqrt(d_head)) v
        if kind == "identity":
            o = torch.where(_rows(rows, o), v, o)                          # the identity map: each token's value
        return self.out(o.transpose(1, 2).reshape(n, L, d))


class _Block(nn.Module):
    """Pre-norm transformer block with adaptive layer norm: ``h <- h + g1 attn(mod1(LN(h)))``, then
    ``h <- h + g2 mlp(mod2(LN(h)))``, where ``mod(z) = z (1 + scale) + shift`` and the gates g come from the
    embedding, initialised at zero so that every block starts as the identity (DiT's adaLN-Zero, sec. 3.2)."""

    def __init__(self, width: int, heads: int, side: int, emb: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False)
        self.attn = _Attention(width, heads, side)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
        self.mod = nn.Linear(emb, 6 * width)
        nn.init.zeros_(self.mod.weight)
        nn.init.zeros_(self.mod.bias)

    def forward(self, h: Tensor, e: Tensor, kind: str | None = None, sigma: float = math.inf,
                rows: Tensor | None = None) -> Tensor:  # h (n, L, width), e (n, emb)
        """One block; ``kind`` and ``rows`` perturb its attention (see :class:`_Attention`)."""
        s1, b1, g1, s2, b2, g2 = self.mod(e)[:, None, :].chunk(6, dim=-1)       # (n, 1, width) each
        h = h + g1 * self.attn(self.norm1(h) * (1 + s1) + b1, kind, sigma, rows)
        return h + g2 * self.mlp(self.norm2(h) * (1 + s2) + b2)


class AttentionDenoiser(nn.Module):
    """Conditional denoiser ``(x_t, t, y) -> prediction`` for small one-channel images, built on self-attention.

    A 3x3 convolution to ``stem`` channels (none when ``stem=0``), then ``patch x patch`` patches become tokens
    (``(size / patch)^2`` of them, with a learned position embedding), ``depth`` transformer blocks of ``heads``
    heads of ``width`` features mix them, a linear head maps every token back to its patch, and a 3x3 convolution
    on these patches concatenated with the stem's features gives the output. Same conventions as
    :class:`cfglab.models.UNet`: ``path=``, ``pred=``, ``seed=``, labels 0..num_classes-1 and
    ``null_label = num_classes``, the input scaled by ``1/sqrt(alpha^2 + sigma^2)``, and a ``config`` dict for the
    weights cache.

    ``forward(x, t, y=None, *, perturb=None, rows=None)`` takes x of shape (n, channels, size, size) and returns the
    same shape; ``perturb`` (a :class:`Perturbation`) damages the network on the rows where the boolean (n,)
    tensor ``rows`` is True (all rows when ``rows`` is None).
    """

    def __init__(self, size: int = 8, num_classes: int = 0, *, channels: int = 1, patch: int = 2,
                 path: Path | None = None, pred: str = "velocity", width: int = 48, depth: int = 2,
                 heads: int = 4, stem: int = 16, seed: int = 0):
        super().__init__()
        self.size = _checks.count("size", size, minimum=1)
        self.patch = _checks.count("patch", patch)
        if self.size % self.patch:
            raise ValueError(f"size must be a multiple of patch, got size {size} and patch {patch}")
        self.channels = _checks.count("channels", channels)
        self.num_classes = _checks.count("num_classes", num_classes, minimum=0)
        self.path = _checks.path("path", path) if path is not None else Linear()
        self.pred = _checks.choice("pred", pred, PREDICTIONS)
        self.null_label = self.num_classes
        width, heads = _checks.count("width", width), _checks.count("heads", heads)
        if width % heads:
            raise ValueError(f"width must be a multiple of heads, got width {width} and heads {heads}")
        self.depth = _checks.count("depth", depth)
        self.side = self.size // self.patch
        self.stem = _checks.count("stem", stem, minimum=0)
        self.config = dict(kind="AttentionDenoiser", size=self.size, channels=self.channels, patch=self.patch,
                           num_classes=self.num_classes, path=repr(self.path), pred=self.pred, width=width,
                           depth=self.depth, heads=heads, stem=self.stem, seed=seed)
        feat = self.stem or self.channels                                   # channels of a pixel before patching
        tokens, pix = self.side**2, feat * self.patch**2
        with _seeded(seed):
            self.time = TimeEmbedding(width)
            self.label = nn.Embedding(self.num_classes + 1, width)
            self.conv_in = nn.Conv2d(self.channels, self.stem, 3, padding=1) if self.stem else None
            self.inp = nn.Linear(pix, width)
            self.pos = nn.Parameter(0.02 * torch.randn(1, tokens, width))
            self.blocks = nn.ModuleList(_Block(width, heads, self.side, width) for _ in range(self.depth))
            self.norm = nn.LayerNorm(width, elementwise_affine=False)
            self.mod = nn.Linear(width, 2 * width)
            self.out = nn.Linear(width, pix)
            self.conv_out = nn.Conv2d(2 * self.stem, self.channels, 3, padding=1) if self.stem else None
            last: nn.Conv2d | nn.Linear = self.conv_out if self.conv_out is not None else self.out
            for layer in (self.mod, last):                                   # adaLN-Zero: start at zero
                nn.init.zeros_(layer.weight)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)

    def _patches(self, x: Tensor) -> Tensor:  # (n, C, S, S) -> (n, L, C p p)
        n, c, s, p = x.shape[0], x.shape[1], self.side, self.patch
        return x.reshape(n, c, s, p, s, p).permute(0, 2, 4, 1, 3, 5).reshape(n, s * s, c * p * p)

    def _image(self, tok: Tensor) -> Tensor:  # (n, L, C p p) -> (n, C, S, S)
        n, s, p = tok.shape[0], self.side, self.patch
        c = tok.shape[-1] // (p * p)
        return tok.reshape(n, s, s, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(n, c, s * p, s * p)

    def _perturbation(self, perturb: Any, rows: Any, n: int,
                      device: torch.device) -> tuple[Perturbation | None, Tensor | None]:
        if perturb is None:
            if rows is not None:
                raise ValueError("rows selects the rows to perturb: pass perturb= too, or leave rows None")
            return None, None
        if not isinstance(perturb, Perturbation):
            raise TypeError(f"perturb must be a cfglab.models.Perturbation or None, got {type(perturb).__name__}")
        bad = [b for b in perturb.blocks if b >= self.depth]
        if bad:
            raise ValueError(f"perturb.blocks must be block indices in 0..{self.depth - 1}, got {bad}")
        if rows is None:
            return perturb, torch.ones(n, dtype=torch.bool, device=device)
        if not isinstance(rows, Tensor) or rows.dtype != torch.bool or rows.shape != (n,):
            got = f"{rows.dtype} {tuple(rows.shape)}" if isinstance(rows, Tensor) else type(rows).__name__
            raise ValueError(f"rows must be a boolean tensor of shape ({n},), got {got}")
        if rows.device != device:
            raise ValueError(f"rows is on {rows.device} but x is on {device}; move them to one device")
        return perturb, rows

    def forward(self, x: Tensor, t: Any, y: Any = None, *, perturb: Perturbation | None = None,
                rows: Tensor | None = None) -> Tensor:
        """The prediction at (x, t) for labels y (None: the null label), the shape of x; ``perturb`` damages the
        blocks it names on the rows selected by ``rows`` (None: every row)."""
        x = _checks.tensor("x", x, ndim=4)
        want = (self.channels, self.size, self.size)
        if tuple(x.shape[1:]) != want:
            raise ValueError(f"x must have shape (n, {', '.join(map(str, want))}), got {tuple(x.shape)}")
        _check_matches_model(self, x)
        n = x.shape[0]
        t = _checks.times("t", t, x).expand(n)
        y = _checks.labels("y", self.null_label if y is None else y, n, self.num_classes, x.device,
                           allow_null=True)
        p, mask = self._perturbation(perturb, rows, n, x.device)
        e = self.time(t) + self.label(y)                                   # (n, width)
        z = x * _c_in(self.path, x, t)
        if self.conv_in is not None:                                       # a 3x3 convolution on the pixels
            z = nn.functional.silu(self.conv_in(z))                        # (n, stem, S, S)
        h = self.inp(self._patches(z)) + self.pos                          # (n, L, width)
        for i, block in enumerate(self.blocks):
            if p is None or i not in p.blocks:
                h = block(h, e)
            elif p.kind == "skip" and mask is not None:                    # the block's output is its input
                keep = ~mask
                if keep.any():
                    h = h.clone()
                    h[keep] = block(h[keep], e[keep])
            else:
                h = block(h, e, p.kind, p.sigma, mask)
        s, b = self.mod(e)[:, None, :].chunk(2, dim=-1)
        out = self._image(self.out(self.norm(h) * (1 + s) + b))            # (n, stem or C, S, S)
        if self.conv_out is None:
            return out
        return self.conv_out(nn.functional.silu(torch.cat([out, z], 1)))  # with the stem's pixels (a U skip)

    def predict(self, x: Tensor, t: Any, y: Any = None, *, kind: str = "score",
                perturb: Perturbation | None = None, rows: Tensor | None = None) -> Tensor:
        """The model's prediction (perturbed as in :meth:`forward`) converted to ``kind`` by its path."""
        _checks.choice("kind", kind, PREDICTIONS)
        return self.path.convert(self(x, t, y, perturb=perturb, rows=rows), x, t, self.pred, kind)
