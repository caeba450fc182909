"""Networks of the course, one module each: the conditional denoiser ``MLP`` for points (:mod:`.mlp`), the
noise-aware ``Classifier`` (:mod:`.classifier`), the image ``UNet`` (:mod:`.unet`) and the ``AttentionDenoiser`` whose
forward pass can perturb itself (:mod:`.attention`, chapter 17), on shared building blocks (:mod:`.blocks`).

A denoiser knows the path it was trained on and the one quantity it predicts (``pred``: eps, x0, score or
velocity); the path converts that prediction into the others. Labels run 0..num_classes-1 and the extra index
``num_classes`` is the null label, ``model.null_label``, used for label dropout and unconditional prediction.
"""

from .attention import PERTURBATIONS, AttentionDenoiser, Perturbation, grid_blur
from .blocks import TimeEmbedding
from .classifier import Classifier
from .exact import ExactDenoiser
from .guided import GuidedMLP
from .mlp import MLP
from .multi import MultiMLP
from .unet import UNet

__all__ = ["MLP", "Classifier", "TimeEmbedding", "UNet", "AttentionDenoiser", "Perturbation", "PERTURBATIONS",
           "grid_blur", "MultiMLP", "ExactDenoiser", "GuidedMLP"]
