"""Run every benchmark, each in its own process, and write ``benchmarks/results/<name>.json``.

    python benchmarks/run.py                      # everything (the tutorial recipe alone takes long: see below)
    python benchmarks/run.py --only samplers core # some of them
    python benchmarks/run.py --quick              # smoke sizes, into a new temporary folder (printed)

Benchmarks, in the order they run: ``samplers`` (sampler error against closed forms), ``core`` (training
steps/s, cost of a guided sampler step), ``recipes`` (time to quality, course vs tutorial recipe; pass
``--max-seconds`` to cap each recipe's training), ``attention`` (chapter 17's attention denoiser against chapter
11's UNet on digits) and ``chapters`` (every notebook of the book, top to bottom, last
because the benchmarks page it runs reads the other results). Each process gets one torch thread
(``OMP_NUM_THREADS=1``; ``core`` also measures 2 threads) and the model cache off; each JSON records the date,
commit, machine and threads. ``--quick`` never writes into ``benchmarks/results``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BENCHMARKS = ("samplers", "core", "recipes", "attention", "chapters")


def command(name: str, out: Path, quick: bool, max_seconds: float | None, datasets: list[str] | None) -> list[str]:
    """The command line of one benchmark script."""
    cmd = [sys.executable, str(HERE / f"{name}.py"), "--out", str(out)] + (["--quick"] if quick else [])
    if name == "recipes":
        cmd += ["--max-seconds", str(max_seconds)] if max_seconds is not None else []
        cmd += ["--datasets", *datasets] if datasets else []
    return cmd


def run(names: list[str], out: Path, quick: bool = False, max_seconds: float | None = None,
        datasets: list[str] | None = None) -> dict[str, dict[str, object]]:
    """Run the named benchmarks one after another; returns, per name, its exit code, seconds and JSON file."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CFGLAB_CACHE": "off",
           "PYTHONUNBUFFERED": "1"}
    report: dict[str, dict[str, object]] = {}
    for name in names:
        print(f"=== {name}", flush=True)
        t0 = time.perf_counter()
        code = subprocess.run(command(name, out, quick, max_seconds, datasets), env=env, cwd=HERE.parent).returncode
        file = out / f"{name}.json"
        ok = code == 0 and file.is_file() and json.loads(file.read_text()).get("benchmark") == name
        report[name] = {"exit_code": code, "seconds": round(time.perf_counter() - t0, 1), "ok": ok,
                        "file": str(file)}
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke sizes, written to a temporary folder")
    ap.add_argument("--only", nargs="+", choices=BENCHMARKS, default=None, metavar="NAME",
                    help=f"run only these benchmarks ({', '.join(BENCHMARKS)})")
    ap.add_argument("--out", type=Path, default=None,
                    help="results folder (default benchmarks/results; a new temporary folder with --quick)")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="recipes: cap on each recipe's training wall seconds (default: the full recipes)")
    ap.add_argument("--datasets", nargs="+", default=None, help="recipes: toys to train on (default: moons)")
    args = ap.parse_args()
    if args.quick and args.out is not None and args.out.resolve() == RESULTS.resolve():
        ap.error("--quick must not write into benchmarks/results")
    out = args.out or (Path(tempfile.mkdtemp(prefix="cfglab-bench-")) if args.quick else RESULTS)
    names = [n for n in BENCHMARKS if args.only is None or n in args.only]
    report = run(names, out, args.quick, args.max_seconds, args.datasets)
    print("=== summary")
    for name, r in report.items():
        print(f"{name:<10} {'ok' if r['ok'] else 'FAILED (exit ' + str(r['exit_code']) + ')':<18} "
              f"{r['seconds']:>8.1f} s  {r['file']}")
    return 0 if all(r["ok"] for r in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
