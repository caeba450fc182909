"""Chapter 4 exercise checks: the reference passes, every listed mistake gets its own diagnosis, and the references
agree with cfglab (drop_labels semantics, the exact posterior)."""

import pytest
import torch

import cfglab as cl
from cfglab.exercises import ch04, check_ambiguous_fraction, check_drop_labels, check_dropout_loss

# -- drop_labels ------------------------------------------------------------------------------------------------


def test_drop_labels_reference_passes():
    assert check_drop_labels(ch04._drop_labels)


def test_drop_labels_alternative_correct_forms_pass():
    def masked_copy(y, p_uncond, null_label, u):
        out = y.clone()
        out[u < p_uncond] = null_label
        return out

    assert check_drop_labels(masked_copy)


@pytest.mark.parametrize("explanation, wrong", ch04._DROP_MISTAKES, ids=range(len(ch04._DROP_MISTAKES)))
def test_drop_labels_mistakes_are_diagnosed(explanation, wrong):
    verdict = check_drop_labels(wrong, quiet=True)
    assert not verdict and explanation in verdict.message


def test_drop_labels_in_place_mutation_is_diagnosed():
    def in_place(y, p_uncond, null_label, u):
        y[u < p_uncond] = null_label
        return y

    verdict = check_drop_labels(in_place, quiet=True)
    assert not verdict and "in place" in verdict.message


def test_drop_labels_float_labels_are_diagnosed():
    def floats(y, p_uncond, null_label, u):
        return torch.where(u < p_uncond, float(null_label), y.double())

    verdict = check_drop_labels(floats, quiet=True)
    assert not verdict and "integers" in verdict.message


def test_drop_labels_reference_matches_cfglab_semantics():
    """cfglab.drop_labels draws u = torch.rand(n) from its generator and drops where u < p_uncond."""
    y = torch.randint(0, 3, (5000,), generator=torch.Generator().manual_seed(1))
    got = cl.drop_labels(y, 0.15, 3, torch.Generator().manual_seed(7))
    u = torch.rand(y.shape, generator=torch.Generator().manual_seed(7))
    assert torch.equal(got, ch04._drop_labels(y, 0.15, 3, u))


# -- ambiguous_fraction -----------------------------------------------------------------------------------------


def test_ambiguous_fraction_reference_passes():
    assert check_ambiguous_fraction(ch04._ambiguous_fraction)


@pytest.mark.parametrize("explanation, wrong", ch04._AMBIGUOUS_MISTAKES, ids=range(len(ch04._AMBIGUOUS_MISTAKES)))
def test_ambiguous_fraction_mistakes_are_diagnosed(explanation, wrong):
    verdict = check_ambiguous_fraction(wrong, quiet=True)
    assert not verdict and explanation in verdict.message


def test_ambiguous_fraction_of_the_overlap_toy_matches_the_closed_form():
    """For two isotropic Gaussians N(+-m e1, s^2 I) with equal weights, log p(right|x)/p(left|x) = 2 m x1 / s^2,
    so p(right | x) < tau exactly when x1 < s^2 logit(tau) / (2 m)."""
    mix = cl.make("overlap")
    m, s, tau = 0.6, 0.6, 0.9
    x, y = mix.sample(200_000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    post = mix.posterior(x, 0.0, cl.Linear())
    got = ch04._ambiguous_fraction(post, y, tau)
    cut = s**2 * torch.logit(torch.tensor(tau, dtype=torch.float64)) / (2 * m)
    want = torch.distributions.Normal(0.0, 1.0).cdf((cut - m) / s).item()
    assert abs(got - want) < 4e-3  # ~ 3.5 binomial standard deviations at n = 2e5


def test_checks_print_their_verdict_unless_quiet(capsys):
    check_drop_labels(ch04._drop_labels)
    assert "PASSED" in capsys.readouterr().out
    check_drop_labels(lambda y, p_uncond, null_label, u: y, quiet=True)
    check_ambiguous_fraction(ch04._ambiguous_fraction, quiet=True)
    assert capsys.readouterr().out == ""


# -- dropout_loss (an experiment: the checker trains with the student's loss) ----------------------------------


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny network: threads only add overhead
    yield
    torch.set_num_threads(before)


def test_dropout_loss_reference_and_equivalent_forms_pass(one_thread):
    assert check_dropout_loss(ch04._dropout_loss, quiet=True)

    def via_library(model, x0, y, t, eps, u, p_uncond):  # cl.drop_labels' rule with the uniforms given
        labels = torch.where(u < p_uncond, torch.full_like(y, model.null_label), y)
        return cl.denoising_loss(model, x0, labels, t=t, eps=eps)

    assert check_dropout_loss(via_library, quiet=True)


@pytest.mark.parametrize("explanation, wrong", ch04._LOSS_MISTAKES, ids=range(len(ch04._LOSS_MISTAKES)))
def test_dropout_loss_mistakes_are_named(one_thread, explanation, wrong):
    verdict = check_dropout_loss(wrong, quiet=True)
    assert not verdict and explanation in verdict.message


def test_dropout_loss_outcome_catches_a_mistake_it_has_no_name_for(one_thread):
    def last_class_as_null(model, x0, y, t, eps, u, p_uncond):  # dropped labels become the last real class
        labels = torch.where(u < p_uncond, torch.full_like(y, model.null_label - 1), y)
        xt = model.path.noise(x0, t, eps)
        return ((model(xt, t, labels) - model.path.target(model.pred, x0, eps, t)) ** 2).mean()

    verdict = check_dropout_loss(last_class_as_null, quiet=True)
    assert not verdict and "too far from the exact velocity" in verdict.message and "null label" in verdict.message


@pytest.mark.parametrize("wrong, phrase", [
    (lambda model, x0, y, t, eps, u, p_uncond: ch04._dropout_loss(model, x0, y, t, eps, u, p_uncond).item(),
     "which autograd cannot differentiate"),
    (lambda model, x0, y, t, eps, u, p_uncond: (model(model.path.noise(x0, t, eps), t, y) - eps) ** 2,
     "scalar tensor"),
])
def test_dropout_loss_shape_and_graph_problems_are_named(one_thread, wrong, phrase):
    verdict = check_dropout_loss(wrong, quiet=True)
    assert not verdict and phrase in verdict.message


def test_dropout_loss_in_place_label_change_is_named(one_thread):
    def in_place(model, x0, y, t, eps, u, p_uncond):
        y[u < p_uncond] = model.null_label
        xt = model.path.noise(x0, t, eps)
        return ((model(xt, t, y) - model.path.target(model.pred, x0, eps, t)) ** 2).mean()

    verdict = check_dropout_loss(in_place, quiet=True)
    assert not verdict and "in place" in verdict.message
