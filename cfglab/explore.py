"""Guidance you can see: an explorer of the guidance dials on a trained 2D model and its exact toy.

The dials combine the conditional ``c``, unconditional ``u`` and negative-prompt ``n`` predictions in x0 space
(the space of chapter 9's taming rules): ``g = u + w_t (c - u) - lam_t (n - u)``, then ``g <- phi * g * rms(c) /
rms(g) + (1 - phi) * g``, with ``(w_t, lam_t) = (w, lam)`` inside the guidance interval [lo, hi] and ``(1, 0)``
outside (Kynkäänniemi et al. 2024, eq. 3), the negative term of composable diffusion (Liu et al. 2022) and the CFG
rescale of Lin et al. (2024, eq. 15-16, per-sample root mean square). :class:`Explorer` samples ~1000 points, draws
them and the field, and measures them: live in ipywidgets, and pre-rendered as self-contained HTML whose slider
swaps frames on the client.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from . import _checks, _live, _progress, _views, plot
from .data import GaussianMixture
from .guidance import in_interval, label_predictions, rescale
from .metrics import adherence, diversity, sliced_wasserstein
from .paths import PREDICTIONS, Path
from .samplers import ode

SCALES = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0)
SPACINGS = ("edm", "logsnr", "uniform")


@dataclass(frozen=True)
class Setting:
    """One position of the dials. ``scale``: the CFG scale w (1 = no guidance); ``interval``: (lo, hi), the times
    where guidance is on (None: always); ``rescale``: phi in [0, 1]; ``negative``: the label of the negative
    prompt (None: none) and ``negative_weight`` its weight lam; ``exact``: use the toy's exact scores instead of
    the trained network."""

    scale: float = 1.0
    interval: tuple[float, float] | None = None
    rescale: float = 0.0
    negative: int | None = None
    negative_weight: float = 0.0
    exact: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", _checks.scalar("scale", self.scale))
        if self.interval is not None:
            if not isinstance(self.interval, (tuple, list)) or len(self.interval) != 2:
                raise TypeError(f"interval must be None or a pair (lo, hi), got {self.interval!r}")
            lo, hi = (_checks.probability("interval", v) for v in self.interval)
            if lo > hi:
                raise ValueError(f"interval must have lo <= hi, got {self.interval}")
            object.__setattr__(self, "interval", (lo, hi))
        object.__setattr__(self, "rescale", _checks.probability("rescale", self.rescale))
        if self.negative is not None:
            _checks.count("negative", self.negative, minimum=0)
        elif self.negative_weight != 0:
            raise ValueError("negative_weight needs the label of a negative prompt (negative=...)")
        object.__setattr__(self, "negative_weight", _checks.scalar("negative_weight", self.negative_weight))
        if not isinstance(self.exact, bool):
            raise TypeError(f"exact must be a bool, got {type(self.exact).__name__}")


def _setting(setting: Any) -> Setting:
    if not isinstance(setting, Setting):
        raise TypeError(f"setting must be a cfglab.explore.Setting, got {type(setting).__name__}")
    return setting


def guidance_rule(setting: Setting, cond: Tensor, uncond: Tensor, neg: Tensor | None = None,
                  t: Tensor | None = None) -> Tensor:
    """The explorer's rule on predictions shaped (n, ...): ``u + w_t (c - u) - lam_t (n - u)``, then the rescale
    towards ``rms(c)`` (see the module docstring). ``t`` (n,) is needed only with an interval; ``neg`` only when
    ``setting.negative_weight != 0``. ``negative_weight = w - 1`` reproduces :func:`cfglab.guided` with
    ``negative=`` (which puts n in place of u): ``n + w (c - n) = u + w (c - u) - (w - 1) (n - u)``."""
    if _setting(setting).negative_weight != 0 and neg is None:
        raise ValueError("neg is required when setting.negative_weight is not 0")
    on: float | Tensor = 1.0  # where guidance is on: everywhere, or (n, 1, ...) 1 inside the interval, 0 outside
    if setting.interval is not None:
        if t is None:
            raise ValueError("t is required when setting.interval is set")
        on = in_interval(t, *setting.interval).to(cond.dtype).reshape((-1,) + (1,) * (cond.ndim - 1))
    out = torch.lerp(uncond, cond, 1.0 + on * (setting.scale - 1.0))  # u + w_t (c - u), exactly c at w_t = 1
    if neg is not None and setting.negative_weight != 0:
        out = out - on * setting.negative_weight * (neg - uncond)
    if setting.rescale > 0:
        out = rescale(out, cond, setting.rescale, center=False)
    return out


def guidance_field(model: nn.Module, mixture: GaussianMixture, y: int, setting: Setting, *, space: str = "x0",
                   kind: str = "score") -> Callable[[Tensor, Tensor], Tensor]:
    """The sampler field ``fn(x, t)`` of a setting: the predictions of ``model`` (one batched pass), or the exact
    scores of ``mixture`` when ``setting.exact``, converted to ``space``, combined by :func:`guidance_rule` and
    converted to ``kind``. The path is the model's."""
    space, kind = _checks.choice("space", space, PREDICTIONS), _checks.choice("kind", kind, PREDICTIONS)
    path = cast(Path, model.path)
    use_neg = _setting(setting).negative is not None and setting.negative_weight != 0
    labels: list[int | None] = [y, None] + ([setting.negative] if use_neg else [])
    for name, label in (("y", y), ("negative", setting.negative if use_neg else None)):
        if label is not None:
            _checks.labels(name, label, 1, mixture.num_classes, torch.device("cpu"))
    predict = label_predictions(model, labels, kind=space)

    def fn(x: Tensor, t: Tensor) -> Tensor:
        tt = _checks.times("t", t, x).expand(x.shape[0])
        if setting.exact:  # exact scores in float64, converted to the space of the rule
            xd, td = x.double(), tt.double()
            preds = [path.convert(mixture.score(xd, td, path, lab), xd, td, "score", space).to(x.dtype)
                     for lab in labels]
        else:
            preds = predict(x, tt)
        out = guidance_rule(setting, preds[0], preds[1], preds[2] if use_neg else None, tt)
        return path.convert(out, x, tt, space, kind)

    return fn


