"""The discrete-time path (cfglab.paths.discrete): beta schedules, zero terminal SNR and the timestep spacings
against diffusers' schedulers; the table read back at every timestep; the map between t and timesteps; the
interpolation between timesteps (derivatives by finite differences, log-SNR inverse); Salimans & Ho's v."""

import math

import pytest
import torch

from cfglab.paths import PREDICTIONS, Discrete, Linear, beta_schedule, rescale_zero_terminal_snr

F64 = torch.float64
diffusers = pytest.importorskip("diffusers")

SCHEDULES = [("linear", False), ("scaled_linear", False), ("scaled_linear", True), ("linear", True)]


def scheduler(kind, zero_snr=False, cls="DDIMScheduler", **kw):
    betas = {"linear": (1e-4, 0.02), "scaled_linear": (0.00085, 0.012)}[kind]
    return getattr(diffusers, cls)(beta_schedule=kind, beta_start=betas[0], beta_end=betas[1],
                                   rescale_betas_zero_snr=zero_snr, **kw)


@pytest.mark.parametrize("kind,zero_snr", SCHEDULES)
def test_the_table_is_diffusers_alphas_cumprod(kind, zero_snr):
    """Our float64 table against diffusers' float32 one: equal to float32 round-off at every timestep."""
    path = Discrete(kind, rescale_betas_zero_snr=zero_snr)
    theirs = scheduler(kind, zero_snr).alphas_cumprod.double()
    assert torch.allclose(path.alphas_cumprod, theirs, rtol=2e-5, atol=1e-7)
    assert path.zero_terminal_snr == zero_snr
    if zero_snr:
        assert path.alphas_cumprod[-1] == 0 and theirs[-1] == 0


@pytest.mark.parametrize("kind", ["linear", "scaled_linear"])
def test_beta_schedules_and_zero_snr_rescaling_match_diffusers(kind):
    betas = beta_schedule(kind)
    theirs = scheduler(kind).betas.double()
    assert betas.dtype == F64 and torch.allclose(betas, theirs, rtol=1e-6)
    from diffusers.schedulers.scheduling_ddim import rescale_zero_terminal_snr as theirs_rescale

    ours = rescale_zero_terminal_snr(betas)
    assert torch.allclose(ours, theirs_rescale(betas.clone()), rtol=1e-10, atol=1e-12)
    # Lin et al.'s conditions: the last step is pure noise, the first keeps its value, abar stays decreasing
    abar, old = torch.cumprod(1 - ours, 0), torch.cumprod(1 - betas, 0)
    assert abar[-1] == 0 and ours[-1] == 1 and torch.isclose(abar[0], old[0], rtol=1e-12)
    assert (abar[1:] < abar[:-1]).all()


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("steps", [1, 7, 10, 25, 30, 50, 999])
def test_scheduler_timesteps_are_ddims(spacing, steps):
    path = Discrete("scaled_linear")
    s = scheduler("scaled_linear", timestep_spacing=spacing)
    s.set_timesteps(steps)
    assert torch.equal(path.scheduler_timesteps(steps, spacing), s.timesteps)
    grid = path.timesteps(steps, spacing=spacing)
    assert grid.shape == (steps + 1,) and grid[-1] == 0 and (grid[1:] < grid[:-1]).all()
    assert torch.allclose(path.timestep_of_t(grid[:-1]), s.timesteps.double(), atol=1e-9)


def test_time_and_timestep_map_both_ways():
    path = Discrete()
    k = torch.arange(-1, 1000, dtype=F64)
    t = path.t_of_timestep(k)
    assert t[0] == 0 and t[-1] == 1 and torch.allclose(path.timestep_of_t(t), k, atol=1e-9)
    assert path.t_min == pytest.approx(1e-3) and path.t_max == 1.0


@pytest.mark.parametrize("kind,zero_snr", SCHEDULES)
def test_coefficients_at_each_timestep_are_the_table(kind, zero_snr):
    path = Discrete(kind, rescale_betas_zero_snr=zero_snr)
    abar = path.alphas_cumprod
    c = path(path.t_of_timestep(torch.arange(1000, dtype=F64)))
    assert torch.allclose(c.alpha, abar.sqrt(), rtol=1e-12, atol=1e-15)
    assert torch.allclose(c.sigma, (1 - abar).sqrt(), rtol=1e-12)
    c0 = path(torch.tensor(0.0, dtype=F64))
    assert c0.alpha == 1 and c0.sigma == 0                       # t = 0 is the data
    if zero_snr:
        c1 = path(torch.tensor(1.0, dtype=F64))
        assert c1.alpha == 0 and c1.sigma == 1                   # exactly pure noise at the last timestep


