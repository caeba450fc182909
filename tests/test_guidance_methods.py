"""Chapter 9's guidance rules against their definitions: each reduces to plain CFG at its trivial setting, and
matches diffusers' guiders on random inputs where diffusers has the same method (scale conventions mapped)."""

import math

import pytest
import torch

import cfglab as cl
from cfglab import guidance as G


def _pair(n=6, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64),
            torch.randn(n, d, generator=g, dtype=torch.float64))


def test_rescale_zero_is_cfg_and_one_has_cond_std():
    c, u = _pair()
    guided = cl.cfg(c, u, 6.0)
    assert torch.equal(G.rescale(guided, c, 0.0), guided)
    out = G.rescale(guided, c, 1.0)
    torch.testing.assert_close(out.std(dim=1), c.std(dim=1))
    # direction kept: the rescaled prediction is a positive multiple of the guided one
    torch.testing.assert_close(out / out.norm(dim=1, keepdim=True), guided / guided.norm(dim=1, keepdim=True))
    rms = G.rescale(guided, c, 1.0, center=False)
    torch.testing.assert_close(rms.norm(dim=1), c.norm(dim=1))
    half = G.rescale(guided, c, 0.5)
    torch.testing.assert_close(half, 0.5 * out + 0.5 * guided)


def test_dynamic_threshold_definition():
    x0 = torch.tensor([[0.2, -0.5, 0.9], [3.0, -1.0, 0.5]], dtype=torch.float64)
    out = G.dynamic_threshold(x0, percentile=1.0)
    torch.testing.assert_close(out[0], x0[0])                 # inside [-1, 1]: untouched (s = 1)
    torch.testing.assert_close(out[1], x0[1] / 3.0)           # s = max |x0| = 3: divide by 3
    out2 = G.dynamic_threshold(x0, percentile=1.0, bound=2.0)
    torch.testing.assert_close(out2[1], x0[1] * 2.0 / 3.0)
    # a lower percentile clips the largest entry first
    s = torch.quantile(x0[1].abs(), 0.5).clamp_min(1.0)
    torch.testing.assert_close(G.dynamic_threshold(x0, 0.5)[1], x0[1].clamp(-s, s) / s)


def test_apg_eta_one_is_cfg_and_eta_zero_is_orthogonal():
    c, u = _pair()
    out, running = G.apg(c, u, 4.0, eta=1.0)
    torch.testing.assert_close(out, cl.cfg(c, u, 4.0))
    torch.testing.assert_close(running, c - u)
    out0, _ = G.apg(c, u, 4.0, eta=0.0)
    torch.testing.assert_close(((out0 - c) * c).sum(dim=1), torch.zeros(6, dtype=torch.float64))


def test_parallel_orthogonal_projection():
    v, ref = _pair()
    par, orth = G.parallel_orthogonal(v, ref)
    torch.testing.assert_close(par + orth, v)
    torch.testing.assert_close((orth * ref).sum(1), torch.zeros(6, dtype=torch.float64))
    torch.testing.assert_close(torch.linalg.matrix_rank(torch.stack([par[0], ref[0]])), torch.tensor(1))


def test_apg_threshold_and_momentum():
    c, u = _pair()
    out, _ = G.apg(c, u, 3.0, norm_threshold=1e6)
    torch.testing.assert_close(out, cl.cfg(c, u, 3.0))        # a threshold above every norm does nothing
    r = 0.5
    out, _ = G.apg(c, u, 3.0, norm_threshold=r)
    d = (c - u) * torch.clamp(r / (c - u).norm(dim=1, keepdim=True), max=1.0)
    torch.testing.assert_close(out, c + 2.0 * d)
    prev = torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    out, running = G.apg(c, u, 3.0, momentum=-0.5, running=prev)
    torch.testing.assert_close(running, c - u - 0.5 * prev)
    torch.testing.assert_close(out, c + 2.0 * running)


def test_cfg_zero_star_scale_is_least_squares():
    c, u = _pair()
    s = G.cfg_zero_star_scale(c, u)
    for i in range(6):
        coef = torch.linalg.lstsq(u[i][:, None], c[i][:, None]).solution
        torch.testing.assert_close(s[i, 0], coef[0, 0])
    torch.testing.assert_close(G.cfg_zero_star(c, u, 3.0), s * u + 3.0 * (c - s * u))
    torch.testing.assert_close(G.cfg_zero_star(c, c, 7.0), c)  # s* = 1 when cond == uncond


def test_schedules_and_interval():
    t = torch.linspace(0, 1, 2001, dtype=torch.float64)
    for kind in G.SCHEDULES:
        w = G.scale_schedule(kind, t, 5.0)
        assert abs(float(torch.trapezoid(w, t)) - 5.0) < 1e-5, kind   # same mean scale as constant
    assert torch.all(G.scale_schedule("constant", t, 5.0) == 5.0)
    assert float(G.scale_schedule("decaying", torch.tensor(0.0), 5.0)) == pytest.approx(1.0)
    assert torch.all(G.interval_scale(t, 5.0, 0.0, 1.0) == 5.0)          # covering [0, 1] is plain CFG
    ws = G.interval_scale(t, 5.0, 0.2, 0.7)
    assert torch.all(ws[(t >= 0.2) & (t <= 0.7)] == 5.0) and torch.all(ws[(t < 0.2) | (t > 0.7)] == 1.0)