class Explorer:
    """Guidance explorer for a trained conditional 2D ``model`` and the ``mixture`` it was trained on, for class
    ``y``. ``n`` samples start from one fixed draw of the prior (``seed``), so moving a dial changes only the
    field; ``steps`` Euler (DDIM) steps, uniform in t by default (on the linear path log-SNR spacing leaves too
    few steps in the middle, where a class takes shape). Display it in Jupyter or Colab for the live UI
    (:attr:`ui`); after :meth:`precompute` the same display object also carries the static view."""

    def __init__(self, model: nn.Module, mixture: GaussianMixture, y: int, *, n: int = 1000, steps: int = 24,
                 spacing: str = "uniform", t: float = 0.5, lim: float = 3.0, dpi: int = 72, seed: int = 0,
                 space: str = "x0"):
        if not isinstance(model, nn.Module) or not hasattr(model, "null_label") or not hasattr(model, "path"):
            raise TypeError(f"model must be a conditional cfglab model (e.g. cl.MLP), got {type(model).__name__}")
        if not isinstance(mixture, GaussianMixture):
            raise TypeError(f"mixture must be a cfglab GaussianMixture, got {type(mixture).__name__}")
        if model.num_classes != mixture.num_classes or mixture.dim != 2:
            raise ValueError(f"model and mixture must share the classes of a 2D toy, got num_classes "
                             f"{model.num_classes} and {mixture.num_classes}, dim {mixture.dim}")
        _checks.labels("y", y, 1, mixture.num_classes, torch.device("cpu"))
        self.model, self.mixture, self.y, self.path = model, mixture, int(y), cast(Path, model.path)
        self.steps, self.spacing = _checks.count("steps", steps), _checks.choice("spacing", spacing, SPACINGS)
        self.dpi, self.space = _checks.count("dpi", dpi, minimum=20), _checks.choice("space", space, PREDICTIONS)
        self.t, self.lim = _checks.probability("t", t), _checks.scalar("lim", lim, positive=True)
        g = torch.Generator().manual_seed(_checks.count("seed", seed, minimum=0))
        self.x1 = self.path.prior(_checks.count("n", n, minimum=2), 2, generator=g)  # shared start at t = 1
        self.reference, _ = mixture.sample(2 * n, y, generator=g)  # exact samples of p(x | y)
        self.floor = sliced_wasserstein(mixture.sample(n, y, generator=g)[0], self.reference)  # exact n-set
        self.setting, self.metrics = Setting(), cast(dict[str, float], {})  # the live UI's current ones
        self.static: _views.HTMLView | None = None
        self.grid: dict[str, list[dict[str, float]]] = {}  # metrics of the static frames, grid[preset][i]
        self.controls: dict[str, Any] = {}  # the live UI's widgets, its image and its readout (see cfglab._live)
        self._ui = self.image = self.readout = cast(Any, None)
        self._fig = Figure(figsize=(6.4, 3.1), dpi=self.dpi)
        self._axes = self._fig.subplots(1, 2, gridspec_kw=dict(left=0.01, right=0.99, bottom=0.01, top=0.9,
                                                               wspace=0.04))
        self._densities: dict[float, Any] = {}

    def sample(self, setting: Setting) -> Tensor:
        """The n samples of a setting (probability-flow ODE from the shared prior draw)."""
        with torch.no_grad():
            field = guidance_field(self.model, self.mixture, self.y, setting, space=self.space)
            return cast(Tensor, ode(field, self.x1, self.path, self.steps, method="euler", spacing=self.spacing))

    def measure(self, x: Tensor) -> dict[str, float]:
        """Adherence (exact classifier), diversity (mean pairwise distance) and SW to exact samples of the class."""
        return {"adherence": adherence(x, self.y, self.mixture), "diversity": diversity(x),
                "sw": sliced_wasserstein(x, self.reference)}

    def render(self, setting: Setting, t: float | None = None) -> tuple[bytes, dict[str, float]]:
        """Sample a setting, draw the samples and the guided field at time t; return (PNG bytes, metrics)."""
        t = self.t if t is None else _checks.probability("t", t)
        x = self.sample(setting)
        metrics = self.measure(x)
        pts, _, _ = plot.grid(0.85 * self.lim, 11, dtype=torch.get_default_dtype())  # (121, 2) arrow tails x_t
        with torch.no_grad():
            x0 = guidance_field(self.model, self.mixture, self.y, setting, space=self.space, kind="x0")(
                pts, torch.tensor(t))
        _views.draw_samples_and_field(self._axes, x, pts, x0, (self._density(0.0), self._density(t)), self.lim,
                                      (f"samples, w = {setting.scale:g}", f"guided (x0 - x) / 3 at t = {t:.2f}"))
        return _views.png_bytes(self._fig, self.dpi), metrics

    def _density(self, t: float) -> Any:  # exact p_t(x | y) on the plotting grid, computed once per t
        if t not in self._densities:
            self._densities[t] = _views.density_grid(lambda p: self.mixture.log_prob(p, self.y, t=t, path=self.path),
                                                     self.lim)
        return self._densities[t]

    def caption(self, metrics: Mapping[str, float]) -> str:
        """One line of metrics, with the noise floor of the SW distance."""
        return (f"adherence {metrics['adherence']:.3f} | diversity {metrics['diversity']:.3f} | SW to class "
                f"{metrics['sw']:.3f} (floor {self.floor:.3f})")

    def presets(self) -> dict[str, Setting]:
        """Default static presets: plain CFG, an interval, a rescale, a negative prompt, and exact scores."""
        out = {"CFG": Setting(), "interval [0.2, 0.8]": Setting(interval=(0.2, 0.8)),
               "rescale 0.7": Setting(rescale=0.7)}
        for k in [k for k in range(self.mixture.num_classes) if k != self.y][:1]:  # the first other class, if any
            out[f"negative '{self.mixture.class_names[k]}' x 1"] = Setting(negative=k, negative_weight=1.0)
        out["exact scores"] = Setting(exact=True)
        return out

    def precompute(self, scales: Sequence[float] = SCALES, presets: Mapping[str, Setting] | None = None
                   ) -> _views.HTMLView:
        """Render every preset at every scale into a static view (also kept in ``static``, and the metrics in
        ``grid``, ``grid[preset][i]`` at ``scales[i]``): one button per preset, a slider over the scales."""
        scales = [_checks.scalar("scales", w) for w in scales]
        presets = dict(self.presets() if presets is None else presets)
        if not scales or not presets:
            raise ValueError("precompute needs at least one scale and one preset")
        frames, captions, self.grid = [], [], {}
        with _progress.bar(len(presets) * len(scales), "rendering explorer frames") as bar:  # takes seconds
            for name, base in presets.items():
                if not isinstance(base, Setting):
                    raise TypeError(f"presets must map names to Setting, got {type(base).__name__} for {name!r}")
                rendered = []
                for w in scales:
                    rendered.append(self.render(replace(base, scale=w)))
                    bar.update()
                frames.append([_views.png_uri(png) for png, _ in rendered])
                captions.append([self.caption(m) for _, m in rendered])
                self.grid[name] = [m for _, m in rendered]
        start = min(range(len(scales)), key=lambda i: abs(scales[i] - 1.0))
        self.static = view = _views.HTMLView(_views.frame_switcher(
            frames, captions, list(presets), [f"{w:g}" for w in scales], label="guidance scale w", start=(0, start),
            title=f"class '{self.mixture.class_names[self.y]}': samples (left), guided field (right)"))
        return view

    @property
    def ui(self) -> Any:
        """The live ipywidgets UI (built on first use; needs ``pip install ipywidgets``)."""
        self._ui = self._ui if self._ui is not None else _live.build_ui(self)
        return self._ui

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        data: dict[str, Any] = {"text/plain": repr(self)}
        with contextlib.suppress(ImportError):  # without ipywidgets: the static view alone
            data.update(_live.widget_bundle(self.ui))
        return data | ({"text/html": self.static.html} if self.static is not None else {})

    def __repr__(self) -> str:
        return f"Explorer(class {self.y}, n={self.x1.shape[0]}, steps={self.steps}, static view: {self.static!r})"


def explorer(model: nn.Module, mixture: GaussianMixture, y: int, *, scales: Sequence[float] | None = SCALES,
             presets: Mapping[str, Setting] | None = None, **kwargs: Any) -> Explorer:
    """An :class:`Explorer` with its static view precomputed (``scales=None`` skips it): display it and Jupyter or
    Colab show the live ipywidgets UI, a static HTML page the pre-rendered view. Keyword arguments go to
    :class:`Explorer`."""
    ex = Explorer(model, mixture, y, **kwargs)
    if scales is not None:
        ex.precompute(scales, presets)
    return ex
