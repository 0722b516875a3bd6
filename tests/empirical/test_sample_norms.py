"""empirical.sample_norms against per-sample gradients taken one sample at a time by ordinary autograd."""

import numpy as np
import pytest
import torch
from torch import nn

import empirical.sample_norms as sample_norms
from empirical.config import TrainConfig
from empirical.gradients import per_sample_gradient_stats
from empirical.losses import discriminator_loss
from empirical.models import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from empirical.objectives import Game
from empirical.sample_norms import HooksUnsupported, per_sample_grad_norms_sq, sample_norm_moments

BCE = TrainConfig(loss="bce")
ROUTES = ["auto", "ghost", "matmul", "conv"]


def critic_loss(d: nn.Module, config: TrainConfig = BCE):
    """empirical.objectives' critic loss: D called once on the reals and once on the fakes (two calls per sample)."""
    return Game(config, None, d, None).loss("D")


def generator_loss(g: nn.Module, d: nn.Module):
    """empirical.objectives' generator loss, D frozen inside."""
    return Game(BCE, g, d, None).loss("G")


def loop_gradients(module: nn.Module, loss, batch) -> np.ndarray:
    """Per-sample gradients [n, #params] by one ordinary backward per sample, in float64."""
    n = len(batch[0]) if isinstance(batch, tuple) else len(batch)
    rows = []
    for i in range(n):
        one = tuple(t[i : i + 1] for t in batch) if isinstance(batch, tuple) else batch[i : i + 1]
        grads = torch.autograd.grad(loss(module, one), list(module.parameters()), allow_unused=True,
                                    materialize_grads=True)
        rows.append(np.concatenate([g.double().numpy().ravel() for g in grads]))
    return np.stack(rows)


def check(module: nn.Module, loss, batch, chunk_size: int = 3, frozen=()) -> None:
    """Norms, tr Σ̂ and ‖ḡ‖² from hooks equal the loop's, and tr Σ̂ equals vmap's, to 1e-6."""
    g = loop_gradients(module, loss, batch)
    moments = sample_norm_moments(module, loss, batch, chunk_size, frozen)
    np.testing.assert_allclose(moments.norms_sq.numpy(), (g**2).sum(1), rtol=1e-6)
    trace = ((g - g.mean(0)) ** 2).sum() / (len(g) - 1)
    assert moments.sum_sq_dev / (len(g) - 1) == pytest.approx(trace, rel=1e-6)
    assert moments.mean_sq == pytest.approx((g.mean(0) ** 2).sum(), rel=1e-6)
    vmap = per_sample_gradient_stats(module, loss, batch, chunk_size, frozen, method="vmap")
    assert moments.sum_sq_dev / (len(g) - 1) == pytest.approx(vmap.trace_sigma, rel=1e-6)


@pytest.fixture(params=ROUTES)
def route(request, monkeypatch):
    """Each Linear / Conv2d weight by the automatic choice, or all by ghost norms, or all materialised: by im2col and
    a batched matmul, or (Conv2d) by one weight-gradient convolution per sample."""
    if request.param != "auto":
        ghost = request.param == "ghost"
        monkeypatch.setattr(sample_norms, "_ghost", lambda layer, calls: ghost)
        monkeypatch.setattr(sample_norms, "_CONV_LOOP_MACS", 0 if request.param == "conv" else float("inf"))
    return request.param


def pairs(n: int, *shape: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(n, *shape, generator=gen, dtype=torch.float64),
            torch.randn(n, *shape, generator=gen, dtype=torch.float64))


