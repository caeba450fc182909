"""Samplers against exact answers: class components and mixtures from exact scores, ODE convergence order,
Langevin's closed-form stationary variance, MALA's exactness."""

import math

import pytest
import torch

from cfglab import GaussianMixture, Linear, ddim, ddpm, langevin, make, mala, ode, sde
from cfglab.guidance import combine

N = 6000


def moments_close(x, mean, cov, n):
    """Mean within 5 standard errors; covariance entries within 5 standard errors (Gaussian approximation)."""
    se_mean = cov.diagonal().sqrt() / math.sqrt(n)
    assert ((x.mean(0) - mean).abs() < 5 * se_mean).all(), (x.mean(0), mean)
    sd = cov.diagonal().sqrt()
    se_cov = math.sqrt(2 / n) * sd[:, None] * sd[None, :] * 1.5
    assert ((torch.cov(x.T) - cov).abs() < 5 * se_cov).all(), (torch.cov(x.T), cov)


@pytest.mark.parametrize("sampler", ["ode", "sde", "ddim", "ddpm"])
def test_scale_one_reproduces_the_class_component(path, sampler):
    mix = make("mixture")
    g = torch.Generator().manual_seed(0)
    y = 1
    fn = combine(mix.score_fn(path, y), mix.score_fn(path), 1.0)
    x1 = path.prior(N, 2, generator=g, dtype=torch.float64)
    if sampler == "ode":
        x = ode(fn, x1, path, 60)
    elif sampler == "sde":
        x = sde(fn, x1, path, 300, generator=g)
    elif sampler == "ddim":
        x = ddim(fn, x1, path, 100)
    else:
        x = ddpm(fn, x1, path, 300, generator=g)
    assert x.dtype == torch.float64
    moments_close(x, mix.mean(y), mix.covariance(y), N)


@pytest.mark.parametrize("sampler", ["ode", "sde"])
def test_scale_zero_reproduces_the_mixture(path, sampler):
    mix = make("mixture")
    g = torch.Generator().manual_seed(1)
    fn = combine(mix.score_fn(path, 0), mix.score_fn(path), 0.0)
    x1 = path.prior(N, 2, generator=g, dtype=torch.float64)
    x = ode(fn, x1, path, 60) if sampler == "ode" else sde(fn, x1, path, 300, generator=g)
    moments_close(x, mix.mean(), mix.covariance(), N)
    freq = torch.bincount(mix.posterior(x, 0.0, path).argmax(1), minlength=3).double() / N
    assert torch.allclose(freq, mix.class_weights, atol=0.03)


def gaussian_ode_error(method, steps, variable="sigma"):
    """Data N(0, v0 I) on the linear path: the exact flow maps x_T to x_T * std(t_min) / std(t_max)."""
    path = Linear()
    v0 = 0.25
    mix = GaussianMixture(torch.zeros(1, 2, dtype=torch.float64), math.sqrt(v0))
    x1 = torch.tensor([[1.0, -0.5], [0.3, 2.0]], dtype=torch.float64)
    x = ode(mix.score_fn(path), x1, path, steps, method=method, denoise=False, spacing="uniform",
            t_max=0.9, t_min=0.1, variable=variable)

    def std(t):
        return math.sqrt((1 - t) ** 2 * v0 + t**2)

    return (x - x1 * std(0.1) / std(0.9)).abs().max().item()


@pytest.mark.parametrize("variable", ["t", "sigma"])
def test_euler_is_first_order_and_heun_second_order(variable):
    e = [gaussian_ode_error("euler", n, variable) for n in (20, 40, 80)]
    h = [gaussian_ode_error("heun", n, variable) for n in (20, 40, 80)]
    for a, b in zip(e, e[1:]):
        assert 1.7 < a / b < 2.3, e
    for a, b in zip(h, h[1:]):
        assert 3.4 < a / b < 4.6, h
    assert h[-1] < e[-1] / 20


