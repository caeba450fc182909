"""Data with several labels and independent label dropout (chapter 15): the labelled law against the attribute
toy, the exact laws of every request, dropout frequencies, the training cache."""

import math

import pytest
import torch

import cfglab as cl
from cfglab import train_multi as TM
from cfglab.models import MultiMLP


def _data(layout="ring"):
    return TM.MultiLabelData.from_attributes(cl.data.make_attributes(layout))


def test_labels_of_the_attribute_toy():
    data = _data()
    assert data.num_classes == (3, 2) and data.names == [["red", "green", "blue"], ["circle", "square"]]
    toy = cl.data.make_attributes()
    for k, name in enumerate(toy.objects.class_names):
        colour, shape = name.split()
        assert data.names[0][int(data.table[k, 0])] == colour and data.names[1][int(data.table[k, 1])] == shape


def test_laws_are_the_attribute_toy_targets():
    data, toy = _data(), cl.data.make_attributes()
    x = 2.0 * torch.randn(100, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    pairs = [([0, None], [0]), ([None, 1], [4]), ([2, 0], [2, 3]), ([None, None], [])]
    for labels, concepts in pairs:
        torch.testing.assert_close(data.law(labels).log_prob(x), toy.target(concepts).log_prob(x))


def test_samples_carry_the_labels_of_their_component():
    data = _data("grid")
    x, labels = data.sample(4000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert labels.shape == (4000, 2)
    # on the grid the colour is the column: x_1 near -1.5, 0, 1.5
    cols = torch.tensor([-1.5, 0.0, 1.5], dtype=torch.float64)
    assert ((x[:, 0] - cols[labels[:, 0]]).abs() < 5 * 0.3).float().mean() > 0.99
    freq = torch.bincount(labels[:, 1], minlength=2).double() / 4000
    assert (freq - 0.5).abs().max() < 5 * math.sqrt(0.25 / 4000)


def test_drop_each_frequencies_are_independent():
    labels = torch.zeros(50_000, 2, dtype=torch.long)
    out = TM.drop_each(labels, (0.2, 0.5), (3, 2), torch.Generator().manual_seed(2))
    d0, d1 = out[:, 0] == 3, out[:, 1] == 2
    n = len(labels)
    for freq, p in ((d0, 0.2), (d1, 0.5), (d0 & d1, 0.1)):
        assert abs(freq.double().mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)
    both = TM.drop_each(labels, (0.0, 0.0), (3, 2), torch.Generator().manual_seed(3), p_all=0.3)
    assert torch.equal(both[:, 0] == 3, both[:, 1] == 2)
    assert abs((both[:, 0] == 3).double().mean().item() - 0.3) < 5 * math.sqrt(0.21 / n)
    assert torch.equal(labels, torch.zeros(50_000, 2, dtype=torch.long))  # the input is untouched


def test_fit_multi_is_cached_by_configuration():
    data = _data()
    a = MultiMLP(2, data.num_classes, width=16, depth=1, seed=0)
    la = TM.fit_multi(a, data, steps=20, batch_size=32, progress=False)
    b = MultiMLP(2, data.num_classes, width=16, depth=1, seed=0)
    lb = TM.fit_multi(b, data, steps=20, batch_size=32, progress=False)
    assert la == lb and all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = MultiMLP(2, data.num_classes, width=16, depth=1, seed=0)
    lc = TM.fit_multi(c, data, steps=20, batch_size=32, p_drop=(0.5, 0.1), progress=False)
    assert lc != la


def test_mismatched_model_and_data_are_refused():
    with pytest.raises(ValueError, match="num_classes"):
        TM.fit_multi(MultiMLP(2, (2, 2), width=16), _data(), steps=2)
