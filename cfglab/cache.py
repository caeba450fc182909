"""A cache of trained weights keyed by configuration.

Files hold only tensors (``torch.save`` of a flat dict) and are read with ``torch.load(weights_only=True)``, so
loading never unpickles code. Writes go to a temporary file in the same folder and are moved into place with
``os.replace``, so an interrupted run never leaves a half-written entry. A corrupt or foreign file is reported
and ignored (the caller retrains and overwrites it); :func:`restore` also refuses an entry whose tensors do not
match the module's own names, shapes and dtypes, before touching the module.

The folder is ``$CFGLAB_CACHE`` if set, else ``~/.cache/cfglab``; ``CFGLAB_CACHE=off`` disables the cache.

Every key also carries a fingerprint of the package's own source (:func:`code_version`), so weights trained by an
earlier version of a model, a loss or a path are never loaded into a later one: a configuration names what to
train, the code says what that means.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import tempfile
import warnings
from pathlib import Path as FsPath
from typing import Any

import torch
from torch import Tensor, nn

FORMAT = 1  # bump when the meaning of cached weights changes


def directory() -> FsPath | None:
    """The cache folder, or None when caching is off."""
    env = os.environ.get("CFGLAB_CACHE")
    if env is not None and env.strip().lower() in ("off", "0", "false", "none", ""):
        return None
    return FsPath(env).expanduser() if env else FsPath.home() / ".cache" / "cfglab"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of the source of every module of cfglab that can change what training produces (all of the package
    but the exercise checkers), computed once per process."""
    root = FsPath(__file__).resolve().parent
    h = hashlib.sha256()
    for file in sorted(root.rglob("*.py")):
        rel = file.relative_to(root).as_posix()
        if rel.startswith("exercises/"):
            continue
        h.update(rel.encode() + b"\0" + file.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def key(description: dict[str, Any]) -> str:
    """A stable hex key for a JSON-serialisable description of what was trained and how, and for the version of
    the code that trains it (:func:`code_version`)."""
    if not isinstance(description, dict):
        raise TypeError(f"description must be a dict, got {type(description).__name__}")
    blob = json.dumps({"format": FORMAT, "code": code_version(), **description}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def load(k: str) -> dict[str, Tensor] | None:
    """The tensors stored under key ``k``, or None (missing, cache off, or unreadable: then with a warning)."""
    _check_key(k)
    folder = directory()
    if folder is None:
        return None
    file = folder / f"{k}.pt"
    if not file.exists():
        return None
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
        if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
            raise ValueError("not a flat dict of tensors")
        return obj
    except Exception as err:  # corrupt, truncated, foreign or pickled-code files all land here
        warnings.warn(f"cfglab cache: ignoring unreadable entry {file} ({type(err).__name__}: {err}); "
                      "it will be recomputed", RuntimeWarning, stacklevel=2)
        return None


def save(k: str, tensors: dict[str, Tensor]) -> FsPath | None:
    """Store ``tensors`` under key ``k`` atomically; returns the file, or None when caching is off."""
    _check_key(k)
    if not isinstance(tensors, dict) or not all(isinstance(n, str) and isinstance(t, Tensor)
                                                for n, t in tensors.items()):
        raise TypeError("tensors must be a dict from names to tensors")
    folder = directory()
    if folder is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{k}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save({name: t.detach().cpu() for name, t in tensors.items()}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, folder / f"{k}.pt")
    except BaseException:  # KeyboardInterrupt included: never leave the temporary file behind
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return folder / f"{k}.pt"


def restore(module: nn.Module, k: str) -> dict[str, Tensor] | None:
    """Load the entry ``k`` into ``module`` if it fits it exactly; return the entry's extra tensors (names that
    start with ``__``, e.g. ``"__losses__"``), or None when nothing was loaded: no entry, cache off, an unreadable
    file, or weights whose names, shapes or dtypes differ from the module's (then with a warning naming the
    file). The module is modified only when every tensor fits, so a refused entry leaves it as it was."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    stored, folder = load(k), directory()
    if stored is None or folder is None:
        return None
    extras = {n: v for n, v in stored.items() if n.startswith("__")}
    weights = {n: v for n, v in stored.items() if not n.startswith("__")}
    problem = _mismatch(module.state_dict(), weights)
    if problem:
        warnings.warn(f"cfglab cache: ignoring entry {folder / f'{k}.pt'}, which does not fit this "
                      f"{type(module).__name__} ({problem}); it will be recomputed", RuntimeWarning, stacklevel=2)
        return None
    module.load_state_dict(weights)
    return extras


def _mismatch(own: dict[str, Tensor], stored: dict[str, Tensor]) -> str:
    """Why ``stored`` cannot be loaded in place of ``own`` ('' if it can)."""
    missing, unexpected = sorted(set(own) - set(stored)), sorted(set(stored) - set(own))
    if missing or unexpected:
        return f"missing {missing[:3]}, unexpected {unexpected[:3]}"
    for name, t in own.items():
        if stored[name].shape != t.shape or stored[name].dtype != t.dtype:
            return (f"{name} is {tuple(stored[name].shape)} {stored[name].dtype}, the module has "
                    f"{tuple(t.shape)} {t.dtype}")
    return ""


def _check_key(k: Any) -> None:
    if not isinstance(k, str) or not re.fullmatch(r"[0-9a-f]{1,64}", k):
        raise ValueError(f"k must be a hexadecimal cache key from cfglab.cache.key, got {k!r}")
