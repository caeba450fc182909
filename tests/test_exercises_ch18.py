"""Chapter 18 checkers: the reference passes, every listed mistake gets its own diagnosis. (Every checker's answer to
a stub is tested once, in tests/test_student.py.)"""

import pytest
import torch

import cfglab as cl
from cfglab import guidance as G
from cfglab.exercises import check_range_shift_gap, check_rescale_in_v, check_tcfg

# -- tangential CFG -------------------------------------------------------------------------------------------------


def _tcfg(cond, uncond, scale):
    n = cond.shape[0]
    m = torch.stack([cond.reshape(n, -1), uncond.reshape(n, -1)], dim=1)
    v1 = torch.linalg.svd(m, full_matrices=False)[2][:, 0]
    u1 = ((uncond.reshape(n, -1) * v1).sum(1, keepdim=True) * v1).reshape(uncond.shape)
    return u1 + scale * (cond - u1)


def _vh(cond, uncond):
    n = cond.shape[0]
    return torch.linalg.svd(torch.stack([cond.reshape(n, -1), uncond.reshape(n, -1)], 1), full_matrices=False)[2]


def _along(v, d):
    return ((v.reshape(v.shape[0], -1) * d).sum(1, keepdim=True) * d).reshape(v.shape)


def test_tcfg_reference_passes():
    assert check_tcfg(_tcfg)


def test_tcfg_accepts_the_library_rule():
    assert check_tcfg(lambda cond, uncond, scale: G.tangential_cfg(cond, uncond, scale))


@pytest.mark.parametrize("wrong, phrase", [
    (lambda c, u, w: (lambda u2: u2 + w * (c - u2))(_along(u, _vh(c, u)[:, 1])), "SECOND singular"),
    (lambda c, u, w: u + w * (_along(c, _vh(c, u)[:, 0]) - u), "you projected cond"),
    (lambda c, u, w: _along(u, _vh(c, u)[:, 0]) + w * (c - u), "everywhere"),
    (lambda c, u, w: (lambda v1: (lambda u1: u1 + w * (c - u1))(((u.reshape(-1) * v1).sum() * v1).reshape(u.shape)))(
        torch.linalg.svd(torch.stack([c.reshape(-1), u.reshape(-1)]), full_matrices=False)[2][0]), "per sample"),
    (lambda c, u, w: u + w * (c - u), "plain CFG"),
])
def test_tcfg_mistakes(wrong, phrase):
    v = check_tcfg(lambda cond, uncond, scale: wrong(cond, uncond, scale))
    assert not v and phrase in v.message, v.message


# -- CFG rescale in v -----------------------------------------------------------------------------------------------


def _rescale_in_v(cond, uncond, x, t, scale, phi):
    a, s = (1 - t)[:, None, None, None], t[:, None, None, None]
    r = torch.sqrt(a**2 + s**2)
    to_v = lambda x0: (a * (x - a * x0) / s - s * x0) / r  # noqa: E731
    vc, vu = to_v(cond), to_v(uncond)
    g = vu + scale * (vc - vu)
    dims = (1, 2, 3)
    v = phi * g * vc.std(dim=dims, keepdim=True) / g.std(dim=dims, keepdim=True) + (1 - phi) * g
    return (a * x / r - s * v) / r


def _unnormalised(cond, uncond, x, t, scale, phi):
    # v without the 1 / sqrt(alpha^2 + sigma^2): the rescale does not see the factor, so this is right too
    a, s = (1 - t)[:, None, None, None], t[:, None, None, None]
    to_v = lambda x0: a * (x - a * x0) / s - s * x0  # noqa: E731
    vc, vu = to_v(cond), to_v(uncond)
    v = G.rescale(cl.cfg(vc, vu, scale), vc, phi)
    return (a * x - s * v) / (a**2 + s**2)


def _offset(k):
    def fn(cond, uncond, x, t, scale, phi):
        a, s = (1 - t)[:, None, None, None], t[:, None, None, None]
        off = k(a, s) * x
        return off + G.rescale(cl.cfg(cond - off, uncond - off, scale), cond - off, phi)
    return fn


def test_rescale_in_v_reference_and_an_unnormalised_v_pass():
    assert check_rescale_in_v(_rescale_in_v)
    assert check_rescale_in_v(_unnormalised)


@pytest.mark.parametrize("wrong, phrase", [
    (_offset(lambda a, s: 0 * a), "rescaled the x0 predictions"),
    (_offset(lambda a, s: 1 + 0 * a), "course's velocity"),
    (_offset(lambda a, s: 1 / a), "rescaled the eps"),
    (lambda c, u, x, t, w, phi: _rescale_in_v(c, u, x, t, w, 1.0), "blend"),
])
def test_rescale_in_v_mistakes(wrong, phrase):
    v = check_rescale_in_v(lambda cond, uncond, x, t, scale, phi: wrong(cond, uncond, x, t, scale, phi))
    assert not v and phrase in v.message, v.message


# -- the experiment: which rules care where pixel 0 is? ---------------------------------------------------------------


def _gap(pair, rule, space, offset, x1, steps, move_start=True, sign=1.0, shift_back=True):
    path = cl.Linear()
    moved = G.translated(pair, sign * offset, path, "velocity")
    start = x1 + (path(path.t_max).alpha * offset if move_start else 0.0)
    a = cl.ode(G.guided_rule(pair, rule, path, pred="velocity", space=space), x1, path, steps, method="euler")
    b = cl.ode(G.guided_rule(moved, rule, path, pred="velocity", space=space), start, path, steps, method="euler")
    return float(((b - offset if shift_back else b) - a).abs().max())


def test_range_shift_gap_reference_passes_and_hands_itself_on():
    v = check_range_shift_gap(_gap)
    assert v and v.or_reference() is _gap


@pytest.mark.parametrize("wrong, phrase", [
    (lambda pair, rule, space, offset, x1, steps: _gap(pair, rule, space, offset, x1, steps, move_start=False),
     "move the start"),
    (lambda pair, rule, space, offset, x1, steps: _gap(pair, rule, space, offset, x1, steps, sign=-1.0), "+offset"),
    (lambda pair, rule, space, offset, x1, steps: _gap(pair, rule, space, offset, x1, steps, shift_back=False),
     "shift the second run's samples back"),
    (lambda pair, rule, space, offset, x1, steps: 0.0, "commutes with the shift"),       # says every rule commutes
    (lambda pair, rule, space, offset, x1, steps: 1.0, "depends on the pixel range"),    # says none does
    (lambda pair, rule, space, offset, x1, steps: "small", "should return a float"),
])
def test_range_shift_gap_mistakes(wrong, phrase):
    v = check_range_shift_gap(wrong)
    assert not v and phrase in v.message, v.message


def test_range_shift_gap_falls_back_to_the_reference_when_not_strict(monkeypatch):
    monkeypatch.delenv("CFGLAB_EXERCISES", raising=False)

    def stub(pair, rule, space, offset, x1, steps):
        raise NotImplementedError("a hint")

    v = check_range_shift_gap(stub)
    assert not v and "not written yet" in v.message
    assert v.or_reference() is not stub