@pytest.mark.parametrize("kind,zero_snr", SCHEDULES)
def test_between_timesteps_sigma_tilde_is_linear_and_derivatives_match(kind, zero_snr):
    path = Discrete(kind, rescale_betas_zero_snr=zero_snr)
    k = torch.tensor([3.25, 100.5, 640.75, 997.4], dtype=F64)
    c = path(path.t_of_timestep(k))
    lo, hi = path(path.t_of_timestep(k.floor())), path(path.t_of_timestep(k.ceil()))
    st = lambda cc: cc.sigma / cc.alpha  # noqa: E731
    u = k - k.floor()
    assert torch.allclose(st(c), st(lo) + u * (st(hi) - st(lo)), rtol=1e-12)
    t = path.t_of_timestep(torch.tensor([3.25, 100.5, 640.75, 998.4], dtype=F64))
    h = 1e-7
    cp, cm, cc = path(t + h), path(t - h), path(t)
    assert torch.allclose(cc.d_alpha, (cp.alpha - cm.alpha) / (2 * h), rtol=1e-5, atol=1e-7)
    assert torch.allclose(cc.d_sigma, (cp.sigma - cm.sigma) / (2 * h), rtol=1e-5, atol=1e-7)
    assert torch.allclose(cc.alpha**2 + cc.sigma**2, torch.ones_like(t), rtol=1e-12)


@pytest.mark.parametrize("zero_snr", [False, True])
def test_logsnr_inverse_and_the_course_spacings(zero_snr):
    path = Discrete("scaled_linear", rescale_betas_zero_snr=zero_snr)
    t = torch.tensor([0.0005, 0.001, 0.2, 0.5137, 0.9, 0.9995], dtype=F64)
    assert torch.allclose(path.t_of_logsnr(path(t).logsnr), t, atol=1e-10)
    if not zero_snr:
        for spacing in ("uniform", "logsnr", "edm"):
            g = path.timesteps(12, spacing=spacing)
            assert g[0] == 1 and g[-1] == pytest.approx(1e-3) and (g[1:] < g[:-1]).all()
        lam = path(path.timesteps(12, spacing="logsnr")).logsnr
        assert torch.allclose(lam.diff(), lam.diff()[0].expand(12), rtol=1e-9)


@pytest.mark.parametrize("src", PREDICTIONS)
@pytest.mark.parametrize("dst", PREDICTIONS)
def test_conversions_round_trip_on_the_discrete_path(src, dst):
    path = Discrete("scaled_linear")
    g = torch.Generator().manual_seed(0)
    t = torch.tensor([0.01, 0.3, 0.7, 0.99, 1.0], dtype=F64)
    x0, eps = torch.randn(5, 3, generator=g, dtype=F64), torch.randn(5, 3, generator=g, dtype=F64)
    xt = path.noise(x0, t, eps)
    out = path.convert(path.target(src, x0, eps, t), xt, t, src, dst)
    assert torch.allclose(out, path.target(dst, x0, eps, t), rtol=1e-9, atol=1e-9)


def test_v_is_salimans_and_ho_and_not_the_velocity():
    """v = alpha eps - sigma x0; on the linear path the course's velocity is eps - x0, a different quantity; on a
    variance-preserving path v is the derivative of x_t in the angle phi = atan(sigma / alpha)."""
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(4, 2, generator=g, dtype=F64), torch.randn(4, 2, generator=g, dtype=F64)
    t = torch.tensor([0.2, 0.4, 0.6, 0.8], dtype=F64)
    lin = Linear()
    assert torch.allclose(lin.target("v", x0, eps, t), (1 - t)[:, None] * eps - t[:, None] * x0)
    assert not torch.allclose(lin.target("v", x0, eps, t), lin.target("velocity", x0, eps, t))
    path = Discrete("scaled_linear")
    phi = lambda tt: torch.atan2(path(tt).sigma, path(tt).alpha)  # noqa: E731
    h = 1e-6
    dx_dphi = (path.noise(x0, t + h, eps) - path.noise(x0, t - h, eps)) / (phi(t + h) - phi(t - h))[:, None]
    assert torch.allclose(dx_dphi, path.target("v", x0, eps, t), rtol=1e-5, atol=1e-6)


def test_at_zero_terminal_snr_eps_cannot_give_x0_but_v_can():
    path = Discrete("scaled_linear", rescale_betas_zero_snr=True)
    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    one = torch.tensor(1.0, dtype=F64)
    assert not torch.isfinite(path.convert(x, x, one, "eps", "x0")).all()
    assert torch.equal(path.convert(x, x, one, "v", "x0"), -x)         # x0 = alpha x - sigma v = -v


def test_a_table_builds_the_same_path_and_identity_is_by_value():
    a, b = Discrete("scaled_linear"), Discrete("scaled_linear")
    assert a == b and hash(a) == hash(b) and a != Discrete("linear") and a != Discrete("scaled_linear",
                                                                                        rescale_betas_zero_snr=True)
    table = Discrete(alphas_cumprod=a.alphas_cumprod)
    assert table == Discrete(alphas_cumprod=a.alphas_cumprod.clone()) and table != a and "sha1" in repr(table)
    t = torch.linspace(0, 1, 11, dtype=F64)
    assert torch.allclose(table(t).sigma, a(t).sigma, rtol=0, atol=0)
    assert repr(a) == ("Discrete(beta_schedule='scaled_linear', num_train_timesteps=1000, beta_start=0.00085, "
                       "beta_end=0.012, rescale_betas_zero_snr=False)")
    assert math.isclose(a.t_min, 1e-3)
