"""Animations of sampling trajectories, as self-contained HTML that plays in Jupyter and in the static book.

:func:`trajectories` draws particles of several runs side by side (say CFG at w = 1, 3, 7 from one prior draw)
flowing from noise (t = 1) to data, over a fixed background density, and returns matplotlib's JavaScript
animation (``FuncAnimation.to_jshtml``) with every frame embedded as a PNG and nothing loaded from the network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib
import torch
from matplotlib.animation import FuncAnimation
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from torch import Tensor

from . import _checks, _views
from .samplers import Trajectory

MAX_FRAMES = 40


def frame_indices(length: int, frames: int, hold: int = 0) -> list[int]:
    """Indices into a trajectory of ``length`` states for an animation of at most ``frames`` frames: evenly
    spaced from the first state to the last, then the last repeated ``hold`` times (a pause on the result)."""
    length, frames = _checks.count("length", length), _checks.count("frames", frames, minimum=2)
    hold = _checks.count("hold", hold, minimum=0)
    if hold >= frames - 1:
        raise ValueError(f"hold must leave at least two moving frames, got hold={hold} for frames={frames}")
    k = min(length, frames - hold)
    idx = torch.linspace(0, length - 1, k).round().long().unique().tolist()
    return idx + [length - 1] * hold


def trajectories(runs: Sequence[Trajectory], titles: Sequence[str], *,
                 background: Callable[[Tensor], Tensor] | None = None, lim: float = 3.0, count: int = 300,
                 frames: int = 32, hold: int = 4, tail: int = 3, size: float = 2.6, dpi: int = 72,
                 interval: int = 120, embed_limit_mb: float = 4.0) -> _views.HTMLView:
    """Animate sampling runs side by side: one panel per :class:`~cfglab.samplers.Trajectory` (states (T, n, 2),
    all with the same times), the first ``count`` particles with a short ``tail`` of their last steps, over the
    density ``exp(background(x))`` if given. At most ``frames`` frames (<= 40), the last ``hold`` of them
    pausing on the samples; ``interval`` ms per frame. Returns the self-contained HTML (frames as PNG data URIs,
    inline controls); raises if the frames exceed ``embed_limit_mb`` instead of silently dropping some."""
    runs = list(runs)
    if not runs or not all(isinstance(r, Trajectory) for r in runs):
        raise TypeError("runs must be a non-empty sequence of cfglab Trajectory objects (ode(..., "
                        "return_trajectory=True)[1])")
    if len(titles) != len(runs):
        raise ValueError(f"titles must name each run, got {len(titles)} titles for {len(runs)} runs")
    xs = [_checks.tensor("runs[].xs", r.xs, ndim=3, last_dim=2) for r in runs]
    ts = runs[0].ts
    if any(x.shape[0] != xs[0].shape[0] for x in xs) or any(not torch.equal(r.ts, ts) for r in runs):
        raise ValueError("runs must share one time grid (the same sampler and number of steps)")
    frames = _checks.count("frames", frames, minimum=2)
    if frames > MAX_FRAMES:
        raise ValueError(f"frames must be <= {MAX_FRAMES} (keep the page small), got {frames}")
    count, tail = _checks.count("count", count), _checks.count("tail", tail, minimum=0)
    lim, limit = _checks.scalar("lim", lim, positive=True), _checks.scalar("embed_limit_mb", embed_limit_mb,
                                                                           positive=True)
    idx = frame_indices(xs[0].shape[0], frames, hold)
    pts = [x[:, :count].detach().double().cpu().numpy() for x in xs]  # (T, count, 2) per run
    fig = Figure(figsize=(size * len(runs), size + 0.25), dpi=_checks.count("dpi", dpi, minimum=20))
    axes = fig.subplots(1, len(runs), squeeze=False)[0]
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.9, wspace=0.04)
    density = _views.density_grid(background, lim) if background is not None else None
    dots, lines, heads = [], [], []
    for ax, p, title in zip(axes, pts, titles):
        if density is not None:
            _views.show_density(ax, density, lim)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xticks=[], yticks=[], aspect="equal")
        lines.append(ax.add_collection(LineCollection([], colors="C0", linewidths=0.5, alpha=0.5)))
        dots.append(ax.scatter(p[0, :, 0], p[0, :, 1], s=4, color="C3", linewidths=0))
        heads.append((ax.set_title("", fontsize=9), str(title)))

    def draw(f: int) -> list:
        i = idx[f]
        for p, dot, line, (head, title) in zip(pts, dots, lines, heads):
            dot.set_offsets(p[i])
            line.set_segments(list(p[max(0, i - tail): i + 1].transpose(1, 0, 2)))  # (count, <=tail+1, 2)
            head.set_text(f"{title}, t = {float(ts[i]):.2f}")
        return dots

    anim = FuncAnimation(fig, draw, frames=len(idx), interval=_checks.count("interval", interval), blit=False)
    with matplotlib.rc_context({"animation.embed_limit": limit, "animation.frame_format": "png"}):
        html = anim.to_jshtml(default_mode="loop")
    embedded = html.count("data:image/png;base64")
    if embedded != len(idx):
        raise ValueError(f"only {embedded} of {len(idx)} frames fit in embed_limit_mb={limit}; raise it or use "
                         "fewer frames, a smaller size or dpi")
    return _views.HTMLView(_views.offline_jshtml(_views.quantize_png_uris(html)))
