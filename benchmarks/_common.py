"""What every benchmark script shares: provenance of a run, the command line, timing and the JSON output."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
FORMAT = 2  # bump when the layout of the result files changes (the results page checks it)


def git_commit() -> dict[str, Any]:
    """The checkout's commit and whether the working tree differs from it (None when git is unavailable)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True,
                             timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                capture_output=True, text=True, check=True, timeout=30).stdout
        return {"commit": sha, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance() -> dict[str, Any]:
    """Date, commit, machine, library versions and torch threads of this run, for the results page."""
    import torch

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **git_commit(),
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(), "cuda_device": cuda,
                    "load_average_at_start": list(os.getloadavg())},
        "argv": sys.argv[1:],
    }


def parser(doc: str | None) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--quick`` (tiny smoke sizes) and ``--out`` (the results folder)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, to check that the script runs")
    ap.add_argument("--out", type=Path, default=None,
                    help=f"folder for the JSON result (default {RESULTS}; required with --quick)")
    return ap


def output_folder(args: argparse.Namespace) -> Path:
    """Where a run writes: ``--out``, else ``benchmarks/results``. A quick run must name its folder, so that
    smoke sizes never overwrite real results."""
    if args.quick and (args.out is None or args.out.resolve() == RESULTS.resolve()):
        raise SystemExit("--quick needs --out DIR outside benchmarks/results: smoke sizes must not overwrite results")
    return args.out if args.out is not None else RESULTS


def write(out: Path, name: str, result: dict[str, Any], started: dict[str, Any]) -> Path:
    """Write ``{"benchmark": name, "format": FORMAT, **started, "load_average_at_end": ..., **result}`` to
    ``out/name.json``; returns the file."""
    out.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "format": FORMAT, **started, "load_average_at_end": list(os.getloadavg()), **result}
    file = out / f"{name}.json"
    file.write_text(json.dumps(payload, indent=2) + "\n")
    return file


def interleaved_timings(fns: Mapping[str, Callable[[], Any]], repeats: int, inner: int,
                        sync: Callable[[], None] = lambda: None) -> dict[str, dict[str, float]]:
    """Median seconds per call of each function, wall clock and process CPU, over ``repeats`` rounds; each round
    times ``inner`` calls of every function in turn, so that a change in the machine's load hits all of them alike.
    One warm-up call each first; ``sync`` runs before every clock reading (``torch.cuda.synchronize`` on a GPU)."""
    if repeats < 1 or inner < 1:
        raise ValueError(f"repeats and inner must be >= 1, got {repeats} and {inner}")
    for fn in fns.values():
        fn()
    sync()
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(inner):
                fn()
            sync()
            wall[k].append((time.perf_counter() - w0) / inner)
            cpu[k].append((time.process_time() - c0) / inner)
    return {k: {"wall": statistics.median(wall[k]), "cpu": statistics.median(cpu[k])} for k in fns}
