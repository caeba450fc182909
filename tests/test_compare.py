"""cl.compare against hand computations: the Student-t interval, the baseline read at a matched adherence, and the
verdicts, which are drawn only where the interval excludes zero and the baseline covers the adherence."""

import math

import pytest

import cfglab as cl
from cfglab.compare import baseline_at, interval, versus_baseline


def test_interval_is_the_student_t_interval():
    vals = [1.0, 2.0, 4.0]
    got = interval(vals)
    mean, sd = 7 / 3, math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2)
    assert got.n == 3 and got.mean == pytest.approx(mean)
    assert got.hi - got.mean == pytest.approx(2.920 * sd / math.sqrt(3))   # t_{0.95, 2}
    assert got.lo == pytest.approx(2 * mean - got.hi)


def test_interval_of_many_values_uses_the_normal_quantile():
    vals = [float(i % 7) for i in range(100)]
    got = interval(vals)
    sd = math.sqrt(sum((v - got.mean) ** 2 for v in vals) / 99)
    assert got.hi - got.mean == pytest.approx(1.645 * sd / 10)


def _curve(points):
    """{knob: [metrics per seed]} from {knob: [(x, y) per seed]}."""
    return {k: [{"x": x, "y": y} for x, y in seeds] for k, seeds in points.items()}


BASE = _curve({1: [(0.0, 0.0), (0.0, 1.0)], 2: [(1.0, 1.0), (2.0, 3.0)], 3: [(2.0, 4.0), (4.0, 3.0)]})


def test_the_baseline_is_read_on_straight_lines_between_its_points():
    assert baseline_at(BASE, 0, "x", "y", 0.5) == pytest.approx(0.5)
    assert baseline_at(BASE, 0, "x", "y", 1.5) == pytest.approx(2.5)
    assert baseline_at(BASE, 1, "x", "y", 1.0) == pytest.approx(2.0)
    assert baseline_at(BASE, 1, "x", "y", 9.0) == 3.0 and baseline_at(BASE, 1, "x", "y", -1.0) == 1.0


def test_verdicts_follow_the_interval_and_the_range():
    better = _curve({5: [(1.0, 0.0), (2.0, 2.0)]})          # 1 below the baseline on both seeds
    worse = _curve({5: [(1.0, 2.0), (2.0, 4.02)]})          # 1 and 1.02 above
    mixed = _curve({5: [(1.0, 0.0), (2.0, 4.0)]})           # -1 and +1
    outside = _curve({5: [(1.0, 0.0), (5.0, 2.0)]})         # seed 1 beyond the swept range
    assert versus_baseline(better, BASE, "x", "y")[0].verdict == "better"
    assert versus_baseline(worse, BASE, "x", "y")[0].verdict == "worse"
    assert versus_baseline(mixed, BASE, "x", "y")[0].verdict == "tie"
    got = versus_baseline(outside, BASE, "x", "y")[0]
    assert got.verdict == "outside" and got.difference.mean == pytest.approx(-1.0)
    assert got.x.mean == pytest.approx(3.0) and got.knob == 5.0


def test_mismatched_seeds_are_refused():
    with pytest.raises(ValueError, match="same seeds"):
        versus_baseline(_curve({1: [(0.0, 0.0)]}), BASE, "x", "y")
    with pytest.raises(ValueError, match="at least 2"):
        interval([1.0])


def test_shift_moves_every_component_and_nothing_else():
    mix = cl.make("moons")
    moved = mix.shift([3.0, -1.0])
    import torch

    assert torch.allclose(moved.means, mix.means + torch.tensor([3.0, -1.0], dtype=torch.float64))
    assert torch.equal(moved.std, mix.std) and torch.equal(moved.classes, mix.classes)
    x = torch.randn(20, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    path = cl.Linear()
    for t in (0.0, 0.4):
        a = path(torch.tensor(t, dtype=torch.float64)).alpha
        assert torch.allclose(moved.score(x + a * torch.tensor([3.0, -1.0], dtype=torch.float64), t, path),
                              mix.score(x, t, path))
