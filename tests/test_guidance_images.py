"""Chapter 18's guidance rules (cfglab/guidance/images.py) against their definitions in float64, and against
diffusers' guiders (TCFG, MAMBO-G, FDG), kornia's Laplacian pyramid and diffusers' v-prediction where those are
installed."""

import math

import pytest
import torch

import cfglab as cl
from cfglab import guidance as G

f64 = torch.float64


def _images(n=5, seed=0, shape=(1, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(n, *shape, generator=g, dtype=f64) for _ in range(3))


# -- v-prediction ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [cl.Linear(), cl.VP(), cl.VE()], ids=repr)
def test_v_is_salimans_and_ho_and_inverts(path):
    x0, eps, _ = _images()
    t = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9], dtype=f64)
    x = path.noise(x0, t, eps)
    c = path(t, x)
    r = torch.sqrt(c.alpha**2 + c.sigma**2)
    want = (c.alpha * eps - c.sigma * x0) / r                     # Salimans & Ho, normalised coefficients
    for kind in ("x0", "eps", "score", "velocity"):
        pred = path.convert(x0, x, t, "x0", kind)
        torch.testing.assert_close(G.to_v(pred, x, t, path, kind), want)
        torch.testing.assert_close(G.from_v(want, x, t, path, kind), pred)


def test_v_limits_on_the_linear_path():
    path = cl.Linear()
    x0, eps, _ = _images()
    for t, target in ((1 - 1e-9, -x0), (1e-9, eps)):               # v -> -x0 at the noise end, -> eps at the data end
        x = path.noise(x0, t, eps)
        torch.testing.assert_close(G.to_v(x0, x, t, path, "x0"), target, rtol=1e-6, atol=1e-6)


def test_v_on_the_ve_path_is_comfyuis_conversion():
    # ComfyUI's RescaleCFG receives x_ve = x0 + sigma eps and the denoised D = x0, and uses
    # v = (x_ve / (sigma^2 + 1) - D) sqrt(sigma^2 + 1) / sigma (written here from its algebra)
    path = cl.VE()
    x0, eps, _ = _images()
    t = torch.full((5,), 0.6, dtype=f64)
    x = path.noise(x0, t, eps)
    s = path(t, x).sigma
    comfy = (x / (s**2 + 1) - x0) * torch.sqrt(s**2 + 1) / s
    torch.testing.assert_close(G.to_v(x0, x, t, path, "x0"), comfy)


def test_v_matches_diffusers_v_prediction_on_vp():
    pytest.importorskip("diffusers")
    from diffusers import DDPMScheduler
    path = cl.VP()
    x0, eps, _ = _images(4)
    t = torch.tensor([0.05, 0.3, 0.6, 0.95], dtype=f64)
    sched = DDPMScheduler(num_train_timesteps=4)
    sched.alphas_cumprod = path(t).alpha ** 2                    # diffusers' alpha_bar at "timesteps" 0..3 = ours
    theirs = sched.get_velocity(x0, eps, torch.arange(4))        # sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0
    x = path.noise(x0, t, eps)
    torch.testing.assert_close(G.to_v(x0, x, t, path, "x0"), theirs)


def test_rescale_in_v_is_rescale_of_x0_minus_k_x():
    path = cl.Linear()
    c, u, x = _images()
    t = torch.tensor([0.05, 0.2, 0.5, 0.8, 0.95], dtype=f64)
    co = path(t, x)
    rule = G.rule_in_v(lambda c_, u_, x_, t_: G.rescale(cl.cfg(c_, u_, 5.0), c_, 0.7), path)
    k = co.alpha / (co.alpha**2 + co.sigma**2)
    want = k * x + G.rescale(cl.cfg(c - k * x, u - k * x, 5.0), c - k * x, 0.7)
    torch.testing.assert_close(rule(c, u, x, t), want)
    # in eps the reference image is x / alpha
    eps_rule = G.guided_rule(lambda x_, t_: (c, u), lambda c_, u_, x_, t_: G.rescale(cl.cfg(c_, u_, 5.0), c_, 0.7),
                             path, pred="x0", space="eps", kind="x0")
    k = 1 / co.alpha
    want = k * x + G.rescale(cl.cfg(c - k * x, u - k * x, 5.0), c - k * x, 0.7)
    torch.testing.assert_close(eps_rule(x, t), want)


