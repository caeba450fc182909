"""Guidance distillation (chapter 13): the target is the teacher's CFG output exactly, the w-conditioned network adds
its scale embedding like FLUX's, a student distilled from the exact mixture learns the exact CFG field, the cache,
and FluxPipeline's arithmetic (``guidance``, ``true_cfg_scale``) against the installed diffusers."""

import ast
import inspect
import pathlib

import pytest
import torch

import cfglab as cl
from cfglab import distill as D
from cfglab.models import ExactDenoiser, GuidedMLP

F64 = torch.float64
mix, path = cl.make("overlap"), cl.Linear()


def _teacher(width=16, seed=0):
    return cl.MLP(2, mix.num_classes, path=path, width=width, depth=1, seed=seed).double()


def _points(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 2, generator=g, dtype=F64), 0.02 + 0.96 * torch.rand(n, generator=g, dtype=F64),
            1 + 4 * torch.rand(n, generator=g, dtype=F64))


def test_the_target_is_the_teachers_cfg_output():
    teacher, (x, t, w) = _teacher(), _points()
    with torch.no_grad():
        c, u = teacher(x, t, 1), teacher(x, t, teacher.null_label)
        for scale in (0.0, 1.0, 3.5):
            torch.testing.assert_close(D.cfg_target(teacher, x, t, 1, scale), cl.cfg(c, u, scale), rtol=0, atol=1e-13)
        rows = torch.stack([cl.cfg(c[i], u[i], float(w[i])) for i in range(len(w))])
        torch.testing.assert_close(D.cfg_target(teacher, x, t, 1, w), rows, rtol=0, atol=1e-13)
        assert torch.equal(D.cfg_target(teacher, x, t, 1, 1.0), cl.cfg(c, u, 1.0))    # lerp: exact at w = 1
        null = D.cfg_target(teacher, x, t, teacher.null_label, w)                      # a null row's target is u
        torch.testing.assert_close(null, u, rtol=0, atol=1e-13)


def test_with_the_exact_teacher_the_target_is_the_exact_cfg_field():
    x, t, _ = _points(64, 1)
    exact = ExactDenoiser(mix, path, pred="velocity")
    for w in (0.5, 2.0, 6.0):
        field = cl.combine(mix.score_fn(path, 0), mix.score_fn(path), w)(x, t)           # exact CFG score
        want = path.convert(field, x, t, "score", "velocity")
        torch.testing.assert_close(D.cfg_target(exact, x, t, 0, w), want, rtol=1e-9, atol=1e-9)


def test_a_student_made_from_its_teacher_starts_as_the_conditional_prediction():
    teacher, (x, t, w) = _teacher(32), _points()
    student = GuidedMLP.from_teacher(teacher)
    with torch.no_grad():
        for scale in (0.0, 1.0, 4.0, w):
            assert torch.equal(student(x, t, 1, scale), teacher(x, t, 1))
    assert student.config["init"] == "teacher" and student.null_label == teacher.null_label


def test_the_scale_embedding_is_added_like_fluxs():
    """cond(t, y, w) = A(t) + B(y) + C(w): the mixed second difference in (t, w) vanishes, as in diffusers'
    CombinedTimestepGuidanceTextProjEmbeddings (tested below on the real module)."""
    net = GuidedMLP(2, 2, width=16, seed=3).double()
    t1, t2 = torch.tensor([0.2], dtype=F64), torch.tensor([0.7], dtype=F64)
    w1, w2 = torch.tensor([1.5], dtype=F64), torch.tensor([6.0], dtype=F64)

    def emb(t, w):
        return net.time(t) + net.label(torch.tensor([1])) + net.scale(w / net.w_scale)
    torch.testing.assert_close(emb(t1, w1) + emb(t2, w2), emb(t1, w2) + emb(t2, w1), rtol=0, atol=1e-12)
    x = torch.zeros(1, 2, dtype=F64)
    assert not torch.allclose(net(x, 0.5, 1, 1.0), net(x, 0.5, 1, 4.0))            # the scale reaches the output


