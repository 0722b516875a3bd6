"""Generators and discriminators: MLPs for the 2-D mixtures, DCGAN for images of 8..64 px.

The DCGAN pair follows Radford et al. (2016) and the PyTorch DCGAN example that the official TTUR scripts use:
at 64 px with width 64 it is exactly that architecture (G: 100 → 512·4² → 256·8² → 128·16² → 64·32² → 3·64²).
Smaller images drop the outer doublings, so 8 px has one transposed convolution after the 4×4 stem.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from empirical.errors import EmpiricalInputError

DCGAN_SIZES = (8, 16, 32, 64)


def _levels(image_size: int) -> int:
    """Number of stride-2 stages between 4×4 and the image size (4 at 64 px)."""
    if image_size not in DCGAN_SIZES:
        raise EmpiricalInputError(f"DCGAN image size must be one of {DCGAN_SIZES}, got {image_size}")
    return int(math.log2(image_size // 4))


class MLPGenerator(nn.Module):
    """z (Gaussian) → `depth` hidden ReLU layers of `width` units → a point in the plane."""

    def __init__(self, z_dim: int = 2, width: int = 128, depth: int = 3, out_dim: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(z_dim if i == 0 else width, width), nn.ReLU()]
        layers.append(nn.Linear(width if depth else z_dim, out_dim))
        self.net = nn.Sequential(*layers)
        self.z_dim = z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """A point → `depth` hidden LeakyReLU(0.2) layers → one logit (or critic value)."""

    def __init__(self, in_dim: int = 2, width: int = 128, depth: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(in_dim if i == 0 else width, width), nn.LeakyReLU(0.2)]
        layers.append(nn.Linear(width if depth else in_dim, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class DCGANGenerator(nn.Module):
    """z (z_dim × 1 × 1) → transposed convolutions with BatchNorm + ReLU → tanh image in [−1, 1]."""

    def __init__(self, image_size: int = 64, width: int = 64, z_dim: int = 100, channels: int = 3) -> None:
        super().__init__()
        levels = _levels(image_size)
        c = width * 2 ** (levels - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, c, 4, 1, 0, bias=False), nn.BatchNorm2d(c), nn.ReLU(True)]
        for _ in range(levels - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU(True)]
            c //= 2
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.z_dim = z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.reshape(len(z), self.z_dim, 1, 1))


class DCGANDiscriminator(nn.Module):
    """Image → strided convolutions with LeakyReLU(0.2) → one logit.

    `norm="batch"` is DCGAN's; WGAN-GP needs a critic without BatchNorm (the penalty is per sample, BatchNorm
    couples samples), so its presets use `norm="none"` or `"layer"` (Gulrajani et al. 2017 use layer norm).
    """

    def __init__(self, image_size: int = 64, width: int = 64, channels: int = 3, norm: str = "batch") -> None:
        super().__init__()
        if norm not in ("batch", "layer", "none"):
            raise EmpiricalInputError(f"discriminator norm must be batch, layer or none, got {norm!r}")
        levels = _levels(image_size)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        c, side = width, image_size // 2
        for _ in range(levels - 1):
            layers += [nn.Conv2d(c, c * 2, 4, 2, 1, bias=norm != "batch"), *_norm(norm, c * 2, side // 2)]
            layers.append(nn.LeakyReLU(0.2, True))
            c, side = c * 2, side // 2
        layers.append(nn.Conv2d(c, 1, 4, 1, 0, bias=False))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).reshape(len(x))


def _norm(kind: str, channels: int, side: int) -> list[nn.Module]:
    if kind == "batch":
        return [nn.BatchNorm2d(channels)]
    if kind == "layer":
        return [nn.LayerNorm([channels, side, side])]
    return []


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
