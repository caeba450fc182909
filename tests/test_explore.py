"""The guidance explorer and the trajectory animations: the rule against closed forms and exact scores, the static
view's frames and controls (self-contained, nothing remote), the live widget driven through its controls' values,
and clear errors for bad arguments. Models are untrained (only the plumbing is under test) and tiny."""

import re

import pytest
import torch

import cfglab as cl
from cfglab import _views, animate
from cfglab.explore import Explorer, Setting, explorer, guidance_field, guidance_rule

REMOTE = re.compile(r"(src|href)\s*=\s*[\"']?(https?:)?//|@import|url\(\s*[\"']?(https?:)?//", re.IGNORECASE)


@pytest.fixture(scope="module")
def toy():
    mix, path = cl.make("mixture"), cl.Linear()  # three classes: a negative prompt has a label of its own
    model = cl.MLP(2, mix.num_classes, path=path, pred="velocity", width=16, depth=1, seed=0)
    return mix, path, model


def small(toy, **kw):
    mix, _, model = toy
    return Explorer(model, mix, 0, **{"n": 40, "steps": 3, "dpi": 24, **kw})


def preds(n=6, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, n, d, generator=g, dtype=torch.float64)


# -- the rule -------------------------------------------------------------------------------------------------------

def test_rule_is_cfg_and_scale_one_is_cond():
    c, u, _ = preds()
    assert torch.allclose(guidance_rule(Setting(scale=3.0), c, u), u + 3 * (c - u))
    assert torch.equal(guidance_rule(Setting(scale=1.0), c, u), c)


def test_interval_guides_inside_and_returns_cond_outside():
    c, u, _ = preds()
    t = torch.tensor([0.1, 0.2, 0.5, 0.8, 0.9, 0.95], dtype=torch.float64)
    out = guidance_rule(Setting(scale=4.0, interval=(0.2, 0.8)), c, u, t=t)
    inside = (t >= 0.2) & (t <= 0.8)
    assert torch.allclose(out[inside], (u + 4 * (c - u))[inside])
    assert torch.equal(out[~inside], c[~inside])


def test_negative_weight_w_minus_one_is_label_replacement():
    # n + w (c - n) == u + w (c - u) - (w - 1) (n - u): cl.guided(..., negative=k) is this dial at w - 1
    c, u, n = preds()
    w = 3.5
    out = guidance_rule(Setting(scale=w, negative=1, negative_weight=w - 1), c, u, n)
    assert torch.allclose(out, n + w * (c - n))


def test_rescale_one_gives_every_row_the_size_of_cond():
    c, u, _ = preds()
    out = guidance_rule(Setting(scale=5.0, rescale=1.0), c, u)
    assert torch.allclose(out.pow(2).mean(1).sqrt(), c.pow(2).mean(1).sqrt())
    g = u + 5 * (c - u)
    assert torch.allclose(out / g, (out / g)[:, :1].expand_as(g))  # a per-row rescale keeps the direction


def test_rule_needs_t_for_an_interval_and_neg_for_a_negative_weight():
    c, u, _ = preds()
    with pytest.raises(ValueError, match="t is required"):
        guidance_rule(Setting(scale=2.0, interval=(0.1, 0.5)), c, u)
    with pytest.raises(ValueError, match="neg is required"):
        guidance_rule(Setting(negative=1, negative_weight=1.0), c, u)


def test_exact_field_is_exact_cfg_of_the_mixture_scores(toy):
    # CFG is affine with weights summing to one, so combining in x0 space equals CFG on the exact scores
    mix, path, model = toy
    g = torch.Generator().manual_seed(1)
    x = 2 * torch.randn(50, 2, generator=g, dtype=torch.float64)
    t = torch.full((50,), 0.4, dtype=torch.float64)
    got = guidance_field(model, mix, 2, Setting(scale=3.0, exact=True))(x, t)
    want = cl.combine(mix.score_fn(path, 2), mix.score_fn(path), 3.0)(x, t)
    assert torch.allclose(got, want, rtol=1e-9, atol=1e-9)
    neg = guidance_field(model, mix, 2, Setting(scale=3.0, negative=0, negative_weight=2.0, exact=True))(x, t)
    want = cl.combine(mix.score_fn(path, 2), mix.score_fn(path, 0), 3.0)(x, t)    # weight w - 1: replacement
    assert torch.allclose(neg, want, rtol=1e-9, atol=1e-9)