# -- TCFG ---------------------------------------------------------------------------------------------------------

def test_tcfg_definition():
    c, u, _ = _images()
    w = 4.0
    out = G.tangential_cfg(c, u, w)
    for i in range(c.shape[0]):
        m = torch.stack([c[i].flatten(), u[i].flatten()])           # 2 x 64
        _, _, vh = torch.linalg.svd(m, full_matrices=False)
        v1 = vh[0]
        u1 = (u[i].flatten() @ v1) * v1
        torch.testing.assert_close(out[i].flatten(), u1 + w * (c[i].flatten() - u1))
    torch.testing.assert_close(G.tangential_cfg(c, u, 1.0), c)
    # parallel predictions have a rank-one matrix: nothing is tangential and TCFG is CFG
    torch.testing.assert_close(G.tangential_cfg(c, 0.5 * c, w), cl.cfg(c, 0.5 * c, w))


def test_tcfg_matches_diffusers():
    pytest.importorskip("diffusers")
    from diffusers.guiders.tangential_classifier_free_guidance import normalized_guidance
    c, u, _ = _images(4, shape=(4, 8, 8))
    for w in (1.5, 5.0):
        # diffusers computes in float32: compare at float32 round-off
        torch.testing.assert_close(G.tangential_cfg(c, u, w), normalized_guidance(c, u, w).to(f64), rtol=1e-4,
                                   atol=1e-4)


def test_tcfg_guider_class_matches():
    dg = pytest.importorskip("diffusers.guiders")
    c, u, _ = _images(3, shape=(4, 8, 8))
    guider = dg.TangentialClassifierFreeGuidance(guidance_scale=6.0)
    guider.set_state(step=0, num_inference_steps=10, timestep=torch.tensor(500))
    torch.testing.assert_close(guider.forward(c, u).pred.to(f64), G.tangential_cfg(c, u, 6.0), rtol=1e-4, atol=1e-4)


# -- MAMBO-G ------------------------------------------------------------------------------------------------------

def test_mambo_definition():
    c, u, _ = _images()
    w, a = 6.0, 3.0
    r = (c - u).flatten(1).norm(dim=1) / u.flatten(1).norm(dim=1)
    scale = 1 + (w - 1) * torch.exp(-a * r)
    torch.testing.assert_close(G.mambo_scale(c, u, w, a).flatten(), scale)
    torch.testing.assert_close(G.mambo_guidance(c, u, w, a), u + scale[:, None, None, None] * (c - u))
    torch.testing.assert_close(G.mambo_guidance(c, u, w, 0.0), cl.cfg(c, u, w))   # alpha = 0: plain CFG
    torch.testing.assert_close(G.mambo_guidance(u, u, w, a), u)                   # no difference, no update
    zero = torch.zeros_like(u)
    torch.testing.assert_close(G.mambo_guidance(c, zero, w, a), c)                # |uncond| = 0: scale 1
    assert torch.isfinite(G.mambo_guidance(zero, zero, w, a)).all()


def test_mambo_matches_diffusers():
    pytest.importorskip("diffusers")
    from diffusers.guiders.magnitude_aware_guidance import mambo_guidance
    c, u, _ = _images(4)
    # diffusers' torch.norm over three dims fails on (n, C, H, W) with this torch; (n, H, W) and (n, D) work
    for shape in ((4, 8, 8), (4, 64)):
        cc, uu = c.reshape(shape), u.reshape(shape)
        for w, a in ((4.0, 8.0), (10.0, 2.0)):
            torch.testing.assert_close(G.mambo_guidance(cc, uu, w, a), mambo_guidance(cc, uu, w, a))


