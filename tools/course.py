"""The course's one setting for where it lives, and the setup cell generated from it.

The repository address is ``repository.url`` in ``_config.yml`` (Jupyter Book's launch buttons read it there). The
setup cell of every page, the Colab links of the chapters and of the student edition, and the install lines of the
README and of the student page are all made from it: ``python tools/course.py --sync`` rewrites the setup cells
(and ``tools/student_edition.py`` the student notebooks and their table), ``--check`` lists what disagrees, and
``tests/test_course.py`` fails while anything does. A fork changes one line of ``_config.yml`` and runs both tools.

The setup cell installs cfglab with pip when it is neither importable nor next door (a checkout); when that fails
(no network, a wrong address, a private fork) it stops with one sentence saying what failed and what to do, not a
traceback: the exception renders itself as that sentence in IPython (``_render_traceback_``).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import yaml  # type: ignore[import-untyped]  # PyYAML, installed with jupyter-book

ROOT = Path(__file__).resolve().parents[1]
SETUP_TAG = "setup"

SETUP_TEMPLATE = '''\
# Setup: use the local cfglab (repository checkout) or install it (Colab).
import importlib.util, pathlib, subprocess, sys
REPOSITORY = "{repository}"
if importlib.util.find_spec("cfglab") is None:
    root = pathlib.Path.cwd().parent
    if (root / "cfglab" / "__init__.py").exists():
        sys.path.insert(0, str(root))
    else:
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"git+{{REPOSITORY}}"],
                             capture_output=True, text=True)
        if pip.returncode != 0:
            class SetupError(Exception):
                def _render_traceback_(self):  # IPython shows this one line instead of a traceback
                    return [str(self)]
            why = (pip.stderr.strip().splitlines() or ["pip gave no reason"])[-1]
            raise SetupError(f"Could not install cfglab from {{REPOSITORY}} ({{why}}). Check the network and the "
                             f"address, or install it yourself: pip install git+{{REPOSITORY}}")
import matplotlib.pyplot as plt
import torch
import cfglab as cl
torch.manual_seed(0)  # belt and braces: every random call below also takes an explicit generator
torch.set_num_threads(1)  # toy tensors are tiny: one thread beats two, and avoids thrashing on a busy machine'''


def _config(root: Path = ROOT) -> dict:
    return yaml.safe_load((root / "_config.yml").read_text(encoding="utf8"))


def repository(root: Path = ROOT) -> str:
    """The repository address, ``repository.url`` of ``_config.yml``, e.g. ``https://github.com/cfglab/cfglab``."""
    url = str(_config(root)["repository"]["url"]).rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"_config.yml repository.url must be https://github.com/OWNER/NAME, got {url!r}")
    return url


def branch(root: Path = ROOT) -> str:
    """The branch the book's links point at (``repository.branch``, default main)."""
    return str(_config(root)["repository"].get("branch", "main"))


def colab_url(path: str, root: Path = ROOT) -> str:
    """The Colab address of a notebook of the repository, e.g. ``colab_url("student/01_langevin.ipynb")``."""
    owner_name = repository(root).removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{owner_name}/blob/{branch(root)}/{path}"


def setup_source(root: Path = ROOT) -> str:
    """The setup cell of every page, for this repository."""
    return SETUP_TEMPLATE.format(repository=repository(root))


def pages(root: Path = ROOT) -> list[Path]:
    """The notebooks that carry a setup cell: the chapters and the book's notebook pages."""
    return sorted((root / "chapters").glob("*.ipynb")) + sorted((root / "book").glob("*.ipynb"))


def stale(root: Path = ROOT, write: bool = False) -> list[str]:
    """The pages whose setup cell differs from :func:`setup_source` (rewritten in place when ``write``)."""
    want, out = setup_source(root), []
    for path in pages(root):
        nb = nbformat.read(path, as_version=4)
        cells = [c for c in nb.cells if SETUP_TAG in c.metadata.get("tags", [])]
        if len(cells) != 1:
            out.append(f"{path.relative_to(root)}: {len(cells)} cells tagged {SETUP_TAG!r}, expected 1")
            continue
        if cells[0].source != want:
            out.append(f"{path.relative_to(root)}: setup cell differs from tools/course.py")
            if write:
                cells[0].source = want
                nbformat.write(nb, path)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sync", action="store_true", help="rewrite every page's setup cell")
    args = ap.parse_args(argv)
    problems = stale(write=args.sync)
    for p in problems:
        print(("rewrote " if args.sync else "") + p)
    return 0 if args.sync or not problems else 1


if __name__ == "__main__":
    sys.exit(main())
