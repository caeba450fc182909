"""Chapter 14 checkers: the reference passes, a stub is "not written yet", every listed mistake gets its own
diagnosis, and the experiment's checker judges the network a model-guidance loss trains."""

import pytest
import torch

import cfglab as cl
from cfglab.exercises import check_effective_scale, check_model_guidance_loss


def _stub(*args, **kwargs):
    raise NotImplementedError("Project on the guidance direction.")


def test_stubs_are_not_written_yet():
    for check in (check_effective_scale, check_model_guidance_loss):
        v = check(_stub)
        assert not v and "not written yet" in v.message and "guidance direction" in v.message


def _scale(pred, cond, uncond):
    d = cond - uncond
    return float(((pred - uncond) * d).sum() / (d * d).sum())


def test_effective_scale_reference_passes():
    assert check_effective_scale(_scale)


@pytest.mark.parametrize("wrong, phrase", [
    (lambda p, c, u: float((((p - u) * (c - u)).sum(1) / ((c - u) ** 2).sum(1)).mean()), "one ratio per row"),
    (lambda p, c, u: float(((p - u) * (c - u)).sum() / ((p - u) ** 2).sum()), "divided by |pred - u|^2"),
    (lambda p, c, u: float((p - u).norm() / (c - u).norm()), "ratio of norms"),
    (lambda p, c, u: float((p * (c - u)).sum() / ((c - u) ** 2).sum()), "project pred - uncond"),
])
def test_effective_scale_mistakes(wrong, phrase):
    v = check_effective_scale(lambda pred, cond, uncond: wrong(pred, cond, uncond))
    assert not v and phrase in v.message


def _mg(model, x0, y, w, generator, *, sign=1.0, guided=True, detach=True):
    t = cl.train.sample_times(x0.shape[0], model.path, generator)
    eps = torch.randn(x0.shape, generator=generator)
    xt = model.path.noise(x0, t, eps)
    with torch.set_grad_enabled(not detach):
        diff = model(xt, t, y) - model(xt, t, model.null_label)
    target = model.path.target(model.pred, x0, eps, t) + (sign * w * diff if guided else 0.0)
    return ((model(xt, t, y) - target) ** 2).mean()


def test_model_guidance_loss_reference_passes():
    assert check_model_guidance_loss(_mg)


@pytest.mark.parametrize("flags, phrase", [
    (dict(sign=-1.0), "subtracts"),
    (dict(guided=False), "no guidance"),
])
def test_model_guidance_loss_mistakes(flags, phrase):
    v = check_model_guidance_loss(lambda **kw: _mg(**kw, **flags))
    assert not v and phrase in v.message


def test_model_guidance_loss_wants_a_differentiable_scalar():
    v = check_model_guidance_loss(lambda **kw: 0.0)
    assert not v and "0-d tensor" in v.message
    v = check_model_guidance_loss(lambda model, x0, y, w, generator: 1 / 0)
    assert not v and "ZeroDivisionError" in v.message
