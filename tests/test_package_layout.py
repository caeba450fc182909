"""The packages ``cfglab.guidance`` and ``cfglab.data`` re-export every public name of their submodules, so that
``cl.guidance.rescale`` and ``from cfglab.data import make`` keep working whichever file a name lives in, and each
of their files stays small enough to read in one sitting (STYLE: modules under ~250 lines)."""

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import cfglab

PACKAGES = ["cfglab.guidance", "cfglab.data"]


def submodules(package: str) -> list[str]:
    """The public submodules of a package (``cfglab.data._util`` is private and not listed)."""
    pkg = importlib.import_module(package)
    return [f"{package}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")]


def defined_names(module: str) -> dict[str, object]:
    """Public names bound at the top level of ``module``'s own source: functions, classes, constants (SCHEDULES,
    TOYS, COLOURS) and type aliases (Field, Rule, Pair); imported names are not its own."""
    mod = importlib.import_module(module)
    tree = ast.parse(inspect.getsource(mod))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return {name: getattr(mod, name) for name in sorted(names) if not name.startswith("_")}


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_of_a_submodule_is_re_exported(package):
    pkg = importlib.import_module(package)
    subs = submodules(package)
    assert len(subs) >= 3, subs
    for sub in subs:
        names = defined_names(sub)
        assert names, f"{sub} defines nothing public"
        for name, obj in names.items():
            assert name in pkg.__all__, f"{sub}.{name} is missing from {package}.__all__"
            assert getattr(pkg, name) is obj, f"{package}.{name} is not {sub}.{name}"


@pytest.mark.parametrize("package", PACKAGES)
def test_all_names_exist_once(package):
    pkg = importlib.import_module(package)
    assert len(pkg.__all__) == len(set(pkg.__all__))
    missing = [name for name in pkg.__all__ if not hasattr(pkg, name)]
    assert not missing, missing


def test_the_import_spellings_of_chapters_and_tests_still_work():
    from cfglab.data import TOYS, AttributeToy, GaussianMixture, TensorData, make, make_attributes
    from cfglab.guidance import SCHEDULES, autoguided, compose, guided, label_predictions, log_prob_grad, perp_neg

    assert isinstance(make("mixture"), GaussianMixture) and sorted(TOYS) == ["checkerboard", "mixture", "moons",
                                                                            "overlap", "rings"]
    assert isinstance(make_attributes(), AttributeToy) and TensorData is cfglab.TensorData
    assert guided is cfglab.guided is cfglab.guidance.guided
    assert cfglab.guidance.rescale is cfglab.guidance.taming.rescale
    assert cfglab.cfg is cfglab.guidance.rules.cfg
    assert {"constant", "linear", "cosine", "decaying"} == set(SCHEDULES)
    assert all(callable(f) for f in (autoguided, compose, label_predictions, log_prob_grad, perp_neg))


@pytest.mark.parametrize("package", PACKAGES)
def test_every_file_of_the_package_is_small(package):
    folder = Path(importlib.import_module(package).__file__).parent
    sizes = {p.name: len(p.read_text().splitlines()) for p in sorted(folder.glob("*.py"))}
    assert len(sizes) >= 4 and all(n <= 250 for n in sizes.values()), sizes
