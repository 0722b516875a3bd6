import math

import pytest
import torch

from empirical.digits import load_digits
from empirical.errors import EmpiricalInputError
from empirical.mixtures import get_mixture, grid25, mode_coverage, ring8


def test_ring8_means_are_eight_distinct_points_on_the_unit_circle():
    means = torch.tensor(ring8().means, dtype=torch.float64)
    assert means.shape == (8, 2)
    assert torch.allclose(means.norm(dim=1), torch.ones(8, dtype=torch.float64))
    assert torch.cdist(means, means).add(torch.eye(8, dtype=torch.float64)).min() > 0.7  # 2 sin(π/8) ≈ 0.765
    assert ring8().std == 0.01


def test_grid25_means_and_std():
    assert sorted(set(grid25().means)) == [(float(x), float(y)) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)]
    assert grid25().std == 0.05


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_samples_have_equal_component_weights_and_the_stated_spread(name):
    mixture = get_mixture(name)
    x, labels = mixture.sample_labelled(100_000, torch.Generator().manual_seed(0))
    counts = torch.bincount(labels, minlength=mixture.n_modes).double()
    expected = len(x) / mixture.n_modes
    assert ((counts - expected).abs() < 5 * math.sqrt(expected)).all()  # five binomial standard deviations
    residual = x - mixture.means_tensor()[labels]
    assert residual.std().item() == pytest.approx(mixture.std, rel=0.02)
    # Every sample is nearest to its own component (the modes are ≥ 40σ apart).
    assert (torch.cdist(x, mixture.means_tensor()).argmin(dim=1) == labels).all()


def test_sampling_is_determined_by_the_generator():
    a = ring8().sample(50, torch.Generator().manual_seed(3))
    b = ring8().sample(50, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_mode_coverage_counts_modes_and_high_quality_share():
    mixture = ring8()
    x, labels = mixture.sample_labelled(2500, torch.Generator().manual_seed(1))
    full = mode_coverage(x, mixture)
    assert full.modes_captured == 8 and full.high_quality > 0.98  # 3σ holds 98.9% of a 2-D Gaussian
    half = mode_coverage(x[labels % 2 == 0], mixture)
    assert half.modes_captured == 4
    off = mode_coverage(torch.zeros(100, 2), mixture)  # the centre of the ring is far from every mode
    assert off.modes_captured == 0 and off.high_quality == 0.0


def test_unknown_mixture_is_refused():
    with pytest.raises(EmpiricalInputError, match="ring8"):
        get_mixture("ring9")


@pytest.mark.parametrize("size", [8, 16, 32])
def test_digits_are_scaled_to_unit_range(size):
    images, labels = load_digits(size)
    assert images.shape == (1797, 1, size, size) and labels.shape == (1797,)
    assert images.min() == -1.0 and images.max() == 1.0
    assert sorted(labels.unique().tolist()) == list(range(10))


def test_digits_pixels_map_exactly_from_0_16():
    from sklearn.datasets import load_digits as sklearn_digits

    raw = torch.tensor(sklearn_digits().images, dtype=torch.float32)
    assert torch.equal(load_digits(8)[0][:, 0], raw / 8 - 1)


def test_digits_refuse_other_sizes():
    with pytest.raises(EmpiricalInputError, match="12"):
        load_digits(12)
