"""Optional packages a page needs, installed when missing, with one sentence instead of a traceback when that fails.

cfglab itself needs only torch, numpy, matplotlib and tqdm. A few pages need more: chapter 19 drives diffusers'
schedulers and guiders. Colab ships diffusers; a learner's laptop or a fresh virtual environment may not, or may
have a release older than the page needs. :func:`require` checks the installed version against a lower bound and
runs ``pip install`` in the kernel's own Python only when the check fails, so a page stays one click away on every
machine.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from importlib import metadata

__all__ = ["SetupError", "require"]

_REQUIREMENT = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:>=\s*([0-9]+(?:\.[0-9]+)*))?\s*")


class SetupError(RuntimeError):
    """An optional package could not be installed. IPython shows the message alone, as one sentence."""

    def _render_traceback_(self) -> list[str]:  # IPython's hook: these lines replace the traceback
        return [str(self)]


def _release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string: ``"0.35.1"`` -> (0, 35, 1), ``"2.1.2+cu121"`` -> (2, 1, 2)."""
    parts = []
    for piece in version.split("+")[0].split("."):
        digits = re.match(r"[0-9]+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _satisfies(version: str, minimum: str | None) -> bool:
    """Whether an installed ``version`` meets the lower bound ``minimum`` (None: any version)."""
    return minimum is None or _release(version) >= _release(minimum)


def require(requirement: str, *, install: bool = True) -> str:
    """Make the package of ``requirement`` (``"name"`` or ``"name>=X.Y"``) importable at that version or later.

    When it is installed at a version that satisfies the bound, nothing runs. Otherwise ``pip install
    "<requirement>"`` runs in this interpreter (the notebook's kernel). Returns the installed version. Raises
    :class:`SetupError`, naming the requirement and pip's last line, when pip fails (no network, no such
    release); ``ValueError`` for a requirement that is not ``name`` or ``name>=version``.

    ``install=False`` only checks: for a package the kernel has already imported (torch), which an upgrade would
    not replace until a restart, the error says what to upgrade instead.
    """
    if not isinstance(requirement, str):
        raise TypeError(f"requirement must be a string like 'diffusers>=0.35', got {type(requirement).__name__}")
    match = _REQUIREMENT.fullmatch(requirement)
    if match is None:
        raise ValueError(f"requirement must be 'name' or 'name>=version' (e.g. 'diffusers>=0.35'), "
                         f"got {requirement!r}")
    name, minimum = match.group(1), match.group(2)
    have = _installed(name)
    if have is not None and _satisfies(have, minimum):
        return have
    spec = name if minimum is None else f"{name}>={minimum}"
    found = f" (found {have})" if have else ""
    if not install:
        raise SetupError(f"This page needs {spec}{found}. Upgrade it: pip install \"{spec}\", then restart the "
                         f"kernel")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", spec], capture_output=True, text=True)
    if pip.returncode != 0:
        why = (pip.stderr.strip().splitlines() or ["pip gave no reason"])[-1]
        raise SetupError(f"This page needs {spec}{found}, and pip could not install it ({why}). Check the network, "
                         f"or install it yourself: pip install \"{spec}\"")
    importlib.invalidate_caches()
    now = _installed(name)
    if now is None or not _satisfies(now, minimum):
        raise SetupError(f"pip reported success, but {spec} is still not installed (found {now}). Install it "
                         f"yourself: pip install \"{spec}\", then restart the kernel")
    return now
