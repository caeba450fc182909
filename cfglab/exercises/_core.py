"""The machinery behind every exercise check: run the student's function on hidden random inputs, compare with
the reference answer, and explain a mismatch in words (shape, sign, scale convention, a missing term) by testing
the known wrong variants, never with a bare traceback."""

from __future__ import annotations

import dis
import os
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

STRICT_ENV = "CFGLAB_EXERCISES"  # "strict": a failing check raises (the book and CI, which run the solutions)


class ExerciseError(AssertionError):
    """A check failed where failures are not allowed (``CFGLAB_EXERCISES=strict``): the message is the verdict."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check: truthy when passed, printed as a one-paragraph message.

    A check cell ends with :meth:`or_reference`, which hands the cells below the student's function when it passed
    and the course's reference otherwise, so a notebook runs to the end whatever the student has written so far."""

    passed: bool
    message: str
    name: str = ""
    student: Any = None
    reference: Callable[..., Any] | None = None

    def __bool__(self) -> bool:
        return self.passed

    def or_reference(self) -> Any:
        """The function the rest of the notebook should use: the student's when the check passed, else the course's
        reference (saying so in one line). With ``CFGLAB_EXERCISES=strict`` in the environment (the book build and
        the tests, which run the worked solutions) a failed check raises :class:`ExerciseError` instead."""
        name = f"`{self.name}`" if self.name else "this function"
        if self.passed:
            print(f"-> the cells below use your {name}.")
            return self.student
        if os.environ.get(STRICT_ENV, "").lower() == "strict":
            raise ExerciseError(f"{STRICT_ENV}=strict and the check failed: {self.message}")
        if self.reference is None:
            raise ExerciseError(f"{self.message} (this check has no reference to stand in for it)")
        print(f"-> the cells below use the course's reference {name} until yours passes this check.")
        return self.reference

    def __repr__(self) -> str:
        # printed, the verdict is broken into lines that fit the page (110 characters); ``message`` stays one line
        text = ("PASSED: " if self.passed else "NOT YET: ") + self.message
        return "\n".join(textwrap.fill(part, width=110, break_long_words=False, break_on_hyphens=False)
                         for part in text.split("\n"))

    __str__ = __repr__


def _describe(x: Any) -> str:
    if isinstance(x, Tensor):
        return f"tensor{tuple(x.shape)} {str(x.dtype).replace('torch.', '')}"
    return type(x).__name__


def _close(a: Any, b: Any, rtol: float, atol: float) -> bool:
    if isinstance(b, Tensor):
        return isinstance(a, Tensor) and a.shape == b.shape and bool(torch.allclose(a.to(b.dtype), b, rtol=rtol,
                                                                                      atol=atol))
    if isinstance(b, (tuple, list)):
        return isinstance(a, (tuple, list)) and len(a) == len(b) and all(_close(x, y, rtol, atol)
                                                                         for x, y in zip(a, b))
    try:
        return abs(float(a) - float(b)) <= atol + rtol * abs(float(b))
    except (TypeError, ValueError):
        return False


def check_function(name: str, student: Callable[..., Any], reference: Callable[..., Any],
                   make_inputs: Callable[[torch.Generator], dict[str, Any]], *, trials: int = 3,
                   rtol: float = 1e-5, atol: float = 1e-7,
                   mistakes: Sequence[tuple[str, Callable[..., Any]]] = (), seed: int = 20261121,
                   quiet: bool = False) -> Verdict:
    """Check ``student`` against ``reference`` on ``trials`` hidden inputs ``make_inputs(generator)`` (keyword
    arguments). ``mistakes`` are (explanation, wrong_function) pairs: when the student's answer matches a wrong
    variant, the explanation is the feedback. Prints the verdict (unless ``quiet``) and returns it."""
    verdict = replace(_run(name, student, reference, make_inputs, trials, rtol, atol, mistakes, seed), name=name,
                      student=student, reference=reference)
    if not quiet:
        print(verdict)
    return verdict


