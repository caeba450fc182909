"""Checks for chapter 4, conditional generation: label dropout with an explicit null label, the share of
samples that land where their class is ambiguous under the exact posterior p(y | x), and an experiment: the
label-dropout training loss, judged by training a network with it and comparing both of its branches with the
exact velocities of the overlap toy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ._core import Verdict, _not_written, _raised_by_a_raise_statement, check_function

# -- label dropout --------------------------------------------------------------------------------------------------


def _drop_labels(y: Tensor, p_uncond: float, null_label: int, u: Tensor) -> Tensor:
    """Reference: ``cfglab.drop_labels`` with its uniform numbers given (replace where ``u < p_uncond``)."""
    return torch.where(u < p_uncond, torch.full_like(y, null_label), y)


def _drop_inputs(g: torch.Generator) -> dict[str, Any]:
    num_classes = int(torch.randint(2, 9, (), generator=g))
    n = int(torch.randint(40, 80, (), generator=g))
    p = 0.2 + 0.4 * float(torch.rand((), generator=g, dtype=torch.float64))  # away from 0.5: u > p differs
    return dict(y=torch.randint(0, num_classes, (n,), generator=g), p_uncond=p, null_label=num_classes,
                u=torch.rand(n, generator=g, dtype=torch.float64))


_DROP_MISTAKES = [
    ("it replaces the labels where u > p_uncond (or the two branches of torch.where are swapped), so it drops "
     "about 1 - p_uncond of them instead of p_uncond. A label is dropped with probability p_uncond exactly when "
     "u < p_uncond.",
     lambda y, p_uncond, null_label, u: torch.where(u > p_uncond, torch.full_like(y, null_label), y)),
    ("dropped labels become 0, which is a real class (the first one): the model would learn that class 0 "
     "sometimes looks like the whole data set. Use the null_label argument.",
     lambda y, p_uncond, null_label, u: torch.where(u < p_uncond, torch.zeros_like(y), y)),
    ("dropped labels become -1. In cfglab the null label is its own index, null_label == num_classes; -1 is "
     "either an error or, in code that wraps indices, the last real class. Use the null_label argument.",
     lambda y, p_uncond, null_label, u: torch.where(u < p_uncond, torch.full_like(y, -1), y)),
    ("dropped labels become null_label - 1, which is the last real class. The null label is null_label itself "
     "(== num_classes), one past the real classes.",
     lambda y, p_uncond, null_label, u: torch.where(u < p_uncond, torch.full_like(y, null_label - 1), y)),
    ("it returns the labels unchanged: nothing is dropped.",
     lambda y, p_uncond, null_label, u: y),
    ("every label became the null label: drop only where u < p_uncond.",
     lambda y, p_uncond, null_label, u: torch.full_like(y, null_label)),
]


def _probe_labels(student: Callable[..., Any]) -> str | None:
    """Problems that comparing return values cannot see: mutating y in place, or returning float labels."""
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    before = y.clone()
    u = torch.tensor([0.05, 0.9, 0.05, 0.9, 0.05, 0.9, 0.05, 0.9], dtype=torch.float64)
    try:
        out = student(y=y, p_uncond=0.5, null_label=3, u=u)
    except Exception:  # check_function reports errors (including NotImplementedError) in plain words
        return None
    if not torch.equal(y, before):
        return ("drop_labels changed the y it was given (in place), e.g. with y[u < p_uncond] = null_label. "
                "The caller's labels are then corrupted for everything else that uses them (metrics, a second "
                "loss). Build and return a new tensor, e.g. with torch.where, or work on y.clone().")
    if isinstance(out, Tensor) and out.is_floating_point():
        return (f"drop_labels returned {out.dtype} labels. Labels index an embedding table, so they must stay "
                "integers: keep y's dtype (torch.full_like(y, null_label) does).")
    return None


def check_drop_labels(student: Callable[..., Any], *, quiet: bool = False) -> Verdict:
    """``drop_labels(y, p_uncond, null_label, u)``: replace ``y[i]`` by ``null_label`` where ``u[i] < p_uncond``,
    returning a new tensor (the semantics of ``cfglab.drop_labels``, with its random numbers given)."""
    if callable(student):
        problem = _probe_labels(student)
        if problem is not None:
            verdict = Verdict(False, problem, "drop_labels", student, _drop_labels)
            if not quiet:
                print(verdict)
            return verdict
    return check_function("drop_labels", student, _drop_labels, _drop_inputs, rtol=0, atol=0,
                          mistakes=_DROP_MISTAKES, quiet=quiet)


# -- ambiguous fraction ---------------------------------------------------------------------------------------------


def _ambiguous_fraction(posterior_probs: Tensor, y: Tensor, threshold: float) -> float:
    """Reference: the fraction of samples i with ``posterior_probs[i, y[i]] < threshold``."""
    p_requested = posterior_probs.gather(1, y[:, None])[:, 0]  # (n,)
    return float((p_requested < threshold).to(torch.float64).mean())


def _ambiguous_inputs(g: torch.Generator) -> dict[str, Any]:
    num_classes = int(torch.randint(2, 5, (), generator=g))
    n = int(torch.randint(50, 90, (), generator=g))
    # Rows of probabilities with a wide spread of confidence: softmax of logits with random temperature.
    logits = 3.0 * torch.randn(n, num_classes, generator=g, dtype=torch.float64)
    probs = torch.softmax(logits, dim=1)
    y = torch.randint(0, num_classes, (n,), generator=g)
    threshold = 0.6 + 0.3 * float(torch.rand((), generator=g, dtype=torch.float64))
    return dict(posterior_probs=probs, y=y, threshold=threshold)


def _frac(mask: Tensor) -> float:
    return float(mask.to(torch.float64).mean())


_AMBIGUOUS_MISTAKES = [
    ("it uses the largest probability of each row, max_k p(k | x), instead of the probability of the requested "
     "class p(y | x). A sample that confidently belongs to another class is off-target, and it counts too.",
     lambda posterior_probs, y, threshold: _frac(posterior_probs.max(1).values < threshold)),
    ("posterior_probs[:, y] is an (n, n) table (every row against every requested label), not one number per "
     "sample. Pick p(y_i | x_i) for each row i, e.g. posterior_probs.gather(1, y[:, None]) or "
     "posterior_probs[torch.arange(n), y].",
     lambda posterior_probs, y, threshold: _frac(posterior_probs[:, y] < threshold)),
    ("it returns the fraction of confident samples (p(y | x) >= threshold), i.e. 1 minus the answer.",
     lambda posterior_probs, y, threshold: 1 - _ambiguous_fraction(posterior_probs, y, threshold)),
    ("it returns a count, not a fraction: divide by the number of samples (or take the mean of the mask).",
     lambda posterior_probs, y, threshold: float(
         (posterior_probs.gather(1, y[:, None])[:, 0] < threshold).sum())),
    ("it counts the samples whose most probable class is not y (1 - adherence). That is a different question: "
     "a sample with p(y | x) = 0.6 is correctly classified yet ambiguous. Compare p(y | x) with the threshold.",
     lambda posterior_probs, y, threshold: _frac(posterior_probs.argmax(1) != y)),
    ("it returns the mean posterior of the requested class (cl.class_probability), not the fraction below the "
     "threshold.",
     lambda posterior_probs, y, threshold: float(posterior_probs.gather(1, y[:, None]).mean())),
]


def check_ambiguous_fraction(student: Callable[..., Any], *, quiet: bool = False) -> Verdict:
    """``ambiguous_fraction(posterior_probs, y, threshold)``: the fraction of samples whose requested class has
    posterior ``p(y_i | x_i) < threshold``, as a Python float."""
    return check_function("ambiguous_fraction", student, _ambiguous_fraction, _ambiguous_inputs, rtol=0,
                          atol=1e-12, mistakes=_AMBIGUOUS_MISTAKES, quiet=quiet)


# -- the label-dropout training loss (an experiment: train with it, judge both branches against the exact ones) ---
DROPOUT_STEPS = 500        # training steps the checker runs with the student's loss
DROPOUT_P_UNCOND = 0.2
DROPOUT_BAR = 0.2          # RMS error must be below this share of the distance to the nearest wrong answer


def _dropout_loss(model: Any, x0: Tensor, y: Tensor, t: Tensor, eps: Tensor, u: Tensor, p_uncond: float) -> Tensor:
    """Reference: labels dropped to the null label where ``u < p_uncond``, then the mean squared error of the
    model's prediction at ``x_t`` against its target (what ``cfglab.fit`` does with ``p_uncond``)."""
    labels = _drop_labels(y, p_uncond, model.null_label, u)
    xt = model.path.noise(x0, t, eps)
    return ((model(xt, t, labels) - model.path.target(model.pred, x0, eps, t)) ** 2).mean()


