"""The exercise-check machinery: verdicts, diagnoses of known mistakes, and no tracebacks for the student."""

import torch

from cfglab.exercises import Verdict, check_function


def reference(x, h, z):
    return x - h * x + (2 * h) ** 0.5 * z


def inputs(g):
    return dict(x=torch.randn(4, 2, generator=g, dtype=torch.float64), h=0.1,
                z=torch.randn(4, 2, generator=g, dtype=torch.float64))


MISTAKES = [("scale the noise by sqrt(2 h), not h", lambda x, h, z: x - h * x + h * z)]


def test_pass(capsys):
    v = check_function("step", reference, reference, inputs)
    assert v and isinstance(v, Verdict) and "PASSED" in capsys.readouterr().out


def test_known_mistake_is_named():
    v = check_function("step", MISTAKES[0][1], reference, inputs, mistakes=MISTAKES, quiet=True)
    assert not v and "sqrt(2 h)" in v.message


def test_unknown_mistake_reports_the_error_size():
    v = check_function("step", lambda x, h, z: x, reference, inputs, mistakes=MISTAKES, quiet=True)
    assert not v and "largest error" in v.message


def test_wrong_shape_and_exceptions_are_sentences():
    v = check_function("step", lambda x, h, z: x[:, :1], reference, inputs, quiet=True)
    assert not v and "shape (4, 1)" in v.message

    def broken(x, h, z):
        return x @ torch.zeros(3, 3)

    v = check_function("step", broken, reference, inputs, quiet=True)
    assert not v and "raised RuntimeError" in v.message


def test_stub_says_not_written_yet_with_its_hint(capsys):
    def stub(x, h, z):
        raise NotImplementedError("scale the noise z by sqrt(2 h)")

    v = check_function("step", stub, reference, inputs, mistakes=MISTAKES)
    out = capsys.readouterr().out
    assert not v and v.message.startswith("step is not written yet: replace its `raise NotImplementedError(...)`")
    assert v.message.endswith("Hint: scale the noise z by sqrt(2 h)")
    assert out.startswith("NOT YET: step is not written yet") and "Traceback" not in out


def test_stub_without_a_hint_says_not_written_yet():
    def stub(x, h, z):
        raise NotImplementedError

    v = check_function("step", stub, reference, inputs, quiet=True)
    assert not v and "not written yet" in v.message and "Hint" not in v.message


def test_not_implemented_by_torch_is_an_error_not_a_stub():
    def complex_clamp(x, h, z):  # torch raises NotImplementedError: clamp is not supported for complex types
        return x.to(torch.complex128).clamp(0, 1)

    v = check_function("step", complex_clamp, reference, inputs, quiet=True)
    assert not v and "raised NotImplementedError: clamp" in v.message and "not written yet" not in v.message


def test_a_stub_called_by_the_student_function_is_reported_with_its_hint():
    def helper(x):
        raise NotImplementedError("write the helper first")

    v = check_function("step", lambda x, h, z: helper(x), reference, inputs, quiet=True)
    assert not v and "not written yet" in v.message and v.message.endswith("Hint: write the helper first")


def test_student_cannot_mutate_the_hidden_inputs():
    def mutating(x, h, z):
        x.mul_(0)
        return reference(x, h, z)

    v = check_function("step", mutating, reference, inputs, quiet=True)
    assert not v  # wrong answer, but the reference was computed on untouched inputs
