"""cfglab: the small package behind the classifier-free guidance course.

The layout mirrors the math: ``paths`` (noising and conversions), ``data`` (toys with exact scores),
``models`` (networks), ``train`` (losses, label dropout, loop, cache), ``guidance`` (combination rules and the
batched wrapper), ``samplers`` (ODE, SDE, DDPM/DDIM, Langevin, MALA), ``metrics`` and ``plot``.
``claims`` (``check``: a page's claims printed and verified where the reader sees them), ``explore`` (a live and a
static guidance explorer) and ``animate`` (sampling animations) make the book's
interactive figures; ``install`` (``require``) installs an optional package a page needs.
"""

from . import (
    animate,
    cache,
    claims,
    compare,
    data,
    digits,
    explore,
    guidance,
    install,
    metrics,
    models,
    paths,
    plot,
    samplers,
    text,
    train,
)
from .claims import check
from .data import GaussianMixture, TensorData, make
from .guidance import cfg, classifier_guidance, classifier_guided, combine, guided, scale_from_paper, scale_to_paper
from .install import require
from .metrics import (
    adherence,
    class_probability,
    diversity,
    frechet_distance,
    log_likelihood,
    mmd,
    noise_floor,
    sliced_wasserstein,
)
from .models import MLP, Classifier, UNet
from .paths import VE, VP, Coefficients, Linear, Path
from .samplers import Trajectory, annealed_langevin, ddim, ddpm, langevin, mala, ode, sde
from .text import MarkovText, TextModel, fit_text, make_text
from .train import TrainConfig, TrainStep, denoising_loss, drop_labels, fit, train_iter

__version__ = "0.1.0"

__all__ = [
    "cache", "data", "guidance", "metrics", "models", "paths", "plot", "samplers", "train",
    "animate", "explore", "claims", "check", "compare", "install", "require",
    "GaussianMixture", "TensorData", "make",
    "cfg", "classifier_guidance", "classifier_guided", "combine", "guided", "scale_from_paper", "scale_to_paper",
    "adherence", "class_probability", "diversity", "log_likelihood", "mmd", "noise_floor", "sliced_wasserstein",
    "MLP", "Classifier", "UNet", "digits", "frechet_distance",
    "text", "MarkovText", "TextModel", "fit_text", "make_text",
    "VE", "VP", "Coefficients", "Linear", "Path",
    "Trajectory", "annealed_langevin", "ddim", "ddpm", "langevin", "mala", "ode", "sde",
    "TrainConfig", "TrainStep", "denoising_loss", "drop_labels", "fit", "train_iter",
]
