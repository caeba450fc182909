"""Chapter 13 checkers: the reference passes, a stub is "not written yet", every listed mistake gets its own
diagnosis, and the experiment's checker judges the student a loop trains."""

import pytest
import torch

import cfglab as cl
from cfglab.exercises import check_distill_loop, check_distillation_target, check_flux_prediction


def _stub(*args, **kwargs):
    raise NotImplementedError("Use the course's CFG rule with one scale per row.")


def test_distillation_target_reference_passes():
    assert check_distillation_target(lambda cond, uncond, w: uncond + w[:, None] * (cond - uncond))


@pytest.mark.parametrize("wrong, phrase", [
    (lambda c, u, w: (1 + w[:, None]) * c - w[:, None] * u, "Meng et al.'s (1 + w) c - w u"),
    (lambda c, u, w: c + w[:, None] * (u - c), "swapped"),
    (lambda c, u, w: w[:, None] * (c - u), "not w (c - u)"),
    (lambda c, u, w: u + w.mean() * (c - u), "one scale for every row"),
])
def test_distillation_target_mistakes(wrong, phrase):
    v = check_distillation_target(lambda cond, uncond, w: wrong(cond, uncond, w))
    assert not v and phrase in v.message


def _flux(model_fn, x, t, y, guidance, true_cfg_scale, negative, *, neg_guidance=None, gate=True, swap=False,
          always_two=False):
    cond = model_fn(x, t, y, guidance)
    on = (true_cfg_scale > 1 if gate else True) and negative is not None
    if always_two and negative is not None and not on:
        model_fn(x, t, negative, guidance)
    if not on:
        return cond
    neg = model_fn(x, t, negative, guidance if neg_guidance is None else neg_guidance)
    return cond + true_cfg_scale * (neg - cond) if swap else neg + true_cfg_scale * (cond - neg)


def test_flux_prediction_reference_passes():
    assert check_flux_prediction(_flux)


def test_flux_prediction_batched_passes():
    def batched(model_fn, x, t, y, guidance, true_cfg_scale, negative):
        if not (true_cfg_scale > 1 and negative is not None):
            return model_fn(x, t, y, guidance)
        out = model_fn(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, negative]), guidance)
        cond, neg = out.chunk(2)
        return cl.cfg(cond, neg, true_cfg_scale)
    assert check_flux_prediction(batched)


@pytest.mark.parametrize("flags, phrase", [
    (dict(neg_guidance=1.0), "the same guidance to both passes"),
    (dict(gate=False), "only when true_cfg_scale > 1"),
    (dict(swap=True), "swapped"),
    (dict(always_two=True), "evaluates"),
])
def test_flux_prediction_mistakes(flags, phrase):
    v = check_flux_prediction(lambda **kw: _flux(**kw, **flags))
    assert not v and phrase in v.message


def test_stubs_are_not_written_yet():
    for check in (check_distillation_target, check_flux_prediction, check_distill_loop):
        v = check(_stub)
        assert not v and "not written yet" in v.message and "one scale per row" in v.message


def _loop(model, teacher, data, w_range, steps, generator, *, convention="course", give_w=True):
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        x0, y = data.sample(256, generator=generator)
        t = cl.train.sample_times(256, model.path, generator)
        w = w_range[0] + (w_range[1] - w_range[0]) * torch.rand(256, generator=generator)
        xt = model.path.noise(x0, t, torch.randn(x0.shape, generator=generator))
        with torch.no_grad():
            c, u = teacher(xt, t, y), teacher(xt, t, teacher.null_label)
            ww = w[:, None] if convention == "course" else w[:, None] + 1
            target = u + ww * (c - u)
        out = model(xt, t, y, w if give_w else 3.0)
        loss = ((out - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return []


def test_distill_loop_reference_passes():
    assert check_distill_loop(_loop)


@pytest.mark.parametrize("flags, phrase", [
    (dict(convention="paper"), "guides at w + 1"),
    (dict(give_w=False), "whatever w is"),
])
def test_distill_loop_mistakes(flags, phrase):
    v = check_distill_loop(lambda **kw: _loop(**kw, **flags))
    assert not v and phrase in v.message


def test_distill_loop_reports_a_crash():
    v = check_distill_loop(lambda **kw: 1 / 0)
    assert not v and "ZeroDivisionError" in v.message
