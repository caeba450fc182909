"""The recipe popular flow-matching tutorials use for 2D toys, written from its description (not copied).

An MLP with 4 hidden layers of 512 units and SiLU activations fed ``[x, t]`` (the time as a raw scalar), Adam at a
constant learning rate of 1e-3, batches of 4096, 20,000 iterations, t uniform on [0, 1], and the linear-path
(rectified flow / conditional flow matching) velocity loss. ``benchmarks/recipes.py`` races it against the course.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

import cfglab as cl


class TutorialMLP(nn.Module):
    """The tutorials' velocity network ``v(x, t)``: ``[x, t]`` -> ``depth`` hidden layers of ``width`` units with
    SiLU -> ``dim`` outputs. The time enters as a raw scalar, without embedding or input scaling."""

    def __init__(self, dim: int = 2, width: int = 512, depth: int = 4, seed: int = 0):
        super().__init__()
        if min(dim, width, depth) < 1:
            raise ValueError(f"dim, width and depth must be >= 1, got {dim}, {width}, {depth}")
        layers: list[nn.Module] = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for i in range(depth):
                layers += [nn.Linear(dim + 1 if i == 0 else width, width), nn.SiLU()]
            layers.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:  # x (n, dim), t (n,) -> velocity (n, dim)
        return self.net(torch.cat([x, t.to(x)[:, None]], dim=1))


@dataclass(frozen=True)
class TutorialConfig:
    """The tutorial recipe's hyperparameters."""

    steps: int = 20_000
    batch_size: int = 4096
    lr: float = 1e-3
    width: int = 512
    depth: int = 4
    seed: int = 0


def tutorial_loss(model: nn.Module, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
    """Conditional flow matching on the linear path (Lipman et al. 2023, eq. 23; Liu et al. 2023):
    ``x_t = (1 - t) x0 + t eps`` and the regression target ``d x_t / dt = eps - x0``, mean squared error."""
    xt = (1 - t[:, None]) * x0 + t[:, None] * eps                  # (B, 2)
    return ((model(xt, t) - (eps - x0)) ** 2).mean()


def tutorial_iter(model: TutorialMLP, data: cl.GaussianMixture, config: TutorialConfig) -> Iterator[float]:
    """The tutorial's training loop as a generator: each ``next`` runs one Adam step of :func:`tutorial_loss`
    (t uniform on [0, 1], constant learning rate, no clipping) and yields its loss."""
    g = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    model.train()
    for _ in range(config.steps):
        x0, _ = data.sample(config.batch_size, generator=g)         # (B, 2), labels unused
        t = torch.rand(config.batch_size, generator=g)               # (B,)
        eps = torch.randn(x0.shape, generator=g)
        loss = tutorial_loss(model, x0, t, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        yield loss.item()
    model.eval()
