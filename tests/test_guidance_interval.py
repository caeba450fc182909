"""The guidance interval in cl.guided skips the unconditional pass where the scale is 1: the network sees n rows
(not 2n) outside the interval, and the field equals the interval rule that computes both predictions."""

import pytest
import torch

import cfglab as cl
from cfglab import guidance as G

F64 = torch.float64


def counted(model):
    rows = []
    model.register_forward_hook(lambda mod, args, out: rows.append(args[0].shape[0]))
    return rows


def test_outside_the_interval_only_the_conditional_half_is_evaluated():
    path = cl.Linear()
    model = cl.MLP(2, 3, path=path, width=16, depth=1, seed=0).double().eval()
    rows = counted(model)
    n, steps, w, (start, stop) = 50, 20, 4.0, (0.2, 0.6)
    x1 = path.prior(n, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    with torch.no_grad():
        a = cl.ode(cl.guided(model, 1, w, interval=(start, stop)), x1, path, steps, method="euler")
    ts = path.timesteps(steps)
    inside = int(((ts[:-1] >= start) & (ts[:-1] <= stop)).sum()) + int(start <= ts[-1] <= stop)  # + the denoise
    assert sum(rows) == n * (steps + 1) + n * inside                   # 2n rows inside, n outside
    assert inside < steps / 2
    rows.clear()
    rule = lambda c, u, x, t: u + G.interval_scale(t, w, start, stop)[:, None].to(c) * (c - u)  # noqa: E731
    with torch.no_grad():
        b = cl.ode(G.guided_rule(G.predictions(model, 1), rule, path, pred=model.pred), x1, path, steps,
                   method="euler")
    assert sum(rows) == 2 * n * (steps + 1)                             # the rule always needs both predictions
    assert torch.allclose(a, b, rtol=1e-10, atol=1e-10)


def test_rows_at_different_times_are_split_and_a_negative_is_skipped_too():
    path = cl.VP()
    model = cl.MLP(2, 3, path=path, width=16, depth=1, seed=1).double().eval()
    rows = counted(model)
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    t = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9, 0.5], dtype=F64)
    with torch.no_grad():
        got = cl.guided(model, 0, 2.5, negative=2, interval=(0.25, 0.6))(x, t)
        on = (t >= 0.25) & (t <= 0.6)
        full = cl.guided(model, 0, 2.5, negative=2)(x, t)
        cond = model.predict(x, t, 0)
    assert rows[0] == 6 + int(on.sum())
    assert torch.allclose(got[on], full[on], rtol=1e-12) and torch.allclose(got[~on], cond[~on], rtol=1e-12)


@pytest.mark.parametrize("bad,exc", [((0.6, 0.2), ValueError), (0.5, TypeError), ((0.1, float("nan")), ValueError)])
def test_the_interval_is_checked_when_the_wrapper_is_built(bad, exc):
    with pytest.raises(exc, match="interval"):
        cl.guided(cl.MLP(2, 3, width=16, depth=1), 0, 2.0, interval=bad)
