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


# -- the per-token CFG loop with the prompt dropped ----------------------------------------------------------------

def _loop(combine, *, keep_prompt=False, stale=False, greedy=False, with_prompt=False):
    """A cfg_sample built from its parts; the keywords switch on the classic slips."""
    def cfg_sample(next_log_prob, prompt, n, length, w, generator):
        p = prompt.expand(n, -1)
        x = torch.zeros(n, 0, dtype=torch.long)
        for _ in range(length):
            c = next_log_prob(torch.cat([p, x], 1))
            u = next_log_prob(torch.cat([p, x], 1) if keep_prompt else (x[:, :0] if stale else x))
            logits = combine(c, u, w)
            if greedy:
                nxt = logits.argmax(-1)
            else:
                nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)[:, 0]
            x = torch.cat([x, nxt[:, None]], 1)
        return torch.cat([p, x], 1) if with_prompt else x
    return cfg_sample


def _right(c, u, w):
    return lsm(u) + w * (lsm(c) - lsm(u))


def test_cfg_sample_reference_and_another_correct_loop_pass():
    from cfglab.exercises import check_cfg_sample
    from cfglab.text import sample_prompted
    assert check_cfg_sample(lambda next_log_prob, prompt, n, length, w, generator: sample_prompted(
        next_log_prob, prompt, n, length, w, generator=generator))
    assert check_cfg_sample(_loop(_right))  # torch.multinomial instead of the inverse CDF: a different draw, same law


def _mixed(c, u, w):
    p = (sm(u) + w * (sm(c) - sm(u))).clamp_min(1e-300)
    return (p / p.sum(-1, keepdim=True)).log()


@pytest.mark.parametrize("wrong, phrase", [
    (_loop(_right, keep_prompt=True), "BOTH contexts"),
    (_loop(lambda c, u, w: u), "ignore the prompt"),
    (_loop(lambda c, u, w: lsm(u) + (1 + w) * (lsm(c) - lsm(u))), "scale w + 1"),
    (_loop(lambda c, u, w: lsm(c) + w * (lsm(u) - lsm(c))), "swapped"),
    (_loop(_mixed), "PROBABILITIES"),
    (_loop(_right, stale=True), "never sees the letters already drawn"),
    (_loop(_right, greedy=True), "argmax"),
    (_loop(_right, with_prompt=True), "the prompt not included"),
])
def test_cfg_sample_mistakes(wrong, phrase):
    from cfglab.exercises import check_cfg_sample
    v = check_cfg_sample(wrong)
    assert not v and phrase in v.message, v.message
