"""Training: label dropout, the loss targets, a short run that learns, NaN handling, reproducibility, the cache."""

import math
import pickle

import pytest
import torch

import cfglab.cache as cache
from cfglab import (
    MLP,
    VP,
    Classifier,
    Linear,
    TrainConfig,
    denoising_loss,
    drop_labels,
    fit,
    guided,
    make,
    ode,
    sliced_wasserstein,
    train_iter,
)
from cfglab.train import classifier_loss


def test_drop_labels_rate_and_no_mutation():
    y = torch.arange(20000) % 3
    before = y.clone()
    out = drop_labels(y, 0.2, 3, torch.Generator().manual_seed(0))
    assert torch.equal(y, before)
    frac = (out == 3).double().mean().item()
    assert abs(frac - 0.2) < 0.015
    kept = out != 3
    assert torch.equal(out[kept], y[kept])
    assert (drop_labels(y, 0.0, 3) == y).all() and (drop_labels(y, 1.0, 3) == 3).all()


@pytest.mark.parametrize("pred", ["eps", "x0", "velocity", "score"])
def test_loss_is_zero_for_the_exact_target_and_matches_the_definition(pred):
    """A 'model' that returns the exact target given the noise has zero loss; the loss is the MSE of its pred."""
    path = VP() if pred != "velocity" else Linear()
    x0 = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    eps = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    t = torch.rand(64, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 0.9 + 0.05

    class Oracle(torch.nn.Module):
        def __init__(self, offset):
            super().__init__()
            self.path, self.pred, self.offset = path, pred, offset

        def forward(self, x, t_, y=None):
            return path.target(pred, x0, eps, t_) + self.offset

    assert denoising_loss(Oracle(0.0), x0, t=t, eps=eps).item() < 1e-20
    weight = path(t, x0).sigma ** 2 if pred == "score" else torch.ones(64, 1, dtype=torch.float64)
    assert torch.allclose(denoising_loss(Oracle(0.5), x0, t=t, eps=eps), (0.25 * weight).mean())


def test_short_training_lowers_the_loss_and_beats_the_prior():
    mix = make("mixture")
    model = MLP(2, 3, path=Linear(), pred="velocity")
    losses = fit(model, mix, steps=600, progress=False, use_cache=False)
    assert sum(losses[-50:]) / 50 < 0.8 * sum(losses[:50]) / 50
    g = torch.Generator().manual_seed(0)
    truth, _ = mix.sample(2000, 0, generator=g)
    x1 = model.path.prior(2000, 2, generator=g)
    with torch.no_grad():
        samples = ode(guided(model, 0, 1.0), x1, model.path, 30)
    assert sliced_wasserstein(samples, truth) < 0.25 * sliced_wasserstein(x1, truth)


def test_train_iter_yields_every_step():
    model = MLP(2, 3)
    steps = list(train_iter(model, make("mixture"), TrainConfig(steps=5, batch_size=32)))
    assert [s.step for s in steps] == list(range(5)) and all(s.loss > 0 for s in steps)


def test_non_finite_loss_stops_with_a_message():
    model = MLP(2, 3)
    with pytest.raises(FloatingPointError, match="training stopped at step"):
        fit(model, make("mixture"), lr=1e30, steps=50, progress=False, use_cache=False)


def test_same_seed_same_weights_and_samples():
    def run():
        model = MLP(2, 3, seed=3)
        fit(model, make("moons"), steps=30, batch_size=64, seed=5, progress=False, use_cache=False)
        x1 = model.path.prior(10, 2, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            return model.state_dict(), ode(guided(model, 1, 2.0), x1, model.path, 5)

    (w1, s1), (w2, s2) = run(), run()
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert torch.equal(s1, s2)


def test_model_init_does_not_touch_the_global_rng():
    torch.manual_seed(0)
    a = torch.rand(3)
    torch.manual_seed(0)
    MLP(2, 3, seed=7)
    assert torch.equal(torch.rand(3), a)


def test_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("CFGLAB_CACHE", str(tmp_path))
    mix = make("mixture")
    m1 = MLP(2, 3)
    l1 = fit(m1, mix, steps=20, batch_size=32, progress=False)
    files = list(tmp_path.glob("*.pt"))
    assert len(files) == 1 and not list(tmp_path.glob(".*tmp"))
    m2 = MLP(2, 3, seed=99)  # different init, same config otherwise -> different key, retrains
    fit(m2, mix, steps=20, batch_size=32, progress=False)
    assert len(list(tmp_path.glob("*.pt"))) == 2
    m3 = MLP(2, 3)
    l3 = fit(m3, mix, steps=20, batch_size=32, progress=False)  # loaded
    assert l3 == pytest.approx(l1)
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m3.state_dict().values()))