def test_distillation_from_the_exact_mixture_learns_the_exact_cfg_field():
    exact = ExactDenoiser(mix, path, pred="velocity")
    student = GuidedMLP(2, 2, path=path, width=32, depth=2, seed=0)
    losses = D.distill(student, exact, mix, w_range=(1.0, 4.0), steps=300, batch_size=256, progress=False)
    assert losses[-1] < 0.05 * losses[0]
    g = torch.Generator().manual_seed(5)
    x0, y = mix.sample(1000, generator=g)
    t = 0.05 + 0.9 * torch.rand(1000, generator=g)
    x = path.noise(x0, t, torch.randn(1000, 2, generator=g))
    c, u = exact(x, t, y), exact(x, t, exact.null_label)
    with torch.no_grad():
        for w in (1.5, 2.5, 3.5):
            assert abs(D.effective_scale(student(x, t, y, w), c, u) - w) < 0.2


def test_the_distillation_loss_at_the_target_and_its_weighting():
    teacher = _teacher()
    student = GuidedMLP.from_teacher(teacher)
    x0, t, w = _points(16, 2)
    eps = torch.randn(16, 2, generator=torch.Generator().manual_seed(9), dtype=F64)
    loss = D.distillation_loss(student, teacher, x0, 1, w=w, t=t, eps=eps)
    xt = path.noise(x0, t, eps)
    with torch.no_grad():
        want = ((teacher(xt, t, 1) - D.cfg_target(teacher, xt, t, 1, w)) ** 2).mean()   # the student is c here
    torch.testing.assert_close(loss.detach(), want, rtol=1e-12, atol=0)
    assert D.distillation_loss(student, teacher, x0, 1, w=torch.ones(16, dtype=F64), t=t, eps=eps).item() < 1e-24


def test_distill_is_cached_by_teacher_weights(monkeypatch, tmp_path):
    teacher = cl.MLP(2, 2, path=path, width=16, depth=1, seed=0)
    a = GuidedMLP.from_teacher(teacher)
    la = D.distill(a, teacher, mix, steps=5, batch_size=32, progress=False)
    b = GuidedMLP.from_teacher(teacher)
    assert D.distill(b, teacher, mix, steps=5, batch_size=32, progress=False) == la
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    other = cl.MLP(2, 2, path=path, width=16, depth=1, seed=1)                 # same config, other weights
    c = GuidedMLP.from_teacher(teacher)
    assert D.distill(c, other, mix, steps=5, batch_size=32, progress=False) != la


def test_distilled_follows_fluxpipeline_gate():
    student = GuidedMLP(2, 2, width=16, seed=1).double()
    x, t, _ = _points(8, 3)
    rows = []
    student.register_forward_hook(lambda m, a, o: rows.append(a[0].shape[0]))
    with torch.no_grad():
        plain = D.distilled(student, 1, 3.0)(x, t)
        for gamma, neg in ((1.0, 0), (0.5, 0), (4.0, None)):
            assert torch.equal(D.distilled(student, 1, 3.0, true_cfg_scale=gamma, negative=neg)(x, t), plain)
        assert rows == [8] * 4                                                     # one pass each
        got = D.distilled(student, 1, 3.0, true_cfg_scale=4.0, negative=0, kind="velocity")(x, t)
        want = cl.cfg(student(x, t, 1, 3.0), student(x, t, 0, 3.0), 4.0)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-13)
    assert rows[4] == 16                                                           # one pass over [x, x]


def test_effective_scale_recovers_the_scale_of_a_cfg_prediction():
    g = torch.Generator().manual_seed(4)
    c, u = torch.randn(50, 3, generator=g, dtype=F64), torch.randn(50, 3, generator=g, dtype=F64)
    for w in (-1.0, 0.0, 1.0, 2.7, 9.0):
        assert abs(D.effective_scale(cl.cfg(c, u, w), c, u) - w) < 1e-12


# -- FluxPipeline and FluxTransformer2DModel (diffusers) ---------------------------------------------------------


def _flux_source():
    diffusers = pytest.importorskip("diffusers")
    file = pathlib.Path(diffusers.__file__).parent / "pipelines" / "flux" / "pipeline_flux.py"
    return file.read_text()