def test_trajectory_shapes(path):
    mix = make("mixture")
    x1 = path.prior(7, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x, traj = ode(mix.score_fn(path), x1, path, 5, return_trajectory=True)
    assert traj.xs.shape == (7, 7, 2) and traj.ts.shape == (7,)  # 6 grid states + the denoised one
    assert torch.equal(traj.xs[-1], x) and torch.equal(traj.xs[0], x1) and traj.ts[-1] == 0
    _, traj = ode(mix.score_fn(path), x1, path, 5, denoise=False, return_trajectory=True)
    assert traj.xs.shape == (6, 7, 2)


def test_velocity_prediction_path_matches_score_path(path):
    mix = make("overlap")
    x1 = path.prior(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = ode(mix.score_fn(path), x1, path, 10)
    vel = lambda x, t: path.convert(mix.score(x, t, path), x, t, "score", "velocity")  # noqa: E731
    b = ode(vel, x1, path, 10, pred="velocity")
    assert torch.allclose(a, b, rtol=1e-8, atol=1e-8)


def test_sde_is_reproducible_with_a_generator(path):
    mix = make("mixture")
    x1 = path.prior(100, 2, generator=torch.Generator().manual_seed(0))
    a = sde(mix.score_fn(path), x1, path, 20, generator=torch.Generator().manual_seed(9))
    b = sde(mix.score_fn(path), x1, path, 20, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b)


def test_langevin_has_its_closed_form_biased_variance():
    """ULA on N(m, s^2) with step h is an AR(1) chain with stationary variance s^2 / (1 - h / (2 s^2))."""
    m, s2, h = 1.5, 0.5, 0.2
    g = torch.Generator().manual_seed(0)
    x0 = torch.zeros(20000, 1, dtype=torch.float64)
    x = langevin(lambda x: -(x - m) / s2, x0, h, 200, generator=g)
    var = s2 / (1 - h / (2 * s2))
    assert abs(x.mean().item() - m) < 5 * math.sqrt(var / 20000)
    assert abs(x.var().item() - var) < 5 * var * math.sqrt(2 / 20000)
    assert abs(x.var().item() - s2) > 0.05  # the bias is real and visible at this step size


def test_mala_is_exact_where_ula_is_biased():
    m, s2, h = 1.5, 0.5, 0.2
    g = torch.Generator().manual_seed(0)
    x0 = torch.zeros(20000, 1, dtype=torch.float64)
    x, traj = mala(lambda x: (-(x - m) ** 2 / (2 * s2)).sum(1), x0, h, 300, generator=g, return_trajectory=True)
    assert abs(x.mean().item() - m) < 5 * math.sqrt(s2 / 20000)
    assert abs(x.var().item() - s2) < 5 * s2 * math.sqrt(2 / 20000)
    assert 0.5 < traj.accept[-50:].mean().item() < 1.0


def test_mala_on_a_mixture_matches_its_moments():
    mix = make("mixture")
    g = torch.Generator().manual_seed(0)
    x0, _ = mix.sample(4000, generator=g, dtype=torch.float64)  # start in equilibrium, check it stays there
    x = mala(mix.log_prob, x0, 0.05, 100, generator=g)
    moments_close(x, mix.mean(), mix.covariance(), 4000)


def test_euler_on_the_scaled_ode_is_ddim(path):
    mix = make("moons")
    x1 = path.prior(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = ode(mix.score_fn(path), x1, path, 12, method="euler", variable="sigma")
    b = ddim(mix.score_fn(path), x1, path, 12)
    assert torch.allclose(a, b, rtol=1e-10, atol=1e-10)


def test_euler_on_the_linear_path_is_plain_velocity_euler():
    path = Linear()
    mix = make("moons")
    x = path.prior(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = ode(mix.score_fn(path), x, path, 8, method="euler", spacing="uniform", denoise=False)
    ts = path.timesteps(8, spacing="uniform")
    for i in range(8):
        v = path.convert(mix.score(x, ts[i], path), x, ts[i], "score", "velocity")
        x = x + (ts[i + 1] - ts[i]) * v
    assert torch.allclose(got, x, rtol=1e-10, atol=1e-10)


def test_a_long_sampler_shows_a_progress_bar_and_a_short_one_does_not(monkeypatch, capsys):
    from cfglab import samplers

    mix, path = make("mixture"), Linear()
    x = path.prior(8, 2, generator=torch.Generator().manual_seed(0))
    ode(mix.score_fn(path), x, path, 5)  # far below the 3 s delay: silent
    assert "ode" not in capsys.readouterr().err
    monkeypatch.setattr(samplers, "PROGRESS_DELAY", 0.0)
    ode(mix.score_fn(path), x, path, 5)
    assert "ode" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["Linear", "VP", "VE"])
def test_the_default_ode_is_accurate_at_few_steps_on_every_path(name):
    """With the path's default variable and spacing, 8 Heun steps (16 evaluations) reproduce the exact spread of a
    Gaussian at t_min: its std is sqrt(alpha^2 s^2 + sigma^2) there, and the ODE maps std to std. Heun in
    sigma/alpha on the linear path's log-SNR grid (the old default) is off by more than 40 %."""
    import cfglab as cl

    path = {"Linear": cl.Linear(), "VP": cl.VP(), "VE": cl.VE()}[name]
    s = 0.5
    mix = GaussianMixture(torch.tensor([[1.0, -0.5]], dtype=torch.float64), s)
    g = torch.Generator().manual_seed(0)

    def std(t):
        c = path(torch.tensor(t, dtype=torch.float64))
        return math.sqrt(c.alpha.item() ** 2 * s**2 + c.sigma.item() ** 2)

    c1 = path(torch.tensor(path.t_max, dtype=torch.float64))
    x1 = c1.alpha * mix.means[0] + std(path.t_max) * torch.randn(4000, 2, generator=g, dtype=torch.float64)
    x = ode(mix.score_fn(path), x1, path, 8, denoise=False)
    ratio = (x - x.mean(0)).pow(2).mean().sqrt().item() / std(path.t_min)
    tol = {"Linear": 0.03, "VP": 0.03, "VE": 0.4}[name]   # VE spans sigma 80 -> 0.002: 16 NFE is few there
    assert abs(ratio - 1) < tol, ratio
    if name == "Linear":
        old = ode(mix.score_fn(path), x1, path, 8, denoise=False, variable="sigma", spacing="logsnr")
        assert (old - old.mean(0)).pow(2).mean().sqrt().item() / std(path.t_min) > 1.4
