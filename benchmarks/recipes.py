"""Time to quality: the course's recipe for a 2D flow model against the recipe popular tutorials use.

The tutorial recipe is in ``benchmarks/tutorial.py``: a plain MLP of 4 x 512 units fed ``[x, t]``, Adam at a
constant learning rate, batches of 4096, 20,000 iterations, the linear-path velocity loss. The course's recipe is
``cl.MLP`` (Fourier time embedding, input scaling, residual blocks) trained by ``cl.train_iter`` (warm-up and
cosine decay, gradient clipping) with a :class:`cfglab.TrainConfig`. Both models are unconditional.

Both are trained on the same toy, each with several seeds (initialisation and batches), and sampled with the same
sampler (Euler on the velocity, uniform in t). Quality is the sliced Wasserstein distance (and the MMD) to exact
samples of the toy, averaged over a few independent evaluation sets (exact samples and starting noise), so that one
lucky draw cannot decide; the target is 1.5x the exact-vs-exact noise floor at the same sample size, and the run
records the exact velocity field's own SW through the same sampler, which must sit clearly below the target.
Only training steps are timed (wall and CPU of this process, one torch thread); evaluation is not.
``--max-seconds`` caps each recipe's training wall time; a capped recipe that never reached the target only
gives a lower bound on its time.

The time to the target is the product of the steps it takes and the cost of a step; both are reported, since the
two recipes differ in opposite ways (the tutorial's big batches take fewer, much more expensive steps).

Run: ``python benchmarks/recipes.py [--quick --out DIR] [--datasets moons checkerboard] [--max-seconds S]``;
writes ``recipes.json``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("CFGLAB_CACHE", "off")  # every number is a real training run

import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

import cfglab as cl  # noqa: E402
from benchmarks import _common  # noqa: E402
from benchmarks.tutorial import TutorialConfig, TutorialMLP, tutorial_iter  # noqa: E402

TARGET_FACTOR = 1.5
SEEDS = (0, 1, 2)
EVAL_SETS = 3


COURSE = cl.TrainConfig()                                   # the course's defaults, what the chapters use
COURSE_QUICK = cl.TrainConfig(steps=30, batch_size=128)
TUTORIAL_QUICK = TutorialConfig(steps=20, batch_size=256, width=64)


def course_iter(model: cl.MLP, data: cl.GaussianMixture, config: cl.TrainConfig) -> Iterator[float]:
    """The course's loop, ``cl.train_iter``, yielding only the loss."""
    for rec in cl.train_iter(model, data, config):
        yield rec.loss


class Evaluation:
    """What every recipe is scored against: ``sets`` independent pairs of ``n_eval`` exact samples of the toy and
    starting noise (from ``seed``), the sampler, and the exact-vs-exact noise floors of SW and MMD at that size."""

    def __init__(self, dataset: str, n_eval: int, sampler_steps: int, seed: int = 1, sets: int = EVAL_SETS):
        self.mix, self.sampler_steps = cl.make(dataset), sampler_steps
        g = torch.Generator().manual_seed(seed)
        self.truths = [self.mix.sample(n_eval, generator=g)[0] for _ in range(sets)]
        self.starts = [cl.Linear().prior(n_eval, 2, generator=g) for _ in range(sets)]
        self.floor_sw = cl.noise_floor(self.mix, n_eval)
        self.floor_mmd = cl.noise_floor(self.mix, n_eval, metric=cl.mmd)
        self.target_sw = TARGET_FACTOR * self.floor_sw

    def sample(self, velocity: Callable[[Tensor, Tensor], Tensor], x1: Tensor) -> Tensor:
        """Euler on the velocity (the tutorials' sampler), uniform in t, from ``x1``."""
        return cast(Tensor, cl.ode(velocity, x1, cl.Linear(), self.sampler_steps, method="euler",
                                   pred="velocity", spacing="uniform"))

    def score(self, velocity: Callable[[Tensor, Tensor], Tensor], mmd: bool = False) -> dict[str, float]:
        """SW (and MMD) to exact samples, averaged over the evaluation sets."""
        xs = [self.sample(velocity, x1) for x1 in self.starts]
        out = {"sw": sum(cl.sliced_wasserstein(x, y) for x, y in zip(xs, self.truths)) / len(xs)}
        if mmd:
            out["mmd"] = sum(cl.mmd(x, y) for x, y in zip(xs, self.truths)) / len(xs)
        return out



