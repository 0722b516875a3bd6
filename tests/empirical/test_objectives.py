"""The estimators' per-player objectives are the training losses, and their per-sample gradients are exact."""

import pytest
import torch

from empirical.config import TrainConfig
from empirical.datasets import load_data
from empirical.gradients import batch_gradient, per_sample_gradient_stats
from empirical.losses import discriminator_loss, generator_loss
from empirical.objectives import Game, has_train_mode_batchnorm
from empirical.presets import get_preset
from empirical.train import build_models

RING = get_preset("ring8").with_(width=16, depth=2)
DIGITS = get_preset("digits").with_(width=8, z_dim=8)


def game(config: TrainConfig, seed: int = 0) -> Game:
    torch.manual_seed(seed)
    g, d = build_models(config, channels=1)
    return Game(config, g, d, load_data(config, torch.device("cpu")))


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("config", [RING, RING.with_(loss="wgan-gp"), DIGITS], ids=["bce", "wgan-gp", "digits"])
def test_losses_equal_the_training_losses(config):
    gm = game(config)
    real, fake, *t = gm.batch("D", 32, rng(1))
    ours = gm.loss("D")(gm.discriminator, (real, fake, *t))
    gen = _FixedRand(t[0]) if t else None
    theirs, _, _ = discriminator_loss(config.loss, gm.discriminator, real, fake, gen, config.gp_weight)
    torch.testing.assert_close(ours, theirs)
    z = gm.batch("G", 32, rng(2))
    torch.testing.assert_close(gm.loss("G")(gm.generator, z),
                               generator_loss(config.loss, gm.discriminator(gm.generator(z))))


@pytest.mark.parametrize("config", [RING, RING.with_(loss="wgan-gp")], ids=["bce", "wgan-gp"])
def test_per_sample_variance_of_the_critic_loss_matches_a_loop_over_the_training_loss(config):
    gm = game(config)
    batch = gm.batch("D", 12, rng(3))
    stats = per_sample_gradient_stats(gm.discriminator, gm.loss("D"), batch, chunk_size=5)
    grads = []
    for i in range(12):  # the training loss, one sample at a time, by ordinary autograd (double backward for GP)
        sample = [x[i:i + 1] for x in batch]
        gen = _FixedRand(sample[2]) if len(sample) == 3 else None
        loss, _, _ = discriminator_loss(config.loss, gm.discriminator, sample[0], sample[1], gen, config.gp_weight)
        grads.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(gm.discriminator.parameters()))]))
    g = torch.stack(grads).double()
    expected = float(((g - g.mean(0)) ** 2).sum() / 11)
    assert stats.trace_sigma == pytest.approx(expected, rel=1e-5)


class _FixedRand:
    """Stands in for the torch.Generator the training loss draws t from, so it uses the batch's t."""

    def __init__(self, t):
        self.t = t


@pytest.fixture(autouse=True)
def _rand_with_fixed_t(monkeypatch):
    real_rand = torch.rand

    def rand(*args, generator=None, **kwargs):
        if isinstance(generator, _FixedRand):
            return generator.t
        return real_rand(*args, generator=generator, **kwargs)

    monkeypatch.setattr(torch, "rand", rand)


@pytest.mark.parametrize("config", [RING, RING.with_(loss="wgan-gp")], ids=["bce", "wgan-gp"])
def test_cross_gradient_is_the_training_critic_loss_differentiated_in_the_generator(config):
    gm = game(config)
    real, z, *t = gm.cross_batch("D", 16, rng(4))
    ours = batch_gradient(gm.generator, gm.cross_loss("D"), (real, z, *t))
    gen = _FixedRand(t[0]) if t else None
    loss, _, _ = discriminator_loss(config.loss, gm.discriminator, real, gm.generator(z), gen, config.gp_weight)
    theirs = torch.autograd.grad(loss, list(gm.generator.parameters()))
    for a, b in zip(ours.values(), theirs, strict=True):
        torch.testing.assert_close(a, b)


def test_batchnorm_in_train_mode_is_detected():
    gm = game(DIGITS)
    assert has_train_mode_batchnorm(gm.generator) and not has_train_mode_batchnorm(gm.discriminator)
    gm.generator.eval()
    assert not has_train_mode_batchnorm(gm.generator)
