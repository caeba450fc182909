"""The attention denoiser of chapter 17 against exact facts: the identity map returns the value path, a blur of
width 0 is no blur and an infinite one the mean query, blurring queries is blurring logits, skipping a block is
removing it, and one batched pass with perturbed rows equals the separate passes."""

import copy
import math

import pytest
import torch

import cfglab as cl
from cfglab.models import AttentionDenoiser, Perturbation, grid_blur
from cfglab.models.attention import _Attention

F64 = torch.float64


def _model(depth=3, num_classes=10, seed=0):
    """A model whose every parameter is random (a fresh model starts with zero gates: every block the identity)."""
    m = AttentionDenoiser(8, num_classes, width=16, depth=depth, heads=2, seed=seed).to(F64)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g, dtype=F64))
    return m.eval()


def _inputs(n=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g, dtype=F64), torch.rand(n, generator=g, dtype=F64), \
        torch.randint(0, 11, (n,), generator=g)


def test_interface_like_the_unet():
    m = AttentionDenoiser(8, 10, seed=0, width=16, depth=2, heads=2)
    assert m.null_label == 10 and m.config["kind"] == "AttentionDenoiser" and m.side == 4
    x = torch.randn(3, 1, 8, 8)
    assert m(x, 0.5).shape == x.shape and m(x, torch.rand(3), torch.tensor([0, 10, 9])).shape == x.shape
    state = torch.random.get_rng_state()
    m2 = AttentionDenoiser(8, 10, seed=0, width=16, depth=2, heads=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(m.parameters(), m2.parameters()))
    mr, (xr, tr, yr) = _model(), _inputs()
    v = mr(xr, tr, yr)
    torch.testing.assert_close(mr.predict(xr, tr, yr, kind="velocity"), v)
    torch.testing.assert_close(mr.predict(xr, tr, yr, kind="x0"), mr.path.convert(v, xr, tr, "velocity", "x0"))


def test_patches_round_trip_and_follow_the_grid():
    m = AttentionDenoiser(8, 10, width=16, depth=1, heads=2)
    x = torch.arange(64.0).reshape(1, 1, 8, 8)
    tok = m._patches(x)                                       # (1, 16, 4)
    assert tok.shape == (1, 16, 4) and torch.equal(m._image(tok), x)
    assert tok[0, 1].tolist() == [2.0, 3.0, 10.0, 11.0]       # token (0, 1): rows 0-1, columns 2-3
    assert tok[0, 4].tolist() == [16.0, 17.0, 24.0, 25.0]     # token (1, 0)


def test_grid_blur_closed_form_and_limits():
    b = grid_blur(4, 1.0, dtype=F64)
    torch.testing.assert_close(b.sum(1), torch.ones(16, dtype=F64))
    # corner token 0 at (0, 0): weights exp(-(r^2 + c^2) / 2) over the grid, normalised
    r = torch.arange(4, dtype=F64)
    w = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / 2).reshape(16)
    torch.testing.assert_close(b[0], w / w.sum())
    assert torch.equal(grid_blur(4, 0.0), torch.eye(16))
    torch.testing.assert_close(grid_blur(4, math.inf, dtype=F64), torch.full((16, 16), 1 / 16, dtype=F64))
    torch.testing.assert_close(grid_blur(4, 1e4, dtype=F64), grid_blur(4, math.inf, dtype=F64), atol=1e-7, rtol=0)
    torch.testing.assert_close(grid_blur(4, 1e-2, dtype=F64), torch.eye(16, dtype=F64))


def test_identity_attention_is_the_value_path():
    attn = _Attention(16, 2, 4).to(F64)
    h = torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=F64)
    v = attn.qkv(h)[..., 32:]                                 # the value projection of every token
    torch.testing.assert_close(attn(h, "identity"), attn.out(v))


def test_blurring_queries_blurs_the_logits_and_infinite_blur_gives_one_attention_row():
    attn = _Attention(16, 2, 4).to(F64)
    h = torch.randn(2, 16, 16, generator=torch.Generator().manual_seed(1), dtype=F64)
    q, k, _ = attn.qkv(h).reshape(2, 16, 3, 2, 8).permute(2, 0, 3, 1, 4)
    b = grid_blur(4, 0.7, dtype=F64)
    torch.testing.assert_close((b @ q) @ k.transpose(-1, -2), b @ (q @ k.transpose(-1, -2)))
    out = attn(h, "blur", math.inf)                           # every query the mean: one output for all tokens
    torch.testing.assert_close(out, out[:, :1].expand_as(out))
    assert not torch.allclose(attn(h), attn(h)[:, :1].expand_as(out))


