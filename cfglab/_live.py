"""The live ipywidgets UI of :class:`cfglab.explore.Explorer`: sliders and toggles for the dials, an image of the
samples and the field, and a line of metrics, redrawn by Python on every change (Jupyter, Colab, VS Code)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .explore import Explorer, Setting


def widget_bundle(widget: Any) -> dict[str, Any]:
    """The mime bundle that displays a widget: ipywidgets 8's ``_repr_mimebundle_``, or, for ipywidgets 7 (which
    Colab shipped for years and which displays through ``_ipython_display_``), the same widget-view entry built
    from the model id, so that one display object can carry the live view next to a static one."""
    if hasattr(widget, "_repr_mimebundle_"):
        return dict(widget._repr_mimebundle_())
    return {"text/plain": repr(widget),
            "application/vnd.jupyter.widget-view+json": {"version_major": 2, "version_minor": 0,
                                                          "model_id": widget.model_id}}


def build_ui(ex: Explorer) -> Any:
    """Build the UI of an explorer; it keeps its controls in ``ex.controls`` and redraws through :func:`redraw`."""
    try:
        import ipywidgets as W
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the live explorer needs ipywidgets: pip install 'cfglab[widgets]' (or ipywidgets); "
                          "the static view works without it") from err
    wide = {"description_width": "initial"}
    slider = dict(continuous_update=False, style=wide, layout=W.Layout(width="280px"))
    others = [(f"{name} ({k})", k) for k, name in enumerate(ex.mixture.class_names) if k != ex.y]
    c = {
        "scale": W.FloatSlider(value=1.0, min=0.0, max=10.0, step=0.25, description="guidance scale w", **slider),
        "t": W.FloatSlider(value=ex.t, min=0.02, max=0.98, step=0.02, description="field at t", **slider),
        "interval_on": W.Checkbox(value=False, description="guidance interval", indent=False,
                                  layout=W.Layout(width="140px")),
        "interval": W.FloatRangeSlider(value=(0.2, 0.8), min=0.0, max=1.0, step=0.05, description="on for t in",
                                       **slider),
        "rescale": W.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description="rescale phi", **slider),
        "negative": W.Dropdown(options=[("none", None), *others], value=None, description="negative prompt",
                               style=wide, layout=W.Layout(width="280px")),
        "negative_weight": W.FloatSlider(value=1.0, min=0.0, max=5.0, step=0.25, description="negative weight",
                                         **slider),
        "exact": W.ToggleButtons(options=[("trained model", False), ("exact scores", True)], value=False),
    }
    ex.controls = c
    ex.image = W.Image(format="png", layout=W.Layout(max_width="100%"))
    ex.readout = W.HTML()
    for control in c.values():
        control.observe(lambda _change: redraw(ex), names="value")
    rows = [W.HBox([c["scale"], c["t"]]), W.HBox([c["interval_on"], c["interval"]]),
            W.HBox([c["negative"], c["negative_weight"]]), W.HBox([c["rescale"], c["exact"]])]
    box = W.VBox([*rows, ex.image, ex.readout])
    redraw(ex)
    return box


def setting_from_controls(ex: Explorer) -> Setting:
    """The :class:`~cfglab.explore.Setting` the controls show now."""
    from .explore import Setting

    c = ex.controls
    negative = c["negative"].value
    return Setting(scale=c["scale"].value, interval=tuple(c["interval"].value) if c["interval_on"].value else None,
                   rescale=c["rescale"].value, negative=negative,
                   negative_weight=c["negative_weight"].value if negative is not None else 0.0,
                   exact=bool(c["exact"].value))


def redraw(ex: Explorer) -> None:
    """Sample the current setting, then replace the image and the metrics line."""
    ex.setting = setting_from_controls(ex)
    png, ex.metrics = ex.render(ex.setting, ex.controls["t"].value)
    ex.image.value = png
    ex.readout.value = f"<code>{html.escape(ex.caption(ex.metrics))}</code>"
