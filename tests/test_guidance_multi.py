"""The two-scale rules of chapter 15 against closed forms (CFG on the joint at equal scales, CFG on one condition
when the other is dropped, the tilted density by autograd, the order gap as the interaction term, zero for
conditionally independent conditions) and against diffusers' InstructPix2Pix pipelines, whose own combination
lines are executed on tensors (parsed from the installed source)."""

import ast
import importlib.util
import pathlib
from types import SimpleNamespace

import pytest
import torch

import cfglab as cl
from cfglab import guidance as G
from cfglab import train_multi as TM


def _preds(k=4, n=6, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(k)]


def test_equal_scales_are_cfg_on_the_joint_condition():
    u, a, b, ab = _preds()
    for w in (0.0, 1.0, 2.5, 7.0):
        torch.testing.assert_close(G.nested(u, a, ab, w, w), cl.cfg(ab, u, w))
        torch.testing.assert_close(G.nested(u, b, ab, w, w), cl.cfg(ab, u, w))


def test_a_dropped_condition_leaves_cfg_on_the_other():
    u, a, b, _ = _preds()
    # second condition dropped: the joint prediction is the first-condition one
    torch.testing.assert_close(G.nested(u, a, a, 3.0, 7.5), cl.cfg(a, u, 3.0))
    # first condition dropped: its prediction is the unconditional one, the joint is the second's
    torch.testing.assert_close(G.nested(u, u, b, 1.5, 7.5), cl.cfg(b, u, 7.5))
    # unit scales give the joint prediction itself
    torch.testing.assert_close(G.nested(u, a, b, 1.0, 1.0), b)


def test_order_gap_and_composition_gap_are_the_interaction_term():
    u, a, b, ab = _preds(seed=1)
    sa, sb = 1.5, 6.0
    gap = G.nested(u, a, ab, sa, sb) - G.nested(u, b, ab, sb, sa)
    torch.testing.assert_close(gap, (sa - sb) * G.interaction(u, a, b, ab))
    comp = G.compose(u, [a, b], [sa, sb])
    torch.testing.assert_close(comp - G.nested(u, a, ab, sa, sb), sb * G.interaction(u, a, b, ab))


def test_instruct_pix2pix_and_dual_cfg_names():
    u, img, txt = _preds(3, seed=2)
    gs, igs = 7.5, 1.5
    torch.testing.assert_close(G.instruct_pix2pix(u, img, txt, gs, igs), u + gs * (txt - img) + igs * (img - u))
    torch.testing.assert_close(G.dual_cfg(u, img, txt, gs, igs), G.instruct_pix2pix(u, img, txt, gs, igs))
    nested_style = G.dual_cfg(u, img, txt, gs, igs, style="nested")
    torch.testing.assert_close(nested_style, u + igs * (img + gs * (txt - img) - u))
    torch.testing.assert_close(nested_style, G.nested(u, img, txt, igs, gs * igs))


def _data(layout):
    return TM.MultiLabelData.from_attributes(cl.data.make_attributes(layout))


def _exact(data, labels, x, t, path):
    return [data.law(list(lab)).score(x, t, path) for lab in labels]


@pytest.mark.parametrize("t", [0.05, 0.3, 0.7])
def test_the_interaction_vanishes_exactly_when_the_conditions_are_independent_given_x(t):
    path = cl.Linear()
    x = 2.0 * torch.randn(200, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    labels = [(None, None), (0, None), (None, 0), (0, 0)]
    grid = G.interaction(*_exact(_data("grid"), labels, x, t, path))
    ring = G.interaction(*_exact(_data("ring"), labels, x, t, path))
    assert grid.abs().max() < 1e-9  # colour and shape factorise on the grid: independent given x_t
    assert ring.abs().max() > 1e-2


def test_nested_rule_is_the_score_of_the_tilted_density():
    # p_t(x) p_t(a|x)^sa p_t(b|a,x)^sb  ==  p^(1-sa) p(x|a)^(sa-sb) p(x|a,b)^sb, by autograd of exact log-densities
    path, t, sa, sb = cl.Linear(), 0.4, 1.5, 4.0
    data = _data("ring")
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64).requires_grad_(True)
    laws = [data.law([None, None]), data.law([1, None]), data.law([1, 1])]
    lp = [m.log_prob(x, t=t, path=path) for m in laws]
    (grad,) = torch.autograd.grad(((1 - sa) * lp[0] + (sa - sb) * lp[1] + sb * lp[2]).sum(), x)
    field = G.nested(*[m.score(x.detach(), t, path) for m in laws], sa, sb)
    torch.testing.assert_close(field, grad)


