"""Chapter 2 checkers: the reference solutions pass, every listed mistake gets its own diagnosis. (Every checker's
answer to a stub is tested once, in tests/test_student.py.)"""

import pytest
import torch

from cfglab.exercises import check_ddim_step, check_ddpm_sample, check_eps_loss, check_x0_from_score

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


# -- ddpm_sample: judged by the law of its samples ----------------------------------------------------------------


def ddpm_sample(eps_fn, x, path, ts, generator):
    for t, s in zip(ts[:-1], ts[1:]):
        ct, cs = path(t), path(s)
        x0_hat = (x - ct.sigma * eps_fn(x, t)) / ct.alpha
        a_ts = ct.alpha / cs.alpha
        var_ts = ct.sigma**2 - a_ts**2 * cs.sigma**2
        mean = a_ts * cs.sigma**2 / ct.sigma**2 * x + cs.alpha * var_ts / ct.sigma**2 * x0_hat
        x = mean + cs.sigma * var_ts.sqrt() / ct.sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x


def _ddpm_variant(kind):
    """The loop with one known slip."""
    def run(eps_fn, x, path, ts, generator):
        for t, s in zip(ts[:-1], ts[1:]):
            ct, cs = path(t), path(s)
            eps = eps_fn(x, t)
            x0_hat = (x - ct.sigma * eps) / ct.alpha
            a_ts = ct.alpha / cs.alpha
            var_ts = ct.sigma**2 - a_ts**2 * cs.sigma**2
            mean = a_ts * cs.sigma**2 / ct.sigma**2 * x + cs.alpha * var_ts / ct.sigma**2 * x0_hat
            std = cs.sigma * var_ts.sqrt() / ct.sigma
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            if kind == "ddim":
                x = cs.alpha * x0_hat + cs.sigma * eps
            elif kind == "sigma_s":
                x = mean + cs.sigma * z
            elif kind == "variance":
                x = mean + std**2 * z
            elif kind == "mean":
                x = cs.alpha * x0_hat + std * z
            elif kind == "x0_at_s":
                x0_s = (x - cs.sigma * eps) / cs.alpha
                x = a_ts * cs.sigma**2 / ct.sigma**2 * x + cs.alpha * var_ts / ct.sigma**2 * x0_s + std * z
            elif kind == "denoise":
                x = mean + std * z
        if kind == "denoise":  # a final jump to x0_hat at ts[-1], which the exercise does not ask for
            c = path(ts[-1])
            x = (x - c.sigma * eps_fn(x, ts[-1])) / c.alpha
        return x
    return run


def _words(verdict):
    return " ".join(verdict.message.split())


def test_ddpm_sample_reference_passes_and_reports_the_discretisation_gap():
    from cfglab.exercises import ch02

    v = check_ddpm_sample(ch02.ddpm_sample_reference, quiet=True)
    assert v and "exact p_t" in _words(v)
    assert check_ddpm_sample(ddpm_sample, quiet=True)


@pytest.mark.parametrize("kind, words", [
    ("ddim", "draws no fresh noise"),
    ("sigma_s", "more fresh noise"),
    ("variance", "less fresh noise"),
    ("mean", "around the wrong point"),
    ("x0_at_s", "around the wrong point"),
    ("denoise", "without a final denoising step"),
])
def test_ddpm_sample_mistakes_are_diagnosed_from_the_samples(kind, words):
    v = check_ddpm_sample(_ddpm_variant(kind), quiet=True)
    assert not v and words in _words(v), _words(v)


def test_ddpm_sample_no_step_and_errors_are_reported_in_words():
    assert "returned x unchanged" in _words(check_ddpm_sample(lambda eps_fn, x, path, ts, generator: x, quiet=True))

    def raises(eps_fn, x, path, ts, generator):
        raise RuntimeError("boom")

    assert "raised RuntimeError: boom" in _words(check_ddpm_sample(raises, quiet=True))


def test_ddpm_sample_reference_is_the_package_sampler():
    """cl.ddpm (DDIM with eta = 1) without the final denoising draws the same samples from the same noise."""
    import cfglab as cl
    from cfglab.exercises import ch02

    path = cl.VP()
    m = torch.tensor([0.5, -0.2], dtype=torch.float64)
    eps_fn = ch02._gaussian_eps(m, 0.4, path)
    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    want = cl.ddpm(eps_fn, x, path, 12, pred="eps", denoise=False, generator=torch.Generator().manual_seed(3))
    got = ch02.ddpm_sample_reference(eps_fn, x, path, path.timesteps(12), torch.Generator().manual_seed(3))
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-10)


def test_ddpm_law_matches_a_large_sample():
    """The closed-form law of ancestral sampling against 200 000 chains of the reference."""
    import cfglab as cl
    from cfglab.exercises import ch02

    path = cl.VP()
    m, s = torch.tensor([0.3, -0.6], dtype=torch.float64), 0.5
    ts = path.timesteps(10)
    mu, var, _ = ch02.ddpm_law(m, s, path, ts)
    c0 = path(ts[0])
    g = torch.Generator().manual_seed(1)
    x = c0.alpha * m + (c0.alpha**2 * s**2 + c0.sigma**2).sqrt() * torch.randn(200_000, 2, generator=g,
                                                                                  dtype=torch.float64)
    out = ch02.ddpm_sample_reference(ch02._gaussian_eps(m, s, path), x, path, ts, g)
    assert torch.allclose(out.mean(0), mu, atol=5 * (var / 200_000) ** 0.5)
    assert abs(out.var(0).mean().item() / var - 1) < 5 * (1 / 200_000) ** 0.5
