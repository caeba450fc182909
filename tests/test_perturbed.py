"""Guidance from a perturbed self (chapter 17): the rule, its three-prediction form with CFG, the batching wrapper
against separate passes, and parity with diffusers' PerturbedAttentionGuidance, SmoothedEnergyGuidance,
SkipLayerGuidance and AutoGuidance on tensors, with the scale conventions mapped."""

import math

import pytest
import torch

import cfglab as cl
from cfglab import guidance as G
from cfglab.models import AttentionDenoiser, Perturbation

F64 = torch.float64


def _three(n=4, d=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, d, generator=g, dtype=F64) for _ in range(3)]


def _model(num_classes=10, seed=0):
    m = AttentionDenoiser(8, num_classes, width=16, depth=3, heads=2, seed=seed).to(F64)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g, dtype=F64))
    return m.eval()


def test_rule_definition_and_ends():
    d, dp, _ = _three()
    torch.testing.assert_close(G.perturbed_guidance(d, dp, 2.5), dp + 2.5 * (d - dp))
    torch.testing.assert_close(G.perturbed_guidance(d, dp, 2.5), d + 1.5 * (d - dp))   # the papers' s = w - 1
    assert torch.equal(G.perturbed_guidance(d, dp, 1.0), d)
    assert torch.equal(G.perturbed_guidance(d, dp, 0.0), dp)
    assert torch.equal(G.perturbed_guidance(d, dp, 3.0), cl.cfg(d, dp, 3.0))


def test_cfg_perturbed_reduces_to_each_rule():
    c, u, cp = _three()
    torch.testing.assert_close(G.cfg_perturbed(c, u, cp, 4.0, 3.0), u + 4.0 * (c - u) + 2.0 * (c - cp))
    torch.testing.assert_close(G.cfg_perturbed(c, u, cp, 4.0, 1.0), cl.cfg(c, u, 4.0))
    torch.testing.assert_close(G.cfg_perturbed(c, u, cp, 1.0, 3.0), G.perturbed_guidance(c, cp, 3.0))


@pytest.mark.parametrize("p", [Perturbation("identity", (1,)), Perturbation("blur", (0, 1), 1.0),
                               Perturbation("skip", (2,))], ids=["identity", "blur", "skip"])
def test_wrapper_equals_separate_passes(p):
    m = _model()
    g = torch.Generator().manual_seed(3)
    x, t, y = torch.randn(5, 1, 8, 8, generator=g, dtype=F64), torch.rand(5, generator=g, dtype=F64), \
        torch.tensor([0, 3, 9, 1, 2])

    def conv(v):
        return m.path.convert(v, x, t, m.pred, "score")

    d, dp, u = m(x, t, y), m(x, t, y, perturb=p), m(x, t, None)
    torch.testing.assert_close(G.perturbed_guided(m, y, 2.5, p)(x, t), conv(dp + 2.5 * (d - dp)))
    torch.testing.assert_close(G.perturbed_guided(m, y, 2.5, p, cfg_scale=3.0)(x, t),
                               conv(G.cfg_perturbed(d, u, dp, 3.0, 2.5)))
    dpn = m(x, t, None, perturb=p)                      # diffusers' AutoGuidance: the guide runs on the null label
    torch.testing.assert_close(G.perturbed_guided(m, y, 2.5, p, guide_y=m.null_label)(x, t),
                               conv(dpn + 2.5 * (d - dpn)))
    un, unp = m(x, t, None), m(x, t, None, perturb=p)   # unconditional generation: no label at all
    torch.testing.assert_close(G.perturbed_guided(m, m.null_label, 2.0, p)(x, t), conv(unp + 2.0 * (un - unp)))
    torch.testing.assert_close(G.perturbed_guided(m, y, 1.0, p)(x, t), m.predict(x, t, y))
    torch.testing.assert_close(G.perturbed_guided(m, y, 1.0, p, cfg_scale=2.0)(x, t), cl.guided(m, y, 2.0)(x, t))


def test_wrapper_with_a_separate_guide_network_is_autoguidance():
    m, weak = _model(seed=0), _model(seed=5)
    g = torch.Generator().manual_seed(4)
    x, t, y = torch.randn(4, 1, 8, 8, generator=g, dtype=F64), torch.rand(4, generator=g, dtype=F64), 7
    torch.testing.assert_close(G.perturbed_guided(m, y, 2.0, weak)(x, t), G.autoguided(m, weak, y, 2.0)(x, t))
    un = G.perturbed_guided(m, m.null_label, 2.0, weak, kind="velocity")(x, t)
    torch.testing.assert_close(un, weak(x, t, None) + 2.0 * (m(x, t, None) - weak(x, t, None)))


def test_wrapper_is_one_batched_pass():
    m = _model()
    calls = []
    m.register_forward_hook(lambda mod, args, kwargs, out: calls.append(args[0].shape[0]), with_kwargs=True)
    x, t = torch.randn(3, 1, 8, 8, dtype=F64), torch.full((3,), 0.5, dtype=F64)
    G.perturbed_guided(m, 1, 2.0, Perturbation("identity", (0,)))(x, t)
    G.perturbed_guided(m, 1, 2.0, Perturbation("identity", (0,)), cfg_scale=3.0)(x, t)
    assert calls == [6, 9]


