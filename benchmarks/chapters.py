"""Execution time of every page that runs code, top to bottom, as a learner runs it: a fresh kernel, no model cache.

Run: ``python benchmarks/chapters.py`` (every ``chapters/NN_*.ipynb`` and ``book/benchmarks.ipynb``) or
``python benchmarks/chapters.py chapters/06_cfg.ipynb`` (just print the times of the notebooks named). Each
notebook is executed with nbclient in its own folder with ``CFGLAB_CACHE`` pointed at an empty temporary folder,
so every model is trained. Records the wall seconds and the kernel's CPU seconds of each notebook and their totals,
and writes ``chapters.json`` (into ``--out``, by default ``benchmarks/results`` when every page ran). ``--quick``
runs a two-cell notebook instead, to check the machinery in seconds.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402

from benchmarks import _common  # noqa: E402

ROOT = _common.ROOT
TARGETS = {"chapter_seconds": 40, "book_seconds": 600}  # the project's budgets on two CPU cores (CONTRIBUTING.md)


def pages() -> list[Path]:
    """Every chapter notebook in order, then the benchmarks page."""
    found = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
    extra = ROOT / "book" / "benchmarks.ipynb"
    return found + ([extra] if extra.is_file() else [])


def run(path: Path, timeout: int) -> dict[str, Any]:
    """Execute one notebook in a fresh kernel with an empty model cache; wall and kernel CPU seconds."""
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as cache_dir:
        old = os.environ.get("CFGLAB_CACHE")
        os.environ["CFGLAB_CACHE"] = cache_dir
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        try:
            NotebookClient(nb, timeout=timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
        finally:
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the kernel, once it has exited
            if old is None:
                os.environ.pop("CFGLAB_CACHE", None)
            else:
                os.environ["CFGLAB_CACHE"] = old
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    try:
        name = str(path.relative_to(ROOT).with_suffix(""))
    except ValueError:
        name = path.stem
    return {"page": name, "wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2)}


def tiny_notebook(folder: Path) -> Path:
    """A two-cell notebook (import cfglab, one short sampler run) for ``--quick``."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import torch\nimport cfglab as cl"),
                nbformat.v4.new_code_cell("mix = cl.make('mixture')\n"
                                          "x = cl.ode(mix.score_fn(cl.Linear()), torch.randn(100, 2), cl.Linear(), 5)")]
    file = folder / "quick.ipynb"
    nbformat.write(nb, file)
    return file


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("notebooks", nargs="*", type=Path,
                    help="default: every chapters/NN_*.ipynb and book/benchmarks.ipynb")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = ap.parse_args()
    started = _common.provenance()
    with tempfile.TemporaryDirectory() as tmp:
        paths = [tiny_notebook(Path(tmp))] if args.quick else [p.resolve() for p in args.notebooks] or pages()
        rows = []
        for p in paths:
            row = run(p, args.timeout)
            rows.append(row)
            print(f"{row['page']:<32} wall {row['wall_seconds']:>6.1f} s   cpu {row['cpu_seconds']:>6.1f} s",
                  flush=True)
    total = {"wall_seconds": round(sum(r["wall_seconds"] for r in rows), 2),
             "cpu_seconds": round(sum(r["cpu_seconds"] for r in rows), 2)}
    print(f"{'total':<32} wall {total['wall_seconds']:>6.1f} s ({total['wall_seconds'] / 60:.1f} min)   "
          f"cpu {total['cpu_seconds']:>6.1f} s")
    if args.notebooks and args.out is None:
        return  # a partial run only prints
    file = _common.write(_common.output_folder(args), "chapters",
                         {"quick": args.quick, "targets": TARGETS, "pages": rows, "total": total}, started)
    print(f"wrote {file}")


if __name__ == "__main__":
    main()
