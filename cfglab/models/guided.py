"""A denoiser that takes the guidance scale as an input: one forward pass per step instead of CFG's two.

Meng et al. (2023, "On distillation of guided diffusion models", sec. 3.1, stage one) train a student
``x_eta(z_t, w)`` whose input includes the guidance strength, embedded with Fourier features. FLUX.1 [dev] ships such a
network: diffusers' ``FluxTransformer2DModel(guidance_embeds=True)`` embeds its ``guidance`` input with the sinusoidal
features of the timestep through a second MLP and *adds* it to the time embedding
(``CombinedTimestepGuidanceTextProjEmbeddings``). :class:`GuidedMLP` is the course's :class:`MLP` with that one
change: ``cond = time(t) + label(y) + scale(w)``, where ``scale`` is a :class:`TimeEmbedding` of ``w / w_scale``.

The scale is the course's (``w = 1`` the plain conditional prediction, diffusers' ``guidance_scale``). The same network
serves guidance-free training (Chen et al. 2025, chapter 14), which feeds it ``w = 1 / beta``.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor, nn

from .. import _checks
from ..paths import PREDICTIONS, Linear, Path
from .blocks import TimeEmbedding, _c_in, _prepare, _seeded, _Trunk
from .mlp import MLP


class GuidedMLP(nn.Module):
    """Conditional denoiser ``(x_t, t, y, w) -> prediction`` whose guidance scale ``w`` is an input.

    Args:
        dim: data dimension.
        num_classes: number of classes (labels 0..num_classes-1, ``null_label = num_classes``).
        path: the noising path the model is trained on.
        pred: what the output is: ``"eps"``, ``"x0"``, ``"score"`` or ``"velocity"``.
        width, depth: hidden width and number of residual blocks (those of :class:`MLP`).
        w_scale: the scale is embedded as ``w / w_scale`` (Fourier features of frequencies 1 .. 128 times pi), so
            scales in ``[0, w_scale]`` map to the unit interval, as t does (FLUX multiplies both by 1000).
        seed: seed of the parameter initialisation (the global RNG is left untouched).

    ``forward(x, t, y=None, guidance=1.0)``: ``guidance`` is a float or an (n,) tensor of scales, one per row.
    """

    def __init__(self, dim: int = 2, num_classes: int = 0, *, path: Path | None = None, pred: str = "velocity",
                 width: int = 128, depth: int = 3, w_scale: float = 10.0, seed: int = 0):
        super().__init__()
        width = _checks.count("width", width)
        self.dim = _checks.count("dim", dim)
        self.num_classes = _checks.count("num_classes", num_classes, minimum=0)
        self.path = _checks.path("path", path) if path is not None else Linear()
        self.pred = _checks.choice("pred", pred, PREDICTIONS)
        self.null_label = self.num_classes
        self.w_scale = _checks.scalar("w_scale", w_scale, positive=True)
        self.config = dict(kind="GuidedMLP", dim=self.dim, num_classes=self.num_classes, path=repr(self.path),
                           pred=self.pred, width=width, depth=depth, w_scale=self.w_scale, seed=seed)
        with _seeded(seed):
            self.time = TimeEmbedding(width)
            self.label = nn.Embedding(self.num_classes + 1, width)
            self.trunk = _Trunk(self.dim, width, _checks.count("depth", depth), self.dim)
            self.scale = TimeEmbedding(width)

    @classmethod
    def from_teacher(cls, teacher: MLP, *, w_scale: float = 10.0, seed: int = 0) -> GuidedMLP:
        """A student that starts as ``teacher``'s conditional prediction at every scale (Meng et al. initialise the
        student from the teacher): the time, label and trunk weights are copied and the last layer of the scale
        embedding is zero, so ``student(x, t, y, w) == teacher(x, t, y)`` for every w until it is trained."""
        if not isinstance(teacher, MLP):
            raise TypeError(f"teacher must be a cfglab.MLP, got {type(teacher).__name__}")
        width, depth = teacher.trunk.inp.out_features, len(teacher.trunk.blocks)
        student = cls(teacher.dim, teacher.num_classes, path=teacher.path, pred=teacher.pred, width=width,
                      depth=depth, w_scale=w_scale, seed=seed)
        own = student.state_dict()
        own.update({k: v.clone() for k, v in teacher.state_dict().items()})
        student.load_state_dict(own)
        last = cast(nn.Linear, student.scale.mlp[-1])
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        student.config = {**student.config, "init": "teacher"}
        return student.to(next(teacher.parameters()))

    def scales(self, guidance: Any, x: Tensor) -> Tensor:
        """``guidance`` (a float, a 0-d or an (n,) tensor) as an (n,) tensor on x's dtype and device."""
        n = x.shape[0]
        if isinstance(guidance, Tensor):
            if guidance.is_complex() or guidance.dtype == torch.bool:
                raise TypeError(f"guidance must hold real scales, got dtype {guidance.dtype}")
            if guidance.device != x.device:
                raise ValueError(f"guidance is on {guidance.device} but x is on {x.device}; move them to one device")
            if guidance.ndim > 1 or (guidance.ndim == 1 and guidance.shape[0] not in (1, n)):
                raise ValueError(f"guidance must be a number or have shape ({n},), got {tuple(guidance.shape)}")
            w = guidance.to(x.dtype).reshape(-1).expand(n)
            if w.device.type != "meta" and not bool(torch.isfinite(w).all()):
                raise ValueError("guidance contains NaN or infinite values")
            return w
        return torch.full((n,), _checks.scalar("guidance", guidance), dtype=x.dtype, device=x.device)

    def forward(self, x: Tensor, t: Any, y: Any = None, guidance: Any = 1.0) -> Tensor:
        """The prediction at (x, t) for labels y (None: the null label) at scale(s) ``guidance``, shape (n, dim)."""
        x, t = _prepare(self, x, t)
        y = self.null_label if y is None else y
        y = _checks.labels("y", y, x.shape[0], self.num_classes, x.device, allow_null=True)
        w = self.scales(guidance, x)
        cond = self.time(t) + self.label(y) + self.scale(w / self.w_scale)  # (n, width): three embeddings added
        return self.trunk(x * _c_in(self.path, x, t), cond)

    def predict(self, x: Tensor, t: Any, y: Any = None, guidance: Any = 1.0, *, kind: str = "score") -> Tensor:
        """The prediction at scale(s) ``guidance`` converted to ``kind`` (eps, x0, score or velocity) by its path."""
        _checks.choice("kind", kind, PREDICTIONS)
        return self.path.convert(self(x, t, y, guidance), x, t, self.pred, kind)
