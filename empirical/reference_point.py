"""θ_ref, the reference point of the VI gap ⟨θ_k − θ_ref, ∇_P L_P(θ_k)⟩ that the Adam families' bounds control.

The gap of a run must be measured against a point that does not depend on that run's own minibatches (the
parameters at its own target would make the gap at the target 0 by construction). So θ_ref is:

- the benchmark's exact equilibrium where it has one (lqgan: μ_g = μ, A = chol Σ, D = 0);
- else the final parameters of one independent run of the config: floor off, no measuring, the seed
  REFERENCE_SEED (which no sweep uses), trained for the full config.max_steps towards an unreachable target. It is
  cached as a file in `cache` (a sweep folder) keyed by a hash of that run's config, so a sweep computes it once,
  in the driver, and its workers get the loaded tensors (empirical/sweep.py).

A sweep uses one θ_ref for every cell (the folder's base config, at its batch size and optimizer), so the gaps of
all batch sizes are measured against the same point.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from empirical import benchmarks
from empirical.config import TrainConfig
from empirical.errors import EmpiricalInputError
from empirical.train import DIVERGED, Checkpoint, flat_parameters, train

REFERENCE_SEED = 104_729  # the 10,000th prime; sweeps use small seeds (0, 1, 2, ...)
UNREACHABLE_FID = 1e-300  # a positive target no FID reaches, so the run trains for all of max_steps
PLAYERS = ("D", "G")


def reference_config(config: TrainConfig) -> TrainConfig:
    """The config of the independent run whose final parameters are θ_ref."""
    return config.with_(floor=False, measure_batch=0, target_fid=UNREACHABLE_FID)


def cache_key(config: TrainConfig) -> str:
    """A hash of the reference run's config and seed: the cache file's name."""
    text = json.dumps({"config": reference_config(config).to_dict(), "seed": REFERENCE_SEED}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cache_path(config: TrainConfig, cache: Path) -> Path:
    return Path(cache) / f"reference-{cache_key(config)}.pt"


def is_exact(config: TrainConfig) -> bool:
    """Whether θ_ref is the benchmark's exact equilibrium (nothing to train or cache)."""
    return benchmarks.is_registered(config.data) and benchmarks.get_benchmark(config.data).exact_reference is not None


def is_cached(config: TrainConfig, cache: Path | None) -> bool:
    """Whether reference_point(config, cache) returns without training (exact, or its file is in `cache`)."""
    return is_exact(config) or (cache is not None and cache_path(config, cache).is_file())


def reference_point(config: TrainConfig, cache: Path | None = None) -> dict[str, torch.Tensor]:
    """θ_ref per player ("D", "G"): flattened float64 parameters on the CPU, in module.parameters() order.

    The exact equilibrium for a benchmark that has one; else the final parameters of the reference run (module
    docstring), read from `cache` when a file for this config is there and written to it otherwise (atomically).
    """
    if is_exact(config):
        exact = benchmarks.get_benchmark(config.data).exact_reference(config)
        return {p: t.detach().to("cpu", torch.float64).reshape(-1) for p, t in exact.items()}
    path = None if cache is None else cache_path(config, cache)
    if path is not None and path.is_file():
        return _load(path)
    point = _train_reference(config)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        torch.save({"config": reference_config(config).to_dict(), "seed": REFERENCE_SEED, **point}, temporary)
        os.replace(temporary, path)
    return point


def _load(path: Path) -> dict[str, torch.Tensor]:
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        return {p: stored[p].to(torch.float64).reshape(-1) for p in PLAYERS}
    except (OSError, RuntimeError, KeyError, TypeError, AttributeError) as error:
        raise EmpiricalInputError(f"{path} is not a readable reference point ({error}); delete it to recompute "
                                  "it") from None


def _train_reference(config: TrainConfig) -> dict[str, torch.Tensor]:
    """Train the reference run on one thread (as the sweep's workers do) and keep its final parameters."""
    final: dict[str, torch.Tensor] = {}

    def observe(checkpoint: Checkpoint) -> None:
        final.update(D=flat_parameters(checkpoint.discriminator).cpu(), G=flat_parameters(checkpoint.generator).cpu())

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train(reference_config(config), REFERENCE_SEED, observe=observe)
    finally:
        torch.set_num_threads(threads)
    if result.status == DIVERGED or not all(bool(torch.isfinite(t).all()) for t in final.values()):
        raise EmpiricalInputError(f"the reference run for θ_ref (seed {REFERENCE_SEED}) diverged at step "
                                  f"{result.diverged_at}; lower --lr-d/--lr-g")
    return final
