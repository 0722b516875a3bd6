import pytest
import torch

from empirical.digits import load_digits
from empirical.errors import EmpiricalInputError
from empirical.features import (
    DigitClassifierConfig,
    MixtureClassifierConfig,
    cache_dir,
    classifier_accuracy,
    make_extractor,
    train_mixture_classifier,
)
from empirical.fid import ReferenceStatistics
from empirical.mixtures import get_mixture


@pytest.fixture(scope="module", params=["ring8", "grid25"])
def mixture_setup(request):
    mixture = get_mixture(request.param)
    extractor = make_extractor("mixture", data=request.param)
    reference = ReferenceStatistics.from_features(extractor(mixture.sample(20_000, torch.Generator().manual_seed(0))))
    return mixture, extractor, reference


def test_mixture_classifier_separates_the_components(mixture_setup):
    mixture, extractor, _ = mixture_setup
    x, y = mixture.sample_labelled(5000, torch.Generator().manual_seed(9))
    assert classifier_accuracy(extractor.modules_, x, y) > 0.99


def test_dropping_half_the_modes_scores_far_worse_at_equal_mean(mixture_setup):
    mixture, extractor, reference = mixture_setup
    n = 10_000
    x, labels = mixture.sample_labelled(3 * n, torch.Generator().manual_seed(1))
    full = x[:n]
    # Every other mode: on ring8 the modes 0, 2, 4, 6 (a square, mean 0); on grid25 a checkerboard (mean ≈ 0).
    keep = labels % 2 == 0 if mixture.name == "ring8" else (labels // 5 + labels % 5) % 2 == 0
    half = x[keep][:n]
    assert (half.mean(0) - full.mean(0)).norm() < 0.15  # equal mean, so raw 2-D moments would barely notice
    fid_full = reference.distance_to_features(extractor(full))
    fid_half = reference.distance_to_features(extractor(half))
    assert fid_half > 10 * fid_full and fid_half > 10


def test_mixture_features_see_the_spread_of_the_modes(mixture_setup):
    mixture, extractor, reference = mixture_setup
    x, labels = mixture.sample_labelled(10_000, torch.Generator().manual_seed(2))
    centres = mixture.means_tensor()[labels]
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    fids = [reference.distance_to_features(extractor(centres + s * mixture.std * noise)) for s in (1, 5, 20)]
    assert fids[0] < fids[1] < fids[2]


def test_classifier_training_is_deterministic():
    config = MixtureClassifierConfig(mixture="ring8", steps=30, n_train=1000)
    a, b = train_mixture_classifier(config), train_mixture_classifier(config)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_trained_features_are_cached_on_disk_keyed_by_config():
    make_extractor("mixture", data="ring8")
    files = sorted(p.name for p in cache_dir().glob("mixture-*.pt"))
    assert files, "the trained classifier should be cached"
    again = make_extractor("mixture", data="ring8")  # loads, does not retrain
    points = torch.randn(10, 2)
    fresh = make_extractor("mixture", data="ring8")
    assert torch.equal(again(points), fresh(points))
    assert sorted(p.name for p in cache_dir().glob("mixture-*.pt")) == files


def test_corrupt_cache_entry_is_rebuilt():
    make_extractor("mixture", data="ring8")
    (path,) = [p for p in cache_dir().glob("mixture-*.pt") if p.stat().st_size > 0][:1]
    good = make_extractor("mixture", data="ring8")(torch.ones(3, 2))
    path.write_bytes(b"not a checkpoint")
    assert torch.equal(make_extractor("mixture", data="ring8")(torch.ones(3, 2)), good)


def test_digit_features_separate_real_digits_from_noise():
    extractor = make_extractor("digits", image_size=8)
    images, labels = load_digits(8)
    assert classifier_accuracy(extractor.modules_, images, labels) > 0.95
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    reference = ReferenceStatistics.from_features(extractor(images[order[:900]]))
    real = reference.distance_to_features(extractor(images[order[900:]]))
    noise = reference.distance_to_features(extractor(torch.rand(897, 1, 8, 8) * 2 - 1))
    ones = reference.distance_to_features(extractor(images[labels == 1]))
    assert noise > 20 * real and ones > 20 * real
    assert DigitClassifierConfig().feature_dim == extractor(images[:2]).shape[1]


def test_unknown_extractor_is_refused():
    with pytest.raises(EmpiricalInputError, match="inception"):
        make_extractor("clip")
    with pytest.raises(EmpiricalInputError, match="mixture"):
        make_extractor("mixture")
