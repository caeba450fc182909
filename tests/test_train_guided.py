"""Guidance learned in training (chapter 14): model guidance and guidance-free training against closed forms (the MG
target with exact scores is the CFG field at 1 + w, its fixed point with the model's own output is CFG at 1/(1 - w),
GFT's optimum is CFG at 1/beta), the stop-gradient, and short trainings that reach the predicted scales."""

import pytest
import torch

import cfglab as cl
from cfglab import train_guided as TG
from cfglab.models import ExactDenoiser, GuidedMLP

F64 = torch.float64
mix, path = cl.make("overlap"), cl.Linear()


def _exact_pair(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0, y = mix.sample(n, generator=g, dtype=F64)
    t = 0.05 + 0.9 * torch.rand(n, generator=g, dtype=F64)
    x = path.noise(x0, t, torch.randn(n, 2, generator=g, dtype=F64))
    exact = ExactDenoiser(mix, path, pred="velocity")
    return x, t, y, exact(x, t, y), exact(x, t, exact.null_label)


def test_with_exact_scores_the_mg_target_is_the_cfg_field_at_one_plus_w():
    _, _, _, c, u = _exact_pair()
    for w in (0.25, 0.5, 2.0):
        # the conditional mean of the target is c; with the exact c and u inside the stop-gradient:
        torch.testing.assert_close(TG.model_guidance_target(c, c, u, w), cl.cfg(c, u, 1 + w), rtol=0, atol=1e-12)


def test_the_fixed_point_of_model_guidance_is_cfg_at_one_over_one_minus_w():
    _, _, _, c, u = _exact_pair(seed=1)
    for w in (0.0, 0.5, 2 / 3, 0.8):
        lam = TG.scale_of_model_guidance(w)
        guided = cl.cfg(c, u, lam)
        torch.testing.assert_close(TG.model_guidance_target(c, guided, u, w), guided, rtol=1e-10, atol=1e-10)
        if w > 0:
            other = cl.cfg(c, u, 1 + w)
            assert not torch.allclose(TG.model_guidance_target(c, other, u, w), other)
    with pytest.raises(ValueError, match="w must be in"):
        TG.scale_of_model_guidance(1.0)


def test_the_optimum_of_guidance_free_training_is_cfg_at_one_over_beta():
    _, _, _, c, u = _exact_pair(seed=2)
    for beta in (1.0, 0.5, 0.2):
        sampling = cl.cfg(c, u, 1 / beta)                       # what D(y, 1/beta) should be
        torch.testing.assert_close(beta * sampling + (1 - beta) * u, c, rtol=1e-10, atol=1e-10)


def test_the_mg_loss_stops_the_gradient_of_its_guidance_term():
    model = cl.MLP(2, 2, path=path, width=16, depth=1, seed=0).double()
    x0, t, _, _, _ = _exact_pair(32, 3)
    eps = torch.randn(32, 2, generator=torch.Generator().manual_seed(4), dtype=F64)
    y = torch.tensor([0, 1, 2, 1] * 8)
    loss = TG.model_guidance_loss(model, x0, y, w=0.5, t=t, eps=eps)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    xt, target = path.noise(x0, t, eps), path.target("velocity", x0, eps, t)
    with torch.no_grad():
        fixed = target + 0.5 * (model(xt, t, y) - model(xt, t, 2)) * (y != 2)[:, None]
    ref = ((model(xt, t, y) - fixed) ** 2).mean()
    for a, b in zip(grads, torch.autograd.grad(ref, list(model.parameters()))):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=0)


def test_null_rows_regress_the_plain_target():
    model = cl.MLP(2, 2, path=path, width=16, depth=1, seed=0).double()
    x0, t, _, _, _ = _exact_pair(16, 5)
    eps = torch.randn(16, 2, generator=torch.Generator().manual_seed(6), dtype=F64)
    plain = cl.denoising_loss(model, x0, 2, t=t, eps=eps)
    torch.testing.assert_close(TG.model_guidance_loss(model, x0, 2, w=0.7, t=t, eps=eps), plain, rtol=1e-12, atol=0)
    gft = GuidedMLP(2, 2, path=path, width=16, depth=1, seed=0).double()
    b = torch.full((16,), 1.0, dtype=F64)
    ref = ((gft(path.noise(x0, t, eps), t, 1, 1.0) - path.target("velocity", x0, eps, t)) ** 2).mean()
    torch.testing.assert_close(TG.guidance_free_loss(gft, x0, 1, beta=b, t=t, eps=eps), ref, rtol=1e-12, atol=0)


def _scale_of(pred_fn, n=1500):
    g = torch.Generator().manual_seed(8)
    x0, y = mix.sample(n, generator=g)
    t = 0.05 + 0.9 * torch.rand(n, generator=g)
    x = path.noise(x0, t, torch.randn(n, 2, generator=g))
    exact = ExactDenoiser(mix, path, pred="velocity")
    with torch.no_grad():
        return TG.effective_scale(pred_fn(x, t, y), exact(x, t, y), exact(x, t, exact.null_label))


def test_model_guidance_training_reaches_its_fixed_point_not_one_plus_w():
    model = cl.MLP(2, 2, path=path, width=32, depth=2, seed=0)
    TG.fit_model_guidance(model, mix, w=2 / 3, steps=500, batch_size=256, progress=False)
    scale = _scale_of(lambda x, t, y: model(x, t, y))
    assert abs(scale - 3.0) < 0.4 and abs(scale - 5 / 3) > 0.8


def test_guidance_free_training_gives_cfg_at_one_over_beta_for_every_beta():
    model = GuidedMLP(2, 2, path=path, width=32, depth=2, seed=0)
    TG.fit_guidance_free(model, mix, beta_min=0.2, steps=500, batch_size=256, progress=False)
    for w in (1.0, 2.0, 3.0):
        assert abs(_scale_of(lambda x, t, y, w=w: model(x, t, y, w)) - w) < 0.4


def test_fits_are_cached_by_method():
    a, b = cl.MLP(2, 2, path=path, width=8, depth=1), cl.MLP(2, 2, path=path, width=8, depth=1)
    la = TG.fit_model_guidance(a, mix, w=0.5, steps=4, batch_size=16, progress=False)
    assert TG.fit_model_guidance(b, mix, w=0.5, steps=4, batch_size=16, progress=False) == la
    c = cl.MLP(2, 2, path=path, width=8, depth=1)
    assert TG.fit_model_guidance(c, mix, w=0.6, steps=4, batch_size=16, progress=False) != la
