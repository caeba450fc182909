"""Self-contained HTML for the book's interactive figures: everything inline (images as data URIs, inline
``<style>`` and ``<script>``), nothing fetched from the network, so a page works offline and from ``file://``."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from .plot import grid


class HTMLView:
    """A block of self-contained HTML that Jupyter and Jupyter Book display as ``text/html``."""

    def __init__(self, html_text: str):
        if not isinstance(html_text, str):
            raise TypeError(f"html_text must be a str, got {type(html_text).__name__}")
        self.html = html_text

    def _repr_html_(self) -> str:
        return self.html

    @property
    def nbytes(self) -> int:
        """Size of the HTML in bytes (UTF-8): what the view adds to a page."""
        return len(self.html.encode("utf8"))

    def __repr__(self) -> str:
        return f"HTMLView({self.nbytes / 1e6:.2f} MB of self-contained HTML)"


def png_bytes(fig: Figure, dpi: int, colors: int = 64) -> bytes:
    """A figure as PNG bytes, reduced to a palette of ``colors`` colours (a quarter of the size of full RGBA for
    plots of flat shades and points)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return quantize_png(buf.getvalue(), colors)


def quantize_png(png: bytes, colors: int = 64) -> bytes:
    """Re-encode PNG bytes with a palette of ``colors`` colours (median cut)."""
    from PIL import Image  # Pillow comes with matplotlib

    out = io.BytesIO()
    with Image.open(io.BytesIO(png)) as im:
        im.convert("RGB").quantize(colors, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
    return out.getvalue()


def quantize_png_uris(html_text: str, colors: int = 64) -> str:
    """Every ``data:image/png;base64,...`` URI in an HTML text re-encoded by :func:`quantize_png` (matplotlib's
    JS animation breaks its base64 lines with a backslash-newline, a JavaScript line continuation)."""
    def one(m: re.Match[str]) -> str:
        return png_uri(quantize_png(base64.b64decode(m.group(1).replace("\\\n", "")), colors))

    return re.sub(r"data:image/png;base64,((?:[A-Za-z0-9+/=]|\\\n)+)", one, html_text)


def png_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def density_grid(log_prob: Callable[[Tensor], Tensor], lim: float, n: int = 120) -> Any:
    """``exp(log_prob)`` on an n x n grid over [-lim, lim]^2 (rows are y), as a numpy array for :func:`show_density`."""
    pts, _, _ = grid(lim, n)
    with torch.no_grad():
        return torch.exp(log_prob(pts)).reshape(n, n).numpy()


def show_density(ax: Axes, density: Any, lim: float, levels: int = 7) -> Axes:
    """Draw a density grid as an image in ``levels`` shades of grey (flat shades keep the PNG small), darkest at
    the mode but light enough for points drawn on top."""
    cmap = colormaps["Greys"].resampled(levels)
    ax.imshow(density, extent=(-lim, lim, -lim, lim), origin="lower", cmap=cmap, vmin=0, vmax=1.5 * density.max(),
              interpolation="nearest")
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xticks=[], yticks=[], aspect="equal")
    return ax


def draw_samples_and_field(axes: Sequence[Axes], x: Tensor, tails: Tensor, heads: Tensor, densities: Sequence[Any],
                           lim: float, titles: Sequence[str]) -> None:
    """The explorer's two panels: samples ``x`` over ``densities[0]``; arrows a third of the way from ``tails``
    to ``heads`` (x_t to the guided estimate of its clean point) over ``densities[1]``."""
    a, b = axes
    for ax, density, title in zip(axes, densities, titles):
        ax.clear()
        show_density(ax, density, lim)
        ax.set_title(title, fontsize=9)
    xs = x.detach().double().cpu().numpy()
    a.scatter(xs[:, 0], xs[:, 1], s=1.5, alpha=0.5, color="C3", linewidths=0)
    p, d = tails.detach().double().cpu().numpy(), (heads - tails).detach().double().cpu().numpy()
    b.quiver(p[:, 0], p[:, 1], d[:, 0], d[:, 1], angles="xy", scale_units="xy", scale=3, width=0.006, color="C0")


_SWITCHER_JS = """(function () {
  var root = document.getElementById("%(id)s");
  var data = JSON.parse(root.querySelector("script[type='application/json']").textContent);
  var img = root.querySelector("img"), range = root.querySelector("input[type=range]");
  var value = root.querySelector(".cfglab-value"), caption = root.querySelector(".cfglab-caption");
  var buttons = Array.prototype.slice.call(root.querySelectorAll("button"));
  var group = data.start[0];
  function show() {
    var i = parseInt(range.value, 10);
    img.src = data.frames[group][i];
    img.alt = data.groups[group] + ", " + data.label + " " + data.steps[i];
    value.textContent = data.label + " = " + data.steps[i];
    caption.textContent = data.captions[group][i];
    buttons.forEach(function (b, k) { b.setAttribute("aria-pressed", k === group ? "true" : "false"); });
  }
  range.addEventListener("input", show);
  buttons.forEach(function (b, k) { b.addEventListener("click", function () { group = k; show(); }); });
  show();
})();"""


