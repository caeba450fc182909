"""Chapter 11 checkers: the reference passes, every listed mistake gets its own diagnosis. (Every checker's answer to
a stub is tested once, in tests/test_student.py.)"""

import pytest
import torch

from cfglab.exercises import check_frechet_distance_1d, check_replace_known


def test_frechet_1d_reference_passes():
    assert check_frechet_distance_1d(lambda m1, v1, m2, v2: (m1 - m2) ** 2 + v1 + v2 - 2 * (v1 * v2).sqrt())


def test_frechet_1d_std_form_passes():
    assert check_frechet_distance_1d(lambda m1, v1, m2, v2: (m1 - m2) ** 2 + (v1.sqrt() - v2.sqrt()) ** 2)


@pytest.mark.parametrize("wrong, phrase", [
    (lambda m1, v1, m2, v2: (m1 - m2) ** 2 + v1 + v2, "cross term"),
    (lambda m1, v1, m2, v2: (m1 - m2) ** 2 + v1 + v2 - 2 * v1 * v2, "square root"),
    (lambda m1, v1, m2, v2: (m1 - m2) ** 2 + v1 + v2 + 2 * (v1 * v2).sqrt(), "subtracted"),
    (lambda m1, v1, m2, v2: (m1 - m2).abs() + v1 + v2 - 2 * (v1 * v2).sqrt(), "squared difference"),
    (lambda m1, v1, m2, v2: (m1 - m2) ** 2 + (v1 - v2) ** 2, "standard deviations"),
])
def test_frechet_1d_mistakes(wrong, phrase):
    v = check_frechet_distance_1d(wrong)
    assert not v and phrase in v.message


def test_replace_known_reference_passes():
    assert check_replace_known(lambda x, x_known, mask, alpha, sigma, eps:
                               torch.where(mask.bool(), alpha * x_known + sigma * eps, x))


@pytest.mark.parametrize("wrong, phrase", [
    (lambda x, x_known, mask, alpha, sigma, eps: (1 - mask) * (alpha * x_known + sigma * eps) + mask * x,
     "inverted"),
    (lambda x, x_known, mask, alpha, sigma, eps: mask * x_known + (1 - mask) * x, "clean known pixels"),
    (lambda x, x_known, mask, alpha, sigma, eps: mask * alpha * x_known + (1 - mask) * x, "missing their noise"),
    (lambda x, x_known, mask, alpha, sigma, eps: mask * (sigma * x_known + alpha * eps) + (1 - mask) * x,
     "swapped"),
    (lambda x, x_known, mask, alpha, sigma, eps: mask * (alpha * x_known + sigma * eps), "only the known part"),
])
def test_replace_known_mistakes(wrong, phrase):
    v = check_replace_known(wrong)
    assert not v and phrase in v.message