def randomise_affine(module: nn.Module) -> nn.Module:
    """Norm layers' affine parameters away from (1, 0), so that a wrong x̂ or a dropped bias shows."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.LayerNorm, nn.GroupNorm)):
                m.weight.normal_(1.0, 0.3)
                if m.bias is not None:
                    m.bias.normal_(0.0, 0.3)
    return module


def test_mlp_critic_with_two_calls_per_sample(route):
    torch.manual_seed(0)
    d = MLPDiscriminator(2, 16, 2).double()
    check(d, critic_loss(d), pairs(7, 2))  # chunks 3 + 3 + 1


@pytest.mark.parametrize("norm", ["layer", "none"])
def test_dcgan_critic_with_two_calls_per_sample(route, norm):
    torch.manual_seed(1)
    d = randomise_affine(DCGANDiscriminator(16, 4, 3, norm=norm).double())
    check(d, critic_loss(d), pairs(7, 3, 16, 16))


def test_generator_loss_through_a_frozen_critic(route):
    torch.manual_seed(2)
    g, d = MLPGenerator(2, 16, 2).double(), MLPDiscriminator(2, 16, 2).double()
    z = torch.randn(9, 2, dtype=torch.float64)
    check(g, generator_loss(g, d), z, chunk_size=4, frozen=(d,))
    assert all(p.grad is None for p in d.parameters())  # the frozen critic recorded no gradients


class Mixed(nn.Module):
    """Every supported layer with the options the hooks must reproduce, and a Linear on a [n, T, d] input."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, stride=2, padding=2, dilation=2, padding_mode="reflect")
        self.b = nn.GroupNorm(2, 4)
        self.c = nn.Conv2d(4, 6, 2, padding="same", bias=False)  # even kernel: asymmetric "same" padding
        self.d = nn.Conv2d(6, 5, (3, 2), stride=(1, 2), padding=(0, 1))
        self.e = nn.LayerNorm(7, bias=False)
        self.f = nn.Linear(7, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.d(torch.tanh(self.c(torch.tanh(self.b(self.a(x))))))  # [n, 5, 4, 4]
        h = self.e(torch.tanh(h.reshape(len(x), 5, 16)[..., :7]))  # [n, 5, 7]: five positions per sample
        return self.f(h).square().mean((1, 2))


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_every_supported_layer_and_option(route):
    torch.manual_seed(3)
    model = randomise_affine(Mixed().double())
    x, y = pairs(6, 3, 11, 11, seed=4)

    def loss(forward, batch):  # three calls per sample, of different weights
        a, b = batch
        return (forward(a) - 0.5 * forward(b) + forward(a * b).sin()).mean()

    check(model, loss, (x, y), chunk_size=4)


def test_calls_on_inputs_of_different_sizes(route):
    torch.manual_seed(8)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2), nn.Tanh(), nn.Conv2d(3, 2, 2, bias=False), nn.Tanh()).double()
    small, large = pairs(5, 2, 9, 9, seed=9)[0], pairs(5, 2, 13, 13, seed=10)[0]

    def loss(forward, batch):
        a, b = batch
        return (forward(a).mean((1, 2, 3)) * forward(b).square().mean((1, 2, 3))).mean()

    check(model, loss, (small, large), chunk_size=2)


def test_float32_norms_match_vmap():
    torch.manual_seed(5)
    d = randomise_affine(DCGANDiscriminator(16, 8, 3, norm="layer"))
    batch = tuple(t.float() for t in pairs(12, 3, 16, 16))
    hooks = per_sample_gradient_stats(d, critic_loss(d), batch, 5, method="hooks")
    vmap = per_sample_gradient_stats(d, critic_loss(d), batch, 5, method="vmap")
    assert hooks.trace_sigma == pytest.approx(vmap.trace_sigma, rel=1e-4)
    assert hooks.mean_grad_norm_sq == pytest.approx(vmap.mean_grad_norm_sq, rel=1e-4)
    torch.testing.assert_close(hooks.norms, vmap.norms, rtol=1e-4, atol=0)
    assert torch.allclose(per_sample_grad_norms_sq(d, critic_loss(d), batch), vmap.norms.double() ** 2, rtol=1e-4)


