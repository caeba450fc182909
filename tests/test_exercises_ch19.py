"""Chapter 19 checkers: the reference passes, every listed mistake gets its own diagnosis. (Every checker's answer
to a stub is tested once, in tests/test_student.py.)"""

import pytest
import torch

from cfglab.exercises import check_pipeline_sample, check_zero_snr_betas
from cfglab.exercises.ch19 import _loop

pytest.importorskip("diffusers")


def pipeline_sample(scheduler, denoiser, path, noise, y, guidance_scale, steps):
    scheduler.set_timesteps(steps)
    latents = noise * scheduler.init_noise_sigma
    n = noise.shape[0]
    labels = torch.cat([torch.full((n,), denoiser.null_label), torch.full((n,), y)])
    for k in scheduler.timesteps:
        if guidance_scale > 1:
            x = scheduler.scale_model_input(torch.cat([latents, latents]), k)
            uncond, cond = denoiser(x, path.t_of_timestep(k).to(x.dtype).expand(2 * n), labels).chunk(2)
            out = uncond + guidance_scale * (cond - uncond)
        else:
            x = scheduler.scale_model_input(latents, k)
            out = denoiser(x, path.t_of_timestep(k).to(x.dtype).expand(n), labels[n:])
        latents = scheduler.step(out, k, latents).prev_sample
    return latents


def test_pipeline_sample_reference_passes():
    assert check_pipeline_sample(pipeline_sample)


@pytest.mark.parametrize("flags, phrase", [
    (dict(swap=True), "wrong order"),
    (dict(scale_input=False), "scale_model_input"),
    (dict(init_sigma=False), "init_noise_sigma"),
    (dict(paper=True), "Ho & Salimans"),
    (dict(index_times=True), "step index"),
    (dict(interpolate=True), "does not interpolate"),
])
def test_pipeline_sample_mistakes(flags, phrase):
    v = check_pipeline_sample(lambda **kw: _loop(**kw, **flags))
    assert not v and phrase in v.message, v.message


def test_pipeline_sample_reports_a_crash_and_a_wrong_shape():
    v = check_pipeline_sample(lambda **kw: 1 / 0)
    assert not v and "ZeroDivisionError" in v.message
    v = check_pipeline_sample(lambda **kw: kw["noise"][:3])
    assert not v and "shaped like the noise" in v.message


def zero_snr_betas(betas):
    root = torch.cumprod(1 - betas, 0).sqrt()
    root = (root - root[-1]) * (root[0] / (root[0] - root[-1]))
    abar = root**2
    return 1 - torch.cat([abar[:1], abar[1:] / abar[:-1]])


def test_zero_snr_betas_reference_passes():
    assert check_zero_snr_betas(zero_snr_betas)


def _abar(b):
    return torch.cumprod(1 - b, 0)


def _betas(a):
    return 1 - torch.cat([a[:1], a[1:] / a[:-1]])


def _shift_scale(v):
    return (v - v[-1]) * (v[0] / (v[0] - v[-1]))


@pytest.mark.parametrize("wrong, phrase", [
    (lambda b: _betas(_shift_scale(_abar(b))), "square root"),
    (lambda b: _betas((_abar(b).sqrt() - _abar(b)[-1].sqrt()) ** 2), "FIRST value"),
    (lambda b: _shift_scale(_abar(b).sqrt()) ** 2, "returned alphas_cumprod"),
])
def test_zero_snr_betas_mistakes(wrong, phrase):
    v = check_zero_snr_betas(lambda betas: wrong(betas))
    assert not v and phrase in v.message, v.message