def test_model_field_at_scale_one_is_the_conditional_prediction(toy):
    mix, _, model = toy
    x = torch.randn(20, 2, generator=torch.Generator().manual_seed(2))
    t = torch.full((20,), 0.3)
    got = guidance_field(model, mix, 1, Setting())(x, t)
    assert torch.allclose(got, model.predict(x, t, 1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kwargs, error, phrase", [
    ({"scale": "3"}, TypeError, "scale"),
    ({"interval": (0.8, 0.2)}, ValueError, "lo <= hi"),
    ({"interval": (0.1, 1.5)}, ValueError, "interval"),
    ({"interval": 0.5}, TypeError, "interval"),
    ({"rescale": 1.5}, ValueError, "rescale"),
    ({"negative": -1}, ValueError, "negative"),
    ({"negative_weight": float("nan")}, ValueError, "negative_weight"),
    ({"exact": 1}, TypeError, "exact"),
    ({"negative_weight": 1.0}, ValueError, "needs the label of a negative prompt"),
])
def test_bad_settings_raise(kwargs, error, phrase):
    with pytest.raises(error, match=phrase):
        Setting(**kwargs)


# -- the explorer ---------------------------------------------------------------------------------------------------

def test_scale_one_metrics_match_the_unguided_model(toy):
    mix, path, model = toy
    ex = small(toy, n=200, steps=6)
    with torch.no_grad():
        plain = cl.ode(cl.guided(model, 0, 1.0), ex.x1, path, 6, method="euler", spacing="uniform")
    got, want = ex.measure(ex.sample(Setting())), ex.measure(plain)
    assert got["adherence"] == want["adherence"]
    assert abs(got["diversity"] - want["diversity"]) < 1e-4 and abs(got["sw"] - want["sw"]) < 1e-4


def test_static_view_has_every_frame_and_control_and_nothing_remote(toy):
    ex = small(toy)
    scales = (0.0, 1.0, 4.0)
    view = ex.precompute(scales)
    html = view.html
    presets = ex.presets()
    assert len(presets) == 5 and any(name.startswith("negative") for name in presets)
    assert html.count("<button") == len(presets)
    assert len(re.findall(r'<input type="range" min="0" max="2"', html)) == 1
    assert html.count("data:image/png;base64,") == len(presets) * len(scales) + 1  # + the first frame in <img>
    assert set(ex.grid) == set(presets) and all(len(v) == len(scales) for v in ex.grid.values())
    assert not REMOTE.search(html) and "<script src" not in html
    assert ex.static is view and view.nbytes < 3e6
    bundle = ex._repr_mimebundle_()
    assert bundle["text/html"] == html and "application/vnd.jupyter.widget-view+json" in bundle


def test_static_view_starts_at_scale_one_and_its_metrics_are_the_captions(toy):
    ex = small(toy)
    ex.precompute((0.0, 1.0, 3.0), {"CFG": Setting(), "exact": Setting(exact=True)})
    assert 'value="1"' in ex.static.html and "guidance scale w = 1" in ex.static.html
    assert ex.caption(ex.grid["exact"][2]) in ex.static.html


