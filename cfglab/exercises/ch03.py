"""Checks for chapter 3 (flow matching): the linear interpolation and its velocity target, the conversion from a
velocity to a score on the linear path, an Euler sampler that integrates a velocity field from t = 1 to 0, and
Heun's method in t, judged by how close its samples land to the exact flow of a hidden mixture.

Time runs as everywhere in the course: t = 0 is data, t = 1 is noise, ``x_t = (1 - t) x0 + t eps``
(Liu et al. 2023 and Lipman et al. 2023 write the same path with data at t = 1).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor

from ..paths import Linear
from ._core import Verdict, _not_written, _raised_by_a_raise_statement, check_function

_PATH = Linear()


def _tcol(t: Tensor) -> Tensor:
    return t[:, None]  # (n,) -> (n, 1), broadcasts against (n, d)


def _pair_inputs(g: torch.Generator) -> dict[str, Any]:
    n, d = int(torch.randint(3, 9, (1,), generator=g)), 2
    if n == d:
        n += 1
    return {
        "x0": 1.5 * torch.randn(n, d, generator=g, dtype=torch.float64) + 1.0,
        "eps": torch.randn(n, d, generator=g, dtype=torch.float64),
        "t": 0.05 + 0.9 * torch.rand(n, generator=g, dtype=torch.float64),
    }


# -- (a) the interpolation and the flow-matching target ----------------------------------------------------------
def check_interpolate(fn: Callable[..., Tensor], *, quiet: bool = False) -> Verdict:
    """``interpolate(x0, eps, t)`` must return ``x_t = (1 - t) x0 + t eps`` for x0, eps (n, d) and t (n,)."""
    def make_inputs(g: torch.Generator) -> dict[str, Any]:
        return _pair_inputs(g)

    def reference(x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        return _PATH.noise(x0, t, eps)

    mistakes = [
        ("time runs the other way round: you put the data at t = 1 and the noise at t = 0, as the flow-matching "
         "papers do. In this course t = 0 is data and t = 1 is noise, so x_t = (1 - t) x0 + t eps "
         "(translate a paper's formula with t -> 1 - t).",
         lambda x0, eps, t: _tcol(t) * x0 + (1 - _tcol(t)) * eps),
        ("you used square roots of the weights, sqrt(1 - t) x0 + sqrt(t) eps, which is a variance-preserving "
         "path. The linear path mixes with the weights themselves: (1 - t) x0 + t eps.",
         lambda x0, eps, t: torch.sqrt(1 - _tcol(t)) * x0 + torch.sqrt(_tcol(t)) * eps),
        ("you returned x0 + t eps, which adds noise without shrinking the data (a variance-exploding path). "
         "On the linear path the data weight is 1 - t, so that x_1 is pure noise.",
         lambda x0, eps, t: x0 + _tcol(t) * eps),
    ]
    return check_function("interpolate", fn, reference, make_inputs, mistakes=mistakes, quiet=quiet)


def check_flow_matching_target(fn: Callable[..., Tensor], *, quiet: bool = False) -> Verdict:
    """``flow_matching_target(x0, eps)`` must return the velocity of one pair, ``d x_t / dt = eps - x0``."""
    def make_inputs(g: torch.Generator) -> dict[str, Any]:
        inputs = _pair_inputs(g)
        return {"x0": inputs["x0"], "eps": inputs["eps"]}

    def reference(x0: Tensor, eps: Tensor) -> Tensor:
        t = torch.full((x0.shape[0],), 0.5, dtype=x0.dtype)  # the linear path's target does not depend on t
        return _PATH.target("velocity", x0, eps, t)

    mistakes = [
        ("the sign is flipped. x_t = (1 - t) x0 + t eps moves from x0 towards eps as t grows, so its time "
         "derivative is eps - x0. You returned x0 - eps: the velocity in the papers' convention with data at "
         "t = 1, or the direction a sample moves while we sample from t = 1 down to 0.",
         lambda x0, eps: x0 - eps),
        ("you returned the noise eps (the target of an eps-predicting diffusion model). The flow-matching target is "
         "the time derivative of x_t = (1 - t) x0 + t eps, that is eps - x0.",
         lambda x0, eps: eps),
        ("you returned the clean sample x0 (the target of an x0-predicting model). The flow-matching target is "
         "the time derivative of x_t = (1 - t) x0 + t eps, that is eps - x0.",
         lambda x0, eps: x0),
        ("you returned eps + x0. Differentiate (1 - t) x0 + t eps in t: the x0 term contributes -x0.",
         lambda x0, eps: eps + x0),
    ]
    return check_function("flow_matching_target", fn, reference, make_inputs, mistakes=mistakes, quiet=quiet)


# -- (b) velocity -> score on the linear path --------------------------------------------------------------------
def check_velocity_to_score(fn: Callable[..., Tensor], *, quiet: bool = False) -> Verdict:
    """``velocity_to_score(v, x, t)`` must return ``-(x + (1 - t) v) / t`` (linear path, t of shape (n,))."""
    def make_inputs(g: torch.Generator) -> dict[str, Any]:
        inputs = _pair_inputs(g)
        n = inputs["x0"].shape[0]
        return {"v": 2 * torch.randn(n, 2, generator=g, dtype=torch.float64),
                "x": 1.5 * torch.randn(n, 2, generator=g, dtype=torch.float64),
                "t": inputs["t"]}

    def reference(v: Tensor, x: Tensor, t: Tensor) -> Tensor:
        return _PATH.convert(v, x, t, "velocity", "score")

    def c(t: Tensor) -> Tensor:
        return _tcol(t)

    mistakes = [
        ("the sign is flipped. The noise estimate is eps = x + (1 - t) v and Tweedie's formula gives "
         "score = -eps / sigma = -(x + (1 - t) v) / t.",
         lambda v, x, t: (x + (1 - c(t)) * v) / c(t)),
        ("t and 1 - t are swapped. On the linear path sigma = t and alpha = 1 - t: the noise estimate is "
         "x + (1 - t) v and the score divides it by -sigma = -t.",
         lambda v, x, t: -(x + c(t) * v) / (1 - c(t))),
        ("you divided by 1 - t. The score is -eps / sigma and the noise level of the linear path is sigma = t, "
         "so divide by t (1 - t is the signal level alpha).",
         lambda v, x, t: -(x + (1 - c(t)) * v) / (1 - c(t))),
        ("the noise estimate should be x + (1 - t) v (from x = (1 - t) x0 + t eps and v = eps - x0), "
         "not x + t v.",
         lambda v, x, t: -(x + c(t) * v) / c(t)),
        ("you returned the noise estimate eps = x + (1 - t) v. The score is -eps / sigma = -eps / t.",
         lambda v, x, t: x + (1 - c(t)) * v),
        ("you divided by t squared. Tweedie's formula is score = -eps / sigma with a single power of sigma = t "
         "(the t^2 in (alpha x0 - x) / sigma^2 cancels against the t in x - alpha x0 = t eps).",
         lambda v, x, t: -(x + (1 - c(t)) * v) / c(t) ** 2),
        ("the x term is missing: the noise estimate is x + (1 - t) v, not (1 - t) v.",
         lambda v, x, t: -(1 - c(t)) * v / c(t)),
    ]
    return check_function("velocity_to_score", fn, reference, make_inputs, mistakes=mistakes, quiet=quiet)


# -- (c) Euler from t = 1 to t = 0 ------------------------------------------------------------------------------
def _gaussian_velocity(mean: Tensor, std: float) -> Callable[[Tensor, Any], Tensor]:
    """The exact flow-matching velocity of data ``N(mean, std^2 I)`` on the linear path (closed form):
    ``v(x, t) = -mean + (t - (1 - t) std^2) / ((1 - t)^2 std^2 + t^2) * (x - (1 - t) mean)``,
    finite on all of [0, 1] (at t = 1 it is ``x - mean``). ``t`` may be a float or a (n,) tensor."""
    def v(x: Tensor, t: Any) -> Tensor:
        t = torch.as_tensor(t, dtype=x.dtype)
        if t.ndim == 1:
            t = t[:, None]
        var = (1 - t) ** 2 * std**2 + t**2
        return -mean.to(x) + (t - (1 - t) * std**2) / var * (x - (1 - t) * mean.to(x))
    return v


def _euler(velocity_fn: Callable[..., Tensor], x1: Tensor, steps: int, *, start: float = 1.0, stop: float = 0.0,
           sign: float = -1.0, at_end: bool = False, h: float | None = None, points: int | None = None) -> Tensor:
    """Euler on a uniform grid; the keyword arguments build the known wrong variants."""
    ts = torch.linspace(start, stop, (points or steps + 1), dtype=torch.float64)
    step = h if h is not None else abs(stop - start) / (len(ts) - 1)
    x = x1
    for i in range(len(ts) - 1):
        t = ts[i + 1] if at_end else ts[i]
        x = x + sign * step * velocity_fn(x, t.expand(x.shape[0]).to(x.dtype))
    return x


def check_euler_sample(fn: Callable[..., Tensor], *, quiet: bool = False) -> Verdict:
    """``euler_sample(velocity_fn, x1, steps)`` must take ``steps`` Euler steps of size 1/steps from t = 1 down to
    t = 0, ``x <- x - v(x, t) / steps`` with v evaluated at the start of each step, and return x at t = 0."""
    def make_inputs(g: torch.Generator) -> dict[str, Any]:
        n = int(torch.randint(5, 12, (1,), generator=g))
        mean = 2 * torch.rand(2, generator=g, dtype=torch.float64) - 1
        std = 0.2 + 0.5 * float(torch.rand(1, generator=g))
        return {"velocity_fn": _gaussian_velocity(mean, std),
                "x1": torch.randn(n, 2, generator=g, dtype=torch.float64),
                "steps": int(torch.randint(3, 10, (1,), generator=g))}

    def reference(velocity_fn: Callable[..., Tensor], x1: Tensor, steps: int) -> Tensor:
        return _euler(velocity_fn, x1, steps)

    mistakes = [
        ("the step has the wrong sign. Time decreases by 1/steps at each step (dt = -1/steps), so the Euler "
         "update is x <- x - v(x, t) / steps; you moved along +v, back towards noise.",
         lambda velocity_fn, x1, steps: _euler(velocity_fn, x1, steps, sign=+1.0)),
        ("your times run from t = 0 up to t = 1, the noising direction. Sampling starts from noise at t = 1 and "
         "integrates down to the data at t = 0: t = 1, 1 - 1/steps, ..., 1/steps, with x <- x - v / steps.",
         lambda velocity_fn, x1, steps: _euler(velocity_fn, x1, steps, start=0.0, stop=1.0, sign=+1.0)),
        ("your times run from t = 0 up to t = 1. Sampling starts from noise at t = 1 and integrates down to the "
         "data at t = 0: evaluate v at t = 1, 1 - 1/steps, ..., 1/steps.",
         lambda velocity_fn, x1, steps: _euler(velocity_fn, x1, steps, start=0.0, stop=1.0)),
        ("you evaluate the velocity at the end of each step (t - 1/steps). Euler's method uses the velocity at "
         "the start of the step: t = 1, 1 - 1/steps, ..., 1/steps.",
         lambda velocity_fn, x1, steps: _euler(velocity_fn, x1, steps, at_end=True)),
        ("each step should have size 1/steps (the interval [0, 1] split into `steps` pieces); you used size 1.",
         lambda velocity_fn, x1, steps: _euler(velocity_fn, x1, steps, h=1.0)),
        ("your time grid has `steps` points, so you take only steps - 1 steps. Use steps + 1 grid points, "
         "e.g. torch.linspace(1, 0, steps + 1), and take one step per interval.",
         lambda velocity_fn, x1, steps: _euler(velocity_fn, x1, steps, points=steps)),
    ]
    return check_function("euler_sample", fn, reference, make_inputs, mistakes=mistakes, quiet=quiet)


# -- (d) Heun in t, judged by how close its samples land to the exact flow ---------------------------------------
# A hidden three-class mixture; its exact velocity field on the linear path, and its exact flow from the same noise
# (integrated with 256 steps of Heun in t, accurate to about 1e-5). Heun's method is second order in t: with 8 and
# 16 uniform steps it lands about 1e-2 and 3e-3 from the exact flow, Euler with the same grid about 0.14 and 0.07.
HEUN_SAMPLES, HEUN_STEPS = 1000, (8, 16)
HEUN_HEADROOM = 3.0  # any second-order method within 3x of Heun's own error passes


def _heun_mixture() -> Any:
    from ..data import GaussianMixture

    means = [[0.0, 1.5], [-1.299, -0.75], [1.299, -0.75]]
    return GaussianMixture(means, [0.35, 0.3, 0.4], [0.5, 0.3, 0.2], class_names=["A", "B", "C"])


def _mixture_velocity(mix: Any) -> Callable[[Tensor, Tensor], Tensor]:
    def v(x: Tensor, t: Tensor) -> Tensor:
        return _PATH.convert(mix.score(x, t, _PATH), x, t, "score", "velocity")
    return v


def heun_sample_reference(velocity_fn: Callable[[Tensor, Tensor], Tensor], x1: Tensor, ts: Tensor) -> Tensor:
    """Heun's method on ``dx/dt = v(x, t)`` over the decreasing grid ``ts`` (Heun 1900; Karras et al. 2022,
    alg. 1, here in t): an Euler trial step, the velocity again at its end, a step with the average of the two."""
    x = x1
    for t, s in zip(ts[:-1], ts[1:]):
        tt, ss = t.expand(x.shape[0]), s.expand(x.shape[0])
        v1 = velocity_fn(x, tt)
        v2 = velocity_fn(x + (s - t) * v1, ss)
        x = x + (s - t) * (v1 + v2) / 2
    return x


@functools.lru_cache(maxsize=1)
def _heun_problem() -> tuple[Any, Tensor, Tensor, dict[int, float], dict[int, float], dict[int, Tensor]]:
    """The hidden mixture, the start x1, the exact flow at t_min, the RMS distance to it of Heun and of Euler at
    each checked number of steps, and Heun in Karras' scaled variable sigma/alpha on the same grids."""
    from ..samplers import ode

    mix = _heun_mixture()
    v = _mixture_velocity(mix)
    g = torch.Generator().manual_seed(20260303)
    x1 = torch.randn(HEUN_SAMPLES, 2, generator=g, dtype=torch.float64)
    flow = heun_sample_reference(v, x1, _PATH.timesteps(256, spacing="uniform"))
    heun, euler, in_sigma = {}, {}, {}
    for k in HEUN_STEPS:
        ts = _PATH.timesteps(k, spacing="uniform")
        in_sigma[k] = cast(Tensor, ode(v, x1, _PATH, k, pred="velocity", variable="sigma", spacing="uniform",
                                       denoise=False))
        heun[k] = _rms(heun_sample_reference(v, x1, ts) - flow)
        x = x1
        for t, s in zip(ts[:-1], ts[1:]):
            x = x + (s - t) * v(x, t.expand(x.shape[0]))
        euler[k] = _rms(x - flow)
    return mix, x1, flow, heun, euler, in_sigma