# -- the Laplacian pyramid and FDG ------------------------------------------------------------------------------------

def test_pyramid_definition_and_inverse():
    x, _, _ = _images(3, shape=(2, 8, 8))
    low = G.pyramid_down(x)
    assert low.shape == (3, 2, 4, 4)
    const = torch.full((2, 1, 8, 8), 0.7, dtype=f64)
    torch.testing.assert_close(G.pyramid_down(const), torch.full((2, 1, 4, 4), 0.7, dtype=f64))
    torch.testing.assert_close(G.pyramid_up(G.pyramid_down(const)), const)
    bands = G.laplacian_pyramid(const, 2)
    torch.testing.assert_close(bands[0], torch.zeros_like(const))                # a constant has no detail
    for levels in (1, 2, 3):
        bands = G.laplacian_pyramid(x, levels)
        assert [b.shape[-1] for b in bands] == [8 // 2**i for i in range(levels)]
        torch.testing.assert_close(G.from_laplacian_pyramid(bands), x)
    # the blur is the binomial filter: an impulse in the middle spreads as (1 4 6 4 1)/16 in each direction
    imp = torch.zeros(1, 1, 8, 8, dtype=f64)
    imp[0, 0, 4, 4] = 1.0
    k = torch.tensor([1, 4, 6, 4, 1], dtype=f64) / 16
    up = G.pyramid_up(torch.ones(1, 1, 4, 4, dtype=f64))
    torch.testing.assert_close(up, torch.ones(1, 1, 8, 8, dtype=f64))
    from cfglab.guidance.images import _blur
    torch.testing.assert_close(_blur(imp)[0, 0, 2:7, 2:7], k[:, None] * k[None, :])


def test_pyramid_matches_kornia():
    kornia = pytest.importorskip("kornia")
    x, _, _ = _images(3, shape=(2, 8, 8))
    for levels in (1, 2, 3):
        theirs = kornia.geometry.transform.build_laplacian_pyramid(x, levels)
        for a, b in zip(G.laplacian_pyramid(x, levels), theirs):
            torch.testing.assert_close(a, b)
    torch.testing.assert_close(G.pyramid_up(x), kornia.geometry.transform.pyrup(x))
    torch.testing.assert_close(G.pyramid_down(x), kornia.geometry.transform.pyrdown(x))


def test_fdg_definition():
    c, u, _ = _images()
    ws = (6.0, 2.0)
    pc, pu = G.laplacian_pyramid(c, 2), G.laplacian_pyramid(u, 2)
    want = G.from_laplacian_pyramid([b + w * (a - b) for a, b, w in zip(pc, pu, ws)])
    torch.testing.assert_close(G.frequency_decoupled(c, u, ws), want)
    torch.testing.assert_close(G.frequency_decoupled(c, u, [3.0, 3.0]), cl.cfg(c, u, 3.0))
    torch.testing.assert_close(G.frequency_decoupled(c, u, [3.0]), cl.cfg(c, u, 3.0))
    # parallel weights: APG's projection inside each level
    par, orth = G.parallel_orthogonal(pc[0] - pu[0], pc[0])
    want = G.from_laplacian_pyramid([pu[0] + ws[0] * (0.5 * par + orth), pu[1] + ws[1] * (pc[1] - pu[1])])
    torch.testing.assert_close(G.frequency_decoupled(c, u, ws, parallel_weights=[0.5, 1.0]), want)
    # the same field in every space: x0 -> eps is affine with a per-sample offset
    path, x = cl.Linear(), torch.randn_like(c)
    t = torch.full((c.shape[0],), 0.4, dtype=f64)
    conv = lambda p: path.convert(p, x, t, "x0", "eps")  # noqa: E731
    torch.testing.assert_close(conv(G.frequency_decoupled(c, u, ws)), G.frequency_decoupled(conv(c), conv(u), ws))
    # and it commutes with adding a constant to every pixel
    torch.testing.assert_close(G.frequency_decoupled(c + 1.0, u + 1.0, ws), G.frequency_decoupled(c, u, ws) + 1.0)


def _fdg_guider(dg, monkeypatch, **kw):
    """diffusers' FDG guider; without kornia installed, its pyramid functions are ours (tested against kornia)."""
    import diffusers.guiders.frequency_decoupled_guidance as fdg
    if not fdg._CAN_USE_KORNIA:
        monkeypatch.setattr(fdg, "_CAN_USE_KORNIA", True)
        monkeypatch.setattr(fdg, "build_laplacian_pyramid_func", G.laplacian_pyramid)
        monkeypatch.setattr(fdg, "upsample_and_blur_func", G.pyramid_up)
    guider = dg.FrequencyDecoupledGuidance(**kw)
    guider.set_state(step=0, num_inference_steps=10, timestep=torch.tensor(500))
    return guider


def test_fdg_matches_diffusers(monkeypatch):
    dg = pytest.importorskip("diffusers.guiders")
    c, u, _ = _images(4, shape=(2, 8, 8))
    # (a level at scale exactly 1, other than the first, trips diffusers: it reuses the previous level's band)
    for ws, pw in (([6.0, 2.0], None), ([4.0, 1.5], [0.5, 0.3]), ([8.0, 3.0, 1.5], None)):
        guider = _fdg_guider(dg, monkeypatch, guidance_scales=ws, parallel_weights=pw)
        torch.testing.assert_close(guider.forward(c, u).pred, G.frequency_decoupled(c, u, ws, pw))


# -- the origin test ------------------------------------------------------------------------------------------------

def test_translated_is_the_moved_model_exactly():
    path = cl.Linear()
    mix = cl.make("moons")
    offset = torch.tensor([2.0, -1.0], dtype=f64)
    far = mix.shift(offset)
    x = torch.randn(50, 2, dtype=f64, generator=torch.Generator().manual_seed(3))
    t = torch.full((50,), 0.4, dtype=f64)
    for pred in ("velocity", "eps", "x0", "score"):
        def pair(x_, t_, m=mix, pred=pred):
            s = (m.score(x_, t_, path, 0), m.score(x_, t_, path))
            return tuple(path.convert(v, x_, t_, "score", pred) for v in s)
        moved = G.translated(pair, offset, path, pred)
        want = pair(x, t, m=far)
        for a, b in zip(moved(x, t), want):
            torch.testing.assert_close(a, b)


def test_eps_rules_commute_with_a_pixel_shift_and_x0_rules_do_not():
    path = cl.Linear()
    model = cl.UNet(8, 10, path=path, pred="velocity", width=8, seed=1).double()
    y = torch.arange(4)
    pair = G.predictions(model, y)
    moved = G.translated(pair, 1.0, path, "velocity")
    x1 = path.prior(4, (1, 8, 8), torch.Generator().manual_seed(0), dtype=f64)
    rule = lambda c, u, x, t: G.rescale(cl.cfg(c, u, 4.0), c, 0.7)  # noqa: E731
    gaps = {}
    with torch.no_grad():
        for space in ("eps", "x0"):
            a = cl.ode(G.guided_rule(pair, rule, path, pred="velocity", space=space), x1, path, 3, method="euler")
            b = cl.ode(G.guided_rule(moved, rule, path, pred="velocity", space=space),
                       x1 + path(path.timesteps(3)[0].to(f64)).alpha, path, 3, method="euler")
            gaps[space] = float((b - 1.0 - a).abs().max())
    assert gaps["eps"] < 1e-10 and gaps["x0"] > 1e-3, gaps


def test_rule_in_v_with_guided_rule_matches_manual_conversion():
    path = cl.Linear()
    c, u, x = _images()
    t = torch.full((5,), 0.3, dtype=f64)
    rule = G.rule_in_v(lambda c_, u_, x_, t_: cl.cfg(c_, u_, 3.0), path)
    torch.testing.assert_close(rule(c, u, x, t), cl.cfg(c, u, 3.0))   # CFG is affine: the same in v
    assert math.isfinite(float(rule(c, u, x, t).sum()))
