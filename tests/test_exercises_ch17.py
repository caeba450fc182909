"""Chapter 17 checkers: the reference passes, every listed mistake gets its own diagnosis, a stub is "not written
yet". The experiment's checker samples with the student's field and judges the correlation of the samples against
the exact tanh(w atanh rho)."""

import math

import pytest
import torch

from cfglab.exercises import check_away_from_local, check_blur_matrix
from cfglab.exercises.ch17 import reference_away_from_local
from cfglab.models import grid_blur


def _positions(side):
    r = torch.arange(side, dtype=torch.float64)
    return torch.stack(torch.meshgrid(r, r, indexing="ij"), -1).reshape(side * side, 2)


def _blur(side, sigma, power=2.0, two=2.0, normalise=True, columns=False, line=False):
    pos = torch.arange(side * side, dtype=torch.float64)[:, None] if line else _positions(side)
    w = torch.exp(-torch.cdist(pos, pos) ** power / (two * sigma**2))
    if not normalise:
        return w
    return w / w.sum(0 if columns else 1, keepdim=True)


def test_blur_matrix_reference_passes():
    assert check_blur_matrix(lambda side, sigma: grid_blur(side, sigma, dtype=torch.float64))
    assert check_blur_matrix(_blur)
    # numbering the tokens down the columns gives the same matrix (the grid and the Gaussian are symmetric)
    assert check_blur_matrix(lambda side, sigma: _blur(side, sigma).reshape(side, side, side, side)
                             .permute(1, 0, 3, 2).reshape(side * side, side * side))


@pytest.mark.parametrize("kwargs, phrase", [
    (dict(normalise=False), "rows must sum to one"),
    (dict(columns=True), "normalised the columns"),
    (dict(power=1.0), "squared distance"),
    (dict(two=1.0), "factor 2"),
    (dict(line=True), "one coordinate per token"),
])
def test_blur_matrix_mistakes(kwargs, phrase):
    v = check_blur_matrix(lambda side, sigma: _blur(side, sigma, **kwargs))
    assert not v and phrase in v.message, v.message


def test_blur_matrix_stub_is_not_written_yet():
    def blur_matrix(side, sigma):
        raise NotImplementedError("build the grid")

    v = check_blur_matrix(blur_matrix)
    assert not v and "not written yet" in v.message


def test_away_from_local_reference_passes_and_hands_it_on():
    v = check_away_from_local(reference_away_from_local)
    assert v and v.or_reference() is reference_away_from_local


def _wrong_local(x, t, path, rho, w):
    # the local score from the conditional variance of a token given the other, not from its marginal
    c = path(t, x)
    v, cov = c.alpha**2 + c.sigma**2, c.alpha**2 * rho
    full = -(v * x - cov * x.flip(1)) / (v**2 - cov**2)
    local = -x / (c.alpha**2 * (1 - rho**2) + c.sigma**2)
    return local + w * (full - local)


@pytest.mark.parametrize("wrong, phrase", [
    (lambda x, t, path, rho, w: reference_away_from_local(x, t, path, rho, 1.0), "does not guide"),
    (lambda x, t, path, rho, w: reference_away_from_local(x, t, path, rho, 2.0 - w), "wrong way"),
    (lambda x, t, path, rho, w: reference_away_from_local(x, t, path, rho, w + 1.0), "one unit of guidance too much"),
    (lambda x, t, path, rho, w: 2 * reference_away_from_local(x, t, path, rho, w), "exact answer is tanh"),
    (_wrong_local, "variance of the samples"),
])
def test_away_from_local_mistakes(wrong, phrase):
    v = check_away_from_local(wrong)
    assert not v and phrase in v.message, v.message


def test_away_from_local_accepts_another_correct_solution():
    # the same field written with a matrix inverse: any correct solution passes
    def away(x, t, path, rho, w):
        c = path(t, x)
        a2, s2 = c.alpha**2, c.sigma**2
        sigma = torch.tensor([[1.0, rho], [rho, 1.0]], dtype=x.dtype)
        cov = a2[..., None] * sigma + s2[..., None] * torch.eye(2, dtype=x.dtype)   # (n, 2, 2)
        cov = cov.expand(x.shape[0], 2, 2)
        full = -torch.linalg.solve(cov, x[..., None])[..., 0]
        local = -x / (a2 + s2)
        return full * w + local * (1 - w)

    assert check_away_from_local(away)


def test_away_from_local_reports_errors_and_stubs():
    def away_from_local(x, t, path, rho, w):
        raise NotImplementedError("combine the two scores")

    v = check_away_from_local(away_from_local)
    assert not v and "not written yet" in v.message
    v = check_away_from_local(lambda x, t, path, rho, w: x[:, :1])
    assert not v and "shape of x" in v.message
    v = check_away_from_local(lambda x, t, path, rho, w: 1 / 0)
    assert not v and "ZeroDivisionError" in v.message
    assert math.isfinite(math.tanh(2 * math.atanh(0.6)))