def race(steps: Iterator[float], model: nn.Module, ev: Evaluation, *, check_every: int,
         max_seconds: float | None, dense: int = 20) -> dict[str, Any]:
    """Run a training loop to its end (or ``max_seconds`` of training wall time) and score the model at
    checkpoints: every ``check_every`` steps for the first ``dense`` checkpoints, every ``4 * check_every`` after.
    Each checkpoint records the training wall and CPU seconds so far and the SW to exact samples; the MMD is
    computed (it is slow) at the first checkpoint within the target and at the last one."""
    if check_every < 1:
        raise ValueError(f"check_every must be >= 1, got {check_every}")
    wall = cpu = 0.0
    history: list[dict[str, float]] = []
    losses: list[float] = []
    capped, step, reached = False, 0, None

    def checkpoint(last: bool = False) -> None:
        nonlocal reached
        model.eval()
        with torch.no_grad():
            sw = ev.score(lambda z, t: model(z, t))["sw"]
            hit = reached is None and sw <= ev.target_sw
            mmd = ev.score(lambda z, t: model(z, t), mmd=True)["mmd"] if hit or last else None
        model.train()
        window = losses[-check_every:]
        h = {"step": step, "train_wall_seconds": wall, "train_cpu_seconds": cpu, "loss": sum(window) / len(window),
             "sw": sw}
        if mmd is not None:
            h["mmd"] = mmd
        reached = h if hit else reached
        history.append(h)
        print(f"    step {step:>6}  wall {wall:7.1f} s  cpu {cpu:7.1f} s  SW {h['sw']:.4f}"
              f"  (target {ev.target_sw:.4f})", flush=True)

    while True:
        w0, c0 = time.perf_counter(), time.process_time()
        loss = next(steps, None)
        if loss is None:
            break
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        losses.append(loss)
        step += 1
        if max_seconds is not None and wall >= max_seconds:
            capped = True
            break
        if step % (check_every if step <= dense * check_every else 4 * check_every) == 0:
            checkpoint()
    if history and history[-1]["step"] == step:       # the last state was just scored: add its MMD
        if "mmd" not in history[-1]:
            model.eval()
            with torch.no_grad():
                history[-1]["mmd"] = ev.score(lambda z, t: model(z, t), mmd=True)["mmd"]
    else:
        checkpoint(last=True)
    model.eval()
    return {"steps_done": step, "capped": capped, "reached": reached, "final": history[-1],
            "best_sw": min(h["sw"] for h in history), "history": history,
            "train_wall_seconds": wall, "train_cpu_seconds": cpu,
            "cpu_seconds_per_step": cpu / max(step, 1)}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Over the seeds of one recipe: how many reached the target, and the mean CPU seconds, steps and CPU seconds
    per step to it (among those that reached it), each with its 90 % interval when two or more did."""
    hits = [r["reached"] for r in runs if r["reached"] is not None]
    out: dict[str, Any] = {"seeds": len(runs), "reached": len(hits),
                           "cpu_seconds_per_step": [r["cpu_seconds_per_step"] for r in runs]}
    for key, values in (("train_cpu_seconds", [h["train_cpu_seconds"] for h in hits]),
                        ("steps", [float(h["step"]) for h in hits])):
        out[key] = {"values": values, "mean": sum(values) / len(values) if values else None,
                    "interval": asdict(cl.compare.interval(values)) if len(values) >= 2 else None}
    return out


def ratio(tutorial: dict[str, Any], course: dict[str, Any]) -> dict[str, Any]:
    """Tutorial over course, from their summaries: the time to the target (mean CPU seconds), the steps to it, and
    the cost of one step, so that ``time = steps x cost`` reads off. When some tutorial seed did not reach the
    target, its whole training time stands in for its time, and the time ratio is a lower bound."""
    if course["reached"] < course["seeds"]:
        return {"cpu": None, "steps": None, "cost_per_step": None, "kind": "the course missed the target on a seed"}
    t_cpu = tutorial["train_cpu_seconds"]["values"] + tutorial.get("missed_cpu_seconds", [])
    kind = "measured" if tutorial["reached"] == tutorial["seeds"] else \
        "lower bound (a tutorial seed stopped before reaching the target)"
    cost = sum(tutorial["cpu_seconds_per_step"]) / len(tutorial["cpu_seconds_per_step"]) / (
        sum(course["cpu_seconds_per_step"]) / len(course["cpu_seconds_per_step"]))
    steps = (tutorial["steps"]["mean"] / course["steps"]["mean"]) if tutorial["steps"]["mean"] else None
    return {"cpu": (sum(t_cpu) / len(t_cpu)) / course["train_cpu_seconds"]["mean"], "steps": steps,
            "cost_per_step": cost, "kind": kind}


def compare(dataset: str, tutorial: TutorialConfig | None, course: cl.TrainConfig, *, n_eval: int,
            sampler_steps: int, course_every: int, tutorial_every: int, max_seconds: float | None,
            seeds: tuple[int, ...] = SEEDS) -> dict[str, Any]:
    """Both recipes on one toy, each with every seed (the tutorial skipped when ``tutorial`` is None)."""
    ev = Evaluation(dataset, n_eval, sampler_steps)
    with torch.no_grad():
        exact = ev.score(_exact_velocity(ev.mix), mmd=True)
    print(f"{dataset}: noise floor SW {ev.floor_sw:.4f}, target {ev.target_sw:.4f}; the exact velocity with this "
          f"sampler scores SW {exact['sw']:.4f}", flush=True)
    out: dict[str, Any] = {"dataset": dataset, "n_eval": n_eval, "eval_sets": len(ev.starts),
                           "noise_floor_sw": ev.floor_sw, "target_factor": TARGET_FACTOR, "target_sw": ev.target_sw,
                           "noise_floor_mmd": ev.floor_mmd, "seeds": list(seeds),
                           "sampler": {"method": "euler", "pred": "velocity", "spacing": "uniform",
                                       "steps": sampler_steps},
                           "exact_field": exact, "recipes": {}}
    runs = []
    for seed in seeds:
        config = cl.TrainConfig(**{**asdict(course), "seed": seed})
        model = cl.MLP(2, 0, path=cl.Linear(), pred="velocity", seed=seed)
        print(f"  course recipe, seed {seed}: {config}", flush=True)
        res = race(course_iter(model, ev.mix, config), model, ev, check_every=course_every, max_seconds=max_seconds)
        runs.append({"seed": seed, **res})
    out["recipes"]["course"] = {"config": asdict(course), "model": model.config,
                                "parameters": sum(p.numel() for p in model.parameters()), "runs": runs,
                                "summary": summary(runs)}
    if tutorial is not None:
        runs = []
        for seed in seeds:
            config_t = TutorialConfig(**{**asdict(tutorial), "seed": seed})
            net = TutorialMLP(2, config_t.width, config_t.depth, seed=seed)
            print(f"  tutorial recipe, seed {seed}: {config_t}", flush=True)
            res = race(tutorial_iter(net, ev.mix, config_t), net, ev, check_every=tutorial_every,
                       max_seconds=max_seconds)
            runs.append({"seed": seed, **res})
        summ = summary(runs)
        summ["missed_cpu_seconds"] = [r["train_cpu_seconds"] for r in runs if r["reached"] is None]
        out["recipes"]["tutorial"] = {"config": asdict(tutorial),
                                      "parameters": sum(p.numel() for p in net.parameters()), "runs": runs,
                                      "summary": summ}
        out["time_ratio"] = ratio(summ, out["recipes"]["course"]["summary"])
    return out


def _exact_velocity(mix: cl.GaussianMixture) -> Callable[[Tensor, Tensor], Tensor]:
    """The mixture's exact velocity on the linear path (its score converted by the path)."""
    path = cl.Linear()
    return lambda x, t: path.convert(mix.score(x, t, path), x, t, "score", "velocity")


