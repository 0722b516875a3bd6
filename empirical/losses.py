"""GAN losses for one discriminator step and one generator step.

Non-saturating BCE (DCGAN): L_D = softplus(−D(x)) + softplus(D(G(z))), L_G = softplus(−D(G(z))), D giving logits
(softplus(−t) = −log σ(t), so these are the binary cross-entropies without the overflow of log σ).
WGAN-GP (Gulrajani et al. 2017): L_D = D(G(z)) − D(x) + λ·(‖∇_x̂ D(x̂)‖ − 1)², x̂ on random segments between real
and fake samples, λ = 10 applied once (the official TTUR script multiplies by λ twice, i.e. λ = 100), L_G = −D(G(z)).
WGAN-L2 (the linear-quadratic Gaussian control game, empirical/benchmarks/lqgan.py): L_D = D(G(z)) − D(x) +
(λ/2)·‖θ_D‖², an L2 penalty on the critic's parameters that makes D's problem strongly convex for a fixed G;
L_G = −D(G(z)). Its λ is the config's gp_weight (the weight of the critic's penalty, whichever it is).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from empirical.errors import EmpiricalInputError

LOSSES = ("bce", "wgan-gp", "wgan-l2")


def discriminator_loss(
    loss: str,
    discriminator: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    generator: torch.Generator,
    gp_weight: float = 10.0,
    penalty_discriminator: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L_D on a real and a (detached) fake batch; also returns D's outputs on both (for the balance ratio).

    `penalty_discriminator` (default: `discriminator`) is the module the gradient penalty differentiates through:
    the same parameters uncompiled, when `discriminator` is a torch.compile'd module (compiled graphs do not support
    the penalty's double backward)."""
    d_real, d_fake = discriminator(real), discriminator(fake)
    if loss == "bce":
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean(), d_real, d_fake
    if loss == "wgan-gp":
        penalty = gradient_penalty(penalty_discriminator or discriminator, real, fake, generator)
        return d_fake.mean() - d_real.mean() + gp_weight * penalty, d_real, d_fake
    if loss == "wgan-l2":
        return d_fake.mean() - d_real.mean() + gp_weight * l2_penalty(discriminator), d_real, d_fake
    raise EmpiricalInputError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")


def generator_loss(loss: str, d_fake: torch.Tensor) -> torch.Tensor:
    """L_G from D's outputs on fresh fakes (gradients flow through them into G)."""
    if loss == "bce":
        return F.softplus(-d_fake).mean()
    if loss in ("wgan-gp", "wgan-l2"):
        return -d_fake.mean()
    raise EmpiricalInputError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")


def gradient_penalty(
    discriminator: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """E[(‖∇_x̂ D(x̂)‖₂ − 1)²] with x̂ = t·x + (1 − t)·G(z), t ~ U[0, 1] per sample (unweighted)."""
    shape = (len(real),) + (1,) * (real.dim() - 1)
    t = torch.rand(shape, generator=generator, device=real.device, dtype=real.dtype)
    mixed = (t * real + (1 - t) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def l2_penalty(discriminator: Callable[..., torch.Tensor]) -> torch.Tensor:
    """½‖θ_D‖² of a critic module, or of the parameters a functional forward is bound to (empirical.gradients'
    BoundForward: per-sample gradients and Hessians then see the penalty as a function of the measured θ)."""
    params = getattr(discriminator, "params", None)
    tensors = params.values() if isinstance(params, dict) else discriminator.parameters()
    return 0.5 * sum(p.square().sum() for p in tensors)
