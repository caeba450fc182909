"""Checks for chapter 6, classifier-free guidance: the guidance rule in two conventions, the batched pass, and a
find-the-bug exercise built from two real failure modes (guiding only some channels; a null label that differs
between training and sampling)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..guidance import cfg, scale_from_paper
from ._core import Verdict, check_function

# -- (a) the rule in the course's convention and in Ho & Salimans' -------------------------------------------------


def _pair(g: torch.Generator) -> dict[str, Any]:
    n, d = int(torch.randint(3, 9, (1,), generator=g)), int(torch.randint(2, 5, (1,), generator=g))
    cond = torch.randn(n, d, generator=g, dtype=torch.float64)
    uncond = torch.randn(n, d, generator=g, dtype=torch.float64)
    return {"cond": cond, "uncond": uncond}


def _course_inputs(g: torch.Generator) -> dict[str, Any]:
    w = 1.5 + 6.0 * float(torch.rand((), generator=g, dtype=torch.float64))  # away from 0 and 1
    return {**_pair(g), "w": w}


def _paper_inputs(g: torch.Generator) -> dict[str, Any]:
    w_paper = 0.5 + 6.0 * float(torch.rand((), generator=g, dtype=torch.float64))
    return {**_pair(g), "w_paper": w_paper}


def _ref_course(cond: Tensor, uncond: Tensor, w: float) -> Tensor:
    return cfg(cond, uncond, w)


def _ref_paper(cond: Tensor, uncond: Tensor, w_paper: float) -> Tensor:
    return cfg(cond, uncond, scale_from_paper(w_paper))


def check_cfg_combine(student: Callable[..., Any]) -> Verdict:
    """``cfg_combine(cond, uncond, w)`` = ``uncond + w (cond - uncond)`` (the course's and diffusers' scale)."""
    mistakes = [
        ("you used Ho & Salimans' form (1 + w) * cond - w * uncond. In the course's convention the scale multiplies "
         "(cond - uncond) and is added to uncond: your answer is the course's rule at scale w + 1 (off by one).",
         lambda cond, uncond, w: (1 + w) * cond - w * uncond),
        ("cond and uncond are swapped: you start from the conditional prediction and step along (uncond - cond), "
         "i.e. you guide away from the condition (the same as (1 - w) * cond + w * uncond: the weights are the "
         "wrong way round). The rule is uncond + w * (cond - uncond) = (1 - w) * uncond + w * cond.",
         lambda cond, uncond, w: cond + w * (uncond - cond)),
        ("you return only the guidance term w * (cond - uncond); add it to uncond.",
         lambda cond, uncond, w: w * (cond - uncond)),
        ("you added the difference to cond instead of uncond: cond + w * (cond - uncond) is the course's rule at "
         "scale w + 1 (this is Ho & Salimans' form, off by one).",
         lambda cond, uncond, w: cond + w * (cond - uncond)),
    ]
    return check_function("cfg_combine", student, _ref_course, _course_inputs, mistakes=mistakes)


def check_cfg_combine_paper(student: Callable[..., Any]) -> Verdict:
    """``cfg_combine_paper(cond, uncond, w_paper)`` = ``(1 + w_paper) cond - w_paper uncond`` (Ho & Salimans, eq. 6)."""
    mistakes = [
        ("you used the course's convention uncond + w * (cond - uncond). Ho & Salimans write "
         "(1 + w) * cond - w * uncond: your answer is their rule at w_paper - 1 (off by one).",
         lambda cond, uncond, w_paper: uncond + w_paper * (cond - uncond)),
        ("cond and uncond are swapped: (1 + w) * uncond - w * cond pushes away from the condition.",
         lambda cond, uncond, w_paper: (1 + w_paper) * uncond - w_paper * cond),
        ("the sign of the unconditional term is wrong: it is (1 + w) * cond MINUS w * uncond.",
         lambda cond, uncond, w_paper: (1 + w_paper) * cond + w_paper * uncond),
        ("you forgot the 1 in (1 + w): w * cond - w * uncond is only the guidance term, without the conditional "
         "prediction it is added to.",
         lambda cond, uncond, w_paper: w_paper * (cond - uncond)),
    ]
    return check_function("cfg_combine_paper", student, _ref_paper, _paper_inputs, mistakes=mistakes)


# -- a toy denoiser with a strict label check, shared by (b) and (c) -----------------------------------------------


class ToyDenoiser:
    """A deterministic stand-in for a conditional network: ``out = tanh(x * a[y] * (1 + t)) + b[y]``, with one row
    of ``a`` and ``b`` per label 0..K-1 and one for the null label K. It records every call (batch size and labels)
    and rejects labels outside 0..K, floating labels and a ``t`` that does not match the batch, with a message."""

    def __init__(self, num_classes: int, shape: tuple[int, ...], g: torch.Generator):
        self.num_classes = num_classes
        self.a = 0.5 + torch.rand(num_classes + 1, *shape, generator=g, dtype=torch.float64)
        self.b = torch.randn(num_classes + 1, *shape, generator=g, dtype=torch.float64)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, x: Tensor, t: Tensor, y: Tensor) -> Tensor:
        if not isinstance(y, Tensor) or y.is_floating_point() or y.dtype == torch.bool:
            raise TypeError(f"model_fn got labels of type {getattr(y, 'dtype', type(y).__name__)}; labels are "
                            "integer tensors (class indices, and null_label for the unconditional half)")
        if not isinstance(t, Tensor) or t.shape != (x.shape[0],):
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"model_fn got x with {x.shape[0]} rows but t of shape {got}; t needs one entry per "
                             "row of x (did you double x but not t?)")
        if y.shape != (x.shape[0],):
            raise ValueError(f"model_fn got x with {x.shape[0]} rows but labels of shape {tuple(y.shape)}")
        if int(y.min()) < 0 or int(y.max()) > self.num_classes:
            raise ValueError(f"model_fn got label {int(y.min()) if int(y.min()) < 0 else int(y.max())}: this model "
                             f"knows the classes 0..{self.num_classes - 1} and the null label {self.num_classes} "
                             "(the index it was trained with for 'no condition')")
        self.calls.append({"n": x.shape[0], "y": y.clone()})
        tt = t.reshape(-1, *([1] * (x.ndim - 1)))
        return torch.tanh(x * self.a[y] * (1 + tt)) + self.b[y]


def _denoiser_inputs(shape: tuple[int, ...]) -> Callable[[torch.Generator], dict[str, Any]]:
    def make(g: torch.Generator) -> dict[str, Any]:
        K = int(torch.randint(2, 6, (1,), generator=g))
        n = int(torch.randint(3, 8, (1,), generator=g))
        return {"model_fn": ToyDenoiser(K, shape, g),
                "x": torch.randn(n, *shape, generator=g, dtype=torch.float64),
                "t": torch.rand(n, generator=g, dtype=torch.float64),
                "y": torch.randint(0, K, (n,), generator=g),
                "null_label": K,
                "w": 1.5 + 6.0 * float(torch.rand((), generator=g, dtype=torch.float64))}
    return make


def _two_pass(model_fn: Callable[..., Tensor], x: Tensor, t: Tensor, y: Tensor, null_label: int, w: float, *,
              uncond_label: int | None = None, swap: bool = False) -> Tensor:
    lab = torch.full_like(y, null_label if uncond_label is None else uncond_label)
    c, u = model_fn(x, t, y), model_fn(x, t, lab)
    return cfg(u, c, w) if swap else cfg(c, u, w)


def _ref_guided(model_fn: Callable[..., Tensor], x: Tensor, t: Tensor, y: Tensor, null_label: int, w: float
                ) -> Tensor:
    return _two_pass(model_fn, x, t, y, null_label, w)


def _label_mistakes() -> list[tuple[str, Callable[..., Any]]]:
    return [
        ("the unconditional half uses label 0. Label 0 is a real class, so you guide away from class 0 (a negative "
         "prompt) instead of away from the unconditional prediction. Use null_label, the index the model was "
         "trained with for 'no condition'.",
         lambda **kw: _two_pass(**kw, uncond_label=0)),
        ("the unconditional half uses label num_classes - 1 (the last real class), not null_label = num_classes.",
         lambda **kw: _two_pass(**kw, uncond_label=kw["null_label"] - 1)),
        ("the two halves are swapped: with labels [y, null] the FIRST half of the output is the conditional "
         "prediction. Your answer is guidance away from y.",
         lambda **kw: _two_pass(**kw, swap=True)),
        ("the combination uses Ho & Salimans' (1 + w) c - w u; the exercise asks for the course's u + w (c - u).",
         lambda **kw: _two_pass(**{**kw, "w": kw["w"] + 1})),
    ]


# -- (b) one batched pass -----------------------------------------------------------------------------------------


def _probe_calls(student: Callable[..., Any], shape: tuple[int, ...]) -> str | None:
    """Run the student once on a recording model; return a diagnosis of how it calls the model, or None."""
    inputs = _denoiser_inputs(shape)(torch.Generator().manual_seed(7))
    model, n, null = inputs["model_fn"], inputs["x"].shape[0], inputs["null_label"]
    try:
        student(**inputs)
    except NotImplementedError:
        return None  # check_function reports it
    except Exception:
        return None  # check_function reports the error with its message
    calls = model.calls
    if not calls:
        return "never calls model_fn."
    if len(calls) == 2 and all(c["n"] == n for c in calls):
        return ("calls model_fn twice (once per label set). The exercise is the batched form: concatenate [x, x], "
                "[t, t] and [y, null] and call model_fn ONCE on the doubled batch, then split the output in two.")
    if len(calls) != 1:
        return f"calls model_fn {len(calls)} times; it should call it exactly once, on a batch of 2n rows."
    if calls[0]["n"] != 2 * n:
        return (f"calls model_fn once with {calls[0]['n']} rows for n = {n} inputs; the single call should see the "
                f"doubled batch of 2n = {2 * n} rows ([x, x]).")
    labels, y = calls[0]["y"], inputs["y"]
    first, second = labels[:n], labels[n:]
    other = second if torch.equal(first, y) else first if torch.equal(second, y) else labels
    if not bool((other == null).all()):
        used = sorted(set(other.tolist()))
        return (f"the unconditional half of the batch uses label(s) {used} instead of the null label {null}. A real "
                "class there turns CFG into a negative prompt against that class; use null_label, the index the "
                "model was trained with for 'no condition'.")
    return None


def check_batched_cfg(student: Callable[..., Any]) -> Verdict:
    """``batched_cfg(model_fn, x, t, y, null_label, w)``: one call of model_fn on ``[x, x]``, ``[t, t]``,
    ``[y, null]``, then ``u + w (c - u)``. Diagnoses two calls, a wrong batch, swapped halves, a wrong null label."""
    if callable(student):
        diagnosis = _probe_calls(student, (2,))
        if diagnosis:
            verdict = Verdict(False, f"batched_cfg {diagnosis}", "batched_cfg", student, _ref_guided)
            print(verdict)
            return verdict
    return check_function("batched_cfg", student, _ref_guided, _denoiser_inputs((2,)), mistakes=_label_mistakes())


# -- (c) find the bugs --------------------------------------------------------------------------------------------


def _channels_only(k: int, *, uncond_label: int | None = None) -> Callable[..., Tensor]:
    def wrong(model_fn: Callable[..., Tensor], x: Tensor, t: Tensor, y: Tensor, null_label: int, w: float
              ) -> Tensor:
        lab = torch.full_like(y, null_label if uncond_label is None else uncond_label)
        c, u = model_fn(x, t, y), model_fn(x, t, lab)
        out = c.clone()
        out[:, :k] = cfg(c[:, :k], u[:, :k], w)
        return out
    return wrong


def check_guided_denoiser(student: Callable[..., Any]) -> Verdict:
    """The fixed ``guided_denoiser(model_fn, x, t, y, null_label, w)`` for image-like x of shape (n, 4, H, W): CFG
    on every channel with the null label the model was trained with."""
    shape = (4, 3, 3)
    mistakes = [
        ("both bugs are still there: only the first 3 channels are guided and the unconditional half uses label 0.",
         _channels_only(3, uncond_label=0)),
        ("still guides only the first 3 of the 4 channels (out[:, :3]); the 4th channel is the plain conditional "
         "prediction. Guidance must act on the whole prediction: all channels of eps (or x0, score, velocity).",
         _channels_only(3)),
        ("guides only channel 0 (out[:, :1]); guidance must act on every channel of the prediction.",
         _channels_only(1)),
        ("all channels are guided now, but the unconditional half still uses label 0: that is class 0, so this is "
         "a negative prompt against class 0. Use null_label.",
         lambda **kw: _two_pass(**kw, uncond_label=0)),
        *_label_mistakes()[1:],
    ]
    return check_function("guided_denoiser", student, _ref_guided, _denoiser_inputs(shape), mistakes=mistakes)
