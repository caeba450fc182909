"""Chapter 5 checks: the references pass, every listed mistake gets its diagnosis. (Every checker's answer to a stub
is tested once, in tests/test_student.py.)"""

import pytest
import torch

from cfglab.exercises import (
    ch05,
    check_classifier_guided_score,
    check_guided_eps,
    check_log_prob_of_class,
    check_scale_for_adherence,
)


# -- (a) ------------------------------------------------------------------------------------------------------------
def test_guided_score_reference_passes(capsys):
    def good(uncond_score, grad_log_p, scale):
        return uncond_score + scale * grad_log_p

    assert check_classifier_guided_score(good)
    assert "PASSED" in capsys.readouterr().out


@pytest.mark.parametrize("explanation,wrong", ch05._SCORE_MISTAKES, ids=range(len(ch05._SCORE_MISTAKES)))
def test_guided_score_mistakes_are_named(explanation, wrong):
    v = check_classifier_guided_score(wrong)
    assert not v and explanation in v.message


# -- (b) ------------------------------------------------------------------------------------------------------------
def test_guided_eps_reference_passes():
    def good(eps_uncond, grad_log_p, alpha, sigma, scale):
        return eps_uncond - sigma * scale * grad_log_p

    assert check_guided_eps(good)


@pytest.mark.parametrize("explanation,wrong", ch05._EPS_MISTAKES, ids=range(len(ch05._EPS_MISTAKES)))
def test_guided_eps_mistakes_are_named(explanation, wrong):
    v = check_guided_eps(wrong)
    assert not v and explanation in v.message


def test_guided_eps_via_the_path_passes():
    """Going through the path's own conversion (score form, then eps) is a correct answer too."""
    def via_score(eps_uncond, grad_log_p, alpha, sigma, scale):
        score = -eps_uncond / sigma
        return -sigma * (score + scale * grad_log_p)

    assert check_guided_eps(via_score)


# -- (c) ------------------------------------------------------------------------------------------------------------
def test_log_prob_reference_and_equivalents_pass():
    assert check_log_prob_of_class(lambda logits, y: logits.log_softmax(-1).gather(1, y[:, None]).squeeze(1))
    assert check_log_prob_of_class(lambda logits, y: logits.log_softmax(-1)[torch.arange(len(y)), y])
    assert check_log_prob_of_class(
        lambda logits, y: logits.gather(1, y[:, None])[:, 0] - torch.logsumexp(logits, dim=1))


def test_row_indexing_bug_is_diagnosed():
    v = check_log_prob_of_class(lambda logits, y: logits.log_softmax(-1)[y])
    assert not v and "picks *rows*" in v.message and "missing as well" not in v.message


def test_row_indexing_of_raw_logits_is_diagnosed():
    v = check_log_prob_of_class(lambda logits, y: logits[y])
    assert not v and "picks *rows*" in v.message and "missing as well" in v.message


@pytest.mark.parametrize("explanation,wrong", ch05._LOGIT_MISTAKES, ids=range(len(ch05._LOGIT_MISTAKES)))
def test_log_prob_mistakes_are_named(explanation, wrong):
    v = check_log_prob_of_class(wrong)
    assert not v and explanation in v.message


# -- (d) the scale for a target adherence (an experiment judged with the exact scores) ---------------------------
@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the toy ODEs are tiny: threads only add overhead
    yield
    torch.set_num_threads(before)


def _secant(adherence_at, target, w_max=8.0):
    a, b = 1.0, 2.0
    fa, fb = adherence_at(a) - target, adherence_at(b) - target
    for _ in range(12):
        if abs(fb) < 0.005:
            break
        c = b - fb * (b - a) / (fb - fa) if fb != fa else 0.5 * (a + b)
        a, fa, b = b, fb, min(max(c, 1.0), w_max)
        fb = adherence_at(b) - target
    return b


def _wrong_direction(adherence_at, target, w_max=8.0):
    lo, hi = 1.0, w_max
    for _ in range(15):
        mid = 0.5 * (lo + hi)
        a = adherence_at(mid)
        if abs(a - target) < 0.005:
            return mid
        lo, hi = (lo, mid) if a < target else (mid, hi)   # the bracket moves the wrong way
    return mid


def _fine_grid(adherence_at, target, w_max=8.0):
    ws = [1.0 + k * (w_max - 1.0) / 24 for k in range(25)]
    return min(ws, key=lambda w: abs(adherence_at(w) - target))


def test_scale_reference_and_other_correct_searches_pass(one_thread):
    assert check_scale_for_adherence(ch05._scale_for_adherence, quiet=True)
    assert check_scale_for_adherence(_secant, quiet=True)
    # a 0-d tensor is accepted as a float
    assert check_scale_for_adherence(lambda adherence_at, target, w_max=8.0: torch.tensor(
        ch05._scale_for_adherence(adherence_at, target, w_max)), quiet=True)


@pytest.mark.parametrize("wrong, phrase", [
    (_wrong_direction, "swapping the two runs the search to the wrong end"),
    (_fine_grid, "called adherence_at 25 times"),
    (lambda adherence_at, target, w_max=8.0: target, "the target adherence itself"),
    (lambda adherence_at, target, w_max=8.0: 1.0, "too little guidance"),
    (lambda adherence_at, target, w_max=8.0: 12.0, "outside [1, w_max]"),
    (lambda adherence_at, target, w_max=8.0: "1.5", None),
    (lambda adherence_at, target, w_max=8.0: [1.5], "should return the scale as a float"),
    (lambda adherence_at, target, w_max=8.0: 1 / 0, "ZeroDivisionError"),
])
def test_scale_mistakes_are_diagnosed(one_thread, wrong, phrase):
    v = check_scale_for_adherence(wrong, quiet=True)
    if phrase is None:  # a numeric string is read as its number: 1.5 is near the right scale for neither target
        assert not v and "guidance" in v.message
    else:
        assert not v and phrase in v.message, v.message


def test_adherence_curve_grows_with_the_scale_and_starts_at_the_exact_conditional(one_thread):
    """At w = 1 ideal classifier guidance samples the exact class N((0.6, 0), 0.6^2 I): adherence Phi(1)."""
    curve = ch05.AdherenceCurve(n=3000, seed=3)
    values = [curve(w) for w in (1.0, 1.5, 2.5)]
    assert values[0] < values[1] < values[2] and curve.calls == 3
    phi1 = 0.8413447460685429
    assert abs(values[0] - phi1) < 4 * (phi1 * (1 - phi1) / 3000) ** 0.5
