"""The several-condition denoiser of chapter 15: label forms, null labels per condition, the seeded init, the
conversions of its prediction, and a short training run that learns every branch (uncond, each condition, joint)."""

import pytest
import torch

import cfglab as cl
from cfglab import train_multi as TM
from cfglab.models import MultiMLP


def test_label_forms_agree_and_none_is_the_null_label():
    m = MultiMLP(2, (3, 2), width=16, depth=1, seed=0)
    x, t = torch.randn(4, 2, generator=torch.Generator().manual_seed(0)), 0.3
    table = torch.tensor([[1, 2]] * 4)
    torch.testing.assert_close(m(x, t, table), m(x, t, [1, None]))
    torch.testing.assert_close(m(x, t, [1, None]), m(x, t, [torch.full((4,), 1), 2]))
    torch.testing.assert_close(m(x, t), m(x, t, [3, 2]))
    assert m.null_labels == (3, 2) and m.conditions == 2
    assert not torch.allclose(m(x, t, [0, 0]), m(x, t, [1, 0]))


def test_seed_fixes_the_init_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = MultiMLP(2, (3, 2), width=16, seed=4), MultiMLP(2, (3, 2), width=16, seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_predict_converts_with_the_path():
    path = cl.VP()
    m = MultiMLP(2, (2, 2), path=path, pred="eps", width=16, depth=1)
    x, t = torch.randn(3, 2, generator=torch.Generator().manual_seed(1)), torch.full((3,), 0.5)
    torch.testing.assert_close(m.predict(x, t, [0, 1], kind="score"), -m(x, t, [0, 1]) / path(t).sigma[:, None])


@pytest.mark.parametrize("bad, match", [([0], "sequence of 2 labels"), ([4, 0], r"labels\[0\] must be class labels"),
                                        (torch.zeros(4, 3, dtype=torch.long), r"shape \(4, 2\)")])
def test_bad_labels_name_the_condition(bad, match):
    m = MultiMLP(2, (3, 2), width=16, depth=1)
    with pytest.raises(ValueError, match=match):
        m(torch.zeros(4, 2), 0.5, bad)


@pytest.fixture
def one_thread():
    """Tiny networks train fastest on one thread (two threads thrash on a busy machine)."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def test_training_learns_every_branch(one_thread):
    data = TM.MultiLabelData.from_attributes(cl.data.make_attributes("grid"))
    path = cl.Linear()
    m = MultiMLP(2, data.num_classes, path=path, width=64, seed=0)
    losses = TM.fit_multi(m, data, steps=600, batch_size=256, p_drop=(0.3, 0.3), progress=False)
    assert sum(losses[-50:]) < sum(losses[:50])
    g = torch.Generator().manual_seed(2)
    t = 0.6
    for labels in ([None, None], [0, None], [None, 1], [2, 1]):
        law = data.law(labels)
        x0, _ = law.sample(2000, generator=g)
        x = path.noise(x0, torch.full((2000,), t), torch.randn(2000, 2, generator=g))
        with torch.no_grad():
            got = m.predict(x, t, labels)
        want = law.score(x.double(), t, path).float()
        rel = ((got - want).norm(dim=1).pow(2).mean() / want.norm(dim=1).pow(2).mean()).sqrt()
        assert rel < 0.15, (labels, float(rel))
