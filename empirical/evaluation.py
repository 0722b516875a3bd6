"""FID evaluation during training: real statistics computed once per data set, generated samples scored in place.

No images are written to disk: the generator's samples go straight to the feature extractor, and the real
statistics (with their matrix square root) are cached per process, keyed by what determines them.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from empirical import benchmarks
from empirical.config import TrainConfig
from empirical.datasets import load_data
from empirical.features import FeatureExtractor, make_extractor
from empirical.fid import ReferenceStatistics

REFERENCE_SEED = 20_231_201  # the real statistics do not depend on the run's seed: targets mean the same in every run


def _reference_fields(config: TrainConfig) -> TrainConfig:
    """The config with every field that does not determine the real statistics reset to its default.

    lru_cache keys on its arguments, so runs that differ only in batch size, learning rates, ... share one entry.
    """
    defaults = TrainConfig()
    keep = ("data", "data_path", "data_limit", "image_size", "features", "feature_weights", "n_reference")
    return defaults.with_(model=config.model, **{name: getattr(config, name) for name in keep})


@lru_cache(maxsize=8)
def _cached_reference(config: TrainConfig, device: torch.device) -> tuple[FeatureExtractor, ReferenceStatistics]:
    extractor = make_extractor(
        config.features, data=config.data, image_size=config.image_size, weights=config.feature_weights, device=device
    )
    data = load_data(config, device)
    generator = torch.Generator(device=device).manual_seed(REFERENCE_SEED)
    reference = ReferenceStatistics.from_features(extractor(data.reference(config.n_reference, generator)))
    return extractor, reference


def reference_for(config: TrainConfig, device: torch.device) -> tuple[FeatureExtractor, ReferenceStatistics]:
    """The feature extractor and real statistics for this config's data (cached)."""
    return _cached_reference(_reference_fields(config), device)


class FIDEvaluator:
    """Scores a generator by FID on n_eval samples from a fixed noise batch (the same z at every evaluation)."""

    def __init__(self, config: TrainConfig, device: torch.device, seed: int) -> None:
        self.extractor, self.reference = reference_for(config, device)
        generator = torch.Generator(device=device).manual_seed(seed)
        self.z = torch.randn(config.n_eval, config.z_dim, generator=generator, device=device)
        self.n = config.n_eval

    @torch.no_grad()
    def __call__(self, generator_model: nn.Module) -> float:
        samples = torch.cat([generator_model(z) for z in self.z.split(4096)])
        if not torch.isfinite(samples).all():
            return float("nan")
        return self.reference.distance_to_features(self.extractor(samples))


def make_evaluator(config: TrainConfig, device: torch.device, seed: int):
    """The FID scorer of a run: a registered benchmark's own metric, else FID on n_eval samples (FIDEvaluator)."""
    if benchmarks.is_registered(config.data):
        return benchmarks.get_benchmark(config.data).evaluator(config, device, seed)
    return FIDEvaluator(config, device, seed)


def real_vs_real_fid(config: TrainConfig, seed: int = 0, device: torch.device | str = "cpu") -> float:
    """FID of n_eval real samples against the real statistics: the floor a target must sit well above.

    Mixtures: fresh samples. Finite image sets: a bootstrap resample of the set, i.e. the score of a generator that
    reproduces the training images perfectly (the reference uses every image, so any subset would be optimistic).
    """
    device = torch.device(device)
    extractor, reference = reference_for(config, device)
    data = load_data(config, device)
    samples = data.sample(config.n_eval, torch.Generator(device=device).manual_seed(seed))
    return reference.distance_to_features(extractor(samples))
