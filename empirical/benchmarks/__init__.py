"""Benchmarks that are one registered unit each: their data, models, metric and presets in one module.

A benchmark module defines a module-level ``BENCHMARK`` (a :class:`Benchmark`); adding one is that module plus its
line in :data:`REGISTERED`. The engine (config checks, data loading, model building, FID, presets, the sweep's
batched training) asks the registry before its built-in data sets (ring8, grid25, digits, image folders), so a new
benchmark needs no edits elsewhere. Modules are imported lazily: config.py consults the registry for names, and the
benchmark modules themselves import config.py.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from empirical.config import TrainConfig
    from empirical.train import RunResult

# config.data name -> the module that defines its BENCHMARK
REGISTERED: dict[str, str] = {
    "lqgan": "empirical.benchmarks.lqgan",
    "gauss-mlp": "empirical.benchmarks.gauss_mlp",
}


@dataclass(frozen=True)
class Benchmark:
    """Everything the engine needs to train and score one benchmark.

    load_data(config, device): a source with .shape, .sample(n, generator) and .reference(n, generator).
    build_models(config): (generator, discriminator), initialised from the current torch RNG.
    evaluator(config, device, seed): a callable scoring a generator module by FID (float).
    train_many(config, seeds): optional; the runs of several seeds trained as one batched computation, each
    equal to train(config, seed) up to float round-off.
    exact_floor(config): optional; the benchmark's exact noise floor, which the report sets beside the measured one.
    exact_gradient(config, generator, discriminator): optional; each player's gradient of its *expected* loss in its
    own parameters, {"D": ..., "G": ...}, flattened float64 in module.parameters() order (a leading run axis on
    the parameters is kept). With it, config.measure_batch records the exact ‖∇_P L_P‖² instead of a sampled one.
    exact_reference(config): optional; the exact equilibrium {"D": θ*_D, "G": θ*_G} (flattened float64), the
    reference point of the VI gap (empirical/reference_point.py).
    noise_law(config, scales): optional; where config.data_scale scales the data's noise, the exponent the theory
    gives b* in that scale over `scales` (from the benchmark's closed forms) and a line saying how: the noise law's
    theory value in the report (empirical/scaling.py).
    """

    data: str
    model: str
    features: str
    losses: tuple[str, ...]
    load_data: Callable[[TrainConfig, torch.device], Any]
    build_models: Callable[[TrainConfig], tuple[nn.Module, nn.Module]]
    evaluator: Callable[[TrainConfig, torch.device, int], Callable[[nn.Module], float]]
    presets: dict[str, TrainConfig] = field(default_factory=dict)
    train_many: Callable[[TrainConfig, Sequence[int]], list[RunResult]] | None = None
    # optional: the exact noise floor F(b) of a config (an object with .floor(b)); ValueError where it has none
    exact_floor: Callable[[TrainConfig], Any] | None = None
    exact_gradient: Callable[[TrainConfig, nn.Module, nn.Module], dict[str, torch.Tensor]] | None = None
    exact_reference: Callable[[TrainConfig], dict[str, torch.Tensor]] | None = None
    noise_law: Callable[[TrainConfig, Sequence[float]], tuple[float, str]] | None = None


def is_registered(data: str) -> bool:
    return data in REGISTERED


def get_benchmark(data: str) -> Benchmark:
    """The benchmark whose config.data is `data` (KeyError for a built-in data set)."""
    return importlib.import_module(REGISTERED[data]).BENCHMARK


def all_benchmarks() -> list[Benchmark]:
    return [get_benchmark(name) for name in REGISTERED]
