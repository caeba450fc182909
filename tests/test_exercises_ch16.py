"""Chapter 16 checkers: the reference passes, every known mistake gets its diagnosis, a stub is "not written yet"
(every checker's answer to a stub is also tested in tests/test_student.py)."""

import pytest
import torch

import cfglab as cl
from cfglab import guidance as G
from cfglab.exercises import check_icg_field, check_matching_icg_scale
from cfglab.exercises.ch16 import LINE, _cfg_log_odds, _expected_icg_samples, _log_odds


def _field(cond_score, y, scale, num_classes, generator, *, mistake=None):
    def fn(x, t):
        n = x.shape[0]
        c = torch.randint(num_classes, (n,), generator=generator)
        if mistake == "exclude y":
            c = torch.where(c == y, (c + 1) % num_classes, c)
        if mistake == "one per batch":
            c = c[:1].expand(n)
        yy = torch.full((n,), y)
        cond, indep = cond_score(x, t, yy), cond_score(x, t, c)
        if mistake == "swapped":
            return G.icg(indep, cond, scale)
        if mistake == "ho":
            return cond + scale * (cond - indep)
        if mistake == "expected":
            return G.icg(cond, G.expected_icg([cond_score(x, t, torch.full((n,), j)) for j in range(3)]), scale)
        return G.icg(cond, indep, scale)
    return fn


def _fixed_per_sample(cond_score, y, scale, num_classes, generator):
    kept = {}

    def fn(x, t):
        if "c" not in kept:
            kept["c"] = torch.randint(num_classes, (x.shape[0],), generator=generator)
        return G.icg(cond_score(x, t, torch.full((x.shape[0],), y)), cond_score(x, t, kept["c"]), scale)
    return fn


@pytest.fixture(autouse=True)
def one_thread():
    """The exact toy scores are tiny tensors: one thread (two thrash on a busy machine)."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def test_icg_field_reference_passes():
    assert check_icg_field(_field)


@pytest.mark.parametrize("mistake, phrase", [
    ("exclude y", "never draws y"),
    ("one per batch", "whole batch"),
    ("swapped", "roles are swapped"),
    ("ho", "Ho & Salimans"),
    ("expected", "averaged over the classes"),
])
def test_icg_field_mistakes(mistake, phrase):
    v = check_icg_field(lambda cond_score, y, scale, num_classes, generator: _field(
        cond_score, y, scale, num_classes, generator, mistake=mistake))
    assert not v and phrase in v.message, v.message


def test_icg_field_fixed_labels_are_diagnosed():
    v = check_icg_field(_fixed_per_sample)
    assert not v and "same random class at every call" in v.message, v.message


def test_icg_field_that_is_not_a_factory_is_reported():
    v = check_icg_field(lambda cond_score, y, scale, num_classes, generator: 3.0)
    assert not v and "should return a function" in v.message


def _bisect(target, y, n=500, steps=16, *, no_none=False):
    f = lambda w: _log_odds(_expected_icg_samples(y, w, n, steps, 1), y) - target  # noqa: E731
    lo, hi = 1.0, 8.0
    if f(lo) * f(hi) > 0:
        return 1.0 if no_none else None
    for _ in range(12):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if (f(mid) > 0) == (f(hi) > 0) else (mid, hi)
    return 0.5 * (lo + hi)


def test_matching_icg_scale_reference_passes_any_correct_search():
    assert check_matching_icg_scale(_bisect)   # another noise draw than the reference's: judged by the outcome


@pytest.mark.parametrize("wrong, phrase", [
    (lambda target, y, n=500, steps=16: _bisect(target, y, n, steps, no_none=True), "return None"),
    (lambda target, y, n=500, steps=16: None, "a scale in [1, 8] reaches it"),
    (lambda target, y, n=500, steps=16: {0: 2.0, 2: 4.0}.get(y), "CFG scale itself"),
    (lambda target, y, n=500, steps=16: "two", "should return a float or None"),
])
def test_matching_icg_scale_mistakes(wrong, phrase):
    v = check_matching_icg_scale(wrong)
    assert not v and phrase in v.message, v.message


def test_matching_icg_scale_target_is_cfg_adherence():
    # the hidden target is CFG's, and CFG at the ICG scale is not ICG: the two adherences differ
    assert abs(_cfg_log_odds(0, 2.0) - _log_odds(_expected_icg_samples(0, 2.0, 500, 16, 5), 0)) > 1.0
    assert LINE.num_classes == 3 and isinstance(cl.Linear(), cl.Path)
