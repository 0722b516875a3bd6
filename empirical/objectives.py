"""Each player's training loss as a function of its own parameters, in the form the estimators of gradients.py take.

A loss here is `loss(forward, batch)`: the mean over `batch` of the loss the training loop minimises, with
`forward` the measured player and the opponent frozen. They are the losses of empirical.losses, rewritten so that
torch.func can take per-sample gradients through them: the WGAN-GP mixing weights t are part of the batch (drawn
beforehand, not inside the loss) and the input gradient of the penalty is torch.func.grad, not torch.autograd.grad.
tests/empirical/test_objectives.py checks that they equal the training losses.

Batches: D's is (real, fake[, t]) with the fakes made beforehand by G, as in training (D's gradient does not flow
into G); G's is z. The cross objectives (P's loss in the opponent's parameters) feed the sgd family's coupling
constant M_P = ‖∇_{θ_Q} L_P‖: L_D in G's parameters takes (real, z[, t]) and makes the fakes inside.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import grad

from empirical.config import TrainConfig
from empirical.datasets import MixtureData, TensorData
from empirical.gradients import Batch, Forward, Loss
from empirical.losses import l2_penalty


def _critic_terms(loss: str, gp_weight: float, forward: Forward, real: Tensor, fake: Tensor,
                  t: Tensor | None) -> Tensor:
    if loss == "bce":
        return F.softplus(-forward(real)).mean() + F.softplus(forward(fake)).mean()
    if loss == "wgan-l2":
        return forward(fake).mean() - forward(real).mean() + gp_weight * l2_penalty(forward)
    mixed = t * real + (1 - t) * fake
    # ∇_x̂ D(x̂) for each sample: the sum over the batch has the per-sample input gradients as its gradient.
    slopes = grad(lambda x: forward(x).sum())(mixed)
    penalty = ((slopes.flatten(1).norm(dim=1) - 1) ** 2).mean()
    return forward(fake).mean() - forward(real).mean() + gp_weight * penalty


def _generator_terms(loss: str, d_fake: Tensor) -> Tensor:
    return F.softplus(-d_fake).mean() if loss == "bce" else -d_fake.mean()


@dataclass(frozen=True)
class Game:
    """The two players of one training run at one set of parameters, and fresh batches for each player's loss."""

    config: TrainConfig
    generator: nn.Module
    discriminator: nn.Module
    data: MixtureData | TensorData

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def module(self, player: str) -> nn.Module:
        return self.discriminator if player == "D" else self.generator

    # --- batches -------------------------------------------------------------------------------------------

    def _real_z_t(self, n: int, rng: torch.Generator) -> tuple[Tensor, Tensor, Tensor | None]:
        real = self.data.sample(n, rng)
        z = torch.randn(n, self.config.z_dim, generator=rng, device=self.device)
        t = None
        if self.config.loss == "wgan-gp":
            t = torch.rand((n,) + (1,) * (real.dim() - 1), generator=rng, device=self.device, dtype=real.dtype)
        return real, z, t

    def batch(self, player: str, n: int, rng: torch.Generator) -> Batch:
        """n fresh samples of `player`'s loss: (real, fake[, t]) for D, z for G."""
        real, z, t = self._real_z_t(n, rng)
        if player == "G":
            return z
        with torch.no_grad():
            fake = self.generator(z)
        return (real, fake) if t is None else (real, fake, t)

    def cross_batch(self, player: str, n: int, rng: torch.Generator) -> Batch:
        """n fresh samples of `player`'s loss seen as a function of the opponent: (real, z[, t]) for D, z for G."""
        real, z, t = self._real_z_t(n, rng)
        if player == "G":
            return z
        return (real, z) if t is None else (real, z, t)

    # --- losses ----------------------------------------------------------------------------------------------

    def loss(self, player: str) -> Loss:
        """L_P(θ_P) with the opponent frozen: the objective of player P's own gradient."""
        c = self.config
        if player == "D":
            def d_loss(forward: Forward, batch: Batch) -> Tensor:
                real, fake, *t = batch
                return _critic_terms(c.loss, c.gp_weight, forward, real, fake, t[0] if t else None)
            return d_loss
        d = self.discriminator
        return lambda forward, z: _generator_terms(c.loss, d(forward(z)))

    def cross_loss(self, player: str) -> Loss:
        """L_P(θ_Q), P's loss as a function of the opponent Q's parameters (forward is Q)."""
        c = self.config
        if player == "D":
            d = self.discriminator

            def d_loss_in_g(forward: Forward, batch: Batch) -> Tensor:
                real, z, *t = batch
                return _critic_terms(c.loss, c.gp_weight, d, real, forward(z), t[0] if t else None)
            return d_loss_in_g
        g = self.generator
        return lambda forward, z: _generator_terms(c.loss, forward(g(z)))

    def opponent(self, player: str) -> nn.Module:
        return self.generator if player == "D" else self.discriminator


def has_train_mode_batchnorm(module: nn.Module) -> bool:
    """BatchNorm in train mode couples a batch's samples: per-sample gradients are then undefined."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in module.modules())

