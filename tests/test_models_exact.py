"""The exact mixture denoiser (cfglab.models.ExactDenoiser) against the mixture's exact score, at the ends of a
path, and as a model inside the guidance wrappers."""

import pytest
import torch

import cfglab as cl
from cfglab.models import ExactDenoiser
from cfglab.paths import PREDICTIONS, Discrete

F64 = torch.float64


@pytest.mark.parametrize("kind", PREDICTIONS)
def test_exact_denoiser_is_the_mixtures_score_in_every_parameterization(path, kind):
    mix = cl.make("moons")
    model = ExactDenoiser(mix, path, pred=kind)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 2, generator=g, dtype=F64)
    t = torch.rand(40, generator=g, dtype=F64) * 0.8 + 0.1
    y = torch.randint(0, 2, (40,), generator=g)
    for labels, ref in ((y, mix.score(x, t, path, y)), (model.null_label, mix.score(x, t, path))):
        got = path.convert(model(x, t, labels), x, t, kind, "score")
        assert torch.allclose(got, ref, rtol=1e-9, atol=1e-9)
        assert torch.allclose(model.predict(x, t, labels), ref, rtol=1e-9, atol=1e-9)


def test_mixed_labels_in_one_batch_and_the_data_mean_at_pure_noise():
    path = Discrete("scaled_linear", rescale_betas_zero_snr=True)
    mix = cl.make("mixture")
    model = ExactDenoiser(mix, path, pred="v")
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    one = torch.ones(6, dtype=F64)
    labels = torch.tensor([0, 1, 2, 3, 3, 1])                       # 3 = the null label
    x0 = model.x0(x, one, labels)                                   # alpha = 0: x says nothing about x0
    want = torch.stack([mix.mean(0), mix.mean(1), mix.mean(2), mix.mean(), mix.mean(), mix.mean(1)])
    assert torch.allclose(x0, want, atol=1e-12)
    assert torch.allclose(path.convert(model(x, one, labels), x, one, "v", "x0"), want, atol=1e-12)


def test_guided_takes_the_exact_denoiser_and_is_exact_cfg():
    path = cl.VP()
    mix = cl.make("overlap")
    model = ExactDenoiser(mix, path, pred="eps")
    x = torch.randn(30, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    t = torch.full((30,), 0.4, dtype=F64)
    got = cl.guided(model, 1, 3.0)(x, t)
    want = cl.cfg(mix.score(x, t, path, 1), mix.score(x, t, path), 3.0)
    assert torch.allclose(got, want, rtol=1e-9, atol=1e-9)