def test_guided_rule_cfg_matches_guided_in_any_space():
    mix, path = cl.make("mixture"), cl.Linear()
    model = cl.MLP(2, mix.num_classes, path=path, pred="velocity", seed=0)
    x = torch.randn(7, 2)
    t = torch.full((7,), 0.4)
    want = cl.guided(model, 1, 3.0)(x, t)
    for space in ("eps", "x0", "score", "velocity"):
        fn = G.guided_rule(G.predictions(model, 1), lambda c, u, x, t: cl.cfg(c, u, 3.0), path,
                           pred="velocity", space=space)
        torch.testing.assert_close(fn(x, t), want, rtol=1e-4, atol=1e-4)


def test_ddim_cfgpp_at_lambda_one_with_equal_predictions_is_ddim():
    mix, path = cl.make("mixture"), cl.Linear()
    score = mix.score_fn(path, 0)
    x1 = path.prior(50, 2, generator=torch.Generator().manual_seed(0)).double()
    a = cl.samplers.ddim_cfgpp(lambda x, t: (score(x, t), score(x, t)), x1, path, 20, guidance_scale=0.7)
    b = cl.ddim(score, x1, path, 20)
    torch.testing.assert_close(a, b)


# -- parity with diffusers' guiders ----------------------------------------------------------------------------------

def _diffusers():
    return pytest.importorskip("diffusers.guiders", reason="diffusers is optional: parity tests need it")


def test_rescale_matches_diffusers():
    dg = _diffusers()
    from diffusers.guiders.guider_utils import rescale_noise_cfg
    c, u = _pair(4, 16)
    guided = cl.cfg(c, u, 7.5)
    torch.testing.assert_close(G.rescale(guided, c, 0.7), rescale_noise_cfg(guided, c, 0.7))
    assert dg is not None


def test_apg_matches_diffusers_original_formulation():
    _diffusers()
    from diffusers.guiders.adaptive_projected_guidance import MomentumBuffer, normalized_guidance
    c, u = _pair(4, 16)
    c2, u2 = _pair(4, 16, seed=1)
    for eta, r, beta in [(1.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.3, 2.0, -0.5)]:
        buf = MomentumBuffer(beta) if beta else None
        running = None
        for cc, uu in [(c, u), (c2, u2)]:
            ours, running = G.apg(cc, uu, 5.0, eta=eta, norm_threshold=r, momentum=beta, running=running)
            theirs = normalized_guidance(cc, uu, 5.0 - 1.0, buf, eta, r, use_original_formulation=True)
            torch.testing.assert_close(ours, theirs)


def test_cfg_zero_star_matches_diffusers():
    _diffusers()
    from diffusers.guiders.classifier_free_zero_star_guidance import cfg_zero_star_scale
    c, u = _pair(4, 16)
    torch.testing.assert_close(G.cfg_zero_star_scale(c, u), cfg_zero_star_scale(c, u).to(c.dtype),
                               rtol=1e-6, atol=1e-6)


def test_guiders_classes_match_ours():
    dg = _diffusers()
    c, u = _pair(4, 16)
    cfgg = dg.ClassifierFreeGuidance(guidance_scale=6.0, guidance_rescale=0.5)
    cfgg.set_state(step=0, num_inference_steps=10, timestep=torch.tensor(500))
    out = cfgg.forward(c, u).pred
    torch.testing.assert_close(out, G.rescale(cl.cfg(c, u, 6.0), c, 0.5))
    z = dg.ClassifierFreeZeroStarGuidance(guidance_scale=4.0, zero_init_steps=1)
    z.set_state(step=0, num_inference_steps=10, timestep=torch.tensor(900))
    assert torch.count_nonzero(z.forward(c, u).pred) == 0            # zero-init at the first step
    z.set_state(step=1, num_inference_steps=10, timestep=torch.tensor(800))
    torch.testing.assert_close(z.forward(c, u).pred, G.cfg_zero_star(c, u, 4.0), rtol=1e-6, atol=1e-6)
    assert math.isfinite(float(out.sum()))


def test_apg_norm_threshold_works_on_images():
    """The norm threshold of APG is the Euclidean norm over all of an image's pixels (it used to call
    Tensor.norm over three dimensions, which torch refuses)."""
    g = torch.Generator().manual_seed(0)
    c, u = torch.randn(3, 1, 8, 8, generator=g, dtype=torch.float64), torch.randn(3, 1, 8, 8, generator=g,
                                                                                  dtype=torch.float64)
    out, running = G.apg(c, u, 4.0, eta=1.0, norm_threshold=0.5)
    d = c - u
    scale = torch.clamp(0.5 / d.flatten(1).norm(dim=1), max=1.0)[:, None, None, None]
    assert torch.allclose(out, c + 3.0 * d * scale) and torch.equal(running, d)