def _run(name: str, student: Callable[..., Any], reference: Callable[..., Any],
         make_inputs: Callable[[torch.Generator], dict[str, Any]], trials: int, rtol: float, atol: float,
         mistakes: Sequence[tuple[str, Callable[..., Any]]], seed: int) -> Verdict:
    if not callable(student):
        return Verdict(False, f"{name}: expected a function, got {_describe(student)}.")
    g = torch.Generator().manual_seed(seed)
    for trial in range(trials):
        inputs = make_inputs(g)
        shown = ", ".join(f"{k}={_describe(v)}" for k, v in inputs.items())
        want = reference(**{k: _copy(v) for k, v in inputs.items()})
        try:
            got = student(**{k: _copy(v) for k, v in inputs.items()})
        except NotImplementedError as err:
            if _raised_by_a_raise_statement(err):  # a stub (the student edition's): say so, with its hint
                return Verdict(False, _not_written(name, err))
            return Verdict(False, f"{name} raised NotImplementedError: {err} (called with {shown}).")
        except Exception as err:  # report, never re-raise: the student sees one clear sentence
            return Verdict(False, f"{name} raised {type(err).__name__}: {err} (called with {shown}).")
        if isinstance(want, Tensor):
            if not isinstance(got, Tensor):
                return Verdict(False, f"{name} should return a tensor, got {_describe(got)}.")
            if got.shape != want.shape:
                return Verdict(False, f"{name} returned shape {tuple(got.shape)}, expected {tuple(want.shape)} "
                                      f"(called with {shown}).")
            if not torch.isfinite(got).all():
                return Verdict(False, f"{name} returned NaN or infinite values (called with {shown}).")
        if _close(got, want, rtol, atol):
            continue
        for explanation, wrong in mistakes:
            try:
                if _close(got, wrong(**{k: _copy(v) for k, v in inputs.items()}), rtol, atol):
                    return Verdict(False, f"{name}: {explanation}")
            except Exception:
                continue
        return Verdict(False, f"{name} gives a wrong value on hidden input {trial + 1} ({shown}); largest error "
                              f"{_max_error(got, want)}. Re-read the formula in the exercise.")
    return Verdict(True, f"{name} matches the exact answer on {trials} hidden random inputs.")


def attempt(name: str, student: Callable[..., Any], **inputs: Any) -> tuple[Any, Verdict | None]:
    """Call the student's function for an outcome checker: ``(value, None)``, or ``(None, verdict)`` when it is not a
    function, is still a stub ("not written yet", with its hint) or raises (reported in one sentence)."""
    if not callable(student):
        return None, Verdict(False, f"{name}: expected a function, got {_describe(student)}.", name, student)
    shown = ", ".join(f"{k}={_describe(v)}" for k, v in inputs.items())
    try:
        return student(**{k: _copy(v) for k, v in inputs.items()}), None
    except NotImplementedError as err:
        if _raised_by_a_raise_statement(err):
            return None, Verdict(False, _not_written(name, err), name, student)
        return None, Verdict(False, f"{name} raised NotImplementedError: {err} (called with {shown}).", name, student)
    except Exception as err:  # report, never re-raise
        return None, Verdict(False, f"{name} raised {type(err).__name__}: {err} (called with {shown}).", name, student)


def _raised_by_a_raise_statement(err: BaseException) -> bool:
    """Whether ``err`` comes from a ``raise`` statement of the student's code (a stub), rather than from a call in
    it, such as a torch operation that is "not supported for complex types" (also a NotImplementedError)."""
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    if "site-packages" in code.co_filename or "dist-packages" in code.co_filename:  # raised inside a library
        return False
    return any(i.offset == tb.tb_lasti and i.opname == "RAISE_VARARGS" for i in dis.get_instructions(code))


def _not_written(name: str, err: NotImplementedError) -> str:
    """The feedback for a function that still raises ``NotImplementedError`` (the stubs of the student edition
    carry their hint as the exception's message)."""
    hint = str(err).strip()
    return (f"{name} is not written yet: replace its `raise NotImplementedError(...)` with your code, then run this "
            f"check again." + (f" Hint: {hint}" if hint else ""))


def _copy(v: Any) -> Any:
    return v.clone() if isinstance(v, Tensor) else v


def _max_error(a: Any, b: Any) -> str:
    try:
        if isinstance(b, Tensor):
            return f"{(a.to(b.dtype) - b).abs().max().item():.3g}"
        return f"{abs(float(a) - float(b)):.3g}"
    except Exception:
        return "unknown"
