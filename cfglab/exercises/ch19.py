"""Checks for chapter 19, the same thing in diffusers: an experiment (a pipeline's sampling loop around any
diffusers scheduler, judged against the course's samplers on the same grid) and zero terminal SNR (Lin et al. 2024,
alg. 1). diffusers is imported only when a check runs: cfglab itself does not need it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from ..data import make
from ..guidance import guided
from ..models.exact import ExactDenoiser
from ..paths import Discrete, beta_schedule, rescale_zero_terminal_snr
from ..samplers import ddim, dpmpp_2m, ode
from ._core import Verdict, attempt, check_function

# -- (a) the experiment: a pipeline's loop around any scheduler -------------------------------------------------------

_BETAS = {"linear": (1e-4, 0.02), "scaled_linear": (0.00085, 0.012)}
# (scheduler class, beta schedule, timestep spacing, prediction type, zero terminal SNR, steps, guidance scale)
_CASES = [("DDIMScheduler", "scaled_linear", "trailing", "epsilon", False, 10, 3.0),
          ("EulerDiscreteScheduler", "linear", "linspace", "epsilon", False, 12, 4.0),
          ("DPMSolverMultistepScheduler", "scaled_linear", "trailing", "v_prediction", True, 8, 2.5),
          ("DPMSolverMultistepScheduler", "scaled_linear", "leading", "epsilon", False, 9, 0.7)]


def _scheduler(name: str, kind: str, spacing: str, ptype: str, zero_snr: bool) -> Any:
    import diffusers  # optional: only the chapter and its checks need it

    options: dict[str, dict[str, Any]] = {"DDIMScheduler": dict(clip_sample=False, set_alpha_to_one=True),
                                          "DPMSolverMultistepScheduler": dict(algorithm_type="dpmsolver++",
                                                                              solver_order=2)}
    extra = options.get(name, {})
    return getattr(diffusers, name)(beta_schedule=kind, beta_start=_BETAS[kind][0], beta_end=_BETAS[kind][1],
                                    timestep_spacing=spacing, prediction_type=ptype,
                                    rescale_betas_zero_snr=zero_snr, **extra)


def _loop(scheduler: Any, denoiser: Any, path: Discrete, noise: Tensor, y: int, guidance_scale: float, steps: int,
          *, swap: bool = False, scale_input: bool = True, init_sigma: bool = True, paper: bool = False,
          index_times: bool = False, interpolate: bool = False) -> Tensor:
    """The reference loop of a diffusers pipeline (the keyword flags are the known mistakes)."""
    scheduler.set_timesteps(steps)
    latents = noise * scheduler.init_noise_sigma if init_sigma else noise
    n = noise.shape[0]
    null, cond = torch.full((n,), denoiser.null_label), torch.full((n,), y)
    do_cfg = guidance_scale > 1 or interpolate
    for i, k in enumerate(scheduler.timesteps):
        inp = torch.cat([latents] * 2) if do_cfg else latents
        if scale_input:
            inp = scheduler.scale_model_input(inp, k)
        when = torch.tensor(float(steps - 1 - i)) if index_times else k
        t = path.t_of_timestep(when).to(inp.dtype).expand(inp.shape[0])
        out = denoiser(inp, t, (torch.cat([cond, null]) if swap else torch.cat([null, cond])) if do_cfg else cond)
        if do_cfg:
            uncond, c = out.chunk(2)
            out = c + guidance_scale * (c - uncond) if paper else uncond + guidance_scale * (c - uncond)
        latents = scheduler.step(out, k, latents).prev_sample
    return latents


def _course(case: tuple[Any, ...], scheduler: Any, denoiser: ExactDenoiser, path: Discrete, noise: Tensor,
            y: int) -> Tensor:
    """The truth: the course's sampler that the scheduler is, on the scheduler's own grid."""
    name, steps, w = case[0], case[5], case[6]
    scheduler.set_timesteps(steps)
    t = path.t_of_timestep(scheduler.timesteps.double())
    grid = torch.cat([t, t.new_zeros(1)])
    fn = guided(denoiser, y, w if w > 1 else 1.0, kind=denoiser.pred)
    if name == "DDIMScheduler":
        out = ddim(fn, noise, path, steps, pred=denoiser.pred, spacing=grid, denoise=False)
    elif name == "EulerDiscreteScheduler":
        start = noise * scheduler.init_noise_sigma * path(grid[0]).alpha
        out = ode(fn, start, path, steps, method="euler", variable="sigma", pred=denoiser.pred, spacing=grid,
                  denoise=False)
    else:
        out = dpmpp_2m(fn, noise, path, steps, pred=denoiser.pred, spacing=grid, denoise=False)
    return out if isinstance(out, Tensor) else out[0]


_MISTAKES = [
    (dict(swap=True), "the batch is in the wrong order for how you split it: a pipeline feeds [uncond, cond] and "
                      "reads `uncond, cond = out.chunk(2)`; yours guides away from the class instead of towards it."),
    (dict(scale_input=False), "you skipped `scheduler.scale_model_input`: the Euler scheduler keeps its latents in "
                              "Karras' scaled coordinates x / alpha and divides them by sqrt(sigma~^2 + 1) before the "
                              "model sees them (DDIM's and DPM-Solver's are the identity, which hides the bug)."),
    (dict(init_sigma=False), "the starting noise must be multiplied by `scheduler.init_noise_sigma` (1 for DDIM and "
                             "DPM-Solver, about sigma~_max for Euler, whose latents are x / alpha)."),
    (dict(paper=True), "you used Ho & Salimans' form cond + w (cond - uncond); diffusers' guidance_scale is the "
                       "course's w: uncond + w (cond - uncond)."),
    (dict(index_times=True), "the model was given the step index (steps - 1, ..., 0) as its timestep, the loop of the "
                             "explainer: use the scheduler's own timesteps k (999, ...), mapped to t by "
                             "path.t_of_timestep."),
    (dict(interpolate=True), "at guidance_scale <= 1 a diffusers pipeline does not interpolate: "
                             "do_classifier_free_guidance is guidance_scale > 1, so it runs the conditional model "
                             "alone."),
]


def _pipeline_reference(scheduler: Any, denoiser: Any, path: Discrete, noise: Tensor, y: int,
                        guidance_scale: float, steps: int) -> Tensor:
    return _loop(scheduler, denoiser, path, noise, y, guidance_scale, steps)


def check_pipeline_sample(student: Callable[..., Any]) -> Verdict:
    """``pipeline_sample(scheduler, denoiser, path, noise, y, guidance_scale, steps)``: a diffusers pipeline's loop.
    Run with DDIM, Euler and DPM-Solver++ schedulers (eps and v prediction, three spacings, a scale below 1) on the
    exact mixture denoiser; each output must equal the course's sampler on the scheduler's grid to float32
    round-off (the schedulers step in float32)."""
    name = "pipeline_sample"
    mix = make("mixture")
    verdict = None
    for i, case in enumerate(_CASES):
        sched_name, kind, spacing, ptype, zero_snr, steps, w = case
        path = Discrete(alphas_cumprod=_scheduler(*case[:5]).alphas_cumprod)
        denoiser = ExactDenoiser(mix, path, pred="eps" if ptype == "epsilon" else "v")
        noise = torch.randn(48, 2, generator=torch.Generator().manual_seed(19 + i), dtype=torch.float64)
        y = i % mix.num_classes
        got, failed = attempt(name, student, scheduler=_scheduler(*case[:5]), denoiser=denoiser, path=path,
                              noise=noise, y=y, guidance_scale=w, steps=steps)
        if failed is not None:
            verdict = failed
            break
        truth = _course(case, _scheduler(*case[:5]), denoiser, path, noise, y)
        label = f"{sched_name} ({spacing} spacing, {ptype}, guidance_scale {w:g}, {steps} steps)"
        if not isinstance(got, Tensor) or got.shape != truth.shape:
            shape = tuple(got.shape) if isinstance(got, Tensor) else type(got).__name__
            verdict = Verdict(False, f"{name} should return the final latents, a tensor shaped like the noise "
                                     f"{tuple(noise.shape)}, got {shape} with {label}.")
            break
        err = float((got.to(truth.dtype) - truth).abs().max())
        if err <= 1e-4 * float(truth.abs().max()):
            continue
        why = None
        for flags, explanation in _MISTAKES:
            try:
                wrong = _loop(_scheduler(*case[:5]), denoiser, path, noise, y, w, steps, **flags)
            except Exception:
                continue
            if float((got.to(wrong.dtype) - wrong).abs().max()) <= 1e-4 * float(wrong.abs().max()):
                why = explanation
                break
        verdict = Verdict(False, f"{name} with {label} is {err:.3g} away from the course's sampler on the same grid: "
                                 + (why or "re-read the steps of the loop in the exercise."))
        break
    if verdict is None:
        verdict = Verdict(True, f"{name} equals the course's DDIM, Euler and DPM-Solver++(2M) samplers on the "
                                f"schedulers' own grids, to float32 round-off, in {len(_CASES)} hidden settings.")
    verdict = replace(verdict, name=name, student=student, reference=_pipeline_reference)
    print(verdict)
    return verdict


# -- (b) zero terminal SNR ------------------------------------------------------------------------------------------


def _zero_snr_inputs(g: torch.Generator) -> dict[str, Any]:
    kind = ("linear", "scaled_linear")[int(torch.randint(0, 2, (1,), generator=g))]
    n = int(torch.randint(50, 1001, (1,), generator=g))
    lo, hi = _BETAS[kind]
    f = 0.5 + float(torch.rand((), generator=g, dtype=torch.float64))
    return {"betas": beta_schedule(kind, n, lo * f, hi * f)}


def _ref_zero_snr(betas: Tensor) -> Tensor:
    return rescale_zero_terminal_snr(betas)


def _betas_of(abar: Tensor) -> Tensor:
    return 1 - torch.cat([abar[:1], abar[1:] / abar[:-1]])


def check_zero_snr_betas(student: Callable[..., Any]) -> Verdict:
    """``zero_snr_betas(betas)``: Lin et al. (2024), alg. 1, on hidden linear and scaled-linear schedules."""
    def abar(betas: Tensor) -> Tensor:
        return torch.cumprod(1 - betas, 0)

    def shift_scale(v: Tensor) -> Tensor:
        return (v - v[-1]) * (v[0] / (v[0] - v[-1]))

    mistakes = [
        ("you shifted and scaled alphas_cumprod itself; algorithm 1 works on its square root, sqrt(abar), and "
         "squares the result.", lambda betas: _betas_of(shift_scale(abar(betas)))),
        ("after shifting sqrt(abar) so that its last value is 0, scale it so that its FIRST value is unchanged: "
         "the least noisy timestep must stay as it was.", lambda betas: _betas_of((abar(betas).sqrt()
                                                                                     - abar(betas)[-1].sqrt())**2)),
        ("you returned alphas_cumprod; return the betas, 1 - abar_t / abar_{t-1} (and 1 - abar_0 for the first).",
         lambda betas: shift_scale(abar(betas).sqrt()) ** 2),
    ]
    return check_function("zero_snr_betas", student, _ref_zero_snr, _zero_snr_inputs, mistakes=mistakes,
                          rtol=1e-8, atol=1e-10)
