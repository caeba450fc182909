"""Bit-for-bit reproducibility on CPU: a fixed seed gives identical weights, losses, samples and data.

Each check runs the same thing twice and compares with ``torch.equal`` (no tolerance). Between the two runs the
global RNG is reseeded to something else and advanced, so a hidden use of the global RNG would show up as a
difference: every random draw must come from an explicit generator or a seed argument.
"""

import pytest
import torch

import cfglab as cl
from cfglab import digits, guidance, samplers, text


def _twice(make):
    """``make()`` run twice, with the global RNG disturbed differently before each run."""
    out = []
    for disturb in (11, 12):
        torch.manual_seed(disturb)
        torch.rand(disturb)
        out.append(make())
    return out


def _equal(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def _weights(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_fit_twice_gives_identical_weights_and_losses():
    mix = cl.make("moons")

    def run():
        m = cl.MLP(2, mix.num_classes, width=32, depth=2, seed=3)
        losses = cl.fit(m, mix, steps=40, batch_size=64, seed=5, progress=False, use_cache=False)
        return _weights(m), losses

    (w1, l1), (w2, l2) = _twice(run)
    assert _equal(w1, w2) and l1 == l2
    assert len(l1) == 40 and l1[0] != l1[-1]  # it did train


def test_a_cache_hit_returns_exactly_what_training_returned():
    mix = cl.make("mixture")
    m1 = cl.MLP(2, 3, width=16, depth=1, pred="eps", path=cl.VP()).double()  # float64 losses round-trip too
    l1 = cl.fit(m1, mix, steps=15, batch_size=32, progress=False)
    m2 = cl.MLP(2, 3, width=16, depth=1, pred="eps", path=cl.VP()).double()
    l2 = cl.fit(m2, mix, steps=15, batch_size=32, progress=False)  # loaded from the cache
    assert l1 == l2 and _equal(_weights(m1), _weights(m2))


def test_train_iter_matches_fit_bit_for_bit():
    mix = cl.make("overlap")
    m1, m2 = cl.MLP(2, 2, width=16, depth=1), cl.MLP(2, 2, width=16, depth=1)
    losses = cl.fit(m1, mix, steps=10, batch_size=32, progress=False, use_cache=False)
    steps = list(cl.train_iter(m2, mix, cl.TrainConfig(steps=10, batch_size=32)))
    assert [s.loss for s in steps] == losses and _equal(_weights(m1), _weights(m2))


MIX = cl.make("mixture")
PATH, VE = cl.VP(), cl.VE(0.05, 5.0)
MODEL = cl.MLP(2, 3, path=PATH, pred="eps", width=16, depth=1, seed=1)
FIELDS = {
    "exact": MIX.score_fn(PATH, 1),
    "guided model": guidance.guided(MODEL, 1, 3.0),
}
SAMPLERS = {
    "ode euler": lambda fn, x, g: samplers.ode(fn, x, PATH, 8, method="euler"),
    "ode heun": lambda fn, x, g: samplers.ode(fn, x, PATH, 8, method="heun"),
    "sde": lambda fn, x, g: samplers.sde(fn, x, PATH, 8, generator=g),
    "ddim eta 0.5": lambda fn, x, g: samplers.ddim(fn, x, PATH, 8, eta=0.5, generator=g),
    "ddpm": lambda fn, x, g: samplers.ddpm(fn, x, PATH, 8, generator=g),
    "annealed langevin": lambda fn, x, g: samplers.annealed_langevin(MIX.score_fn(VE, 1), x, VE, 4, 3, 1e-3,
                                                                     generator=g),  # NCSN: exact VE scores
    "langevin": lambda fn, x, g: samplers.langevin(lambda z: fn(z, torch.full((z.shape[0],), 0.01)), x, 0.01, 10,
                                                   generator=g),
    "mala": lambda fn, x, g: samplers.mala(lambda z: MIX.log_prob(z), x, 0.05, 10, generator=g,
                                           return_trajectory=True),
    "ddim cfg++": lambda fn, x, g: samplers.ddim_cfgpp(guidance.predictions(MODEL, 2), x, PATH, 6,
                                                       guidance_scale=0.6, pred="eps"),
}


# Fields that a sampler ignores (annealed Langevin, MALA and CFG++ bring their own) are run once.
CASES = [(name, field) for name in SAMPLERS for field in FIELDS
         if field == "exact" or name not in ("annealed langevin", "mala", "ddim cfg++")]


@pytest.mark.parametrize("name,field", CASES)
def test_every_sampler_is_reproducible_with_the_same_generator(name, field):
    fn, sampler = FIELDS[field], SAMPLERS[name]

    def run():
        g = torch.Generator().manual_seed(7)
        x = PATH.prior(64, 2, generator=g)
        with torch.no_grad():
            return sampler(fn, x, g)

    a, b = _twice(run)
    if isinstance(a, tuple):  # MALA's trajectory, with its acceptance rates
        assert _equal(a[0], b[0]) and _equal(a[1].xs, b[1].xs) and _equal(a[1].accept, b[1].accept)
    else:
        assert _equal(a, b)
        assert torch.isfinite(a).all()


def test_data_sampling_is_reproducible():
    toy, td = cl.data.make_attributes(), cl.TensorData(torch.randn(50, 2), torch.arange(50) % 3)
    src = text.make_text()

    def run():
        g = torch.Generator().manual_seed(3)
        return [MIX.sample(100, generator=g), MIX.sample(100, y=2, generator=g, dtype=torch.float64),
                cl.make("rings").sample(100, generator=g), toy.sample(100, generator=g), td.sample(20, generator=g),
                src.sample(10, generator=g), PATH.prior(5, (1, 8, 8), generator=g)]

    a, b = _twice(run)
    assert _equal(a, b)


def test_digit_unet_training_is_reproducible():
    ds = digits.dataset()

    def run():
        unet = cl.UNet(8, 10, width=8, seed=2)
        losses = cl.fit(unet, ds, steps=3, batch_size=16, progress=False, use_cache=False)
        return _weights(unet), losses

    (w1, l1), (w2, l2) = _twice(run)
    assert _equal(w1, w2) and l1 == l2


def test_text_model_training_and_sampling_are_reproducible():
    src = text.make_text()

    def run():
        lm = text.TextModel(src.vocab, src.num_classes, width=16, seed=4)
        losses = text.fit_text(lm, src, steps=8, batch_size=32, progress=False, use_cache=False)
        g = torch.Generator().manual_seed(9)
        tokens, log_probs = text.sample(lm, 1, 20, 6, 2.5, generator=g, return_log_probs=True)
        return _weights(lm), losses, tokens, log_probs

    a, b = _twice(run)
    assert _equal(a, b)