def _loss_with(*, labels: str = "dropped", inp: str = "xt", target: str = "model") -> Callable[..., Tensor]:
    def wrong(model: Any, x0: Tensor, y: Tensor, t: Tensor, eps: Tensor, u: Tensor, p_uncond: float) -> Tensor:
        null = torch.full_like(y, model.null_label)
        lab = {"dropped": torch.where(u < p_uncond, null, y), "kept": y, "flipped": torch.where(u > p_uncond, null, y),
               "zero": torch.where(u < p_uncond, torch.zeros_like(y), y), "all null": null}[labels]
        xt = model.path.noise(x0, t, eps)
        goal = {"model": model.path.target(model.pred, x0, eps, t), "eps": eps, "x0": x0}[target]
        return ((model(xt if inp == "xt" else x0, t, lab) - goal) ** 2).mean()
    return wrong


_LOSS_MISTAKES = [
    ("no label is dropped: the null label never appears in training, so the network's unconditional branch "
     "stays untrained. Replace y[i] by model.null_label where u[i] < p_uncond (your drop_labels).",
     _loss_with(labels="kept")),
    ("labels are dropped where u > p_uncond, so about 1 - p_uncond of the batch gets the null label and the "
     "conditional branch starves. Drop where u < p_uncond.", _loss_with(labels="flipped")),
    ("dropped labels become 0, a real class: the null label is never trained and class 0 learns the whole data "
     "set. Use model.null_label.", _loss_with(labels="zero")),
    ("every label is replaced by the null label: the network learns only p(x). Drop each label with probability "
     "p_uncond (where u < p_uncond).", _loss_with(labels="all null")),
    ("the network sees the clean x0 instead of the noisy x_t = alpha x0 + sigma eps (model.path.noise).",
     _loss_with(inp="x0")),
    ("the target is eps, but this model predicts model.pred (the velocity here): regress onto "
     "model.path.target(model.pred, x0, eps, t).", _loss_with(target="eps")),
    ("the target is x0, but this model predicts model.pred (the velocity here): regress onto "
     "model.path.target(model.pred, x0, eps, t).", _loss_with(target="x0")),
]