def test_corrupt_cache_is_reported_and_retrained(tmp_path, monkeypatch):
    monkeypatch.setenv("CFGLAB_CACHE", str(tmp_path))
    mix = make("mixture")
    fit(MLP(2, 3), mix, steps=10, batch_size=32, progress=False)
    (file,) = tmp_path.glob("*.pt")
    file.write_bytes(b"not a torch file at all")
    with pytest.warns(RuntimeWarning, match="unreadable"):
        losses = fit(MLP(2, 3), mix, steps=10, batch_size=32, progress=False)
    assert len(losses) == 10
    assert cache.load(file.stem) is not None  # rewritten


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/cfglab_pwned",))


def test_foreign_pickle_is_never_unpickled(tmp_path, monkeypatch):
    monkeypatch.setenv("CFGLAB_CACHE", str(tmp_path))
    import os
    if os.path.exists("/tmp/cfglab_pwned"):
        os.unlink("/tmp/cfglab_pwned")
    (tmp_path / "deadbeef.pt").write_bytes(pickle.dumps({"w": _Evil()}))
    with pytest.warns(RuntimeWarning):
        assert cache.load("deadbeef") is None
    assert not os.path.exists("/tmp/cfglab_pwned")


def test_interrupted_training_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("CFGLAB_CACHE", str(tmp_path))
    model = MLP(2, 3)
    it = train_iter(model, make("mixture"), TrainConfig(steps=100, batch_size=32))
    next(it)
    it.close()  # as if the cell were interrupted
    assert not list(tmp_path.iterdir())


def test_cache_off(monkeypatch, tmp_path):
    monkeypatch.setenv("CFGLAB_CACHE", "off")
    assert cache.directory() is None
    fit(MLP(2, 3), make("mixture"), steps=5, batch_size=16, progress=False)


def test_noise_aware_classifier_learns_the_exact_posterior():
    mix = make("overlap")
    path = Linear()
    clf = Classifier(2, 2, path=path)
    fit(clf, mix, steps=800, progress=False, use_cache=False)
    g = torch.Generator().manual_seed(0)
    x, _ = mix.sample(2000, generator=g)
    for t in (0.1, 0.5):
        xt = path.noise(x, t, torch.randn(x.shape, generator=g))
        with torch.no_grad():
            p = torch.softmax(clf(xt, t), 1)
        exact = mix.posterior(xt, t, path)
        assert (p - exact).abs().mean() < 0.05
    assert classifier_loss(clf, x, torch.zeros(2000, dtype=torch.long), generator=g).item() > 0


def test_lr_schedule_warms_up_then_follows_the_cosine_closed_form():
    config = TrainConfig(steps=1000, lr=2e-3)  # warm-up = 1000 // 50 = 20 steps
    assert config.lr_at(0) == pytest.approx(2e-3 / 20)
    assert config.lr_at(19) == pytest.approx(2e-3)
    for step in (20, 300, 510, 999):
        progress = (step - 20) / 980
        assert config.lr_at(step) == pytest.approx(1e-3 * (1 + math.cos(math.pi * progress)))
