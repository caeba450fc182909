"""Checks for the course's exercises: ``check_<name>(student_function)`` runs the student's code on hidden
random inputs, compares it with the exact answer, prints a verdict and returns it (truthy when passed).

Each chapter keeps its checks in a module ``chNN.py`` here; every public ``check_*`` of those modules is
re-exported, so a notebook writes ``from cfglab.exercises import check_langevin_step``.
"""

from __future__ import annotations

import importlib
import pkgutil

from ._core import ExerciseError, Verdict, check_function

__all__ = ["ExerciseError", "Verdict", "check_function"]

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name.startswith("ch"):
        _mod = importlib.import_module(f"{__name__}.{_info.name}")
        for _name in dir(_mod):
            if _name.startswith("check_"):
                globals()[_name] = getattr(_mod, _name)
                __all__.append(_name)
