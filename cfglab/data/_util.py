"""Small helpers shared by the toys of :mod:`cfglab.data`: dtype checks, component selection, data hashes."""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import Tensor


def _float_dtype(dtype: torch.dtype | None) -> torch.dtype:
    dtype = dtype or torch.get_default_dtype()
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype}")
    return dtype


def _components(components: Any, K: int) -> Tensor:
    """Indices of the selected components, from a (K,) boolean mask or integer indices in 0..K-1."""
    idx = torch.as_tensor(components)
    if idx.dtype == torch.bool:
        if idx.shape != (K,):
            raise ValueError(f"components as a mask must have shape ({K},), got {tuple(idx.shape)}")
        idx = idx.nonzero().flatten()
    elif idx.is_floating_point() or idx.is_complex():
        raise TypeError(f"components must be a boolean mask or integer indices, got dtype {idx.dtype}")
    idx = idx.flatten().long()
    if idx.numel() == 0:
        raise ValueError("components selects no component")
    if int(idx.min()) < 0 or int(idx.max()) >= K:
        raise ValueError(f"components must be indices in 0..{K - 1}, got values in [{int(idx.min())}, "
                         f"{int(idx.max())}]")
    return idx


def _hash(*tensors: Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]

