"""The 2-D mixture-of-Gaussians benchmarks (ring-8, grid-25), sampled on the fly, and their mode-coverage metrics.

Setups as in PacGAN / VEEGAN (reference.md §7): ring-8 has means (cos 2πk/8, sin 2πk/8), k = 0..7, std 0.01;
grid-25 has means {−4, −2, 0, 2, 4}², std 0.05. Components are equally likely.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from empirical.errors import EmpiricalInputError


@dataclass(frozen=True)
class Mixture:
    """An equal-weight isotropic Gaussian mixture in the plane."""

    name: str
    means: tuple[tuple[float, float], ...]
    std: float

    @property
    def n_modes(self) -> int:
        return len(self.means)

    def means_tensor(self, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.tensor(self.means, dtype=torch.float32, device=device)

    def sample(self, n: int, generator: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
        """n points (n, 2), drawn with the given generator (which must live on `device`)."""
        return self.sample_labelled(n, generator, device)[0]

    def sample_labelled(
        self, n: int, generator: torch.Generator, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """n points and the index of the component each came from."""
        labels = torch.randint(self.n_modes, (n,), generator=generator, device=device)
        noise = torch.randn(n, 2, generator=generator, device=device)
        return self.means_tensor(device)[labels] + self.std * noise, labels


def ring8() -> Mixture:
    # k = 0..7 only: including angle 2π as well would double the mode at (1, 0) (a bug in some public scripts).
    means = tuple((math.cos(2 * math.pi * k / 8), math.sin(2 * math.pi * k / 8)) for k in range(8))
    return Mixture("ring8", means, std=0.01)


def grid25() -> Mixture:
    means = tuple((float(x), float(y)) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4))
    return Mixture("grid25", means, std=0.05)


MIXTURES = {"ring8": ring8, "grid25": grid25}


def get_mixture(name: str) -> Mixture:
    if name not in MIXTURES:
        raise EmpiricalInputError(f"unknown mixture {name!r}; expected one of {', '.join(MIXTURES)}")
    return MIXTURES[name]()


@dataclass(frozen=True)
class ModeCoverage:
    """VEEGAN/PacGAN metrics: modes with at least one high-quality sample, and the share of high-quality samples."""

    modes_captured: int
    n_modes: int
    high_quality: float


def mode_coverage(samples: torch.Tensor, mixture: Mixture, n_std: float = 3.0) -> ModeCoverage:
    """A sample is high quality when within n_std standard deviations of its nearest mode (reference.md §7)."""
    points = samples.detach().to("cpu", torch.float64)
    distances = torch.cdist(points, mixture.means_tensor().double())
    nearest_distance, nearest = distances.min(dim=1)
    good = nearest_distance <= n_std * mixture.std
    captured = int(torch.unique(nearest[good]).numel())
    share = float(good.double().mean()) if len(points) else 0.0
    return ModeCoverage(modes_captured=captured, n_modes=mixture.n_modes, high_quality=share)
