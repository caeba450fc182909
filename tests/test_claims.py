"""cl.check prints one line per claim and fails loudly, at exactly the strength of its bound."""

import pytest
import torch

import cfglab as cl
from cfglab.claims import ClaimError


def test_a_holding_claim_prints_value_bound_and_a_pass_mark(capsys):
    cl.check("tempered weight of A", 0.67123, ">", 0.5)
    assert capsys.readouterr().out == "✓ tempered weight of A: 0.6712 > 0.5\n"


@pytest.mark.parametrize("value,op,bound,holds", [
    (0.25, ">", 0.25, False), (0.25, ">=", 0.25, True), (0.2501, ">", 0.25, True),
    (1.0, "<", 1.0, False), (1.0, "<=", 1.0, True),
    (0.3, "in", (0.3, 0.5), True), (0.51, "in", (0.3, 0.5), False),
])
def test_the_bound_is_exactly_the_stated_one(value, op, bound, holds, capsys):
    if holds:
        cl.check("claim", value, op, bound)
        assert capsys.readouterr().out.startswith("✓ claim: ")
    else:
        with pytest.raises(ClaimError, match=r"✗ claim: .* does not hold"):
            cl.check("claim", value, op, bound)
        assert capsys.readouterr().out == ""   # nothing printed: the error carries the line, once


def test_approximately_needs_a_tolerance_and_uses_it():
    cl.check("variance", 0.2654, "≈", 0.2631, tol=0.003)
    with pytest.raises(ClaimError, match="0.2654 ≈ 0.2631 ± 0.002 does not hold"):
        cl.check("variance", 0.2654, "≈", 0.2631, tol=0.002)
    cl.check("same with ~", 0.2654, "~", 0.2631, tol=0.003)


def test_many_values_are_all_checked_and_the_worst_is_printed(capsys):
    cl.check("errors", torch.tensor([1e-15, 3e-12, 2e-14]), "<", 1e-10)
    assert capsys.readouterr().out == "✓ errors: all 3, worst 3e-12 < 1e-10\n"
    with pytest.raises(ClaimError, match=r"worst 0.9 > 0.95 does not hold \(2 of 3\)"):
        cl.check("fractions", [0.99, 0.9, 0.91], ">", 0.95)


def test_an_identity_is_labelled_as_one(capsys):
    cl.check("Euler in sigma equals DDIM", 2e-15, "<", 1e-10, identity=True)
    out = capsys.readouterr().out
    assert out.startswith("= ") and out.rstrip().endswith("(identity)") and "✓" not in out


def test_a_non_finite_measurement_fails_the_claim():
    with pytest.raises(ClaimError, match="not finite"):
        cl.check("loss", float("inf"), "<", 1.0)


def test_a_claim_error_is_an_assertion_error():
    assert issubclass(ClaimError, AssertionError)


def test_a_long_claim_is_wrapped_to_the_page(capsys):
    cl.check("a claim with a long sentence " * 6, [0.1, 0.2, 0.3], "<", 1.0)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) > 1 and all(len(line) <= 110 for line in lines)
    assert lines[0].startswith("✓ ") and all(line.startswith("    ") for line in lines[1:])
