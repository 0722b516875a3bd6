"""Real data for training and for FID: every source samples minibatches on the training device from a generator.

Minibatches are drawn i.i.d. (uniformly with replacement for finite image sets), which is the stochastic
first-order oracle of the theory: each step sees b fresh independent samples, whatever the batch size.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from empirical import benchmarks
from empirical.config import TrainConfig
from empirical.digits import load_digits
from empirical.errors import EmpiricalInputError
from empirical.features import cache_dir
from empirical.mixtures import Mixture, get_mixture


class MixtureData:
    """A 2-D Gaussian mixture, sampled on the fly."""

    def __init__(self, mixture: Mixture, device: torch.device) -> None:
        self.mixture, self.device = mixture, device
        self.shape = (2,)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.mixture.sample(n, generator, self.device)

    def reference(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Independent samples of the data distribution for the real FID statistics."""
        return self.sample(n, generator)


class TensorData:
    """A finite image set held in memory on the device, as float in [−1, 1] (uint8 sets are converted per batch)."""

    def __init__(self, images: torch.Tensor, device: torch.device) -> None:
        self.images = images.to(device)
        self.device = device
        self.shape = tuple(images.shape[1:])

    def _to_float(self, batch: torch.Tensor) -> torch.Tensor:
        if batch.dtype == torch.uint8:
            return batch.float() / 127.5 - 1.0
        return batch

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(len(self.images), (n,), generator=generator, device=self.device)
        return self._to_float(self.images[index])

    def reference(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """All the images: FID's real statistics use the whole set, whatever n (as pytorch-fid does)."""
        del n, generator
        return torch.cat([self._to_float(chunk) for chunk in self.images.split(4096)])


def load_data(config: TrainConfig, device: torch.device) -> MixtureData | TensorData:
    """The data source named by the config (a registered benchmark's own, else a built-in one)."""
    if benchmarks.is_registered(config.data):
        return benchmarks.get_benchmark(config.data).load_data(config, device)
    if config.data in ("ring8", "grid25"):
        return MixtureData(get_mixture(config.data), device)
    if config.data == "digits":
        return TensorData(load_digits(config.image_size)[0], device)
    from empirical.images import load_cifar10, load_image_folder

    check_data_path(config)
    if config.data == "cifar10":
        return TensorData(load_cifar10(config.data_path, size=config.image_size), device)
    if config.data == "folder":
        images = load_image_folder(config.data_path, size=config.image_size, limit=config.data_limit,
                                   cache_path=folder_cache_path(config))
        return TensorData(images, device)
    raise EmpiricalInputError(f"unknown data {config.data!r}")


def check_data_path(config: TrainConfig) -> None:
    """A missing data folder is a one-line error saying what to put there (a preset's default path names its data
    set, docs/paper-presets.md) or that --data-path points elsewhere; nothing is downloaded."""
    path = Path(config.data_path)
    if path.exists():
        return
    from empirical.presets import DATA_HINTS

    generic = "the CIFAR-10 python-pickle folder cifar-10-batches-py" if config.data == "cifar10" else "the images"
    what = DATA_HINTS.get(config.data_path, generic)
    where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
    raise EmpiricalInputError(f"data folder {path}{where} does not exist: put {what} there, or pass --data-path DIR "
                              "(see docs/paper-presets.md)")


def folder_cache_path(config: TrainConfig) -> Path:
    """Where a folder's decoded images are kept ($TTUR_CACHE_DIR/images, N·3·s² bytes): each run of a sweep, and
    each worker, then reads one .npy instead of decoding every file again. load_image_folder checks the file's key
    (folder, size, limit, file names), so a changed folder is decoded afresh."""
    folder = Path(config.data_path).resolve()
    digest = hashlib.sha256(str(folder).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return cache_dir() / "images" / f"{folder.name}-{config.image_size}px-{config.data_limit or 'all'}-{digest}.npy"
