import pytest
import torch
import torch.nn.functional as F
from torch import nn

from empirical.errors import EmpiricalInputError
from empirical.losses import discriminator_loss, generator_loss, gradient_penalty
from empirical.models import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from theory.families import dcgan_parameter_count


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_dcgan_at_64px_width_64_is_the_papers_architecture():
    # The PyTorch DCGAN example's counts (3,576,704 and 2,765,568), which the theory derives independently.
    assert _count(DCGANGenerator(64, 64, 100, 3)) == dcgan_parameter_count("G") == 3_576_704
    assert _count(DCGANDiscriminator(64, 64, 3)) == dcgan_parameter_count("D") == 2_765_568


@pytest.mark.parametrize("size", [8, 16, 32, 64])
def test_dcgan_shapes_for_every_size(size):
    g, d = DCGANGenerator(size, 8, 16, 3), DCGANDiscriminator(size, 8, 3)
    images = g(torch.randn(5, 16))
    assert images.shape == (5, 3, size, size)
    assert images.abs().max() <= 1.0
    assert d(images).shape == (5,)


@pytest.mark.parametrize("norm", ["layer", "none"])
def test_critic_without_batchnorm_treats_samples_independently(norm):
    d = DCGANDiscriminator(16, 8, 1, norm=norm)
    x = torch.randn(6, 1, 16, 16)
    assert torch.allclose(d(x)[:3], d(x[:3]), atol=1e-6)  # BatchNorm would couple the samples


def test_bad_sizes_are_refused():
    with pytest.raises(EmpiricalInputError):
        DCGANGenerator(24)
    with pytest.raises(EmpiricalInputError):
        DCGANDiscriminator(16, norm="group")


def test_mlp_shapes():
    assert MLPGenerator(2, 16, 2)(torch.randn(7, 2)).shape == (7, 2)
    assert MLPDiscriminator(2, 16, 2)(torch.randn(7, 2)).shape == (7,)


def test_bce_losses_are_the_non_saturating_cross_entropies():
    logits = {"real": torch.tensor([2.0, -1.0]), "fake": torch.tensor([0.5, -3.0])}
    table = {1: logits["real"], 0: logits["fake"]}

    def d(x):
        return table[int(x[0, 0])]

    real, fake = torch.ones(2, 1), torch.zeros(2, 1)
    loss, _, _ = discriminator_loss("bce", d, real, fake, torch.Generator())
    expected = -torch.log(torch.sigmoid(logits["real"])).mean() - torch.log(1 - torch.sigmoid(logits["fake"])).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    g_loss = generator_loss("bce", logits["fake"])
    assert g_loss.item() == pytest.approx(-torch.log(torch.sigmoid(logits["fake"])).mean().item(), rel=1e-6)
    assert g_loss.item() == pytest.approx(F.binary_cross_entropy_with_logits(logits["fake"], torch.ones(2)).item())


def test_wgan_gp_applies_the_penalty_weight_once():
    # A linear critic D(x) = w·x has ‖∇D‖ = ‖w‖ everywhere, so the penalty is exactly (‖w‖ − 1)².
    w = torch.tensor([3.0, 4.0])

    def critic(x):
        return x @ w

    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    generator = torch.Generator().manual_seed(0)
    assert gradient_penalty(critic, real, fake, generator).item() == pytest.approx(16.0)
    loss, _, _ = discriminator_loss("wgan-gp", critic, real, fake, torch.Generator().manual_seed(0), gp_weight=10.0)
    expected = (fake @ w).mean() - (real @ w).mean() + 10.0 * 16.0
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert generator_loss("wgan-gp", fake @ w).item() == pytest.approx(-(fake @ w).mean().item(), rel=1e-6)


def test_gradient_penalty_is_differentiable_in_the_critic():
    critic = nn.Linear(2, 1)
    penalty = gradient_penalty(lambda x: critic(x).squeeze(-1), torch.randn(4, 2), torch.randn(4, 2), torch.Generator())
    penalty.backward()
    assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0


def test_unknown_loss_is_refused():
    with pytest.raises(EmpiricalInputError, match="hinge"):
        generator_loss("hinge", torch.zeros(2))
