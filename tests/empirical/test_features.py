import pytest
import torch

from empirical.digits import load_digits
from empirical.errors import EmpiricalInputError
from empirical.features import (
    DigitClassifierConfig,
    MixtureClassifierConfig,
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


# ---------------------------------------------------------------------------------------------------------------
# The on-disk cache of trained feature networks (features._cached), in a cache folder of the test's own, with a
# cheap stand-in for the classifier's training that counts its calls.


@pytest.fixture
def counted_training(tmp_path, monkeypatch):
    """TTUR_CACHE_DIR = a fresh folder; train_mixture_classifier trains 5 steps and counts its calls."""
    import dataclasses

    from empirical import features

    monkeypatch.setenv("TTUR_CACHE_DIR", str(tmp_path))
    calls = []

    def quick(config):
        calls.append(config)
        return train_mixture_classifier(dataclasses.replace(config, steps=5, n_train=200))

    monkeypatch.setattr(features, "train_mixture_classifier", quick)
    return tmp_path, calls


POINTS = torch.linspace(-2, 2, 20).reshape(10, 2)


def test_a_cached_network_is_read_not_retrained(counted_training):
    folder, calls = counted_training
    first = make_extractor("mixture", data="ring8")(POINTS)
    (path,) = folder.glob("mixture-*.pt")
    written = path.read_bytes()
    assert len(calls) == 1
    assert torch.equal(make_extractor("mixture", data="ring8")(POINTS), first)
    assert len(calls) == 1 and path.read_bytes() == written  # loaded, neither trained nor saved again
    # What is loaded is the file's content: weights put there by hand are the ones used.
    model = make_extractor("mixture", data="ring8").modules_
    state = {k: v + 1.0 for k, v in model.state_dict().items()}
    torch.save(state, path)
    shifted = make_extractor("mixture", data="ring8").modules_
    assert len(calls) == 1
    assert all(torch.equal(shifted.state_dict()[k], v) for k, v in state.items())


def test_another_config_gets_its_own_cache_entry(counted_training):
    from empirical.features import mixture_classifier

    folder, calls = counted_training
    mixture_classifier(MixtureClassifierConfig(mixture="ring8"))
    mixture_classifier(MixtureClassifierConfig(mixture="ring8", width=32))
    mixture_classifier(MixtureClassifierConfig(mixture="ring8", width=32))
    assert [c.width for c in calls] == [64, 32]
    assert len(list(folder.glob("mixture-*.pt"))) == 2


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "stale"])
def test_a_corrupt_or_stale_entry_is_rebuilt_once_and_replaced(counted_training, damage):
    from empirical.features import Classifier, _mixture_body

    folder, calls = counted_training
    good = make_extractor("mixture", data="ring8")(POINTS)
    (path,) = folder.glob("mixture-*.pt")
    if damage == "garbage":
        path.write_bytes(b"not a checkpoint")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # a valid checkpoint of another architecture under this key (width 8, not 64)
        torch.save(Classifier(_mixture_body(8), 8, 9).state_dict(), path)
    assert torch.equal(make_extractor("mixture", data="ring8")(POINTS), good)  # rebuilt: training is deterministic
    assert len(calls) == 2
    assert torch.equal(make_extractor("mixture", data="ring8")(POINTS), good)
    assert len(calls) == 2  # the rebuilt entry was saved and is read from now on
    assert [p.name for p in folder.iterdir()] == [path.name]  # no temporary file left behind


def test_the_real_statistics_are_computed_once_per_data_set(monkeypatch):
    # evaluation._cached_reference: a second evaluator of the same data does not extract the real features again.
    from empirical import evaluation
    from empirical.config import TrainConfig

    calls = []
    make = evaluation.make_extractor

    def counting(*args, **kwargs):
        extractor = make(*args, **kwargs)
        return lambda samples: calls.append(len(samples)) or extractor(samples)

    monkeypatch.setattr(evaluation, "make_extractor", counting)
    config = TrainConfig(data="ring8", features="mixture", n_reference=1237, n_eval=100, device="cpu")
    first = evaluation.FIDEvaluator(config, torch.device("cpu"), seed=0)
    assert calls == [1237]
    second = evaluation.FIDEvaluator(config.with_(batch_size=8, lr_d=1e-4), torch.device("cpu"), seed=1)
    assert calls == [1237] and second.reference is first.reference
    evaluation.FIDEvaluator(config.with_(n_reference=1238), torch.device("cpu"), seed=0)
    assert calls == [1237, 1238]  # what determines the statistics is part of the key