def test_stats_take_the_hooks_where_they_apply_and_vmap_elsewhere(monkeypatch):
    torch.manual_seed(6)
    d = MLPDiscriminator(2, 8, 1).double()
    batch = pairs(5, 2)
    auto = per_sample_gradient_stats(d, critic_loss(d), batch)
    vmap = per_sample_gradient_stats(d, critic_loss(d), batch, method="vmap")
    assert auto.trace_sigma == pytest.approx(vmap.trace_sigma, rel=1e-9)
    assert auto.grad_norm_sq == pytest.approx(vmap.grad_norm_sq, rel=1e-9, abs=1e-12)
    torch.testing.assert_close(auto.norms, vmap.norms)
    # WGAN-GP's critic loss differentiates inside: refused by the hooks, so "auto" is vmap.
    gp = critic_loss(d, TrainConfig(loss="wgan-gp"))
    t = torch.rand(5, 1, dtype=torch.float64)
    with pytest.raises(HooksUnsupported, match="differentiates inside"):
        per_sample_gradient_stats(d, gp, (*batch, t), method="hooks")
    fallback = per_sample_gradient_stats(d, gp, (*batch, t))
    assert fallback.trace_sigma == per_sample_gradient_stats(d, gp, (*batch, t), method="vmap").trace_sigma
    with pytest.raises(ValueError, match="method"):
        per_sample_gradient_stats(d, critic_loss(d), batch, method="loop")


# ---------------------------------------------------------------------------------------------------------------
# Refusals


def test_unsupported_modules_are_refused_in_one_line():
    z = torch.randn(4, 4)
    g = DCGANGenerator(8, 4, 4, 1).eval()  # ConvTranspose2d, and BatchNorm (eval mode) with affine parameters
    with pytest.raises(HooksUnsupported, match="ConvTranspose2d") as info:
        per_sample_grad_norms_sq(g, lambda forward, z: forward(z).mean(), z)
    assert "\n" not in str(info.value)
    bn = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).eval()
    with pytest.raises(HooksUnsupported, match="BatchNorm1d"):
        per_sample_grad_norms_sq(bn, lambda forward, z: forward(z).mean(), z)
    grouped = nn.Conv2d(4, 4, 3, groups=2)
    with pytest.raises(HooksUnsupported, match="groups"):
        per_sample_grad_norms_sq(grouped, lambda forward, x: forward(x).mean(), torch.randn(4, 4, 5, 5))
    with pytest.raises(ValueError, match="BatchNorm"):  # train mode: per-sample gradients are undefined
        per_sample_grad_norms_sq(g.train(), lambda forward, z: forward(z).mean(), z)


def test_losses_the_hooks_cannot_see_are_refused():
    torch.manual_seed(7)
    d = MLPDiscriminator(2, 8, 1)
    real, fake = (t.float() for t in pairs(4, 2))
    gen = torch.Generator().manual_seed(0)
    # the training loss's penalty: torch.autograd.grad with create_graph inside the loss
    with pytest.raises(HooksUnsupported, match="differentiates inside"):
        per_sample_grad_norms_sq(d, lambda f, b: discriminator_loss("wgan-gp", f, *b, gen)[0], (real, fake))
    # a parameter used outside its layer's forward (the player's forward reuses a layer's weight)
    with pytest.raises(HooksUnsupported, match="outside that layer"):
        per_sample_grad_norms_sq(Reused(), lambda f, x: f(x).mean(), real)
    # a call whose rows are not the batch's samples
    with pytest.raises(HooksUnsupported, match="leading dimension"):
        per_sample_grad_norms_sq(d, lambda f, b: f(torch.cat(b)).mean(), (real, fake))
    # a parameter shared by two layers
    tied = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    tied[1].weight = tied[0].weight
    with pytest.raises(HooksUnsupported, match="shared"):
        per_sample_grad_norms_sq(tied, lambda f, x: f(x).mean(), real)


class Reused(nn.Module):
    """A weight used by its layer and again, directly, by the parent's forward: hooks see only the first use."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.layer(x) @ self.layer.weight).sum(-1)