def _assignment(source, target):
    """The right-hand side of the first ``target = ...`` statement in the source, as an expression."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == target for t in node.targets):
            if target != "noise_pred" or "true_cfg_scale" in ast.unparse(node.value):
                return ast.unparse(node.value)
    raise AssertionError(f"no assignment to {target} in FluxPipeline")


def test_true_cfg_is_the_course_rule_on_two_passes_at_one_guidance():
    """FluxPipeline's own expressions, evaluated on tensors: its true-CFG combination is cl.cfg at true_cfg_scale,
    its gate is ``true_cfg_scale > 1 and has_neg_prompt``, and D.distilled reproduces both."""
    source = _flux_source()
    combine, gate = _assignment(source, "noise_pred"), _assignment(source, "do_true_cfg")
    assert combine == "neg_noise_pred + true_cfg_scale * (noise_pred - neg_noise_pred)"
    student = GuidedMLP(2, 2, width=16, seed=2).double()
    x, t, _ = _points(8, 4)
    with torch.no_grad():
        for gamma in (0.5, 1.0, 2.0, 4.5):
            for neg in (None, 0, 2):                                                # 2 = the null label (prompt "")
                do = eval(gate, {"true_cfg_scale": gamma, "has_neg_prompt": neg is not None})
                cond = student(x, t, 1, 3.5)
                theirs = cond
                if do:
                    theirs = eval(combine, {"noise_pred": cond, "neg_noise_pred": student(x, t, neg, 3.5),
                                            "true_cfg_scale": gamma})
                ours = D.distilled(student, 1, 3.5, true_cfg_scale=gamma, negative=neg, kind="velocity")(x, t)
                torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


def test_fluxpipeline_feeds_guidance_scale_unchanged_and_both_passes_share_it():
    source = _flux_source()
    assert "guidance = torch.full([1], guidance_scale" in source.replace("\n", " ")
    assert source.count("guidance=guidance,") >= 2                     # the prompt pass and the negative one
    defaults = {p.arg: ast.unparse(d) for fn in ast.walk(ast.parse(source)) if isinstance(fn, ast.FunctionDef)
                and fn.name == "__call__" for p, d in zip(fn.args.args[-len(fn.args.defaults):], fn.args.defaults)}
    assert defaults["guidance_scale"] == "3.5" and defaults["true_cfg_scale"] == "1.0"


def test_flux_transformer_adds_a_guidance_embedding_to_the_time_embedding():
    """FluxTransformer2DModel(guidance_embeds=True): the conditioning is time + guidance + text embeddings, the
    guidance multiplied by 1000 like the timestep, as GuidedMLP adds its scale embedding."""
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    model = diffusers.FluxTransformer2DModel(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1,
                                             attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                             pooled_projection_dim=32, axes_dims_rope=[4, 4, 8], guidance_embeds=True)
    emb = model.time_text_embed
    pooled = torch.randn(1, 32)

    def cond(t, g):
        return emb(torch.tensor([1000.0 * t]), torch.tensor([1000.0 * g]), pooled)
    with torch.no_grad():
        torch.testing.assert_close(cond(0.2, 1.0) + cond(0.7, 4.0), cond(0.2, 4.0) + cond(0.7, 1.0), rtol=1e-5,
                                   atol=1e-5)
        seen = []
        hook = emb.register_forward_hook(lambda m, a, o: seen.append(a))
        model(hidden_states=torch.randn(1, 4, 4), encoder_hidden_states=torch.randn(1, 3, 32),
              pooled_projections=pooled, timestep=torch.tensor([0.3]), img_ids=torch.zeros(4, 3),
              txt_ids=torch.zeros(3, 3), guidance=torch.tensor([3.5]), return_dict=False)
        hook.remove()
    timestep, guidance = seen[0][0], seen[0][1]
    torch.testing.assert_close(guidance, torch.tensor([3500.0]))
    torch.testing.assert_close(timestep, torch.tensor([300.0]))
    assert "guidance_embeds" in inspect.signature(diffusers.FluxTransformer2DModel).parameters


def test_bad_input_of_from_teacher():
    with pytest.raises(TypeError, match="teacher must be a cfglab.MLP"):
        GuidedMLP.from_teacher(ExactDenoiser(mix, path))