def test_blur_of_width_zero_is_no_perturbation():
    m, (x, t, y) = _model(), _inputs()
    assert torch.equal(m(x, t, y, perturb=Perturbation("blur", (0, 2), 0.0)), m(x, t, y))


def test_every_perturbation_changes_the_prediction():
    m, (x, t, y) = _model(), _inputs()
    clean = m(x, t, y)
    for p in [Perturbation("identity", (1,)), Perturbation("blur", (1,), 1.0), Perturbation("skip", (1,))]:
        assert (m(x, t, y, perturb=p) - clean).abs().max() > 1e-3, p


def test_skipping_a_block_equals_removing_it():
    m, (x, t, y) = _model(depth=3), _inputs()
    for i in range(3):
        short = copy.deepcopy(m)
        short.blocks = torch.nn.ModuleList(b for j, b in enumerate(m.blocks) if j != i)
        torch.testing.assert_close(m(x, t, y, perturb=Perturbation("skip", (i,))), short(x, t, y))
    none = copy.deepcopy(m)
    none.blocks = torch.nn.ModuleList()
    torch.testing.assert_close(m(x, t, y, perturb=Perturbation("skip", (0, 1, 2))), none(x, t, y))


def test_identity_perturbation_matches_a_model_with_the_value_path():
    m, (x, t, y) = _model(depth=2), _inputs()
    swapped = copy.deepcopy(m)
    a = swapped.blocks[1].attn
    a.forward = lambda h, kind=None, sigma=math.inf, rows=None: a.out(a.qkv(h)[..., 32:])
    torch.testing.assert_close(m(x, t, y, perturb=Perturbation("identity", (1,))), swapped(x, t, y))


@pytest.mark.parametrize("p", [Perturbation("identity", (0, 2)), Perturbation("blur", (1,), 0.8),
                               Perturbation("blur", (0,)), Perturbation("skip", (1,)), Perturbation("skip", (0, 2))],
                         ids=["identity", "blur", "blur-inf", "skip", "skip-two"])
def test_one_batched_pass_equals_separate_passes(p):
    m, (x, t, y) = _model(), _inputs()
    rows = torch.tensor([False] * 5 + [True] * 5)
    both = m(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, y]), perturb=p, rows=rows)
    torch.testing.assert_close(both[:5], m(x, t, y))
    torch.testing.assert_close(both[5:], m(x, t, y, perturb=p))
    mixed = torch.tensor([True, False, True, False, False])
    out = m(x, t, y, perturb=p, rows=mixed)
    torch.testing.assert_close(out[mixed], m(x[mixed], t[mixed], y[mixed], perturb=p))
    torch.testing.assert_close(out[~mixed], m(x[~mixed], t[~mixed], y[~mixed]))


def test_trains_with_fit_and_samples_with_the_guidance_wrappers():
    data = cl.digits.dataset("train")
    m = AttentionDenoiser(8, 10, width=16, depth=2, heads=2, seed=0)
    losses = cl.fit(m, data, steps=3, batch_size=8, progress=False, use_cache=False)
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    x1 = m.path.prior(4, (1, 8, 8), torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert cl.ddim(cl.guided(m, 3, 2.0), x1, m.path, 2).shape == (4, 1, 8, 8)


def test_perturbation_and_rows_are_checked():
    m, (x, t, y) = _model(depth=2), _inputs()
    with pytest.raises(ValueError, match="perturb.blocks must be block indices in 0..1"):
        m(x, t, y, perturb=Perturbation("skip", (2,)))
    with pytest.raises(ValueError, match="rows must be a boolean tensor of shape"):
        m(x, t, y, perturb=Perturbation("skip", (0,)), rows=torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="pass perturb= too"):
        m(x, t, y, rows=torch.ones(5, dtype=torch.bool))
    with pytest.raises(TypeError, match="perturb must be a cfglab.models.Perturbation"):
        m(x, t, y, perturb="identity")
    with pytest.raises(ValueError, match="sigma applies to kind 'blur' only"):
        Perturbation("identity", (0,), 1.0)
    with pytest.raises(TypeError, match="blocks must be a non-empty tuple"):
        Perturbation("skip", 1)
