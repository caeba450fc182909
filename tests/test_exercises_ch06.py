"""Chapter 6 checkers: the reference passes, every listed mistake gets its own diagnosis. (Every checker's answer to
a stub is tested once, in tests/test_student.py.)"""

import pytest
import torch

from cfglab.exercises import (
    check_batched_cfg,
    check_cfg_combine,
    check_cfg_combine_paper,
    check_cfg_euler,
    check_guided_denoiser,
)

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


# -- (d) the CFG sampling loop (an experiment judged with the exact velocities) -----------------------------------

@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def euler_variant(*, swap=False, label=None, scale=None, sign=1.0, two_calls=False, heun=False):
    def fn(model_fn, x, y, null_label, w, ts):
        n, lab0 = x.shape[0], null_label if label is None else label
        labels = torch.cat([torch.full((n,), y), torch.full((n,), lab0)])

        def velocity(z, t):
            if two_calls:
                tt = torch.full((n,), float(t), dtype=z.dtype)
                cond, uncond = model_fn(z, tt, labels[:n]), model_fn(z, tt, labels[n:])
            else:
                cond, uncond = model_fn(torch.cat([z, z]), torch.full((2 * n,), float(t), dtype=z.dtype),
                                        labels).chunk(2)
            if swap:
                cond, uncond = uncond, cond
            return uncond + (w if scale is None else scale) * (cond - uncond)

        for k in range(len(ts) - 1):
            h = ts[k + 1] - ts[k]
            d = velocity(x, ts[k])
            x = x + sign * h * (0.5 * (d + velocity(x + h * d, ts[k + 1])) if heun else d)
        return x
    return fn


def test_cfg_euler_reference_and_another_correct_loop_pass(one_thread):
    from cfglab.exercises import ch06
    assert check_cfg_euler(ch06._cfg_euler, quiet=True)
    assert check_cfg_euler(euler_variant(), quiet=True)


@pytest.mark.parametrize("wrong, phrase", [
    (euler_variant(two_calls=True), "one call on the doubled batch"),
    (euler_variant(heun=True), "one guided velocity per step"),
    (euler_variant(label=0), "null label 2 for the other"),
    (euler_variant(swap=True), "swapped"),
    (euler_variant(sign=-1.0), "steps run the wrong way"),
    (euler_variant(scale=1.0), "is the scale applied?"),
    (lambda model_fn, x, y, null_label, w, ts: x[:, 0], "should return the samples"),
])
def test_cfg_euler_mistakes_are_named(one_thread, wrong, phrase):
    v = check_cfg_euler(wrong, quiet=True)
    assert not v and phrase in v.message, v.message


def test_exact_velocity_is_the_mixture_velocity_per_label():
    from cfglab.exercises.ch06 import ExactVelocity
    model = ExactVelocity()
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = torch.full((5,), 0.4, dtype=torch.float64)
    for label, y in ((0, 0), (1, 1), (2, None)):
        want = model.path.convert(model.mix.score(x, t, model.path, y), x, t, "score", "velocity")
        assert torch.allclose(model(x, t, torch.full((5,), label)), want)
    with pytest.raises(ValueError, match="knows the classes"):
        model(x, t, torch.full((5,), 3))