def test_multi_predictions_match_single_calls_of_the_model():
    model = cl.models.MultiMLP(2, (3, 2), width=16, depth=1, seed=0)
    sets = [(None, None), (2, None), (None, 1), (2, 1)]
    x, t = torch.randn(5, 2, generator=torch.Generator().manual_seed(0)), torch.full((5,), 0.3)
    outs = G.multi_predictions(model, sets, kind="eps")(x, t)
    for s, out in zip(sets, outs):
        torch.testing.assert_close(out, model.predict(x, t, list(s), kind="eps"))


# -- parity with diffusers' InstructPix2Pix pipelines: their own lines, executed on tensors ---------------------------
# The pipeline modules import transformers, which the course does not need; their source is parsed instead.

SD = "pipelines/stable_diffusion/pipeline_stable_diffusion_instruct_pix2pix.py"
SDXL = "pipelines/stable_diffusion_xl/pipeline_stable_diffusion_xl_instruct_pix2pix.py"


def _source(rel):
    spec = importlib.util.find_spec("diffusers")
    if spec is None or spec.origin is None:
        pytest.skip("diffusers is optional: parity tests need it")
    return (pathlib.Path(spec.origin).parent / rel).read_text()


def _method(rel, name):
    """The function ``name`` of the pipeline class in diffusers' file ``rel``, as an AST node."""
    tree = ast.parse(_source(rel))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name.endswith("InstructPix2PixPipeline"))
    return next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == name)


def _guidance_block(rel, names=("noise_pred_text", "noise_pred_image", "noise_pred_uncond")):
    """The statements of ``__call__`` that unpack the three-way chunk and combine it (the body of the ``if`` that
    holds ``noise_pred.chunk(3)``), compiled."""
    for node in ast.walk(_method(rel, "__call__")):
        if isinstance(node, ast.If) and "chunk(3)" in ast.unparse(node.body[0]):
            body = ast.Module(body=node.body, type_ignores=[])
            assert all(n in ast.unparse(body) for n in names)
            return compile(body, "<diffusers guidance>", "exec")
    raise AssertionError("no three-way guidance block found")


@pytest.mark.parametrize("gs, igs", [(7.5, 1.5), (3.0, 1.0), (1.5, 4.0)])
def test_instruct_pix2pix_matches_diffusers_own_arithmetic(gs, igs):
    eps_ti, eps_i, eps_0 = _preds(3, n=2, d=16, seed=5)
    ns = {"noise_pred": torch.cat([eps_ti, eps_i, eps_0]),
          "self": SimpleNamespace(guidance_scale=gs, image_guidance_scale=igs)}
    exec(_guidance_block(SD), {}, ns)
    torch.testing.assert_close(G.instruct_pix2pix(eps_0, eps_i, eps_ti, gs, igs), ns["noise_pred"], rtol=0,
                               atol=1e-12)


def test_instruct_pix2pix_sdxl_matches_diffusers_own_arithmetic():
    eps_ti, eps_i, eps_0 = _preds(3, n=2, d=16, seed=6)
    ns = {"noise_pred": torch.cat([eps_ti, eps_i, eps_0]), "guidance_scale": 5.0, "image_guidance_scale": 1.5}
    exec(_guidance_block(SDXL), {}, ns)
    torch.testing.assert_close(G.instruct_pix2pix(eps_0, eps_i, eps_ti, 5.0, 1.5), ns["noise_pred"], rtol=0,
                               atol=1e-12)


def test_diffusers_batch_order_and_when_it_guides():
    src = _source(SD)
    # the three chunks are [text + image, image only, neither]: prompts [prompt, negative, negative] ...
    assert "torch.cat([prompt_embeds, negative_prompt_embeds, negative_prompt_embeds])" in src
    # ... and image latents [image, image, zeros]
    assert "torch.cat([image_latents, image_latents, uncond_image_latents], dim=0)" in src
    assert "uncond_image_latents = torch.zeros_like(image_latents)" in src
    prop = _method(SD, "do_classifier_free_guidance")
    prop.decorator_list = []
    ns: dict = {}
    exec(compile(ast.Module(body=[prop], type_ignores=[]), "<diffusers property>", "exec"), {}, ns)
    on = lambda gs, igs: ns["do_classifier_free_guidance"](  # noqa: E731
        SimpleNamespace(guidance_scale=gs, image_guidance_scale=igs))
    assert on(7.5, 1.5) and on(1.01, 1.0)
    # guidance_scale <= 1 switches the image guidance off too, whatever image_guidance_scale is
    assert not on(1.0, 5.0) and not on(0.5, 2.0)
    # and an image_guidance_scale below 1 switches everything off: one pass, the text-and-image prediction
    assert not on(7.5, 0.9)
