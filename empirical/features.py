"""Feature extractors for FID, chosen by name: "mixture" (2-D toys), "digits" (8×8 digits), "inception" (images).

FID is only as good as its features. On the 2-D mixtures a Fréchet distance of the raw points cannot see mode
dropping (reference.md §7), so, as Inception's pool layer is for images, the features are the penultimate layer of
a small classifier of the mixture component, trained once, deterministically, on samples of the true distribution.
Digits get a small CNN digit classifier trained the same way. Both are cached on disk, keyed by their config.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from empirical.digits import load_digits
from empirical.errors import EmpiricalInputError
from empirical.mixtures import Mixture, get_mixture

EXTRACTORS = ("mixture", "digits", "inception")


def cache_dir() -> Path:
    """Where trained feature networks are kept: $TTUR_CACHE_DIR, else ~/.cache/ttur-critical-batch."""
    return Path(os.environ.get("TTUR_CACHE_DIR", Path.home() / ".cache" / "ttur-critical-batch"))


class Classifier(nn.Module):
    """A body producing features, then a linear head; `features` is what FID sees."""

    def __init__(self, body: nn.Module, feature_dim: int, n_classes: int) -> None:
        super().__init__()
        self.body = body
        self.head = nn.Linear(feature_dim, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@dataclass(frozen=True)
class MixtureClassifierConfig:
    """The mixture-component classifier: width of its two hidden layers, and how it is trained."""

    mixture: str
    width: int = 64
    n_train: int = 4_000
    steps: int = 250
    lr: float = 3e-3
    seed: int = 0


@dataclass(frozen=True)
class DigitClassifierConfig:
    """The digit CNN for FID on digits at a given image size."""

    image_size: int = 8
    width: int = 32
    feature_dim: int = 64
    epochs: int = 12
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0


def _mixture_body(width: int) -> nn.Module:
    return nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())


def _digit_body(config: DigitClassifierConfig) -> nn.Module:
    w = config.width
    return nn.Sequential(
        nn.Conv2d(1, w, 3, padding=1), nn.ReLU(),
        nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(),
        nn.Linear(2 * w * 16, config.feature_dim), nn.ReLU(),
    )  # fmt: skip


def off_mixture_points(mixture: Mixture, n: int, generator: torch.Generator) -> torch.Tensor:
    """Points that are not from the mixture: blobs 4–40× wider than its modes, and uniform over its bounding box."""
    n_blob = n // 2
    centres = mixture.means_tensor()[torch.randint(mixture.n_modes, (n_blob,), generator=generator)]
    scale = mixture.std * 4.0 * 10.0 ** torch.rand(n_blob, 1, generator=generator)
    blobs = centres + scale * torch.randn(n_blob, 2, generator=generator)
    low, high = mixture.means_tensor().min(dim=0).values - 1.0, mixture.means_tensor().max(dim=0).values + 1.0
    uniform = low + (high - low) * torch.rand(n - n_blob, 2, generator=generator)
    return torch.cat([blobs, uniform])


def train_mixture_classifier(config: MixtureClassifierConfig) -> Classifier:
    """Full-batch Adam on labelled samples; deterministic on CPU for a given config.

    Classes are the K components plus one "off the mixture" class (points 4σ and farther from the modes, and
    uniform background). Without it the features saturate inside each mode and FID sees which modes are covered
    but not how sharply: a generator with blobs 10× too wide would score like the data.
    """
    mixture = get_mixture(config.mixture)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = Classifier(_mixture_body(config.width), config.width, mixture.n_modes + 1)
        data_rng = torch.Generator().manual_seed(config.seed)
        x_on, y_on = mixture.sample_labelled(config.n_train, data_rng)
        x_off = off_mixture_points(mixture, config.n_train // 2, data_rng)
        x = torch.cat([x_on, x_off])
        y = torch.cat([y_on, torch.full((len(x_off),), mixture.n_modes)])
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        for _ in range(config.steps):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
    return model.eval()


def train_digit_classifier(config: DigitClassifierConfig) -> Classifier:
    """Minibatch Adam on all 1797 bundled digits with a seeded shuffle; deterministic on CPU."""
    images, labels = load_digits(config.image_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = Classifier(_digit_body(config), config.feature_dim, 10)
        order_rng = torch.Generator().manual_seed(config.seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        for _ in range(config.epochs):
            for batch in torch.randperm(len(images), generator=order_rng).split(config.batch_size):
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(model(images[batch]), labels[batch]).backward()
                optimizer.step()
    return model.eval()


def classifier_accuracy(model: Classifier, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def _cached(kind: str, config: object, build: Callable[[], Classifier], make: Callable[[], Classifier]) -> Classifier:
    """Load a trained classifier from the cache (keyed by a hash of its config), training and saving it if absent."""
    key = hashlib.sha256(json.dumps({"kind": kind, **asdict(config)}, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"{kind}-{key}.pt"
    if path.is_file():
        model = make()
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return model.eval()
        except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError):
            pass  # a corrupt or stale cache entry is rebuilt below
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same weights whatever the caller's thread count (reduction order changes bits)
    try:
        model = build()
    finally:
        torch.set_num_threads(threads)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
        torch.save(model.state_dict(), handle)
    os.replace(handle.name, path)  # atomic: concurrent sweeps never see half a file
    return model


def mixture_classifier(config: MixtureClassifierConfig) -> Classifier:
    mixture = get_mixture(config.mixture)
    return _cached(
        "mixture",
        config,
        lambda: train_mixture_classifier(config),
        lambda: Classifier(_mixture_body(config.width), config.width, mixture.n_modes + 1),
    )


def digit_classifier(config: DigitClassifierConfig) -> Classifier:
    return _cached(
        "digits",
        config,
        lambda: train_digit_classifier(config),
        lambda: Classifier(_digit_body(config), config.feature_dim, 10),
    )


class FeatureExtractor(nn.Module):
    """Samples in the generator's output space → (n, d) features, in batches, without gradients."""

    def __init__(self, net: Callable[[torch.Tensor], torch.Tensor], modules: nn.Module, batch_size: int) -> None:
        super().__init__()
        self.modules_ = modules
        self.net = net
        self.batch_size = batch_size

    @torch.no_grad()
    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.net(chunk) for chunk in samples.split(self.batch_size)])


def make_extractor(
    name: str,
    *,
    data: str | None = None,
    image_size: int | None = None,
    weights: str | None = None,
    device: torch.device | str = "cpu",
) -> FeatureExtractor:
    """The feature extractor called `name`; `data` names the mixture, `image_size` the digits' size."""
    if name == "mixture":
        if data is None:
            raise EmpiricalInputError("the mixture feature extractor needs the mixture's name (ring8 or grid25)")
        model = mixture_classifier(MixtureClassifierConfig(mixture=data)).to(device)
        return FeatureExtractor(model.features, model, batch_size=65_536)
    if name == "digits":
        model = digit_classifier(DigitClassifierConfig(image_size=image_size or 8)).to(device)
        return FeatureExtractor(model.features, model, batch_size=2048)
    if name == "inception":
        from empirical.inception import load_inception

        model = load_inception(weights, device=device)
        return FeatureExtractor(model, model, batch_size=200)
    raise EmpiricalInputError(f"unknown feature extractor {name!r}; expected one of {', '.join(EXTRACTORS)}")