def test_live_widget_redraws_on_every_control(toy):
    ex = small(toy, steps=4)  # 4 uniform steps put one at t = 0.5, inside the interval below
    ui = ex.ui
    assert ui is ex.ui and ex.image.value and "adherence" in ex.readout.value
    seen = {bytes(ex.image.value)}
    for name, value in (("scale", 4.0), ("negative", 1), ("interval_on", True), ("rescale", 0.5), ("exact", True),
                        ("t", 0.2)):
        before = dict(ex.metrics)
        ex.controls[name].value = value
        assert bytes(ex.image.value) not in seen, name  # a new picture for every change
        seen.add(bytes(ex.image.value))
        if name != "t":  # the field time changes the picture, not the samples
            assert ex.metrics != before, name
    assert ex.setting == Setting(scale=4.0, interval=(0.2, 0.8), rescale=0.5, negative=1, negative_weight=1.0,
                                 exact=True)
    assert ex.readout.value.count(f"{ex.metrics['adherence']:.3f}") >= 1


def test_explorer_function_precomputes(toy):
    mix, _, model = toy
    ex = explorer(model, mix, 1, scales=(1.0, 2.0), presets={"CFG": Setting()}, n=30, steps=2, dpi=24)
    assert ex.static is not None and list(ex.grid) == ["CFG"]
    assert explorer(model, mix, 1, scales=None, n=30, steps=2).static is None


@pytest.mark.parametrize("change, error, phrase", [
    ({"model": "net"}, TypeError, "model"),
    ({"mixture": "toy"}, TypeError, "mixture"),
    ({"y": 3}, ValueError, "y must be class labels"),
    ({"y": 1.0}, TypeError, "y"),
    ({"n": 1}, ValueError, "n"),
    ({"steps": 0}, ValueError, "steps"),
    ({"t": 2.0}, ValueError, "t"),
    ({"space": "logits"}, ValueError, "space"),
    ({"spacing": "linear"}, ValueError, "spacing"),
])
def test_explorer_bad_arguments(toy, change, error, phrase):
    mix, _, model = toy
    args = {"model": model, "mixture": mix, "y": 0, **change}
    with pytest.raises(error, match=phrase):
        Explorer(args.pop("model"), args.pop("mixture"), args.pop("y"), **args)


def test_bad_calls_name_the_argument(toy):
    mix, path, model = toy
    ex = small(toy)
    x = torch.zeros(4, 2)
    cases = [
        (lambda: guidance_field(model, mix, 3, Setting()), ValueError, "y must be class labels"),
        (lambda: guidance_field(model, mix, 0, Setting(negative=5, negative_weight=1.0)), ValueError, "negative"),
        (lambda: guidance_field(model, mix, 0, Setting(), space="logits"), ValueError, "space"),
        (lambda: guidance_field(model, mix, 0, Setting(), kind="probability"), ValueError, "kind"),
        (lambda: guidance_field(model, mix, 0, Setting())(x, torch.tensor(1.5)), ValueError, "t must lie in [0, 1]"),
        (lambda: ex.sample("CFG"), TypeError, "setting must be a cfglab.explore.Setting"),
        (lambda: guidance_rule({"scale": 2.0}, x, x), TypeError, "setting"),
        (lambda: ex.render(Setting(), t=-0.5), ValueError, "t"),
        (lambda: ex.measure(torch.zeros(1, 2)), ValueError, "at least 2 samples"),
        (lambda: ex.precompute(("one",)), TypeError, "scales"),
        (lambda: explorer(model, mix, 0, scales=(1.0,), presets={}, n=10, steps=1), ValueError, "at least one"),
    ]
    for call, error, phrase in cases:
        with pytest.raises(error, match=re.escape(phrase)):
            call()


def test_explorer_rejects_a_model_of_other_classes(toy):
    mix, path, _ = toy
    with pytest.raises(ValueError, match="share the classes"):
        Explorer(cl.MLP(2, 2, path=path, width=8, depth=1), mix, 0)


def test_precompute_bad_arguments(toy):
    ex = small(toy)
    with pytest.raises(ValueError, match="at least one"):
        ex.precompute(())
    with pytest.raises(TypeError, match="Setting"):
        ex.precompute((1.0,), {"CFG": 3.0})


