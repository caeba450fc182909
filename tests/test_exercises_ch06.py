"""Chapter 6 checkers: the reference passes, every listed mistake gets its own diagnosis. (Every checker's answer to
a stub is tested once, in tests/test_student.py.)"""

import pytest
import torch

from cfglab.exercises import check_batched_cfg, check_cfg_combine, check_cfg_combine_paper, check_guided_denoiser

# -- (a) conventions ------------------------------------------------------------------------------------------------

def test_cfg_combine_reference_passes():
    assert check_cfg_combine(lambda cond, uncond, w: uncond + w * (cond - uncond))


@pytest.mark.parametrize("wrong, phrase", [
    (lambda cond, uncond, w: (1 + w) * cond - w * uncond, "off by one"),
    (lambda cond, uncond, w: cond + w * (uncond - cond), "swapped"),
    (lambda cond, uncond, w: w * (cond - uncond), "only the guidance term"),
    (lambda cond, uncond, w: w * uncond + (1 - w) * cond, "wrong way round"),
])
def test_cfg_combine_mistakes(wrong, phrase):
    v = check_cfg_combine(wrong)
    assert not v and phrase in v.message


def test_cfg_combine_paper_reference_passes():
    assert check_cfg_combine_paper(lambda cond, uncond, w_paper: (1 + w_paper) * cond - w_paper * uncond)


@pytest.mark.parametrize("wrong, phrase", [
    (lambda cond, uncond, w_paper: uncond + w_paper * (cond - uncond), "off by one"),
    (lambda cond, uncond, w_paper: (1 + w_paper) * uncond - w_paper * cond, "swapped"),
    (lambda cond, uncond, w_paper: (1 + w_paper) * cond + w_paper * uncond, "sign"),
    (lambda cond, uncond, w_paper: w_paper * (cond - uncond), "forgot the 1"),
])
def test_cfg_combine_paper_mistakes(wrong, phrase):
    v = check_cfg_combine_paper(wrong)
    assert not v and phrase in v.message


# -- (b) one batched pass ---------------------------------------------------------------------------------------------

def batched(model_fn, x, t, y, null_label, w):
    out = model_fn(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, null_label)]))
    cond, uncond = out.chunk(2)
    return uncond + w * (cond - uncond)


def batched_with(*, label=None, swap=False, double_t=True, paper=False):
    def fn(model_fn, x, t, y, null_label, w):
        lab = torch.full_like(y, null_label if label is None else label)
        tt = torch.cat([t, t]) if double_t else t
        out = model_fn(torch.cat([x, x]), tt, torch.cat([y, lab]))
        cond, uncond = out.chunk(2)
        if swap:
            cond, uncond = uncond, cond
        if paper:
            return (1 + w) * cond - w * uncond
        return uncond + w * (cond - uncond)
    return fn


def two_calls(model_fn, x, t, y, null_label, w):
    cond = model_fn(x, t, y)
    uncond = model_fn(x, t, torch.full_like(y, null_label))
    return uncond + w * (cond - uncond)


def test_batched_reference_passes():
    assert check_batched_cfg(batched)


def test_batched_null_first_order_also_passes():
    def fn(model_fn, x, t, y, null_label, w):
        out = model_fn(torch.cat([x, x]), torch.cat([t, t]), torch.cat([torch.full_like(y, null_label), y]))
        uncond, cond = out.chunk(2)
        return uncond + w * (cond - uncond)
    assert check_batched_cfg(fn)


@pytest.mark.parametrize("wrong, phrase", [
    (two_calls, "calls model_fn twice"),
    (batched_with(swap=True), "halves are swapped"),
    (batched_with(label=0), "instead of the null label"),
    (batched_with(label=-1), "got label -1"),
    (batched_with(double_t=False), "double x but not t"),
    (batched_with(paper=True), "Ho & Salimans"),
    (lambda model_fn, x, t, y, null_label, w: model_fn(x, t, y), "doubled batch"),
])
def test_batched_mistakes(wrong, phrase):
    v = check_batched_cfg(wrong)
    assert not v and phrase in v.message, v.message


def test_batched_label_zero_when_zero_is_a_class_of_the_batch():
    # the value check (not the probe) names label 0 when 0 also occurs among the requested classes
    from cfglab.exercises.ch06 import _label_mistakes
    assert "label 0" in _label_mistakes()[0][0]


# -- (c) find the bugs ---------------------------------------------------------------------------------------------

def guided_fixed(model_fn, x, t, y, null_label, w):
    out = model_fn(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, null_label)]))
    cond, uncond = out.chunk(2)
    return uncond + w * (cond - uncond)


def guided_buggy(*, channels=None, label=None):
    def fn(model_fn, x, t, y, null_label, w):
        lab = torch.full_like(y, null_label if label is None else label)
        out = model_fn(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, lab]))
        cond, uncond = out.chunk(2)
        if channels is None:
            return uncond + w * (cond - uncond)
        guided = cond.clone()
        guided[:, :channels] = uncond[:, :channels] + w * (cond[:, :channels] - uncond[:, :channels])
        return guided
    return fn


def test_guided_denoiser_reference_passes():
    assert check_guided_denoiser(guided_fixed)
    assert check_guided_denoiser(two_calls)  # two passes are fine here: the exercise is about the two bugs


@pytest.mark.parametrize("wrong, phrase", [
    (guided_buggy(channels=3, label=0), "both bugs"),
    (guided_buggy(channels=3), "first 3 of the 4 channels"),
    (guided_buggy(channels=1), "only channel 0"),
    (guided_buggy(label=0), "still uses label 0"),
    (guided_buggy(label=-1), "got label -1"),
])
def test_guided_denoiser_mistakes(wrong, phrase):
    v = check_guided_denoiser(wrong)
    assert not v and phrase in v.message, v.message