def _loss_inputs(g: torch.Generator, n: int, mix: Any, path: Any) -> dict[str, Any]:
    x0, y = mix.sample(n, generator=g)
    t = path.t_min + (path.t_max - path.t_min) * torch.rand(n, generator=g)
    return dict(x0=x0, y=y, t=t, eps=torch.randn(n, 2, generator=g), u=torch.rand(n, generator=g))


def _exact_velocity(mix: Any, path: Any, x: Tensor, t: float, y: int | None) -> Tensor:
    return path.convert(mix.score(x, t, path, y), x, t, "score", "velocity")


def check_dropout_loss(student: Callable[..., Any], *, quiet: bool = False, seed: int = 1) -> Verdict:
    """``dropout_loss(model, x0, y, t, eps, u, p_uncond)``: the label-dropout training loss. Known mistakes are
    named from the loss value on a probe batch; then the checker trains a fresh network with the loss
    (``DROPOUT_STEPS`` Adam steps on the overlap toy, ``p_uncond = 0.2``) and compares its conditional predictions
    (both classes) and its null-label prediction with the exact velocities at t = 0.3, 0.5, 0.7. The RMS error of
    each, pooled over the three times, must be below ``DROPOUT_BAR`` of the RMS distance from the truth to the
    nearest wrong answer: the exact unconditional velocity for a class (what a label-blind model gives), the nearer
    exact class velocity for the null label (what an untrained null label answers at best). The correct loss
    reaches about 0.1 on every branch, the known mistakes 0.3 or more on one."""
    from ..data import make
    from ..models import MLP
    from ..paths import Linear

    name = "dropout_loss"

    def verdict(passed: bool, message: str, *, prefix: bool = True) -> Verdict:
        v = Verdict(passed, f"{name}: {message}" if prefix and not passed else message, name, student,
                    _dropout_loss)
        if not quiet:
            print(v)
        return v

    if not callable(student):
        return verdict(False, f"expected a function, got {type(student).__name__}.")
    path, mix = Linear(), make("overlap")

    def new_model() -> Any:
        return MLP(2, mix.num_classes, path=path, pred="velocity", width=64, depth=2, seed=seed)

    def call(model: Any, batch: dict[str, Any], p: float) -> tuple[Any, Verdict | None]:
        try:
            return student(model, **batch, p_uncond=p), None
        except NotImplementedError as err:
            if _raised_by_a_raise_statement(err):
                return None, verdict(False, _not_written(name, err), prefix=False)
            return None, verdict(False, f"raised NotImplementedError: {err}.")
        except Exception as err:  # report, never re-raise
            return None, verdict(False, f"raised {type(err).__name__}: {err}.")

    # 1. the value on a probe batch: a scalar autograd can differentiate, and not one of the known mistakes
    g = torch.Generator().manual_seed(20261122 + seed)
    probe, model = _loss_inputs(g, 64, mix, path), new_model()
    given = {k: v.clone() for k, v in probe.items()}
    out, failed = call(model, given, DROPOUT_P_UNCOND)
    if failed is not None:
        return failed
    if not torch.equal(given["y"], probe["y"]):
        return verdict(False, "changed the labels y it was given (in place), e.g. with y[u < p_uncond] = ...: the "
                              "caller's labels are then corrupted. Build new labels instead (your drop_labels).")
    if isinstance(out, (float, int)) and not isinstance(out, bool):
        return verdict(False, "returns a Python number, which autograd cannot differentiate: keep the loss a "
                              "tensor (no .item() or float()).")
    if not isinstance(out, Tensor) or out.numel() != 1:
        got = f"a tensor of shape {tuple(out.shape)}" if isinstance(out, Tensor) else type(out).__name__
        return verdict(False, f"should return the loss as a scalar tensor (one number), got {got}: average the "
                              "squared errors.")
    if not out.requires_grad:
        return verdict(False, "returns a number autograd cannot differentiate (a detached tensor or a float): "
                              "compute it with torch operations on the model's output, without .item().")
    if not torch.isfinite(out):
        return verdict(False, "returned a NaN or infinite loss.")
    with torch.no_grad():
        want = float(_dropout_loss(model, **probe, p_uncond=DROPOUT_P_UNCOND))
        value = float(out)
        if abs(value - want) > 1e-4 * max(1.0, abs(want)):
            for explanation, wrong in _LOSS_MISTAKES:
                wrong_value = float(wrong(model, **probe, p_uncond=DROPOUT_P_UNCOND))
                if abs(value - wrong_value) <= 1e-5 * max(1.0, abs(value)):
                    return verdict(False, explanation)

    # 2. the experiment: train with the student's loss, judge both branches against the exact velocities
    model = new_model()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 - k / DROPOUT_STEPS)  # linear decay to zero
    g = torch.Generator().manual_seed(seed)
    for _ in range(DROPOUT_STEPS):
        loss, failed = call(model, _loss_inputs(g, 256, mix, path), DROPOUT_P_UNCOND)
        if failed is not None:
            return failed
        opt.zero_grad()
        loss.backward()
        opt.step()
        decay.step()
    errors: dict[str, float] = {}
    gaps: dict[str, float] = {}
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for t in (0.3, 0.5, 0.7):
            for label in (0, 1, None):
                x0, _ = mix.sample(2000, label, generator=g)
                xt = path.noise(x0, t, torch.randn(2000, 2, generator=g))
                truth = _exact_velocity(mix, path, xt, t, label)
                if label is None:
                    wrong_answer = min(((_exact_velocity(mix, path, xt, t, k) - truth).pow(2).sum(1).mean()
                                        for k in range(mix.num_classes)), key=float)
                else:
                    wrong_answer = (_exact_velocity(mix, path, xt, t, None) - truth).pow(2).sum(1).mean()
                err = (model(xt, t, model.null_label if label is None else label) - truth).pow(2).sum(1).mean()
                key = "null label" if label is None else mix.class_names[label]
                errors[key] = errors.get(key, 0.0) + float(err)
                gaps[key] = gaps.get(key, 0.0) + float(wrong_answer)
    ratios = {k: (errors[k] / gaps[k]) ** 0.5 for k in errors}   # RMS error / RMS gap, pooled over t
    shown = ", ".join(f"{k} {v:.2f}" for k, v in ratios.items())
    bad = [k for k, v in ratios.items() if v >= DROPOUT_BAR]
    if bad:
        why = ("the null-label branch did not learn p(x): check that about p_uncond of the labels become "
               "model.null_label" if bad == ["null label"] else
               "the conditional branch did not learn p(x | y): the real labels must reach the model")
        return verdict(False, f"after {DROPOUT_STEPS} training steps with your loss, {', '.join(bad)} "
                              f"{'is' if len(bad) == 1 else 'are'} too far from the exact velocity "
                              f"(RMS error / distance to the nearest wrong answer: {shown}; needs < "
                              f"{DROPOUT_BAR}): {why}.")
    return verdict(True, f"{name} trains both branches ({DROPOUT_STEPS} steps, p_uncond = {DROPOUT_P_UNCOND}). "
                         "RMS error / distance to the\nnearest wrong answer, over t = 0.3, 0.5, 0.7: "
                         f"{shown} (all below {DROPOUT_BAR}).")