# -- animations -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(toy):
    mix, path, model = toy
    x1 = path.prior(30, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return [cl.ode(cl.guided(model, 0, w), x1, path, 12, method="euler", return_trajectory=True,
                       spacing="uniform")[1] for w in (1.0, 4.0)]


def test_frame_indices_cover_the_run_and_hold_the_end():
    assert animate.frame_indices(5, 40) == [0, 1, 2, 3, 4]
    idx = animate.frame_indices(100, 12, hold=2)
    assert len(idx) == 12 and idx[0] == 0 and idx[-3:] == [99, 99, 99] and idx == sorted(idx)
    with pytest.raises(ValueError, match="hold"):
        animate.frame_indices(10, 4, hold=3)


def test_animation_embeds_its_frames_offline(toy, runs):
    mix = toy[0]
    view = animate.trajectories(runs, ["w = 1", "w = 4"], background=lambda x: mix.log_prob(x, 0), frames=10,
                                hold=2, dpi=24, count=20)
    html = view.html
    assert html.count("data:image/png;base64,") == 10
    assert 'type="range"' in html and html.count("<button") == 9
    assert "font-awesome" not in html and 'class="fa' not in html and not REMOTE.search(html)


@pytest.mark.parametrize("kwargs, error, phrase", [
    ({"frames": 41}, ValueError, "frames"),
    ({"titles": ["one"]}, ValueError, "titles"),
    ({"runs": []}, TypeError, "runs"),
    ({"runs": ["traj"]}, TypeError, "runs"),
    ({"count": 0}, ValueError, "count"),
    ({"embed_limit_mb": 0.001}, ValueError, "embed_limit_mb"),
])
def test_animation_bad_arguments(runs, kwargs, error, phrase):
    args = {"runs": runs, "titles": ["a", "b"], "dpi": 24, "frames": 6, **kwargs}
    with pytest.raises(error, match=phrase):
        animate.trajectories(args.pop("runs"), args.pop("titles"), **args)


def test_animation_rejects_runs_on_different_grids(runs, toy):
    mix, path, model = toy
    x1 = path.prior(30, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        other = cl.ode(cl.guided(model, 0, 1.0), x1, path, 5, method="euler", return_trajectory=True)[1]
    with pytest.raises(ValueError, match="time grid"):
        animate.trajectories([runs[0], other], ["a", "b"])


# -- the HTML helpers -----------------------------------------------------------------------------------------------

def test_offline_jshtml_replaces_the_font_awesome_link_and_icons():
    page = ('<link rel="stylesheet"\nhref="https://maxcdn.bootstrapcdn.com/font-awesome/4.4.0/css/font-awesome.min.css">'
            '<button><i class="fa fa-play"></i></button>')
    out = _views.offline_jshtml(page)
    assert "https" not in out and "\u25b6" in out
    with pytest.raises(ValueError, match="remote"):
        _views.offline_jshtml('<script src="https://cdn.example/x.js"></script>')


def test_frame_switcher_checks_its_grid():
    with pytest.raises(ValueError, match="grid"):
        _views.frame_switcher([["a"]], [["c"]], ["g1", "g2"], ["1"], label="w")
    with pytest.raises(ValueError, match="start"):
        _views.frame_switcher([["a"]], [["c"]], ["g"], ["1"], label="w", start=(0, 3))
    with pytest.raises(TypeError, match="html_text"):
        _views.HTMLView(b"<p>")


def test_a_widget_of_ipywidgets_7_is_displayed_through_its_model_id():
    """ipywidgets 7 (Colab's for years) has no _repr_mimebundle_; the explorer still carries its live view."""
    from cfglab._live import widget_bundle

    class Widget7:  # what an ipywidgets 7 widget offers: a model id, display through _ipython_display_
        model_id = "abc123"

        def __repr__(self):
            return "VBox(...)"

    bundle = widget_bundle(Widget7())
    assert bundle["application/vnd.jupyter.widget-view+json"] == {"version_major": 2, "version_minor": 0,
                                                                   "model_id": "abc123"}
    import ipywidgets

    w = ipywidgets.Button()
    assert widget_bundle(w)["application/vnd.jupyter.widget-view+json"]["model_id"] == w.model_id
