"""Checks for chapter 6, classifier-free guidance: the guidance rule in two conventions, the batched pass, a
find-the-bug exercise built from two real failure modes (guiding only some channels; a null label that differs
between training and sampling), and an experiment: the whole CFG sampling loop, judged by sampling the overlap toy
with its exact velocities and comparing the samples with exact CFG."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..guidance import cfg, scale_from_paper
from ._core import Verdict, _not_written, _raised_by_a_raise_statement, check_function

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


# -- (d) the whole CFG sampling loop (an experiment: sample with it, judge the samples against the exact ones) ------


class ExactVelocity:
    """The exact velocity of the overlap toy on the linear path as a conditional "network" ``model_fn(x, t, y)``:
    labels 0 and 1 give the class velocities, ``null_label`` (2) the unconditional one. Records each call (rows,
    labels) and rejects inputs a network would reject, with a message."""

    def __init__(self) -> None:
        from ..data import make
        from ..paths import Linear

        self.mix, self.path, self.null_label = make("overlap"), Linear(), 2
        self.calls: list[dict[str, Any]] = []

    def __call__(self, x: Tensor, t: Tensor, y: Tensor) -> Tensor:
        if not isinstance(y, Tensor) or y.is_floating_point() or y.dtype == torch.bool:
            raise TypeError(f"model_fn got labels of type {getattr(y, 'dtype', type(y).__name__)}; labels are "
                            "integer tensors (the class, and null_label for the unconditional half)")
        if not isinstance(t, Tensor) or t.shape != (x.shape[0],):
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"model_fn got x with {x.shape[0]} rows but t of shape {got}; t needs one entry per "
                             "row of x")
        if y.shape != (x.shape[0],):
            raise ValueError(f"model_fn got x with {x.shape[0]} rows but labels of shape {tuple(y.shape)}")
        if int(y.min()) < 0 or int(y.max()) > self.null_label:
            raise ValueError(f"model_fn got label {int(y.min()) if int(y.min()) < 0 else int(y.max())}: it knows "
                             f"the classes 0, 1 and the null label {self.null_label}")
        self.calls.append({"n": x.shape[0], "y": y.clone()})
        out = torch.empty_like(x)
        for label in (0, 1, self.null_label):
            rows = y == label
            if bool(rows.any()):
                xs, ts = x[rows], t[rows]
                score = self.mix.score(xs, ts, self.path, None if label == self.null_label else label)
                out[rows] = self.path.convert(score, xs, ts, "score", "velocity")
        return out


def _cfg_euler(model_fn: Callable[..., Tensor], x: Tensor, y: int, null_label: int, w: float, ts: Tensor) -> Tensor:
    """Reference: Euler steps in t on the CFG-guided velocity, one batched call ``[x, x]``, ``[y, null]`` a step."""
    n = x.shape[0]
    labels = torch.cat([torch.full((n,), y), torch.full((n,), null_label)])
    for k in range(len(ts) - 1):
        t = torch.full((2 * n,), float(ts[k]), dtype=x.dtype)
        cond, uncond = model_fn(torch.cat([x, x]), t, labels).chunk(2)
        x = x + (ts[k + 1] - ts[k]) * cfg(cond, uncond, w)
    return x


def check_cfg_euler(student: Callable[..., Any], *, quiet: bool = False) -> Verdict:
    """``cfg_euler(model_fn, x, y, null_label, w, ts)``: the CFG sampling loop, Euler in t with one batched call per
    step. A probe counts the calls and reads their labels; then the checker samples class 1 of the overlap toy with
    the exact velocities as ``model_fn``, at w = 1 (where the answer is the exact class) and at w = 3, and compares
    the samples' mean class probability and mean first coordinate with a large reference run, within five
    standard errors plus an allowance for the step method's own error."""
    name = "cfg_euler"

    def verdict(passed: bool, message: str, *, prefix: bool = True) -> Verdict:
        v = Verdict(passed, f"{name}: {message}" if prefix and not passed else message, name, student, _cfg_euler)
        if not quiet:
            print(v)
        return v

    def call(model: ExactVelocity, x: Tensor, w: float, ts: Tensor) -> tuple[Any, Verdict | None]:
        try:
            return student(model, x.clone(), 1, model.null_label, w, ts.clone()), None
        except NotImplementedError as err:
            if _raised_by_a_raise_statement(err):
                return None, verdict(False, _not_written(name, err), prefix=False)
            return None, verdict(False, f"raised NotImplementedError: {err}.")
        except Exception as err:  # report, never re-raise
            return None, verdict(False, f"raised {type(err).__name__}: {err}.")

    if not callable(student):
        return verdict(False, f"expected a function, got {type(student).__name__}.")
    probe = ExactVelocity()
    ts = probe.path.timesteps(5, spacing="uniform")
    x = probe.path.prior(6, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out, failed = call(probe, x, 3.0, ts)
    if failed is not None:
        return failed
    if not isinstance(out, Tensor) or out.shape != x.shape:
        got = f"shape {tuple(out.shape)}" if isinstance(out, Tensor) else type(out).__name__
        return verdict(False, f"should return the samples, a tensor of the shape of x {tuple(x.shape)}; got {got}.")
    steps, calls = len(ts) - 1, probe.calls
    if len(calls) != steps or any(c["n"] != 2 * x.shape[0] for c in calls):
        rows = sorted({c["n"] for c in calls})
        return verdict(False, f"called model_fn {len(calls)} times on {rows} rows for {steps} steps of 6 points; "
                              f"Euler needs one guided velocity per step, from one call on the doubled batch of 12 "
                              f"rows ([x, x]).")
    first = calls[0]["y"]
    if sorted(set(first.tolist())) != [1, probe.null_label] or int((first == probe.null_label).sum()) != 6:
        return verdict(False, f"the labels of the doubled batch are {sorted(set(first.tolist()))}; they should be "
                              f"the class y = 1 for one half and the null label {probe.null_label} for the other.")
    # the outcome, at w = 1 (the exact class) and w = 3, against a reference run of 8000 fresh points
    ts = probe.path.timesteps(40, spacing="uniform")
    mix = probe.mix
    results: list[tuple[float, float, float, float]] = []
    for w in (1.0, 3.0):
        x = probe.path.prior(2000, 2, generator=torch.Generator().manual_seed(int(10 * w)), dtype=torch.float64)
        out, failed = call(ExactVelocity(), x, w, ts)
        if failed is not None:
            return failed
        if not isinstance(out, Tensor) or out.shape != x.shape or not bool(torch.isfinite(out).all()):
            return verdict(False, f"at w = {w:g} the samples are not a finite tensor of shape {tuple(x.shape)} "
                                  "(does each step move x by (t_next - t) times the guided velocity?).")
        ref = _cfg_euler(ExactVelocity(), probe.path.prior(8000, 2, generator=torch.Generator().manual_seed(99),
                                                           dtype=torch.float64), 1, 2, w, ts)
        stats = []
        for a in (out, ref):
            p = mix.posterior(a, 0.0, probe.path)[:, 1]
            stats.append((float(p.mean()), float(p.std()), float(a[:, 0].mean()), float(a[:, 0].std())))
        (p_s, sp_s, m_s, sm_s), (p_r, sp_r, m_r, sm_r) = stats
        tol_p = 0.01 + 5 * math.sqrt(sp_s**2 / 2000 + sp_r**2 / 8000)
        tol_m = 0.02 + 5 * math.sqrt(sm_s**2 / 2000 + sm_r**2 / 8000)
        if abs(p_s - p_r) > tol_p or abs(m_s - m_r) > tol_m:
            hint = ""
            if w == 3.0 and abs(m_s - results[0][2]) < tol_m:
                hint = " Your samples at w = 3 look like those at w = 1: is the scale applied?"
            elif m_s > m_r + tol_m and p_s > 0.99:
                hint = (" They are pushed too far: is the unconditional half asking for a real class instead of "
                        "the null label?")
            elif p_s < 0.45:
                hint = (" Below one half, worse than no guidance: either the two halves of the output are swapped "
                        "(guiding away from y), or the steps run the wrong way (t decreases: each step adds "
                        "(ts[k + 1] - ts[k]) times the velocity, a negative factor).")
            elif p_s < p_r:
                hint = (" Too little of class 1: are the two halves swapped? With labels [y, null] the first half of "
                        "the output is the conditional prediction.")
            return verdict(False, f"at w = {w:g} your samples have mean p(1 | x) = {p_s:.3f} and mean first "
                                  f"coordinate {m_s:.3f}; exact CFG gives {p_r:.3f} and {m_r:.3f}.{hint}")
        results.append((p_s, p_r, m_s, m_r))
    lines = "\n".join(f"  w = {w:g}: mean p(1 | x) {p_s:.3f} (reference {p_r:.3f}), mean x_1 {m_s:.3f} ({m_r:.3f})"
                      for w, (p_s, p_r, m_s, m_r) in zip((1, 3), results))
    return verdict(True, f"{name} calls model_fn once a step on [x, x] with labels [y, null], and its samples "
                         f"match exact CFG:\n{lines}")
