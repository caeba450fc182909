"""Sphinx extension of the cfglab book: cross-references to a name that cfglab re-exports resolve to the place
where the object is documented.

The API page documents each object once, in the package that exposes it (``cfglab.samplers.ode``), but docstrings
also name the short spellings that users type (``cfglab.ode``, ``cfglab.GaussianMixture.tempered``). Both are the
same Python object, so a reference that the Python domain cannot find is imported (as written, then inside the
module and class of the docstring), and if it is one of the documented objects the reference is resolved to that
object's entry. A bare name that is neither (``ClaimError`` in a summary table of another module) resolves when
exactly one documented cfglab object has that last component. Anything else stays unresolved, and ``--nitpick``
reports it. It also turns the ``nitpick_ignore`` entries of ``_config.yml`` (YAML lists) into the tuples Sphinx
compares with.
"""

from __future__ import annotations

import importlib
from typing import Any


def _load(name: str) -> Any:
    """The object a dotted name refers to (a module, or attributes of one), or None."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _documented(env: Any) -> dict[int, tuple[str, str]]:
    """id(object) -> (documented full name, object type) for every object of the Python domain."""
    cache = getattr(env, "_cfglab_documented", None)
    if cache is None:
        cache = {}
        for name, entry in env.get_domain("py").objects.items():
            obj = _load(name)
            if obj is not None and not isinstance(obj, (str, int, float, tuple, bool)):
                cache.setdefault(id(obj), (name, entry.objtype))
        env._cfglab_documented = cache
    return cache


def _missing_reference(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip(".~")
    module, cls = node.get("py:module"), node.get("py:class")
    candidates = [target] + ([f"{module}.{cls}.{target}"] if module and cls else []) + (
        [f"{module}.{target}"] if module else [])
    documented = _documented(env)
    found = None
    for name in candidates:
        obj = _load(name) if name.startswith("cfglab") else None
        found = documented.get(id(obj)) if obj is not None else None
        if found:
            break
    if found is None and "." not in target:
        same = {full for full, _ in documented.values() if full.startswith("cfglab") and full.endswith("." + target)}
        found = (same.pop(), "") if len(same) == 1 else None
    if found is None:
        return None
    return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, "obj", found[0], node, contnode)


def _reset(app: Any, env: Any, *args: Any) -> None:
    env._cfglab_documented = None


def _tuples(app: Any, config: Any) -> None:
    """_config.yml can only write ``nitpick_ignore`` entries as lists; Sphinx looks up (type, target) tuples."""
    config.nitpick_ignore = [tuple(entry) for entry in config.nitpick_ignore]


def setup(app: Any) -> dict[str, Any]:
    app.connect("config-inited", _tuples)
    app.connect("missing-reference", _missing_reference)
    app.connect("env-updated", _reset)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
