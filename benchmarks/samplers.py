"""Sampler error against exact closed forms, per number of function evaluations (NFE); no training.

On a Gaussian data law ``N(m, s^2 I)`` every marginal is Gaussian, ``p_t = N(alpha_t m, S_t^2 I)`` with
``S_t^2 = alpha_t^2 s^2 + sigma_t^2``, and the probability-flow ODE moves each point affinely:
``x_u = alpha_u m + (S_u / S_t) (x_t - alpha_t m)``. Starting from exact samples of ``p_{t_max}``:

* deterministic samplers (Euler and Heun in t, Heun in Karras' scaled variable sigma/alpha, all ``cl.ode``; DDIM,
  which is Euler in that variable, ``cl.ddim``; DPM-Solver++(2M), ``cl.samplers.dpmpp_2m``, one evaluation per
  step and second order) are compared point by point with
  that exact map at ``t_min`` (RMS endpoint error). Their step is affine in x for an affine score, so the law of
  their output is Gaussian too; its variance, read off the fitted affine map, is compared with ``S_{t_min}^2``;
* Euler–Maruyama (``cl.sde``) is compared in law: the mean and variance of its output against ``alpha m`` and
  ``S^2`` at ``t_min``. Its law is also known exactly (a linear recursion on mean and variance, since the score is
  affine), which gives the error without Monte Carlo noise; the Monte Carlo moments of ``cl.sde`` are reported
  with their standard errors next to it.

Each error is fitted by ``log(error) = c - order * log(NFE)`` over the largest NFEs. Finally every sampler draws
the three-class ``cl.make("mixture")`` from its exact score and is scored by the sliced Wasserstein distance to
exact samples minus the exact-vs-exact noise floor. Heun costs 2 evaluations per step; ``denoise=False``
everywhere except the mixture (where the final Tweedie step adds one evaluation, not counted).

Everything is measured on every path (Linear, VP, VE) and every grid spacing (uniform in t, uniform in log-SNR,
Karras' rho = 7), and the path's default ODE (``path.ode_variable``, ``path.spacing``) is chosen from it: Heun in
the variable and on the grid with the smallest relative spread error in the few-step regime, NFE 8 to 32
(:func:`choose_defaults`). ``tests/test_benchmarks.py`` holds the library's defaults to that choice.

Run: ``python benchmarks/samplers.py [--quick --out DIR]``; writes ``samplers.json``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

import cfglab as cl  # noqa: E402
from benchmarks import _common  # noqa: E402

NFES = (2, 4, 8, 16, 32, 64, 128, 256)
# The ODE samplers: (cl.ode method, variable); "ddim" is cl.ddim (Euler in the scaled variable sigma) and
# "dpmpp_2m" cl.samplers.dpmpp_2m (DPM-Solver++(2M), multistep in log-SNR).
ODE_METHODS = {"euler_t": ("euler", "t"), "heun_t": ("heun", "t"), "heun_sigma": ("heun", "sigma")}
METHODS = ("euler_t", "heun_t", "ddim", "dpmpp_2m", "heun_sigma", "euler_maruyama")
SPACINGS = ("uniform", "logsnr", "edm")
PATHS: dict[str, cl.Path] = {"Linear": cl.Linear(), "VP": cl.VP(), "VE": cl.VE()}
LOW_NFES = (8, 16, 32)  # where the defaults are chosen: the few-step regime the chapters sample in
F64 = torch.float64


@dataclass(frozen=True)
class Gaussian:
    """The data law ``N(mean, std^2 I)`` and its exact quantities along a path."""

    mean: tuple[float, ...] = (1.0, -0.5)
    std: float = 0.5

    def __post_init__(self) -> None:
        if not self.mean or not self.std > 0:
            raise ValueError(f"mean must be non-empty and std positive, got mean={self.mean}, std={self.std}")

    @property
    def m(self) -> Tensor:
        return torch.tensor(self.mean, dtype=F64)

    def marginal(self, path: cl.Path, t: Any, like: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean ``alpha_t m`` and std ``S_t`` of ``p_t`` (shaped to broadcast against ``like``)."""
        c = path(torch.as_tensor(t, dtype=F64), like)
        return c.alpha * self.m.to(c.alpha), torch.sqrt(c.alpha**2 * self.std**2 + c.sigma**2)

    def score(self, path: cl.Path) -> Callable[[Tensor, Tensor], Tensor]:
        """``grad log p_t(x) = -(x - alpha_t m) / S_t^2``."""

        def fn(x: Tensor, t: Tensor) -> Tensor:
            mu, sd = self.marginal(path, t, x)
            return -(x - mu) / sd**2

        return fn

    def flow(self, path: cl.Path, x: Tensor, t_from: float, t_to: float) -> Tensor:
        """The exact probability-flow ODE map from ``t_from`` to ``t_to``: ``mu_to + (S_to / S_from)(x - mu_from)``."""
        mu0, s0 = self.marginal(path, t_from)
        mu1, s1 = self.marginal(path, t_to)
        return mu1 + (s1 / s0) * (x - mu0)

    def em_law(self, path: cl.Path, steps: int, mean: Tensor, var: float,
               spacing: str | None = None) -> tuple[Tensor, float]:
        """The exact mean and variance of Euler–Maruyama's output on the reverse SDE (as ``cl.sde`` steps it, on
        ``path.timesteps(steps)``) from ``N(mean, var I)``: with the affine score each step is
        ``x <- A x + B + C z``, so ``mean <- A mean + B`` and ``var <- A^2 var + C^2``."""
        ts = path.timesteps(steps, spacing=spacing)
        for i in range(steps):
            c = path(ts[i])
            h = ts[i + 1] - ts[i]                                  # < 0
            mu, sd = self.marginal(path, ts[i])
            a = 1 + h * (c.f + c.g2 / sd**2)                       # drift f x - g^2 score, score affine in x
            mean = a * mean - h * c.g2 * mu / sd**2
            var = float(a**2 * var - h * c.g2)
        return mean, var


