"""Run every chapter in an environment that is not the course's own, the way a learner outside the repository runs it.

``make test-compat`` builds ``.venv-compat`` from ``requirements-compat.txt`` (the oldest numpy, matplotlib,
scikit-learn and tqdm that ``pyproject.toml`` claims, Colab's long-lived ipywidgets 7.7, and a torch other than the
pinned one), installs cfglab into it the way the setup cell does (``pip install git+<address>``, here the local
clone), and runs this script with that environment's Python. Each chapter is copied into a temporary folder outside
the repository (so its setup cell finds the installed cfglab, not the checkout) and executed top to bottom in a
fresh kernel with an empty model cache and ``CFGLAB_EXERCISES=strict``. A chapter that stops at its own version
check (``cfglab.require``: chapter 19's diffusers needs torch >= 2.6) is reported as NEED, not as a failure. The
versions, and each chapter's result and time, are printed and written to ``--out`` (default ``_build/compat.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("torch", "numpy", "matplotlib", "ipywidgets", "tqdm", "scikit-learn", "ipykernel", "nbclient", "cfglab")


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def run_chapter(path: Path, work: Path, timeout: int) -> dict[str, object]:
    """Execute one chapter from ``work`` (outside the repository); its result, wall and CPU seconds."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    target = work / path.name
    shutil.copy(path, target)
    nb = nbformat.read(target, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(work)}})
    t0, c0 = time.perf_counter(), os.times()
    error, ename = None, None
    try:
        client.execute()
    except CellExecutionError as err:
        error, ename = str(err).strip().splitlines()[-1][:300], err.ename
    except Exception as err:  # a kernel that died, a timeout
        error = f"{type(err).__name__}: {err}"[:300]
    c1 = os.times()
    where = [c.source.splitlines()[0][:80] for c in nb.cells if c.cell_type == "code"
             and any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    # a page that stops at its own requirement check (cfglab.require) says in one sentence what this environment
    # lacks: reported as "needs", not as a failure
    needs = ename == "SetupError"
    return {"chapter": path.name, "ok": error is None, "needs": needs, "error": error,
            "failed_cell": where[0] if where else None,
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "cpu_seconds": round((c1.children_user + c1.children_system) - (c0.children_user + c0.children_system), 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("chapters", nargs="*", type=Path, help="default: every chapters/*.ipynb")
    ap.add_argument("--out", type=Path, default=ROOT / "_build" / "compat.json")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = ap.parse_args()
    chapters = args.chapters or sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
    vers = versions()
    print("environment: " + ", ".join(f"{k} {v}" for k, v in vers.items()), flush=True)
    import cfglab

    if Path(cfglab.__file__).resolve().is_relative_to(ROOT):
        print(f"cfglab is imported from the checkout ({cfglab.__file__}), not installed: run `make test-compat`")
        return 2
    results = []
    with tempfile.TemporaryDirectory(prefix="cfglab-compat-") as tmp:
        work, cache = Path(tmp) / "content", Path(tmp) / "cache"
        work.mkdir()
        os.environ.update({"CFGLAB_CACHE": str(cache), "CFGLAB_EXERCISES": "strict", "OMP_NUM_THREADS": "1"})
        for path in chapters:
            r = run_chapter(path, work, args.timeout)
            results.append(r)
            status = "ok  " if r["ok"] else "NEED" if r["needs"] else "FAIL"
            print(f"{status} {r['chapter']:<34} {r['wall_seconds']:6.1f} s wall "
                  f"{r['cpu_seconds']:6.1f} s CPU" + (f"  {r['failed_cell']!r}: {r['error']}" if not r["ok"] else ""),
                  flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"versions": vers, "python_executable": sys.executable, "chapters": results},
                                   indent=2) + "\n")
    needing = [r["chapter"] for r in results if r["needs"]]
    print(f"{sum(r['ok'] for r in results)} of {len(results)} chapters ran"
          + (f"; {', '.join(needing)} stopped at a version check" if needing else "") + f"; wrote {args.out}")
    return 0 if all(r["ok"] or r["needs"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