def warm_up() -> None:
    """A few throwaway steps of both loops, so that torch's one-time start-up cost (about a second) is charged to
    neither recipe."""
    mix = cl.make("moons")
    for _ in course_iter(cl.MLP(2, 0, width=16, depth=1), mix, cl.TrainConfig(steps=3, batch_size=64)):
        pass
    for _ in tutorial_iter(TutorialMLP(width=16, depth=1), mix, TutorialConfig(steps=3, batch_size=64)):
        pass


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--datasets", nargs="+", default=["moons"], help="toys from cl.make (default: moons)")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="cap on each recipe's training wall seconds (default: none, the full recipes)")
    ap.add_argument("--course-only", action="store_true", help="skip the tutorial recipe (for tuning)")
    ap.add_argument("--steps", type=int, default=None, help="course TrainConfig.steps")
    ap.add_argument("--batch-size", type=int, default=None, help="course TrainConfig.batch_size")
    ap.add_argument("--lr", type=float, default=None, help="course TrainConfig.lr")
    args = ap.parse_args()
    out_dir = _common.output_folder(args)
    torch.set_num_threads(1)
    started = _common.provenance()
    q = args.quick
    course = COURSE_QUICK if q else COURSE
    overrides = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size), ("lr", args.lr))
                 if v is not None}
    course = cl.TrainConfig(**{**asdict(course), **overrides})
    tutorial = None if args.course_only else (TUTORIAL_QUICK if q else TutorialConfig())
    warm_up()
    runs = [compare(d, tutorial, course, n_eval=500 if q else 4000, sampler_steps=10 if q else 100,
                    course_every=10 if q else 100, tutorial_every=10 if q else 250, max_seconds=args.max_seconds)
            for d in args.datasets]
    for r in runs:
        for name, rec in r["recipes"].items():
            sm = rec["summary"]
            t = sm["train_cpu_seconds"]
            print(f"{r['dataset']} {name}: {sm['reached']} of {sm['seeds']} seeds reached the target"
                  + (f", mean {t['mean']:.1f} s CPU, {sm['steps']['mean']:.0f} steps" if t["mean"] else ""))
        print(f"{r['dataset']}: tutorial / course {r.get('time_ratio')}")
    file = _common.write(out_dir, "recipes", {"quick": q, "runs": runs}, started)
    print(f"wrote {file}")


if __name__ == "__main__":
    main()
