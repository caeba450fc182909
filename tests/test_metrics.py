"""Metrics against cases with known answers."""

import math

import pytest
import torch

from cfglab import adherence, class_probability, diversity, log_likelihood, make, mmd, noise_floor, sliced_wasserstein


def normal(n, d=2, seed=0, shift=0.0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


def test_sliced_wasserstein_of_a_shift():
    """Shifting by c moves every 1D projection by c.u, so SW2 = |c| sqrt(E[(u.e)^2]) = |c| / sqrt(d)."""
    x = normal(4000)
    c = torch.tensor([0.8, -0.6], dtype=torch.float64)
    sw = sliced_wasserstein(x, x + c, projections=4000)
    assert sw == pytest.approx(1.0 / math.sqrt(2), rel=0.03)
    assert sliced_wasserstein(x, x) == 0.0


def test_sliced_wasserstein_in_1d_is_w2():
    a = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    b = torch.tensor([[1.0], [2.0], [2.0]], dtype=torch.float64)
    assert sliced_wasserstein(a, b) == pytest.approx(math.sqrt((1 + 1 + 1) / 3))


def test_sliced_wasserstein_unequal_sizes():
    x, y = normal(3000, seed=1), normal(2000, seed=2)
    assert sliced_wasserstein(x, y) < 0.1
    assert sliced_wasserstein(x, y + 1.0) > 0.5


def test_mmd_zero_for_equal_laws_and_closed_form_for_points():
    assert abs(mmd(normal(1500, seed=1), normal(1500, seed=2))) < 2e-3
    assert mmd(normal(1500, seed=1), normal(1500, seed=2, shift=1.0)) > 0.1
    # two point masses: MMD^2 between sets {a,a} and {b,b} = 2 (k(0) - k(|a-b|)) per bandwidth
    a = torch.zeros(2, 1, dtype=torch.float64)
    b = torch.ones(2, 1, dtype=torch.float64)
    expect = 2 * (1 - math.exp(-1 / 2))
    assert mmd(a, b, bandwidths=[1.0]) == pytest.approx(expect)


def test_adherence_and_class_probability_on_exact_samples():
    mix = make("mixture")  # well separated: exact samples are almost always classified as their class
    x, y = mix.sample(3000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert adherence(x, 1, mix) > 0.97
    assert class_probability(x, 1, mix) > 0.95
    assert adherence(x, 0, mix) < 0.03
    logits = lambda z: mix.posterior(z, 0.0, __import__("cfglab").Linear()).log()  # noqa: E731
    assert adherence(x, y, logits) == adherence(x, y, mix)


def test_diversity_scales_with_spread():
    x = normal(1000)
    assert diversity(2 * x) == pytest.approx(2 * diversity(x))
    # mean distance between two independent N(0, I_2) points is sqrt(pi)
    assert diversity(normal(3000)) == pytest.approx(math.sqrt(math.pi), rel=0.03)


def test_log_likelihood_of_exact_samples_is_the_negative_entropy():
    mix = make("overlap").conditional(0)  # one Gaussian, std 0.6: entropy = log(2 pi e s^2)
    x, _ = mix.sample(20000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert log_likelihood(x, mix) == pytest.approx(-math.log(2 * math.pi * math.e * 0.36), abs=0.02)


def test_noise_floor_shrinks_with_n():
    mix = make("moons")
    assert noise_floor(mix, 4000) < noise_floor(mix, 500)


def test_mode_statistics_of_exact_samples_are_the_truth_even_where_modes_overlap():
    """E_p[r_k] = w_k and E_p[sum_k r_k |x - mu_k|^2 / (d s_k^2)] = 1 exactly (Bayes' rule), whatever the overlap."""
    from cfglab.metrics import mode_spread, mode_weight_error
    for name, y in [("moons", 0), ("overlap", None), ("mixture", 1)]:
        mix = make(name)
        x, _ = mix.sample(40_000, y, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        # chi-square with d = 2 degrees of freedom over d: per-sample variance 1 / (d / 2) = 1, so se = 1 / sqrt(n)
        assert mode_spread(x, mix, y) ** 2 == pytest.approx(1.0, abs=5 / math.sqrt(40_000))
        assert mode_weight_error(x, mix, y) < 0.02


def test_mode_spread_sees_a_shrinkage_that_the_pairwise_distance_hardly_sees():
    from cfglab import GaussianMixture
    from cfglab.metrics import mode_spread, mode_weight_error
    moons = make("moons")
    mix = GaussianMixture(moons.means, 0.05, classes=moons.classes)  # blobs 5.7 std apart: well separated
    tight = GaussianMixture(mix.means, mix.std * 0.6, mix.weights, classes=mix.classes)
    x, _ = tight.sample(20_000, 0, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ref, _ = mix.sample(20_000, 0, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert mode_spread(x, mix, 0) == pytest.approx(0.6, abs=0.01)   # separated blobs: the ratio of the stds
    assert diversity(x[:3000]) / diversity(ref[:3000]) > 0.99          # the mean pairwise distance barely moves
    assert mode_weight_error(x, mix, 0) < 0.03                         # every blob keeps its weight
    # where blobs overlap (the moons themselves), shrunk blobs read closer to 1, but still clearly below it
    xo, _ = GaussianMixture(moons.means, moons.std * 0.6, classes=moons.classes).sample(
        20_000, 0, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    assert 0.6 < mode_spread(xo, moons, 0) < 0.8


def test_mode_weight_error_of_samples_from_one_component():
    from cfglab.metrics import mode_weight_error
    mix = make("mixture")  # well separated classes, one component each
    x, _ = mix.sample(5000, 0, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    w0 = float(mix.weights[0])
    assert mode_weight_error(x, mix) == pytest.approx(1 - w0, abs=0.01)
    assert mode_weight_error(x, mix, 0) < 1e-9  # against p(x | 0), a single mode, the split is exact