def check_nfes(nfes: Sequence[int]) -> list[int]:
    """NFEs must be increasing even integers >= 2 (Heun spends two evaluations per step)."""
    nfes = list(nfes)
    if len(nfes) < 2 or any(not isinstance(n, int) or n < 2 or n % 2 for n in nfes) or sorted(set(nfes)) != nfes:
        raise ValueError(f"nfes must be at least two increasing even integers >= 2, got {nfes}")
    return nfes


def fit_order(nfes: Sequence[int], errors: Sequence[float], last: int = 4) -> float | None:
    """Empirical convergence order: minus the least-squares slope of log(error) against log(NFE) over the
    ``last`` largest NFEs (None when fewer than two positive errors remain)."""
    pts = [(math.log(n), math.log(e)) for n, e in list(zip(nfes, errors))[-last:] if e > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    slope = sum((a - mx) * (b - my) for a, b in pts) / sum((a - mx) ** 2 for a, _ in pts)
    return -slope


def deterministic(method: str, fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, path: cl.Path, nfe: int,
                  spacing: str | None = None) -> Tensor:
    """Run one ODE sampler of :data:`METHODS` with ``nfe`` evaluations (Heun: NFE/2 steps) to ``t_min``, without
    the final denoising step."""
    if method == "ddim":
        return cast(Tensor, cl.ddim(fn, x, path, nfe, denoise=False, spacing=spacing))
    if method == "dpmpp_2m":
        return cast(Tensor, cl.samplers.dpmpp_2m(fn, x, path, nfe, denoise=False, spacing=spacing))
    kind, variable = ODE_METHODS[method]
    steps = nfe // 2 if kind == "heun" else nfe
    return cast(Tensor, cl.ode(fn, x, path, steps, method=kind, variable=variable, spacing=spacing, denoise=False))


def gaussian_errors(path: cl.Path, nfes: Sequence[int], n: int, n_sde: int, seed: int = 0,
                    gauss: Gaussian = Gaussian(), spacing: str | None = None) -> dict[str, Any]:
    """Errors of every sampler against the Gaussian's closed forms on one path and grid (see the module
    docstring). ``spread_error`` is ``|std of the output law / S_{t_min} - 1|``, the relative error in spread."""
    nfes = check_nfes(nfes)
    if n < 2 or n_sde < 2:
        raise ValueError(f"n and n_sde must be >= 2 (sample variances), got {n} and {n_sde}")
    g = torch.Generator().manual_seed(seed)
    fn = gauss.score(path)
    mu_max, s_max = gauss.marginal(path, path.t_max)
    mu_min, s_min = gauss.marginal(path, path.t_min)
    x = mu_max + s_max * torch.randn(n, len(gauss.mean), generator=g, dtype=F64)   # exact p_{t_max}
    exact = gauss.flow(path, x, path.t_max, path.t_min)
    out: dict[str, Any] = {"exact_std_t_min": float(s_min), "data_std": gauss.std}
    xc = x - x.mean(0)
    for method in METHODS[:-1]:
        rows: list[dict[str, Any]] = []
        for nfe in nfes:
            y = deterministic(method, fn, x, path, nfe, spacing)
            slope = ((y - y.mean(0)) * xc).sum(0) / (xc**2).sum(0)      # the sampler's map is affine, per axis
            var = slope**2 * s_max**2                                   # variance of its output law
            mean = y.mean(0) + slope * (mu_max - x.mean(0))             # mean of its output law
            rows.append({"nfe": nfe, "endpoint_rms": float((y - exact).pow(2).sum(1).mean().sqrt()),
                         "variance_error": float((var - s_min**2).abs().max()),
                         "spread_error": float((var.sqrt() / s_min - 1).abs().max()),
                         "mean_error": float((mean - mu_min).abs().max())})
        out[method] = rows
    rows = []
    for nfe in nfes:
        x0 = mu_max + s_max * torch.randn(n_sde, len(gauss.mean), generator=g, dtype=F64)   # exact p_{t_max}
        y = cast(Tensor, cl.sde(fn, x0, path, nfe, generator=g, denoise=False, spacing=spacing))
        law_mean, law_var = gauss.em_law(path, nfe, mu_max, float(s_max**2), spacing)
        mc_var = y.var(0)
        rows.append({"nfe": nfe, "variance_error": abs(law_var - float(s_min**2)),
                     "spread_error": abs(math.sqrt(law_var) / float(s_min) - 1),
                     "mean_error": float((law_mean - mu_min).abs().max()),
                     "mc_variance": mc_var.tolist(), "mc_mean": y.mean(0).tolist(),
                     "law_variance": law_var, "law_mean": law_mean.tolist(),
                     "mc_variance_se": float(law_var * math.sqrt(2 / (n_sde - 1))),
                     "mc_mean_se": math.sqrt(law_var / n_sde)})
    out["euler_maruyama"] = rows
    kind, variable = "euler", "sigma"
    a = cast(Tensor, cl.ode(fn, x, path, nfes[-1], method=kind, variable=variable, spacing=spacing, denoise=False))
    out["euler_sigma_vs_ddim_max_abs"] = float((a - deterministic("ddim", fn, x, path, nfes[-1], spacing)).abs().max())
    keys = {m: "endpoint_rms" for m in METHODS[:-1]} | {"euler_maruyama": "variance_error"}
    out["orders"] = {m: fit_order(nfes, [r[k] for r in out[m]]) for m, k in keys.items()}
    out["variance_orders"] = {m: fit_order(nfes, [r["variance_error"] for r in out[m]]) for m in METHODS}
    return out


def low_nfe_error(rows: Sequence[dict[str, Any]], nfes: Sequence[int] = LOW_NFES) -> float:
    """The geometric mean of the relative spread error over the NFEs in ``nfes`` (those present in ``rows``):
    one number for how well a sampler does in the few-step regime."""
    errs = [r["spread_error"] for r in rows if r["nfe"] in nfes]
    if not errs:
        raise ValueError(f"rows hold none of the NFEs {list(nfes)}")
    return math.exp(sum(math.log(max(e, 1e-16)) for e in errs) / len(errs))


def choose_defaults(per_spacing: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The (variable, spacing) of Heun with the smallest :func:`low_nfe_error` on one path, from the Gaussian
    results per spacing; also every candidate's score, so the choice can be read."""
    scores = {f"{method}/{spacing}": low_nfe_error(res[method])
              for spacing, res in per_spacing.items() for method in ("heun_t", "heun_sigma")}
    best = min(scores, key=scores.__getitem__)
    method, spacing = best.split("/")
    return {"variable": ODE_METHODS[method][1], "spacing": spacing, "scores": scores}


def mixture_sw(path: cl.Path, nfes: Sequence[int], n: int, seed: int = 0,
               spacing: str | None = None) -> dict[str, Any]:
    """Sliced Wasserstein distance of each sampler's draws of ``cl.make("mixture")`` (from its exact score, the
    prior as start, the final denoising step on) to exact samples, and the exact-vs-exact noise floor."""
    nfes = check_nfes(nfes)
    mix = cl.make("mixture")
    g = torch.Generator().manual_seed(seed)
    truth, _ = mix.sample(n, generator=g, dtype=F64)
    x1 = path.prior(n, 2, generator=g, dtype=F64)
    fn = mix.score_fn(path)
    floor = cl.noise_floor(mix, n)
    out: dict[str, Any] = {"noise_floor_sw": floor, "n": n}
    for method in METHODS:
        rows = []
        for nfe in nfes:
            if method == "euler_maruyama":
                x = cl.sde(fn, x1, path, nfe, generator=torch.Generator().manual_seed(seed + nfe), spacing=spacing)
            elif method == "ddim":
                x = cl.ddim(fn, x1, path, nfe, spacing=spacing)
            elif method == "dpmpp_2m":
                x = cl.samplers.dpmpp_2m(fn, x1, path, nfe, spacing=spacing)
            else:
                kind, variable = ODE_METHODS[method]
                x = cl.ode(fn, x1, path, nfe // 2 if kind == "heun" else nfe, method=kind, variable=variable,
                           spacing=spacing)
            sw = cl.sliced_wasserstein(cast(Tensor, x), truth)
            rows.append({"nfe": nfe, "sw": sw, "sw_minus_floor": sw - floor})
        out[method] = rows
    return out


def study(path: cl.Path, nfes: Sequence[int] = NFES, n: int = 2000, n_sde: int = 100_000,
          n_mix: int = 4000) -> dict[str, Any]:
    """One path: the Gaussian errors and the mixture SW of every sampler on every spacing, and the defaults they
    choose, next to the path's own defaults (``path.ode_variable``, ``path.spacing``)."""
    per_spacing = {sp: {**gaussian_errors(path, nfes, n, n_sde, spacing=sp), "mixture": mixture_sw(path, nfes, n_mix,
                                                                                                spacing=sp)}
                   for sp in SPACINGS}
    return {"t_min": path.t_min, "t_max": path.t_max, "spacings": per_spacing,
            "chosen": choose_defaults(per_spacing),
            "library_defaults": {"variable": path.ode_variable, "spacing": path.spacing}}


def run(nfes: Sequence[int] = NFES, n: int = 2000, n_sde: int = 100_000, n_mix: int = 4000) -> dict[str, Any]:
    """The whole benchmark on every path in :data:`PATHS` and every spacing in :data:`SPACINGS`."""
    gauss = Gaussian()
    return {"nfes": list(nfes), "gaussian": {"mean": list(gauss.mean), "std": gauss.std, "n": n, "n_sde": n_sde},
            "low_nfes": list(LOW_NFES),
            "paths": {name: study(p, nfes, n, n_sde, n_mix) for name, p in PATHS.items()}}


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    out_dir = _common.output_folder(args)
    torch.set_num_threads(1)
    started = _common.provenance()
    res = run((2, 4, 8, 16), n=200, n_sde=2000, n_mix=300) if args.quick else run()
    for name, r in res["paths"].items():
        here = r["spacings"][r["library_defaults"]["spacing"]]
        orders = ", ".join(f"{m} {o:.2f}" if o is not None else f"{m} -" for m, o in here["orders"].items())
        chosen, lib = r["chosen"], r["library_defaults"]
        print(f"{name}: on its default grid ({lib['spacing']}) fitted orders {orders}; |Euler in sigma - DDIM| = "
              f"{here['euler_sigma_vs_ddim_max_abs']:.1e}; best Heun at NFE {list(LOW_NFES)}: "
              f"{chosen['variable']}/{chosen['spacing']} (library default {lib['variable']}/{lib['spacing']})")
    file = _common.write(out_dir, "samplers", {"quick": args.quick, **res}, started)
    print(f"wrote {file}")


if __name__ == "__main__":
    main()
