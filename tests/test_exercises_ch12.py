"""Chapter 12 checkers: the reference passes, every listed mistake gets its own diagnosis. (Every checker's answer to
a stub is tested once, in tests/test_student.py.)"""

import pytest
import torch

from cfglab.exercises import check_guided_logits, check_sample_token

sm, lsm = (lambda z: torch.softmax(z, -1)), (lambda z: torch.log_softmax(z, -1))


def test_guided_logits_reference_passes():
    assert check_guided_logits(lambda cond_logits, uncond_logits, w:
                               lsm(uncond_logits) + w * (lsm(cond_logits) - lsm(uncond_logits)))


def test_guided_logits_raw_logits_pass():
    # row constants cancel in the softmax: mixing raw logits is the same distribution
    assert check_guided_logits(lambda cond_logits, uncond_logits, w: torch.lerp(uncond_logits, cond_logits, w))


@pytest.mark.parametrize("wrong, phrase", [
    (lambda cond_logits, uncond_logits, w: sm(uncond_logits) + w * (sm(cond_logits) - sm(uncond_logits)),
     "PROBABILITIES"),
    (lambda cond_logits, uncond_logits, w: sm(uncond_logits + w * (cond_logits - uncond_logits)),
     "returned probabilities"),
    (lambda cond_logits, uncond_logits, w: uncond_logits + (1 + w) * (cond_logits - uncond_logits), "off by one"),
    (lambda cond_logits, uncond_logits, w: cond_logits + w * (uncond_logits - cond_logits), "swapped"),
    (lambda cond_logits, uncond_logits, w: w * cond_logits, "temperature"),
])
def test_guided_logits_mistakes(wrong, phrase):
    v = check_guided_logits(wrong)
    assert not v and phrase in v.message


def _cdf_index(p, u):
    return (p.cumsum(-1) <= u[:, None]).sum(-1).clamp(max=p.shape[-1] - 1)


def test_sample_token_reference_passes():
    assert check_sample_token(lambda logits, u: torch.searchsorted(
        sm(logits).cumsum(-1), u[:, None], right=True)[:, 0].clamp(max=logits.shape[-1] - 1))


@pytest.mark.parametrize("wrong, phrase", [
    (lambda logits, u: _cdf_index(logits, u), "raw logits"),
    (lambda logits, u: _cdf_index(logits.exp(), u), "not normalised"),
    (lambda logits, u: logits.argmax(-1), "argmax"),
    (lambda logits, u: (_cdf_index(sm(logits), u) + 1).clamp(max=logits.shape[-1] - 1), "off by one"),
    (lambda logits, u: _cdf_index(sm(logits), 1 - u), "wrong end"),
])
def test_sample_token_mistakes(wrong, phrase):
    v = check_sample_token(wrong)
    assert not v and phrase in v.message
