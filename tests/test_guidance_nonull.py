"""Guidance without a null label (chapter 16) against exact mixture computations: the ICG branch averaged over the
random class is the prior-weighted sum of the conditional scores (the score of the geometric mixture, a single
Gaussian for Gaussian classes of one variance), not the posterior-weighted unconditional score; expected ICG is a
negative prompt at the closed-form scale; the wrappers reduce to their rules; TSG's perturbation is exact at zero."""

import math

import pytest
import torch

import cfglab as cl
from cfglab import guidance as G

LINE = cl.GaussianMixture([[-1.5, 0.0], [0.0, 0.0], [1.5, 0.0]], 0.35)


def _points(n=300, seed=0):
    return 2.0 * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("t", [0.05, 0.4, 0.9])
def test_expected_icg_is_the_prior_weighted_sum_not_the_unconditional_score(t):
    path, x = cl.Linear(), _points()
    conds = [LINE.score(x, t, path, c) for c in range(3)]
    q = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    torch.testing.assert_close(G.expected_icg(conds, q), sum(w * c for w, c in zip(q, conds)))
    # the unconditional score weighs by the posterior instead (an identity of mixtures) ...
    post = LINE.posterior(x, t, path)
    uncond = sum(post[:, c:c + 1] * conds[c] for c in range(3))
    torch.testing.assert_close(uncond, LINE.score(x, t, path))
    # ... and the two differ wherever the posterior is not the prior
    assert (G.expected_icg(conds) - uncond).norm(dim=1).max() > 1e-3


@pytest.mark.parametrize("t", [0.1, 0.5])
def test_expected_icg_of_gaussian_classes_is_one_gaussian_at_the_mean(t):
    # prod_c N(alpha mu_c, v)^q_c  is  N(alpha sum_c q_c mu_c, v): the score of a single Gaussian
    path, x = cl.Linear(), _points()
    q = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    mean = (q[:, None] * LINE.means).sum(0, keepdim=True)
    geo = cl.GaussianMixture(mean, 0.35)
    torch.testing.assert_close(G.expected_icg([LINE.score(x, t, path, c) for c in range(3)], q),
                               geo.score(x, t, path))


def test_expected_icg_is_a_negative_prompt_at_the_closed_form_scale():
    g = torch.Generator().manual_seed(1)
    for k in (2, 3, 5):
        c, *others = [torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(k)]
        neg = sum(others) / (k - 1)
        for w in (0.5, 3.0, 7.0):
            icg = G.icg(c, G.expected_icg([c, *others]), w)
            torch.testing.assert_close(icg, cl.cfg(c, neg, G.icg_negative_scale(w, k)))
    assert G.icg_negative_scale(3.0, 2) == 2.0 and G.icg_negative_scale(1.0, 7) == 1.0


def test_icg_and_tsg_are_cfg_with_another_second_prediction():
    c, n = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.testing.assert_close(G.icg(c, n, 4.0), cl.cfg(c, n, 4.0))
    torch.testing.assert_close(G.tsg(c, n, 4.0), cl.cfg(c, n, 4.0))


def test_random_conditions_follow_their_weights():
    y = G.random_conditions(40_000, 3, torch.Generator().manual_seed(3), weights=[1.0, 2.0, 1.0])
    freq = torch.bincount(y, minlength=3).double() / len(y)
    se = math.sqrt(0.25 * 0.75 / len(y))
    assert (freq - torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64)).abs().max() < 5 * se


def _model(seed=0):
    return cl.MLP(2, 3, width=16, depth=1, seed=seed).double()


def test_icg_guided_is_the_icg_rule_on_the_drawn_labels():
    m, x, t = _model(), _points(8), torch.full((8,), 0.4, dtype=torch.float64)
    fn = G.icg_guided(m, 1, 3.0, generator=torch.Generator().manual_seed(4), kind="eps")
    labels = torch.multinomial(torch.full((3,), 1 / 3, dtype=torch.float64), 8, replacement=True,
                               generator=torch.Generator().manual_seed(4))
    want = G.icg(m.predict(x, t, 1, kind="eps"), m.predict(x, t, labels, kind="eps"), 3.0)
    torch.testing.assert_close(fn(x, t), want)


def test_icg_guided_redraw_false_keeps_the_labels_and_redraw_true_changes_them():
    m, x, t = _model(), _points(64), torch.full((64,), 0.4, dtype=torch.float64)
    kept = G.icg_guided(m, 0, 3.0, generator=torch.Generator().manual_seed(5), redraw=False)
    torch.testing.assert_close(kept(x, t), kept(x, t))
    fresh = G.icg_guided(m, 0, 3.0, generator=torch.Generator().manual_seed(5))
    assert not torch.equal(fresh(x, t), fresh(x, t))
    with pytest.raises(ValueError, match="first call's batch size 64"):
        kept(x[:3], t[:3])


def test_icg_guided_at_scale_one_is_the_conditional_model():
    m, x, t = _model(), _points(8), torch.full((8,), 0.4, dtype=torch.float64)
    fn = G.icg_guided(m, 2, 1.0, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(fn(x, t), m.predict(x, t, 2))


def test_time_perturbed_is_the_model_at_zero_and_changes_with_noise():
    m, x, t = _model(), _points(8), torch.full((8,), 0.4, dtype=torch.float64)
    z = torch.randn(8, 16, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    torch.testing.assert_close(G.time_perturbed(m, x, t, 1, 0.0, z), m(x, t, 1))
    assert (G.time_perturbed(m, x, t, 1, 1.0, z) - m(x, t, 1)).abs().max() > 1e-4
    torch.testing.assert_close(G.time_perturbed(m, x, t, None, 0.0, z), m(x, t))


def test_tsg_guided_is_the_tsg_rule_and_the_model_at_zero_noise():
    m, x, t = _model(), _points(8), torch.full((8,), 0.4, dtype=torch.float64)
    torch.testing.assert_close(G.tsg_guided(m, 1, 4.0, 0.0)(x, t), m.predict(x, t, 1))
    fn = G.tsg_guided(m, 1, 4.0, 0.5, generator=torch.Generator().manual_seed(8), kind="x0")
    z = torch.randn(8, 16, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    pert = m.path.convert(G.time_perturbed(m, x, t, 1, 0.5, z), x, t, m.pred, "x0")
    torch.testing.assert_close(fn(x, t), G.tsg(m.predict(x, t, 1, kind="x0"), pert, 4.0))
