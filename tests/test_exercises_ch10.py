"""Chapter 10 checkers: the references pass, every listed mistake gets its own diagnosis. (Every checker's answer to
a stub is tested once, in tests/test_student.py.)"""

import pytest
import torch

from cfglab.exercises import check_autoguide, check_difference_alignment


def autoguide(good, bad, x, t, y, w):
    g, b = good(x, t, y), bad(x, t, y)
    return b + w * (g - b)


def test_autoguide_reference_passes():
    assert check_autoguide(autoguide)


@pytest.mark.parametrize("wrong, phrase", [
    (lambda good, bad, x, t, y, w: good(x, t, y) + w * (bad(x, t, y) - good(x, t, y)), "swapped"),
    (lambda good, bad, x, t, y, w: good(x, t, None) + w * (good(x, t, y) - good(x, t, None)),
     "classifier-free guidance, not autoguidance"),
    (lambda good, bad, x, t, y, w: bad(x, t, None) + w * (good(x, t, y) - bad(x, t, None)), "without the label"),
    (lambda good, bad, x, t, y, w: (1 + w) * good(x, t, y) - w * bad(x, t, y), "off by one"),
    (lambda good, bad, x, t, y, w: w * (good(x, t, y) - bad(x, t, y)), "only the guidance term"),
])
def test_autoguide_mistakes(wrong, phrase):
    v = check_autoguide(wrong)
    assert not v and phrase in v.message, v.message


def _cos(a, b):
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def alignment(x, t, path, good, bad, y):
    sy = good.score(x, t, path, y)
    return _cos(sy - bad.score(x, t, path, y), sy - good.score(x, t, path))


def test_alignment_reference_passes():
    assert check_difference_alignment(alignment)


@pytest.mark.parametrize("wrong, phrase", [
    (lambda x, t, path, good, bad, y: _cos(bad.score(x, t, path, y) - good.score(x, t, path, y),
                                           good.score(x, t, path, y) - good.score(x, t, path)), "sign is flipped"),
    (lambda x, t, path, good, bad, y: _cos(good.score(x, t, path) - bad.score(x, t, path),
                                           good.score(x, t, path, y) - good.score(x, t, path)), "marginal"),
    (lambda x, t, path, good, bad, y: _cos(good.score(x, t, path, y) - bad.score(x, t, path, y),
                                           good.score(x, t, path, y)), "conditional score"),
    (lambda x, t, path, good, bad, y: ((good.score(x, t, path, y) - bad.score(x, t, path, y))
                                       * (good.score(x, t, path, y) - good.score(x, t, path))).sum(1), "dot product"),
    (lambda x, t, path, good, bad, y: _cos(good.score(x, t, path, y) - bad.score(x, t, path, y),
                                           bad.score(x, t, path, y) - bad.score(x, t, path)), "uses the bad mixture"),
    (lambda x, t, path, good, bad, y: torch.nn.functional.cosine_similarity(
        good.score(x, t, path, y) - bad.score(x, t, path, y),
        good.score(x, t, path, y) - good.score(x, t, path), dim=0), "shape"),
])
def test_alignment_mistakes(wrong, phrase):
    v = check_difference_alignment(wrong)
    assert not v and phrase in v.message, v.message


# -- the autoguidance scale that gives a too-wide model's modes their true width ------------------------------------

def _tune(pick):
    """A tune_autoguidance that measures every scale like the exercise asks, then chooses with ``pick``."""
    import cfglab as cl
    from cfglab.metrics import mode_spread

    def tune_autoguidance(good, bad, path, mixture, y, scales, generator):
        x1 = path.prior(1000, 2, generator=generator)
        spread = {w: mode_spread(cl.ode(cl.combine(good, bad, w), x1, path, steps=30), mixture, y) for w in scales}
        return pick(spread)
    return tune_autoguidance


def test_tune_autoguidance_reference_and_another_correct_search_pass():
    torch.set_num_threads(1)  # toy tensors: one thread is faster
    from cfglab.exercises import check_tune_autoguidance
    assert check_tune_autoguidance(_tune(lambda s: min(s, key=lambda w: abs(s[w] - 1))))
    # a different sampler budget (fewer points, Euler steps) is also a correct experiment
    import cfglab as cl
    from cfglab.metrics import mode_spread

    def coarse(good, bad, path, mixture, y, scales, generator):
        x1 = path.prior(600, 2, generator=generator)
        d = {w: abs(mode_spread(cl.ode(cl.combine(good, bad, w), x1, path, steps=40, method="euler"), mixture, y)
                    - 1) for w in scales}
        return min(d, key=d.get)
    assert check_tune_autoguidance(coarse)


@pytest.mark.parametrize("answer, phrase", [
    (1.0, "no closer to 1 than without guidance"),   # no guidance
    (4.0, "over-shrink"),                            # the largest scale, or the smallest spread
    (1.25, "still too wide"),                        # one step of guidance only
    (0.97, "not the spread itself"),                 # the spread instead of the scale
    ("2.0x", "as a float"),
])
def test_tune_autoguidance_mistakes(answer, phrase):
    """Judged by outcome: whatever the search did, the answer it returns is what the checker samples with."""
    from cfglab.exercises import check_tune_autoguidance
    v = check_tune_autoguidance(lambda good, bad, path, mixture, y, scales, generator: answer)
    assert not v and phrase in v.message, v.message
