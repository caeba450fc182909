"""cfglab's samplers against diffusers' schedulers driven by a pipeline's loop (scale_model_input, the
[uncond, cond] batch, guidance_scale, step), on the exact mixture denoiser: DDIM (eta 0) is cl.ddim, Euler is
cl.ode(method="euler", variable="sigma") and DPMSolverMultistepScheduler is cl.samplers.dpmpp_2m, on the same grid,
to round-off (diffusers steps the Euler and DPM-Solver schedulers in float32)."""

import pytest
import torch

import cfglab as cl
from cfglab.models import ExactDenoiser
from cfglab.paths import Discrete

diffusers = pytest.importorskip("diffusers")
F64 = torch.float64
BETAS = {"linear": (1e-4, 0.02), "scaled_linear": (0.00085, 0.012)}


def make_scheduler(name, kind="scaled_linear", spacing="trailing", prediction_type="epsilon", zero_snr=False):
    extra = {"DDIMScheduler": dict(clip_sample=False, set_alpha_to_one=True),
             "DPMSolverMultistepScheduler": dict(algorithm_type="dpmsolver++", solver_order=2)}.get(name, {})
    return getattr(diffusers, name)(beta_schedule=kind, beta_start=BETAS[kind][0], beta_end=BETAS[kind][1],
                                    timestep_spacing=spacing, prediction_type=prediction_type,
                                    rescale_betas_zero_snr=zero_snr, **extra)


def pipeline(scheduler, denoiser, path, noise, y, guidance_scale, steps):
    """A diffusers pipeline's loop around any scheduler; ``denoiser(x, t, labels)`` is a course model."""
    scheduler.set_timesteps(steps)
    latents = noise * scheduler.init_noise_sigma
    n = noise.shape[0]
    labels = torch.cat([torch.full((n,), denoiser.null_label), torch.full((n,), y)])
    do_cfg = guidance_scale > 1
    for k in scheduler.timesteps:
        inp = torch.cat([latents] * 2) if do_cfg else latents
        inp = scheduler.scale_model_input(inp, k)
        t = path.t_of_timestep(k).to(inp.dtype).expand(inp.shape[0])
        out = denoiser(inp, t, labels if do_cfg else labels[n:])
        if do_cfg:
            uncond, cond = out.chunk(2)
            out = uncond + guidance_scale * (cond - uncond)
        latents = scheduler.step(out, k, latents).prev_sample
    return latents


def course_grid(path, scheduler):
    """The scheduler's timesteps as the course's times, then t = 0 (DDIM's alpha = 1, the final sigma 0)."""
    t = path.t_of_timestep(scheduler.timesteps.double())
    return torch.cat([t, t.new_zeros(1)])


CASES = [("scaled_linear", "trailing", "epsilon", False), ("scaled_linear", "leading", "epsilon", False),
         ("linear", "linspace", "epsilon", False), ("scaled_linear", "trailing", "v_prediction", True)]


@pytest.mark.parametrize("kind,spacing,ptype,zero_snr", CASES)
@pytest.mark.parametrize("sampler", ["DDIMScheduler", "EulerDiscreteScheduler", "DPMSolverMultistepScheduler"])
def test_a_pipeline_loop_equals_the_course_sampler_on_the_same_grid(sampler, kind, spacing, ptype, zero_snr):
    if sampler == "EulerDiscreteScheduler" and zero_snr:
        pytest.skip("Euler replaces a zero abar by 2^-24 (tested below with the scheduler's own table)")
    if sampler == "DDIMScheduler" and spacing == "linspace":
        pytest.skip("DDIM's step does not land on the next linspace timestep (tested below)")
    sched = make_scheduler(sampler, kind, spacing, ptype, zero_snr)
    path = Discrete(alphas_cumprod=sched.alphas_cumprod)
    mix = cl.make("mixture")
    model = ExactDenoiser(mix, path, pred="eps" if ptype == "epsilon" else "v")
    steps, w, y = 10, 3.0, 1           # 10 divides T = 1000: DDIM's step k -> k - T // steps is the grid's
    noise = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    theirs = pipeline(sched, model, path, noise, y, w, steps)
    grid = course_grid(path, sched)
    fn = cl.guided(model, y, w, kind=model.pred)
    if sampler == "DDIMScheduler":
        ours, tol = cl.ddim(fn, noise, path, steps, pred=model.pred, spacing=grid, denoise=False), 1e-6
    elif sampler == "EulerDiscreteScheduler":
        start = noise * sched.init_noise_sigma * path(grid[0]).alpha        # Euler's latents are x / alpha
        ours = cl.ode(fn, start, path, steps, method="euler", variable="sigma", pred=model.pred, spacing=grid,
                      denoise=False)
        tol = 2e-5
    else:
        ours = cl.samplers.dpmpp_2m(fn, noise, path, steps, pred=model.pred, spacing=grid, denoise=False)
        tol = 2e-5
    assert theirs.dtype == F64 and ours.dtype == F64
    assert (ours - theirs).abs().max() < tol * theirs.abs().max()


def test_euler_with_zero_terminal_snr_uses_the_schedulers_table():
    """diffusers' Euler scheduler sets abar_{T-1} = 2^-24 (sigma~ = 4096) so that its first sigma is finite; with
    that table as the path, the loop is again cl.ode in sigma."""
    sched = make_scheduler("EulerDiscreteScheduler", "scaled_linear", "trailing", "v_prediction", True)
    path = Discrete(alphas_cumprod=sched.alphas_cumprod)
    assert path.alphas_cumprod[-1] == 2.0**-24
    model = ExactDenoiser(cl.make("mixture"), path, pred="v")
    noise = torch.randn(32, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    theirs = pipeline(sched, model, path, noise, 0, 2.0, 10)
    grid = course_grid(path, sched)
    start = noise * sched.init_noise_sigma * path(grid[0]).alpha
    ours = cl.ode(cl.guided(model, 0, 2.0, kind="v"), start, path, 10, method="euler", variable="sigma", pred="v",
                  spacing=grid, denoise=False)
    assert (ours - theirs).abs().max() < 2e-5 * theirs.abs().max()


def test_ddim_with_linspace_steps_to_the_wrong_timestep():
    """DDIMScheduler always steps from k to k - T // steps, but "linspace" timesteps are not T // steps apart: the
    next evaluation happens at a noise level the sample is not at. On the same grid cl.ddim differs by far more
    than round-off (here T // 10 = 100 while the timesteps are 111 apart)."""
    sched = make_scheduler("DDIMScheduler", "scaled_linear", "linspace")
    path = Discrete(alphas_cumprod=sched.alphas_cumprod)
    model = ExactDenoiser(cl.make("mixture"), path)
    noise = torch.randn(64, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    theirs = pipeline(sched, model, path, noise, 2, 1.0, 10)
    ours = cl.ddim(lambda x, t: model(x, t, 2), noise, path, 10, pred="eps", spacing=course_grid(path, sched),
                   denoise=False)
    assert torch.equal(sched.timesteps[:2], torch.tensor([999, 888]))
    assert (ours - theirs).abs().max() > 1e-3
