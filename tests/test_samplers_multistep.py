"""DPM-Solver++(2M) against closed forms: second order on a Gaussian (whose probability-flow ODE is an exact affine
map), its first step is DDIM, it starts at zero terminal SNR with a v prediction, and it samples the mixture."""

import math

import pytest
import torch

import cfglab as cl
from cfglab.models import ExactDenoiser
from cfglab.paths import Discrete
from cfglab.samplers import dpmpp_2m

F64 = torch.float64
MEAN, STD = torch.tensor([1.0, -0.5], dtype=F64), 0.5


def exact_flow(path, x, t_from, t_to):
    """The probability-flow ODE of N(m, s^2 I) moves points affinely: mu_to + (S_to / S_from)(x - mu_from)."""
    def marginal(t):
        c = path(torch.tensor(t, dtype=F64))
        return c.alpha * MEAN, torch.sqrt(c.alpha**2 * STD**2 + c.sigma**2)

    (m0, s0), (m1, s1) = marginal(t_from), marginal(t_to)
    return m1 + (s1 / s0) * (x - m0)


def endpoint_error(path, steps, spacing):
    gauss = cl.GaussianMixture(MEAN[None], STD)
    g = torch.Generator().manual_seed(0)
    c = path(torch.tensor(path.t_max, dtype=F64))
    x = c.alpha * MEAN + torch.sqrt(c.alpha**2 * STD**2 + c.sigma**2) * torch.randn(500, 2, generator=g, dtype=F64)
    out = dpmpp_2m(gauss.score_fn(path), x, path, steps, spacing=spacing, denoise=False)
    return (out - exact_flow(path, x, path.t_max, path.t_min)).pow(2).sum(1).mean().sqrt().item()


@pytest.mark.parametrize("name,spacing", [("VP", "logsnr"), ("Linear", "logsnr"), ("Linear", "uniform"),
                                          ("Discrete", "logsnr")])
def test_dpmpp_2m_is_second_order_on_a_gaussian(name, spacing):
    path = {"VP": cl.VP(), "Linear": cl.Linear(), "Discrete": Discrete("scaled_linear")}[name]
    steps = (16, 32, 64, 128)
    errs = [endpoint_error(path, n, spacing) for n in steps]
    slope = -(math.log(errs[-1]) - math.log(errs[0])) / (math.log(steps[-1]) - math.log(steps[0]))
    assert 1.8 < slope < 2.3, (errs, slope)
    assert all(a > b for a, b in zip(errs, errs[1:])), errs


def test_one_step_of_dpmpp_is_a_ddim_step(path):
    mix = cl.make("moons")
    x = path.prior(50, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    a = dpmpp_2m(mix.score_fn(path), x, path, 1, denoise=False)
    b = cl.ddim(mix.score_fn(path), x, path, 1, denoise=False)
    assert torch.allclose(a, b, rtol=1e-10, atol=1e-10)


def test_dpmpp_beats_ddim_at_equal_evaluations():
    path = cl.VP()
    errs = {name: [] for name in ("ddim", "dpmpp_2m")}
    gauss = cl.GaussianMixture(MEAN[None], STD)
    x = path.prior(400, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    exact = exact_flow(path, x, path.t_max, path.t_min)
    for n in (8, 16, 32):
        errs["ddim"].append((cl.ddim(gauss.score_fn(path), x, path, n, denoise=False) - exact).abs().max().item())
        errs["dpmpp_2m"].append((dpmpp_2m(gauss.score_fn(path), x, path, n, denoise=False) - exact).abs().max().item())
    assert all(d < 0.2 * e for d, e in zip(errs["dpmpp_2m"], errs["ddim"])), errs


def test_dpmpp_from_pure_noise_at_zero_terminal_snr_samples_the_class():
    """At zero terminal SNR the grid starts at alpha = 0 (x is pure noise); with the exact v prediction the step
    never divides by alpha. The trailing grid's last step is the x0 prediction at its smallest timestep
    ``T / steps - 1``, so the output is the Tweedie estimate there: for a Gaussian class N(m, s^2 I) its law is
    N(m, a^2 s^4 / (a^2 s^2 + sigma^2) I), narrower than the class."""
    path = Discrete("scaled_linear", rescale_betas_zero_snr=True)
    mix = cl.make("mixture")
    model = ExactDenoiser(mix, path, pred="v")
    n, steps = 4000, 40
    x1 = torch.randn(n, 2, generator=torch.Generator().manual_seed(3), dtype=F64)
    x = dpmpp_2m(lambda x_, t_: model(x_, t_, 2), x1, path, steps, pred="v")
    s2 = float(mix.std[2]) ** 2
    c = path(path.timesteps(steps)[-2])                         # the last noisy grid time, timestep 24
    var = float(c.alpha**2 * s2**2 / (c.alpha**2 * s2 + c.sigma**2))
    assert var < 0.9 * s2
    se = math.sqrt(var / n)
    assert ((x.mean(0) - mix.mean(2)).abs() < 5 * se).all()
    assert ((x.var(0) - var).abs() < 5 * var * math.sqrt(2 / n)).all(), (x.var(0), var)


def test_dpmpp_trajectory_and_nfe(path):
    mix = cl.make("mixture")
    x1 = path.prior(9, 2, generator=torch.Generator().manual_seed(4), dtype=F64)
    calls = []

    def fn(x, t):
        calls.append(1)
        return mix.score(x, t, path)

    x, traj = dpmpp_2m(fn, x1, path, 6, return_trajectory=True)
    assert traj.xs.shape == (8, 9, 2) and torch.equal(traj.xs[-1], x) and len(calls) == 7   # 6 steps + denoise


def test_dpmpp_rejects_a_grid_that_reaches_the_data_early():
    path = cl.Linear()
    grid = torch.tensor([0.9, 0.0, 0.0], dtype=F64)
    with pytest.raises(ValueError, match="strictly decreasing"):
        dpmpp_2m(cl.make("mixture").score_fn(path), torch.zeros(2, 2, dtype=F64), path, 2, spacing=grid)
