"""Does chapter 17's attention denoiser make digits the judge recognises as well as chapter 11's UNet?

Both networks are trained with their chapter's recipe (``cfglab.models.AttentionDenoiser`` width 48, 2 blocks,
600 steps at batch 128, lr 8e-3; ``cl.UNet`` width 16, 800 steps at batch 128, lr 2e-3; label dropout 0.1 for
both) and sampled
with the same DDIM sampler from the same noise: ``DRAWS`` noise draws of 200 digits (20 of each), at 8 and 20
steps, without guidance (w = 1) and unconditionally. Per draw: the judge's accuracy on the requested digit (chapter
11's ``cl.digits.train_classifier()``), and the Fréchet distance of its features to 200 real digits with the same
labels. The paired differences "attention minus UNet" get 90 % Student-t intervals over the draws
(``cl.compare.interval``), and the CPU seconds of each training run are recorded.

Run: ``python benchmarks/attention.py [--quick --out DIR]``; writes ``attention.json``. The model cache is off.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("CFGLAB_CACHE", "off")

import torch  # noqa: E402

import cfglab as cl  # noqa: E402
from benchmarks import _common  # noqa: E402

DRAWS, N = 5, 200


def recipes(quick: bool) -> dict[str, tuple[Any, dict[str, Any]]]:
    """The two networks and their chapters' training options (a few steps with ``quick``)."""
    path = cl.Linear()
    steps = (5, 5) if quick else (600, 800)
    return {"attention": (cl.models.AttentionDenoiser(8, 10, path=path, seed=0),
                          dict(steps=steps[0], batch_size=128, lr=8e-3, p_uncond=0.1)),
            "unet": (cl.UNet(8, 10, path=path, pred="velocity", width=16, seed=0),
                     dict(steps=steps[1], batch_size=128, lr=2e-3, p_uncond=0.1))}


def judge_runs(model: Any, clf: Any, feats_ref: torch.Tensor, steps: int, draws: int) -> list[dict[str, float]]:
    """Accuracy and FD of each noise draw, conditional (w = 1) and unconditional."""
    path, y = model.path, torch.arange(N) % 10
    out = []
    for d in range(draws):
        x1 = path.prior(N, (1, 8, 8), torch.Generator().manual_seed(300 + d))
        with torch.no_grad():
            xc = cl.ddim(cl.guided(model, y, 1.0), x1, path, steps).clamp(-1, 1)
            xu = cl.ddim(lambda x, t: model.predict(x, t), x1, path, steps).clamp(-1, 1)
            out.append({"accuracy": float((clf(xc).argmax(1) == y).float().mean()),
                        "FD": cl.frechet_distance(feats_ref, clf.features(xc)),
                        "FD unconditional": cl.frechet_distance(feats_ref, clf.features(xu))})
    return out


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    out_dir = _common.output_folder(args)
    torch.set_num_threads(1)
    started = _common.provenance()
    draws = 2 if args.quick else DRAWS
    data = cl.digits.dataset("train")
    clf = cl.digits.train_classifier()
    x_all, y_all = cl.digits.load("all")
    g = torch.Generator().manual_seed(7)
    idx = torch.stack([torch.nonzero(y_all == k)[:, 0][torch.randperm(int((y_all == k).sum()), generator=g)][:20]
                       for k in range(10)], 1).reshape(-1)                  # 200 real digits, labels i % 10
    with torch.no_grad():
        feats_ref = clf.features(x_all[idx])
    result: dict[str, Any] = {"quick": args.quick, "draws": draws, "n": N, "models": {}}
    runs = {}
    for name, (model, options) in recipes(args.quick).items():
        t0 = time.process_time()
        cl.fit(model, data, progress=False, use_cache=False, **options)
        seconds = time.process_time() - t0
        runs[name] = {steps: judge_runs(model, clf, feats_ref, steps, draws) for steps in (8, 20)}
        result["models"][name] = {"train_cpu_seconds": seconds, "options": options,
                                  "parameters": sum(p.numel() for p in model.parameters()), "runs": runs[name]}
        print(f"{name}: trained in {seconds:.1f} CPU s", flush=True)
    result["attention_minus_unet"] = {}
    for steps in (8, 20):
        for key in ("accuracy", "FD", "FD unconditional"):
            d = cl.compare.interval([a[key] - b[key] for a, b in zip(runs["attention"][steps], runs["unet"][steps])])
            result["attention_minus_unet"][f"{key}, {steps} steps"] = vars(d)
            a, u = (cl.compare.interval([r[key] for r in runs[m][steps]]) for m in ("attention", "unet"))
            print(f"{steps} DDIM steps, {key}: attention {a} | UNet {u} | attention - UNet {d}")
    file = _common.write(out_dir, "attention", result, started)
    print(f"wrote {file}")


if __name__ == "__main__":
    main()
