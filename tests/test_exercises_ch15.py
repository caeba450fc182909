"""Chapter 15 checkers: the reference passes, every listed mistake gets its own diagnosis, a stub is "not written
yet" (every checker's answer to a stub is also tested in tests/test_student.py)."""

import pytest
import torch

import cfglab as cl
from cfglab import guidance as G
from cfglab.exercises import check_nested_guidance, check_order_gap
from cfglab.train_multi import MultiLabelData


def _nested(uncond, first, both, scale_first, scale_second):
    return uncond + scale_first * (first - uncond) + scale_second * (both - first)


def test_nested_guidance_reference_passes():
    assert check_nested_guidance(_nested)


@pytest.mark.parametrize("wrong, phrase", [
    (lambda u, f, b, s1, s2: _nested(u, f, b, s2, s1), "swapped"),
    (lambda u, f, b, s1, s2: u + s1 * (f - u) + s2 * (b - u), "starts from the unconditional"),
    (lambda u, f, b, s1, s2: _nested(u, f, b, s1 + 1, s2 + 1), "Ho & Salimans"),
    (lambda u, f, b, s1, s2: _nested(u, f, b, s1, s1 * s2), "ComfyUI"),
])
def test_nested_guidance_mistakes(wrong, phrase):
    v = check_nested_guidance(lambda uncond, first, both, scale_first, scale_second: wrong(
        uncond, first, both, scale_first, scale_second))
    assert not v and phrase in v.message, v.message


def _gap(layout, labels, scale_colour, scale_shape, n=200, steps=16, *, dtype=torch.float64, order="nested",
         same_start=True):
    data, path = MultiLabelData.from_attributes(cl.data.make_attributes(layout)), cl.Linear()
    a, b = labels
    laws = [data.law(list(v)) for v in ((None, None), (a, None), (None, b), (a, b))]

    def colour_first(x, t):
        u, sa, sb, sab = (m.score(x, t, path) for m in laws)
        return G.nested(u, sa, sab, scale_colour, scale_shape)

    def shape_first(x, t):
        u, sa, sb, sab = (m.score(x, t, path) for m in laws)
        if order == "scales kept":
            return G.nested(u, sb, sab, scale_colour, scale_shape)
        if order == "same":
            return G.nested(u, sa, sab, scale_colour, scale_shape)
        return G.nested(u, sb, sab, scale_shape, scale_colour)

    x1 = path.prior(n, 2, generator=torch.Generator().manual_seed(0), dtype=dtype)
    x2 = x1 if same_start else path.prior(n, 2, generator=torch.Generator().manual_seed(9), dtype=dtype)
    xa = cl.ode(colour_first, x1, path, steps, method="euler")
    xb = cl.ode(shape_first, x2, path, steps, method="euler")
    return float((xa - xb).abs().max())


def test_order_gap_reference_passes_and_hands_itself_on():
    v = check_order_gap(_gap)
    assert v and v.or_reference() is _gap


@pytest.mark.parametrize("wrong, phrase", [
    (lambda *a, **k: _gap(*a, **k, dtype=torch.float32), "float64"),
    (lambda *a, **k: _gap(*a, **k, order="scales kept"), "scales must move with their conditions"),
    (lambda *a, **k: _gap(*a, **k, same_start=False), "same noise"),
    (lambda *a, **k: _gap(*a, **k, order="same"), "does not matter"),
    (lambda *a, **k: 0.0, "does not matter"),
    (lambda *a, **k: 1.0, "the order matters for the grid layout"),
    (lambda *a, **k: "small", "should return a float"),
])
def test_order_gap_mistakes(wrong, phrase):
    v = check_order_gap(lambda layout, labels, scale_colour, scale_shape, n=200, steps=16: wrong(
        layout, labels, scale_colour, scale_shape, n, steps))
    assert not v and phrase in v.message, v.message


def test_order_gap_stub_is_not_written_yet(monkeypatch):
    monkeypatch.delenv("CFGLAB_EXERCISES", raising=False)

    def stub(layout, labels, scale_colour, scale_shape, n=200, steps=16):
        raise NotImplementedError("a hint")

    v = check_order_gap(stub)
    assert not v and "not written yet" in v.message and v.message.endswith("Hint: a hint")
    assert v.or_reference()("grid", (0, 0), 1.5, 5.0, n=8, steps=2) < 1e-9