def test_wrapper_checks_its_guide():
    m = _model()
    with pytest.raises(TypeError, match="must take perturb="):
        G.perturbed_guided(cl.UNet(8, 10, width=8), 1, 2.0, Perturbation("skip", (0,)))
    with pytest.raises(ValueError, match="guide must be trained on the model's path"):
        G.perturbed_guided(m, 1, 2.0, AttentionDenoiser(8, 3, width=8, depth=1, heads=2))
    with pytest.raises(ValueError, match="y must be class labels"):
        G.perturbed_guided(m, 11, 2.0, Perturbation("skip", (0,)))


# -- parity with diffusers' guiders (diffusers 0.42) ----------------------------------------------------------------

def _guiders():
    return pytest.importorskip("diffusers.guiders", reason="diffusers is optional: parity tests need it")


def _diffusers_pred(guider, *preds, step=1):
    guider.set_state(step=step, num_inference_steps=10, timestep=torch.tensor(500))
    return guider.forward(*preds).pred


@pytest.mark.parametrize("name,knob", [("PerturbedAttentionGuidance", "perturbed_guidance"),
                                       ("SmoothedEnergyGuidance", "seg_guidance"),
                                       ("SkipLayerGuidance", "skip_layer_guidance")])
@pytest.mark.parametrize("original", [False, True])
def test_three_prediction_guiders_match_ours(name, knob, original):
    dg = _guiders()
    c, u, cp = _three(seed=7)
    layers = {"PerturbedAttentionGuidance": "perturbed_guidance_layers", "SmoothedEnergyGuidance":
              "seg_guidance_layers", "SkipLayerGuidance": "skip_layer_guidance_layers"}[name]
    for gs, s in [(5.0, 2.0), (1.0, 2.0), (5.0, 0.5), (0.0, 3.0)]:
        guider = getattr(dg, name)(guidance_scale=gs, **{f"{knob}_scale": s, f"{knob}_start": 0.0,
                                                         f"{knob}_stop": 1.0, layers: [0]},
                                   use_original_formulation=original)
        w_p, w = G.scale_from_diffusers(s, gs, use_original_formulation=original)
        cfg_on = not math.isclose(gs, 0.0 if original else 1.0)
        theirs = _diffusers_pred(guider, c, u if cfg_on else None, cp)
        torch.testing.assert_close(theirs, G.cfg_perturbed(c, u, cp, w, w_p), rtol=1e-12, atol=1e-12)


def test_diffusers_perturbed_knob_loses_one_unit_when_cfg_turns_off():
    # the same perturbed_guidance_scale s is our scale 1 + s with CFG on, and s with CFG off (default formulation)
    assert G.scale_from_diffusers(2.0, 5.0) == (3.0, 5.0)
    assert G.scale_from_diffusers(2.0, 1.0) == (2.0, 1.0)
    assert G.scale_from_diffusers(2.0, 1.0, use_original_formulation=True) == (3.0, 2.0)


def test_autoguidance_guider_matches_ours():
    dg = _guiders()
    c, u_skip, _ = _three(seed=8)
    for gs, original in [(3.0, False), (2.0, True)]:
        guider = dg.AutoGuidance(guidance_scale=gs, auto_guidance_layers=[0], dropout=1.0,
                                 use_original_formulation=original)
        w = gs + 1.0 if original else gs
        torch.testing.assert_close(_diffusers_pred(guider, c, u_skip), G.perturbed_guidance(c, u_skip, w),
                                   rtol=1e-12, atol=1e-12)


def test_diffusers_first_step_never_gets_perturbed_guidance():
    # diffusers enables the perturbed term for start_step < step < stop_step (strict), so step 0 is plain CFG
    dg = _guiders()
    c, u, cp = _three(seed=9)
    guider = dg.PerturbedAttentionGuidance(guidance_scale=5.0, perturbed_guidance_scale=2.0,
                                           perturbed_guidance_start=0.0, perturbed_guidance_stop=1.0,
                                           perturbed_guidance_layers=[0])
    torch.testing.assert_close(_diffusers_pred(guider, c, u, step=0), cl.cfg(c, u, 5.0))


def test_diffusers_seg_blur_is_swapped_with_the_infinite_one():
    # diffusers' SmoothedEnergyGuidanceHook returns the mean query for every FINITE sigma (below its threshold
    # 9999), which is the paper's sigma = inf and our grid_blur(4, inf); the original SEG code blurs there.
    pytest.importorskip("diffusers")
    from diffusers.hooks.smoothed_energy_guidance_utils import SmoothedEnergyGuidanceHook

    q = torch.randn(2, 16, 6, generator=torch.Generator().manual_seed(0), dtype=F64)
    mean = cl.models.grid_blur(4, math.inf, dtype=F64) @ q
    for sigma in (0.5, 1.0, 3.0):
        torch.testing.assert_close(SmoothedEnergyGuidanceHook(sigma).post_forward(None, q.clone()), mean)
        assert not torch.allclose(cl.models.grid_blur(4, sigma, dtype=F64) @ q, mean)
    assert not torch.allclose(SmoothedEnergyGuidanceHook(1e7).post_forward(None, q.clone()), mean)
