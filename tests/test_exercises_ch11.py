"""Chapter 11 checkers: the reference passes, every listed mistake gets its own diagnosis. (Every checker's answer to
a stub is tested once, in tests/test_student.py.)"""

import pytest
import torch

from cfglab.exercises import check_frechet_distance_1d, check_replace_known


def test_frechet_1d_reference_passes():
    assert check_frechet_distance_1d(lambda m1, v1, m2, v2: (m1 - m2) ** 2 + v1 + v2 - 2 * (v1 * v2).sqrt())


def test_frechet_1d_std_form_passes():
    assert check_frechet_distance_1d(lambda m1, v1, m2, v2: (m1 - m2) ** 2 + (v1.sqrt() - v2.sqrt()) ** 2)


@pytest.mark.parametrize("wrong, phrase", [
    (lambda m1, v1, m2, v2: (m1 - m2) ** 2 + v1 + v2, "cross term"),
    (lambda m1, v1, m2, v2: (m1 - m2) ** 2 + v1 + v2 - 2 * v1 * v2, "square root"),
    (lambda m1, v1, m2, v2: (m1 - m2) ** 2 + v1 + v2 + 2 * (v1 * v2).sqrt(), "subtracted"),
    (lambda m1, v1, m2, v2: (m1 - m2).abs() + v1 + v2 - 2 * (v1 * v2).sqrt(), "squared difference"),
    (lambda m1, v1, m2, v2: (m1 - m2) ** 2 + (v1 - v2) ** 2, "standard deviations"),
])
def test_frechet_1d_mistakes(wrong, phrase):
    v = check_frechet_distance_1d(wrong)
    assert not v and phrase in v.message


def test_replace_known_reference_passes():
    assert check_replace_known(lambda x, x_known, mask, alpha, sigma, eps:
                               torch.where(mask.bool(), alpha * x_known + sigma * eps, x))


@pytest.mark.parametrize("wrong, phrase", [
    (lambda x, x_known, mask, alpha, sigma, eps: (1 - mask) * (alpha * x_known + sigma * eps) + mask * x,
     "inverted"),
    (lambda x, x_known, mask, alpha, sigma, eps: mask * x_known + (1 - mask) * x, "clean known pixels"),
    (lambda x, x_known, mask, alpha, sigma, eps: mask * alpha * x_known + (1 - mask) * x, "missing their noise"),
    (lambda x, x_known, mask, alpha, sigma, eps: mask * (sigma * x_known + alpha * eps) + (1 - mask) * x,
     "swapped"),
    (lambda x, x_known, mask, alpha, sigma, eps: mask * (alpha * x_known + sigma * eps), "only the known part"),
])
def test_replace_known_mistakes(wrong, phrase):
    v = check_replace_known(wrong)
    assert not v and phrase in v.message


# -- the guidance scale that completes an edit (an outcome check; a cheap stand-in for the chapter's UNet) ---------

import cfglab as cl  # noqa: E402
from cfglab.exercises import check_scale_for_edit  # noqa: E402


class _TowardSeven(torch.nn.Module):
    """A stand-in denoiser: its x0 prediction moves the input a little towards the mean 7 with label 7 and keeps it
    with the null label, so guided edits of 1s turn into 7s gradually as the scale grows."""

    num_classes, null_label, pred = 10, 10, "x0"

    def __init__(self, seven):
        super().__init__()
        self.path, self.seven = cl.Linear(), seven

    def forward(self, x, t, y):
        return torch.where((y == self.null_label).reshape(-1, 1, 1, 1), x, x + 0.08 * (self.seven - x))

    def predict(self, x, t, y=None, *, kind="score"):
        y = torch.full((x.shape[0],), self.null_label) if y is None else torch.as_tensor(y).expand(x.shape[0])
        return self.path.convert(self(x, t, y), x, torch.as_tensor(t, dtype=x.dtype), "x0", kind)


def _stand_ins():
    x, y = cl.digits.load("all")
    seven, one = x[y == 7].mean(0), x[y == 1].mean(0)
    direction = (seven - one).flatten()

    def classifier(z):  # 7 or 1, by the side of the midpoint between the two mean digits
        s = (z.flatten(1) - (seven + one).flatten() / 2) @ direction
        logits = torch.full((z.shape[0], 10), -10.0)
        logits[:, 7], logits[:, 1] = s, -s
        return logits
    return _TowardSeven(seven), classifier


def scale_for_edit(model, classifier, x0, label, t0, target, eps, scales):
    for w in scales:
        with torch.no_grad():
            out = cl.ddim(cl.guided(model, label, w), model.path.noise(x0, t0, eps), model.path, 10, t_max=t0)
        if (classifier(out).argmax(1) == label).float().mean() >= target:
            return w
    return scales[-1]


def test_scale_for_edit_reference_passes():
    model, classifier = _stand_ins()
    assert check_scale_for_edit(scale_for_edit, model, classifier)


@pytest.mark.parametrize("answer, phrase", [
    (8.0, "larger than needed"),          # the largest scale, or the last one that reaches the target
    (1.0, "below the target"),            # no guidance (or the sampler run from t = 1, which erases the source)
    (0.93, "not the fraction of edits"),  # the fraction instead of the scale
    ([2.0], "as a float"),
])
def test_scale_for_edit_mistakes(answer, phrase):
    model, classifier = _stand_ins()
    v = check_scale_for_edit(lambda model, classifier, x0, label, t0, target, eps, scales: answer, model, classifier)
    assert not v and phrase in v.message, v.message


def test_scale_for_edit_probes_a_stub_without_training_anything():
    def stub(model, classifier, x0, label, t0, target, eps, scales):
        raise NotImplementedError("noise, sample, count")
    v = check_scale_for_edit(stub)
    assert not v and "not written yet" in v.message and v.message.endswith("noise, sample, count")
