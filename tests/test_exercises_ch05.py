"""Chapter 5 checks: the references pass, every listed mistake gets its diagnosis. (Every checker's answer to a stub
is tested once, in tests/test_student.py.)"""

import pytest
import torch

from cfglab.exercises import ch05, check_classifier_guided_score, check_guided_eps, check_log_prob_of_class


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
