"""Checks for chapter 4, conditional generation: label dropout with an explicit null label, and the share of
samples that land where their class is ambiguous under the exact posterior p(y | x)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ._core import Verdict, check_function

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
