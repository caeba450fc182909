"""Chapter 20 checkers: the reference passes, every listed mistake gets its own diagnosis. (Every checker's answer to
a stub is tested once, in tests/test_student.py.) The references are written here from the formulas, independently of
cfglab.explore."""

import pytest
import torch

from cfglab.exercises import check_find_interval, check_interval_cfg, check_negative_rescale

# -- (a) the guidance interval -------------------------------------------------------------------------------------

def interval_cfg(cond, uncond, t, w, lo, hi):
    on = ((t >= lo) & (t <= hi)).to(cond.dtype)[:, None]
    scale = 1 + on * (w - 1)
    return uncond + scale * (cond - uncond)


def interval_with(*, outside=None, inverted=False, strict=False, paper=False):
    def fn(cond, uncond, t, w, lo, hi):
        on = (t > lo) & (t < hi) if strict else (t >= lo) & (t <= hi)
        if inverted:
            on = ~on
        inside = (1 + w) * cond - w * uncond if paper else uncond + w * (cond - uncond)
        out = cond if outside is None else outside(cond, uncond)
        return torch.where(on[:, None], inside, out)
    return fn


def test_interval_reference_passes():
    assert check_interval_cfg(interval_cfg)


def test_interval_loop_version_passes():
    def loop(cond, uncond, t, w, lo, hi):
        rows = [u + (w if lo <= float(s) <= hi else 1.0) * (c - u) for c, u, s in zip(cond, uncond, t)]
        return torch.stack(rows)
    assert check_interval_cfg(loop)


@pytest.mark.parametrize("wrong, phrase", [
    (interval_with(outside=lambda c, u: u), "scale 0"),
    (interval_with(inverted=True), "inverted"),
    (interval_with(strict=True), "ends of the interval"),
    (lambda cond, uncond, t, w, lo, hi: uncond + w * (cond - uncond), "interval is ignored"),
    (lambda cond, uncond, t, w, lo, hi: cond, "no row is guided"),
    (interval_with(paper=True), "Ho & Salimans"),
])
def test_interval_mistakes(wrong, phrase):
    v = check_interval_cfg(wrong)
    assert not v and phrase in v.message, v.message


# -- (b) negative weight and rescale -------------------------------------------------------------------------------

def negative_rescale(cond, uncond, neg, w, w_neg, phi):
    g = uncond + w * (cond - uncond) - w_neg * (neg - uncond)
    ratio = cond.pow(2).mean(1, keepdim=True).sqrt() / g.pow(2).mean(1, keepdim=True).sqrt()
    return phi * g * ratio + (1 - phi) * g


def rescaled(g, target, phi, *, centered=False, batch=False, inverted=False, upside_down=False):
    if batch:
        ratio = target.pow(2).mean().sqrt() / g.pow(2).mean().sqrt()
    elif centered:
        ratio = target.std(1, keepdim=True) / g.std(1, keepdim=True)
    else:
        ratio = target.pow(2).mean(1, keepdim=True).sqrt() / g.pow(2).mean(1, keepdim=True).sqrt()
    if upside_down:
        ratio = 1 / ratio
    return (1 - phi) * g * ratio + phi * g if inverted else phi * g * ratio + (1 - phi) * g


def combination(sign=-1.0):
    return lambda c, u, n, w, wn: u + w * (c - u) + sign * wn * (n - u)


def with_mistake(**kw):
    sign = kw.pop("sign", -1.0)
    target = kw.pop("target", "cond")

    def fn(cond, uncond, neg, w, w_neg, phi):
        g = combination(sign)(cond, uncond, neg, w, w_neg)
        return rescaled(g, cond if target == "cond" else uncond, phi, **kw)
    return fn


def test_negative_rescale_reference_passes():
    assert check_negative_rescale(negative_rescale)


def test_negative_rescale_reduces_to_cfg_and_keeps_the_size():
    # independent sanity checks of the exercise's formula on one input: phi = 0 and w_neg = 0 is plain CFG, and
    # phi = 1 gives every row the root mean square of cond
    g = torch.Generator().manual_seed(0)
    c, u, n = torch.randn(3, 6, 2, generator=g, dtype=torch.float64)
    assert torch.allclose(negative_rescale(c, u, n, 3.0, 0.0, 0.0), u + 3 * (c - u))
    out = negative_rescale(c, u, n, 3.0, 1.5, 1.0)
    assert torch.allclose(out.pow(2).mean(1).sqrt(), c.pow(2).mean(1).sqrt())


@pytest.mark.parametrize("wrong, phrase", [
    (with_mistake(sign=+1.0), "wrong sign"),
    (lambda cond, uncond, neg, w, w_neg, phi: rescaled(neg + w * (cond - neg), cond, phi), "in place of uncond"),
    (lambda cond, uncond, neg, w, w_neg, phi: combination()(cond, uncond, neg, w, w_neg), "rescale is missing"),
    (with_mistake(target="uncond"), "size of uncond"),
    (with_mistake(centered=True), "standard deviation"),
    (lambda cond, uncond, neg, w, w_neg, phi: rescaled(uncond + w * (cond - uncond), cond, phi)
     - w_neg * (neg - uncond), "before subtracting"),
    (with_mistake(inverted=True), "wrong way round"),
    (with_mistake(upside_down=True), "upside down"),
    (with_mistake(batch=True), "whole batch"),
])
def test_negative_rescale_mistakes(wrong, phrase):
    v = check_negative_rescale(wrong)
    assert not v and phrase in v.message, v.message


# -- (c) find_interval: an experiment with the explorer's rule ----------------------------------------------------

@pytest.fixture(autouse=True)
def _one_thread():
    # the experiment checker samples a handful of explorer frames: one thread is faster on a shared machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def grid_search(ex, w, min_adherence, min_diversity):
    """Written here from the exercise text: the widest-diversity interval on a coarse grid that meets both."""
    from cfglab.explore import Setting
    from cfglab.metrics import adherence, diversity
    best = None
    for lo in (0.5, 0.6, 0.7):
        x = ex.sample(Setting(scale=w, interval=(lo, 1.0), exact=True))
        a, d = adherence(x, ex.y, ex.mixture), diversity(x)
        if a >= min_adherence and d >= min_diversity and (best is None or d > best[0]):
            best = (d, (lo, 1.0))
    return best[1]


def test_find_interval_reference_and_another_solution_pass():
    from cfglab.exercises import ch20
    assert check_find_interval(ch20._find_interval)
    assert check_find_interval(grid_search)


@pytest.mark.parametrize("answer, phrase", [
    ((0.2, 0.8), "diversity is below"),
    ((0.0, 1.0), "diversity is below"),
    ((0.85, 1.0), "adherence is below"),
    ((0.0, 0.4), "mirrored interval"),
    ((0.8, 0.2), "not an interval"),
    ((0.5, 1.5), "not an interval"),
    ([0.6], "pair of numbers"),
    (None, "pair of numbers"),
    (("0.6", "1"), "pair of numbers"),
])
def test_find_interval_mistakes_are_diagnosed(answer, phrase):
    v = check_find_interval(lambda ex, w, min_adherence, min_diversity: answer)
    assert not v and phrase in v.message, v.message


def test_find_interval_reports_an_error_in_words():
    v = check_find_interval(lambda ex, w, min_adherence, min_diversity: ex.sample(None))
    assert not v and "raised TypeError" in v.message
