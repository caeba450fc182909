"""Chapter 9 checkers: the reference passes, every listed mistake gets its own diagnosis. (Every checker's answer to
a stub is tested once, in tests/test_student.py.)"""

import pytest
import torch

from cfglab.exercises import check_apg_parallel_orthogonal, check_cfg_rescale, check_guidance_interval


def _on(t, a, b):
    return (t >= a) & (t <= b)


def test_guidance_interval_reference_passes():
    assert check_guidance_interval(lambda t, start, stop, scale: torch.where(_on(t, start, stop), scale, 1.0))


@pytest.mark.parametrize("wrong, phrase", [
    (lambda t, start, stop, scale: torch.where(_on(t, start, stop), scale, 0.0), "not 0"),
    (lambda t, start, stop, scale: torch.where(_on(t, start, stop), 1.0, scale), "inverted"),
    (lambda t, start, stop, scale: torch.where((t > start) & (t < stop), scale, 1.0), "closed"),
    (lambda t, start, stop, scale: torch.where(_on(1 - t, start, stop), scale, 1.0), "progress"),
])
def test_guidance_interval_mistakes(wrong, phrase):
    v = check_guidance_interval(wrong)
    assert not v and phrase in v.message


def _rescale(guided, cond, phi):
    r = cond.std(dim=1, keepdim=True) / guided.std(dim=1, keepdim=True)
    return phi * guided * r + (1 - phi) * guided


def test_cfg_rescale_reference_passes():
    assert check_cfg_rescale(_rescale)


@pytest.mark.parametrize("wrong, phrase", [
    (lambda g, c, phi: phi * g * g.std(1, keepdim=True) / c.std(1, keepdim=True) + (1 - phi) * g, "upside down"),
    (lambda g, c, phi: (1 - phi) * g * c.std(1, keepdim=True) / g.std(1, keepdim=True) + phi * g, "wrong way"),
    (lambda g, c, phi: phi * g * c.std() / g.std() + (1 - phi) * g, "per sample"),
    (lambda g, c, phi: g * c.std(1, keepdim=True) / g.std(1, keepdim=True), "blend"),
])
def test_cfg_rescale_mistakes(wrong, phrase):
    v = check_cfg_rescale(lambda guided, cond, phi: wrong(guided, cond, phi))
    assert not v and phrase in v.message


def _proj(diff, cond):
    par = (diff * cond).sum(1, keepdim=True) / (cond * cond).sum(1, keepdim=True) * cond
    return par, diff - par


def test_apg_projection_reference_passes():
    assert check_apg_parallel_orthogonal(_proj)


@pytest.mark.parametrize("wrong, phrase", [
    (lambda d, c: (lambda p: (p, d - p))((d * c).sum(1, keepdim=True) / c.norm(dim=1, keepdim=True) * c),
     "|cond|^2"),
    (lambda d, c: (lambda p: (p, d - p))((d * c).sum(1, keepdim=True) / (d * d).sum(1, keepdim=True) * d),
     "projected cond onto diff"),
    (lambda d, c: tuple(reversed(_proj(d, c))), "wrong order"),
    (lambda d, c: (lambda p: (p, d - p))((d * c).sum() / (c * c).sum() * c), "per sample"),
])
def test_apg_projection_mistakes(wrong, phrase):
    v = check_apg_parallel_orthogonal(lambda diff, cond: wrong(diff, cond))
    assert not v and phrase in v.message


# -- the experiment: does a rule commute with moving the data? ---------------------------------------------------------

def _shift_error(rule, space, offset, n=200, steps=16, move_start=True, dtype=torch.float64):
    import cfglab as cl
    from cfglab import guidance as G

    mix, path = cl.make("moons"), cl.Linear()
    far = mix.shift(offset.double())
    x1 = path.prior(n, 2, generator=torch.Generator().manual_seed(0), dtype=dtype)
    starts = (x1, x1 + (path(path.t_max).alpha * offset.to(dtype) if move_start else 0.0))
    runs = []
    for m, start in zip((mix, far), starts):
        pair = lambda x, t, m=m: (m.score(x, t, path, 0), m.score(x, t, path))  # noqa: E731
        runs.append(cl.ode(G.guided_rule(pair, rule, path, pred="score", space=space), start, path, steps,
                           method="euler"))
    return float((runs[1] - (runs[0] + offset.to(dtype))).abs().max())


def test_shift_error_reference_passes_and_hands_itself_on():
    from cfglab.exercises import check_shift_error

    v = check_shift_error(_shift_error)
    assert v and v.or_reference() is _shift_error


@pytest.mark.parametrize("wrong, phrase", [
    (lambda rule, space, offset, n=200, steps=16: _shift_error(rule, space, offset, n, steps, move_start=False),
     "move the start"),
    (lambda rule, space, offset, n=200, steps=16: _shift_error(rule, space, offset, n, steps, dtype=torch.float32),
     "float64"),
    (lambda rule, space, offset, n=200, steps=16: 0.0, "does not"),              # says everything commutes
    (lambda rule, space, offset, n=200, steps=16: 1.0, "depends on the origin"),  # says nothing commutes
    (lambda rule, space, offset, n=200, steps=16: "small", "should return a float"),
])
def test_shift_error_mistakes(wrong, phrase):
    from cfglab.exercises import check_shift_error

    v = check_shift_error(wrong)
    assert not v and phrase in v.message, v.message


def test_shift_error_falls_back_to_the_reference_when_not_strict(monkeypatch):
    from cfglab.exercises import check_shift_error

    monkeypatch.delenv("CFGLAB_EXERCISES", raising=False)

    def stub(rule, space, offset, n=200, steps=16):
        raise NotImplementedError("a hint")

    v = check_shift_error(stub)
    assert not v and "not written yet" in v.message
    assert v.or_reference()(lambda c, u, x, t: c, "x0", torch.tensor([1.0, 0.0]), n=8, steps=2) < 1e-6
