"""Chapter 2 checkers: the reference solutions pass, every listed mistake gets its own diagnosis. (Every checker's
answer to a stub is tested once, in tests/test_student.py.)"""

import pytest
import torch

from cfglab.exercises import check_ddim_step, check_eps_loss, check_x0_from_score

# -- x0_from_score ---------------------------------------------------------------------------------------------


def x0_from_score(score, x, alpha, sigma):
    return (x + sigma**2 * score) / alpha


X0_MISTAKES = {
    "sigma where Tweedie": lambda score, x, alpha, sigma: (x + sigma * score) / alpha,
    "sign of the score term": lambda score, x, alpha, sigma: (x - sigma**2 * score) / alpha,
    "forgot to divide by alpha": lambda score, x, alpha, sigma: x + sigma**2 * score,
    "multiplied by alpha": lambda score, x, alpha, sigma: alpha * (x + sigma**2 * score),
    "noise estimate": lambda score, x, alpha, sigma: -sigma * score,
    "swapped alpha and sigma": lambda score, x, alpha, sigma: (x + alpha**2 * score) / sigma,
}


def test_x0_from_score_reference_passes():
    assert check_x0_from_score(x0_from_score)


@pytest.mark.parametrize("phrase", list(X0_MISTAKES))
def test_x0_from_score_mistakes_are_diagnosed(phrase):
    v = check_x0_from_score(X0_MISTAKES[phrase])
    assert not v and phrase in v.message, v.message


# -- eps_loss --------------------------------------------------------------------------------------------------


def eps_loss(model, x0, t, eps):
    c = model.path(t, x0)
    xt = c.alpha * x0 + c.sigma * eps
    return ((model(xt, t) - eps) ** 2).mean()


def _wrong_loss(noised, target, reduce=lambda e: e.mean()):
    def f(model, x0, t, eps):
        c = model.path(t, x0)
        a, s = c.alpha, c.sigma
        xt = noised(a, s, x0, eps)
        return reduce((model(xt, t) - target(a, s, x0, eps, xt)) ** 2)

    return f


def _right(a, s, x0, eps):
    return a * x0 + s * eps


LOSS_MISTAKES = {
    "sigma^2 instead of sigma": _wrong_loss(lambda a, s, x0, eps: a * x0 + s**2 * eps, lambda a, s, x0, eps, xt: eps),
    "swapped alpha and sigma": _wrong_loss(lambda a, s, x0, eps: s * x0 + a * eps, lambda a, s, x0, eps, xt: eps),
    "target is the noisy point": _wrong_loss(_right, lambda a, s, x0, eps, xt: xt),
    "target is the clean sample": _wrong_loss(_right, lambda a, s, x0, eps, xt: x0),
    "score target": _wrong_loss(_right, lambda a, s, x0, eps, xt: -eps / s),
    "fed the clean x0": _wrong_loss(lambda a, s, x0, eps: x0, lambda a, s, x0, eps, xt: eps),
    "sums the squared error": _wrong_loss(_right, lambda a, s, x0, eps, xt: eps, reduce=lambda e: e.sum(-1).mean()),
    "root mean squared": _wrong_loss(_right, lambda a, s, x0, eps, xt: eps, reduce=lambda e: e.mean().sqrt()),
}


def test_eps_loss_reference_passes():
    """The reference keeps the autograd graph through the model (as a training loss would) and is accepted."""
    assert check_eps_loss(eps_loss)


@pytest.mark.parametrize("phrase", list(LOSS_MISTAKES))
def test_eps_loss_mistakes_are_diagnosed(phrase):
    v = check_eps_loss(LOSS_MISTAKES[phrase])
    assert not v and phrase in v.message, v.message


def test_eps_loss_float_is_rejected():
    v = check_eps_loss(lambda model, x0, t, eps: eps_loss(model, x0, t, eps).item())
    assert not v and "tensor" in v.message


# -- ddim_step -------------------------------------------------------------------------------------------------


def ddim_step(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s):
    x0_hat = (x - sigma_t * eps_hat) / alpha_t
    return alpha_s * x0_hat + sigma_s * eps_hat


def _x0(x, e, at, st):
    return (x - st * e) / at


STEP_MISTAKES = {
    "forgot to rescale": lambda x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s: _x0(x, eps_hat, alpha_t, sigma_t)
    + sigma_s * eps_hat,
    "rescaled x0_hat by alpha_t": lambda x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s:
    alpha_t * _x0(x, eps_hat, alpha_t, sigma_t) + sigma_s * eps_hat,
    "wrong step": lambda x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s: alpha_s * _x0(x, eps_hat, alpha_s, sigma_s)
    + sigma_s * eps_hat,
    "re-noised with sigma_t": lambda x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s:
    alpha_s * _x0(x, eps_hat, alpha_t, sigma_t) + sigma_t * eps_hat,
    "returned x0_hat": lambda x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s: _x0(x, eps_hat, alpha_t, sigma_t),
    "sign in x0_hat": lambda x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s: alpha_s * (x + sigma_t * eps_hat)
    / alpha_t + sigma_s * eps_hat,
    "naive step": lambda x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s: x + (sigma_s - sigma_t) * eps_hat,
}


def test_ddim_step_reference_passes():
    assert check_ddim_step(ddim_step)


@pytest.mark.parametrize("phrase", list(STEP_MISTAKES))
def test_ddim_step_mistakes_are_diagnosed(phrase):
    v = check_ddim_step(STEP_MISTAKES[phrase])
    assert not v and phrase in v.message, v.message


def test_ddim_step_matches_cfglab_on_a_real_path():
    """The reference of the checker is cfglab's DDIM: one step between two times of the VP path."""
    import cfglab as cl

    path = cl.VP()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 2, generator=g, dtype=torch.float64)
    e = torch.randn(5, 2, generator=g, dtype=torch.float64)
    t, s = 0.7, 0.3
    ct, cs = path(torch.tensor(t, dtype=torch.float64)), path(torch.tensor(s, dtype=torch.float64))
    want = cl.ddim(lambda xx, tt: e, x, path, 1, pred="eps", t_max=t, t_min=s, spacing="uniform", denoise=False)
    got = ddim_step(x, e, ct.alpha.item(), ct.sigma.item(), cs.alpha.item(), cs.sigma.item())
    assert torch.allclose(got, want, atol=1e-12)