def frame_switcher(frames: Sequence[Sequence[str]], captions: Sequence[Sequence[str]], groups: Sequence[str],
                   steps: Sequence[str], *, label: str, start: tuple[int, int] = (0, 0), title: str = "") -> str:
    """HTML that shows one pre-rendered frame of a grid ``frames[group][step]`` (image URIs) at a time: one button
    per group, a range input over the steps, the image and its caption, swapped on the client by inline JS.

    The first frame is in the markup itself, so the view shows a figure even where scripts do not run."""
    if not groups or not steps:
        raise ValueError("frame_switcher needs at least one group and one step")
    if len(frames) != len(groups) or any(len(row) != len(steps) for row in frames):
        raise ValueError(f"frames must be a {len(groups)} x {len(steps)} grid (groups x steps)")
    if len(captions) != len(groups) or any(len(row) != len(steps) for row in captions):
        raise ValueError(f"captions must be a {len(groups)} x {len(steps)} grid (groups x steps)")
    g0, s0 = start
    if not (0 <= g0 < len(groups) and 0 <= s0 < len(steps)):
        raise ValueError(f"start must index the grid, got {start}")
    data = {"frames": [list(r) for r in frames], "captions": [list(r) for r in captions], "groups": list(groups),
            "steps": list(steps), "label": label, "start": [g0, s0]}
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")  # safe inside <script>
    uid = "cfglab-view-" + hashlib.sha1(blob.encode()).hexdigest()[:12]
    e = html.escape
    buttons = "".join(f'<button type="button" aria-pressed="{"true" if k == g0 else "false"}">{e(name)}</button>'
                      for k, name in enumerate(groups))
    return f"""<div class="cfglab-explorer" id="{uid}">
<style>
#{uid} {{ font-family: sans-serif; font-size: 0.9em; max-width: 100%; }}
#{uid} button {{ margin: 2px; padding: 2px 8px; border: 1px solid #888; border-radius: 4px; background: #f4f4f4; }}
#{uid} button[aria-pressed=true] {{ background: #1f77b4; color: white; }}
#{uid} input[type=range] {{ width: 18em; max-width: 60%; vertical-align: middle; }}
#{uid} img {{ display: block; max-width: 100%; height: auto; }}
</style>
{f'<div class="cfglab-title"><strong>{e(title)}</strong></div>' if title else ''}
<div class="cfglab-groups" role="group">{buttons}</div>
<div><input type="range" min="0" max="{len(steps) - 1}" step="1" value="{s0}" aria-label="{e(label)}">
 <span class="cfglab-value">{e(label)} = {e(steps[s0])}</span></div>
<img src="{frames[g0][s0]}" alt="{e(groups[g0])}, {e(label)} {e(steps[s0])}">
<div class="cfglab-caption">{e(captions[g0][s0])}</div>
<script type="application/json">{blob}</script>
<script>{_SWITCHER_JS % {"id": uid}}</script>
</div>"""


# matplotlib's to_jshtml links Font Awesome 4 from a CDN for its button icons; these glyphs replace it.
_ICONS = {"fa-minus": "\u2212", "fa-fast-backward": "|\u25c1\u25c1", "fa-step-backward": "\u25c1|",
          "fa-play fa-flip-horizontal": "\u25c0", "fa-pause": "||", "fa-play": "\u25b6",
          "fa-step-forward": "|\u25b7", "fa-fast-forward": "\u25b7\u25b7|", "fa-plus": "+"}


def offline_jshtml(html_text: str) -> str:
    """matplotlib's ``Animation.to_jshtml()`` output made offline: the remote Font Awesome stylesheet is removed
    and each ``<i class="fa ...">`` icon becomes a text glyph. Raises if a remote reference is left."""
    out = re.sub(r"<link[^>]*font-awesome[^>]*>", "", html_text, flags=re.IGNORECASE | re.DOTALL)

    def icon(m: re.Match[str]) -> str:
        classes = m.group(1).replace("fa ", "", 1).strip()
        return f'<span aria-hidden="true">{_ICONS.get(classes, "?")}</span>'

    out = re.sub(r'<i class="(fa [^"]*)"></i>', icon, out)
    if re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", out, flags=re.IGNORECASE):
        raise ValueError("the animation HTML still references a remote resource")
    return out
