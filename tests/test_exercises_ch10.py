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