def _rms(d: Tensor) -> float:
    return float(d.pow(2).sum(1).mean().sqrt())


def check_heun_sample(fn: Callable[..., Tensor], *, quiet: bool = False) -> Verdict:
    """``heun_sample(velocity_fn, x1, ts)``, judged by its samples: 1000 points of N(0, I) carried through the exact
    velocity field of a hidden three-class mixture on uniform grids of 8 and 16 steps from t = 0.999 to 0.001. They
    must land within 3x Heun's own error of the exact flow from the same noise (root mean square distance), and
    their class frequencies must match the mixture's weights within five standard errors."""
    name = "heun_sample"

    def verdict(passed: bool, message: str) -> Verdict:
        v = Verdict(passed, message, name=name, student=fn, reference=heun_sample_reference)
        if not quiet:
            print(v)
        return v

    if not callable(fn):
        return verdict(False, f"{name}: expected a function, got {type(fn).__name__}.")
    mix, x1, flow, heun, euler, in_sigma = _heun_problem()
    v = _mixture_velocity(mix)
    errors = {}
    for k in HEUN_STEPS:
        ts = _PATH.timesteps(k, spacing="uniform")
        where = f"{k} uniform steps from t = 0.999 to 0.001, x1 of shape {tuple(x1.shape)}"
        try:
            out = fn(velocity_fn=v, x1=x1.clone(), ts=ts.clone())
        except NotImplementedError as err:
            if _raised_by_a_raise_statement(err):
                return verdict(False, _not_written(name, err))
            return verdict(False, f"{name} raised NotImplementedError: {err} ({where}).")
        except Exception as err:  # report, never re-raise
            return verdict(False, f"{name} raised {type(err).__name__}: {err} ({where}).")
        if not isinstance(out, Tensor) or out.shape != x1.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            return verdict(False, f"{name} should return the points at ts[-1], a tensor shaped like x1 "
                                  f"{tuple(x1.shape)}; got {got} ({where}).")
        out = out.detach().to(torch.float64)
        if not torch.isfinite(out).all():
            return verdict(False, f"{name} returned NaN or infinite values ({where}).")
        dist = _rms(out - flow)
        errors[k] = dist
        if _rms(out - in_sigma[k]) < 1e-6 * (1 + _rms(in_sigma[k])):
            return verdict(False, f"{name}: your points land {dist:.3g} from the exact flow ({where}): you took Heun's "
                                  "steps in Karras' scaled variables x / alpha against sigma / alpha, as "
                                  "cl.ode(..., variable='sigma') does. On the linear path sigma / alpha = t / (1 - t) "
                                  "falls from 999 to a few in the first step, and averaging eps_hat at the two ends "
                                  "of such a step is far off. Integrate dx/dt = v in t: average the two velocities.")
        if dist > 1.0:
            return verdict(False, f"{name}: your points land {dist:.3g} (root mean square) from the exact flow "
                                  f"({where}), far from the data. Time decreases along ts: each step is "
                                  "dt = ts[i+1] - ts[i] < 0, and x moves by dt times the velocity.")
        if 0.5 * euler[k] <= dist <= 1.5 * euler[k]:
            return verdict(False, f"{name}: your points land {dist:.3g} from the exact flow ({where}), as far as "
                                  f"Euler's method does ({euler[k]:.3g}); Heun's lands {heun[k]:.2g}. The correction "
                                  "is missing or has no effect: evaluate the velocity again at the end of the Euler "
                                  "trial step (its end point, at the time ts[i+1]) and step with the average of the "
                                  "two velocities.")
        if dist > HEUN_HEADROOM * heun[k]:
            return verdict(False, f"{name}: your points land {dist:.3g} from the exact flow ({where}); Heun's method "
                                  f"lands {heun[k]:.2g} and Euler's {euler[k]:.2g}. Check the trial step, the time "
                                  "at which the second velocity is evaluated (the end of the step) and the average.")
    nearest = torch.cdist(out, mix.means).argmin(1)
    freq = torch.bincount(nearest, minlength=3).to(torch.float64) / len(out)
    w = mix.weights
    if ((freq - w).abs() > 5 * (w * (1 - w) / len(out)).sqrt()).any():
        return verdict(False, f"{name}: your points are close to the exact flow but their class frequencies "
                              f"{freq.tolist()} are not the weights {w.tolist()}.")
    steps = ", ".join(f"{j} steps {errors[j]:.2g} (Euler {euler[j]:.2g})" for j in HEUN_STEPS)
    return verdict(True, f"{name} is second order: root mean square distance to the exact flow from the same noise "
                         f"{steps}; class frequencies [{', '.join(f'{f:.3f}' for f in freq.tolist())}] against the "
                         f"weights [{', '.join(f'{f:.3f}' for f in w.tolist())}].")

