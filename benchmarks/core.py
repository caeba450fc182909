"""Core speed benchmark: training steps per second, and the cost of one sampler step under each kind of guidance.

* Training: steps/s of the 2D model (``cl.MLP``, batch 512, the course's defaults) and of chapter 11's digit UNet
  (``cl.UNet`` width 16, batch 128) through ``cl.train_iter``, at 1 and 2 torch threads, and on CUDA when
  ``torch.cuda.is_available()``. Wall and CPU (this process) seconds are both recorded.
* Guidance: milliseconds per sampler step (Euler, ``cl.ode``) for n in {64, 256, 1024, 4096} points of
  ``cl.make("mixture")``-sized models: unguided (one conditional pass), classifier guidance
  (``cl.classifier_guided``: an unconditional pass plus a noise-aware classifier's forward and backward pass),
  classifier-free guidance as one batched pass over ``[x, x]`` (``cl.guided``) and as two separate passes, and
  the guidance interval of Kynkäänniemi et al. (2024), t in ``INTERVAL``, twice: ``cl.guided(..., interval=...)``,
  which skips the unconditional half where the scale is 1, and the same field as a rule
  (``cfglab.guidance.guided_rule`` with ``interval_scale``), which computes both predictions at every step. The
  rows each field sends through the network per point and step are counted too (``network_rows``).
  Networks are freshly initialised: the cost of a pass does not depend on the weights.

Run: ``python benchmarks/core.py [--quick --out DIR]``; writes ``core.json``. The model cache is off.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("CFGLAB_CACHE", "off")

import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

import cfglab as cl  # noqa: E402
from benchmarks import _common  # noqa: E402

THREADS = (1, 2)
GUIDANCE_N = (64, 256, 1024, 4096)
GUIDANCE_METHODS = ("unguided", "classifier guidance", "CFG one batched pass", "CFG two passes",
                    "CFG interval, skipping", "CFG interval as a rule")
SCALE = 3.0
INTERVAL = (0.3, 0.7)   # guided times of the interval methods: 5 of the 10 timed Euler steps of the uniform grid


def _sync(device: str) -> Callable[[], None]:
    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def training_speed(model: nn.Module, data: Any, config: cl.TrainConfig, warmup: int, device: str) -> dict[str, Any]:
    """Steps per second of ``cl.train_iter`` on ``device`` after ``warmup`` steps (wall and process CPU)."""
    model = model.to(device)
    it = cl.train_iter(model, data, config)
    for _ in range(warmup):
        next(it)
    sync = _sync(device)
    sync()
    steps = config.steps - warmup
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        next(it)
    sync()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {"device": device, "threads": torch.get_num_threads(), "steps": steps, "batch_size": config.batch_size,
            "wall_seconds": wall, "cpu_seconds": cpu, "steps_per_second": steps / wall,
            "parameters": sum(p.numel() for p in model.parameters())}


def trainings(steps_mlp: int, steps_unet: int, devices: list[str], warmup: int = 5) -> list[dict[str, Any]]:
    """Training speed of the 2D MLP and the digit UNet (timed after ``warmup`` steps), per device and (on CPU) per
    thread count."""
    mix, digits = cl.make("moons"), cl.digits.dataset("train")
    rows = []
    for device in devices:
        for threads in THREADS if device == "cpu" else (torch.get_num_threads(),):
            torch.set_num_threads(threads)
            try:
                mlp = training_speed(cl.MLP(2, mix.num_classes, path=cl.Linear(), pred="velocity"), mix,
                                     cl.TrainConfig(steps=steps_mlp + warmup), warmup, device)
                unet = training_speed(cl.UNet(8, num_classes=10, path=cl.Linear(), pred="velocity", width=16),
                                      digits, cl.TrainConfig(steps=steps_unet + warmup, batch_size=128, lr=2e-3),
                                      warmup, device)
            except Exception as err:  # an accelerator run that fails is reported, not hidden
                if device == "cpu":
                    raise
                rows.append({"device": device, "threads": threads, "error": repr(err)})
                continue
            rows += [{"model": "2D MLP", **mlp}, {"model": "digit UNet", **unet}]
            print(f"  {device} {threads} thread(s): MLP {mlp['steps_per_second']:.0f} steps/s, "
                  f"UNet {unet['steps_per_second']:.1f} steps/s", flush=True)
    torch.set_num_threads(1)
    return rows


def guidance_fields(device: str) -> tuple[dict[str, Callable[[Tensor, Tensor], Tensor]], dict[str, int]]:
    """The fields whose per-step cost is compared, for class 0 of a 3-class 2D toy at scale ``SCALE``."""
    k = cl.make("mixture").num_classes
    cond = cl.MLP(2, k, path=cl.Linear(), pred="velocity", seed=0).to(device).eval()
    uncond = cl.MLP(2, 0, path=cl.Linear(), pred="velocity", seed=0).to(device).eval()
    clf = cl.Classifier(2, k, path=cl.Linear(), seed=0).to(device).eval()

    def two_passes(x: Tensor, t: Tensor) -> Tensor:
        guided = cl.cfg(cond(x, t, 0), cond(x, t, cond.null_label), SCALE)
        return cond.path.convert(guided, x, t, cond.pred, "score")

    fields = {"unguided": cl.guided(cond, 0, 1.0),
              "classifier guidance": cl.classifier_guided(lambda x, t: uncond.predict(x, t), clf, 0, SCALE),
              "CFG one batched pass": cl.guided(cond, 0, SCALE),
              "CFG two passes": two_passes,
              "CFG interval, skipping": cl.guided(cond, 0, SCALE, interval=INTERVAL),
              "CFG interval as a rule": cl.guidance.guided_rule(
                  cl.guidance.predictions(cond, 0),
                  lambda c, u, x, t: u + cl.guidance.interval_scale(t, SCALE, *INTERVAL)[:, None].to(c) * (c - u),
                  cond.path, pred=cond.pred)}
    params = {"denoiser": sum(p.numel() for p in cond.parameters()),
              "classifier": sum(p.numel() for p in clf.parameters())}
    return fields, params


def network_rows(steps: int, n: int = 64) -> dict[str, float]:
    """Rows sent through the networks (denoisers and classifier, forward passes) per point and Euler step by each
    field of :func:`guidance_fields`, counted with forward hooks over ``steps`` steps of the uniform grid."""
    fields, _ = guidance_fields("cpu")
    out = {}
    for name, fn in fields.items():
        rows = [0]
        modules = {id(c.cell_contents): c.cell_contents for c in _closure_modules(fn)}
        hooks = [m.register_forward_hook(lambda mod, args, res: rows.__setitem__(0, rows[0] + args[0].shape[0]))
                 for m in modules.values()]
        x = cl.Linear().prior(n, 2, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            cl.ode(fn, x, cl.Linear(), steps, method="euler", denoise=False)
        for h in hooks:
            h.remove()
        out[name] = rows[0] / (n * steps)
    return out


def _closure_modules(fn: Any) -> list[Any]:
    """The top-level networks a field reaches through its closures (recursively through wrapped functions)."""
    found, todo, seen = [], [fn], set()
    while todo:
        f = todo.pop()
        for cell in getattr(f, "__closure__", None) or ():
            try:
                v = cell.cell_contents
            except ValueError:
                continue
            if id(v) in seen:
                continue
            seen.add(id(v))
            if isinstance(v, nn.Module):
                found.append(cell)
            elif callable(v):
                todo.append(v)
    return found


def guidance_cost(ns: tuple[int, ...], steps: int, repeats: int, devices: list[str], points: int = 2048
                  ) -> dict[str, Any]:
    """Milliseconds per Euler step of ``cl.ode`` for each field, n and thread count (or device), wall clock and
    process CPU: medians over ``repeats`` interleaved rounds of ``max(1, points // n)`` runs of ``steps`` steps."""
    rows = []
    params: dict[str, int] = {}
    for device in devices:
        for threads in THREADS if device == "cpu" else (torch.get_num_threads(),):
            torch.set_num_threads(threads)
            try:
                fields, params = guidance_fields(device)
                for n in ns:
                    x = cl.Linear().prior(n, 2, generator=torch.Generator().manual_seed(0)).to(device)
                    t_half = torch.full((n,), 0.5, device=device)
                    with torch.no_grad():
                        a, b = fields["CFG one batched pass"](x, t_half), fields["CFG two passes"](x, t_half)
                        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4), "batched and two-pass CFG disagree"
                        runs = {name: (lambda fn=fn: cl.ode(fn, x, cl.Linear(), steps, method="euler",
                                                            denoise=False)) for name, fn in fields.items()}
                        sec = _common.interleaved_timings(runs, repeats, max(1, points // n), _sync(device))
                    ms = {name: 1e3 * s["wall"] / steps for name, s in sec.items()}
                    cpu_ms = {name: 1e3 * s["cpu"] / steps for name, s in sec.items()}
                    rows.append({"device": device, "threads": threads, "n": n, "ms_per_step": ms,
                                 "cpu_ms_per_step": cpu_ms,
                                 "speedup_batched_vs_two_passes": ms["CFG two passes"] / ms["CFG one batched pass"],
                                 "speedup_batched_vs_two_passes_cpu":
                                     cpu_ms["CFG two passes"] / cpu_ms["CFG one batched pass"],
                                 "classifier_guidance_vs_batched_cfg":
                                     ms["classifier guidance"] / ms["CFG one batched pass"]})
                    print(f"  {device} {threads} thread(s) n={n:>5}: " + ", ".join(
                        f"{k} {v:.3f} ms" for k, v in ms.items()), flush=True)
            except Exception as err:  # an accelerator run that fails is reported, not hidden
                if device == "cpu":
                    raise
                rows.append({"device": device, "threads": threads, "error": repr(err)})
    torch.set_num_threads(1)
    return {"scale": SCALE, "interval": list(INTERVAL), "sampler": {"method": "euler", "steps_timed": steps},
            "parameters": params, "methods": list(GUIDANCE_METHODS), "rows": rows,
            "network_rows_per_point_and_step": network_rows(steps)}


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    out_dir = _common.output_folder(args)
    torch.set_num_threads(1)
    started = _common.provenance()
    q = args.quick
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print("training speed", flush=True)
    train = trainings(10 if q else 500, 2 if q else 100, devices, 1 if q else 10)
    print("cost of one sampler step", flush=True)
    guide = guidance_cost((64, 256) if q else GUIDANCE_N, 2 if q else 10, 2 if q else 7, devices, 64 if q else 2048)
    file = _common.write(out_dir, "core", {"quick": q, "cuda_available": torch.cuda.is_available(),
                                           "training": train, "guidance": guide}, started)
    print(f"wrote {file}")


if __name__ == "__main__":
    main()
