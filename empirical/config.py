"""The configuration of one training run: a flat, frozen dataclass (so a sweep can key, store and compare it)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from empirical.errors import EmpiricalInputError
from empirical.features import EXTRACTORS
from empirical.losses import LOSSES
from empirical.optimizers import OPTIMIZERS

DATASETS = ("ring8", "grid25", "digits", "cifar10", "folder")
MODELS = ("mlp", "dcgan")
FEATURES_FOR = {"ring8": "mixture", "grid25": "mixture", "digits": "digits"}  # real RGB image sets: inception


@dataclass(frozen=True)
class TrainConfig:
    """Everything but the seed that determines a run. One iteration = n_critic D steps, then one G step."""

    # data
    data: str = "ring8"
    data_path: str | None = None  # cifar10 / folder only
    image_size: int = 8  # images only
    # models
    model: str = "mlp"
    z_dim: int = 2
    width: int = 128  # MLP hidden units, or DCGAN base channels
    depth: int = 3  # MLP hidden layers
    d_norm: str = "batch"  # DCGAN discriminator: batch | layer | none
    # loss and TTUR optimizers
    loss: str = "bce"
    gp_weight: float = 10.0
    optimizer: str = "adam"
    lr_d: float = 2e-4
    lr_g: float = 5e-5
    n_critic: int = 1
    batch_size: int = 64
    # steps-to-target
    max_steps: int = 5000
    eval_every: int = 50
    n_eval: int = 5000
    target_fid: float = 1.0
    features: str = "mixture"
    feature_weights: str | None = None  # inception only: a user-given weights file
    n_reference: int = 50_000  # samples for the real statistics (mixtures; image sets use every image)
    device: str = "auto"

    def __post_init__(self) -> None:
        check_config(self)

    def to_dict(self) -> dict:
        return asdict(self)

    def with_(self, **changes: object) -> TrainConfig:
        """A copy with some fields changed (validated)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise EmpiricalInputError(f"unknown config field(s): {', '.join(sorted(unknown))}")
        return replace(self, **changes)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise EmpiricalInputError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def check_config(c: TrainConfig) -> None:
    """Refuse a config that cannot run, with a one-line reason."""
    _choice("data", c.data, DATASETS)
    _choice("model", c.model, MODELS)
    _choice("loss", c.loss, LOSSES)
    _choice("optimizer", c.optimizer, OPTIMIZERS)
    _choice("features", c.features, EXTRACTORS)
    _choice("d_norm", c.d_norm, ("batch", "layer", "none"))
    for name in ("z_dim", "width", "n_critic", "batch_size", "max_steps", "eval_every", "n_eval", "n_reference"):
        value = getattr(c, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise EmpiricalInputError(f"{name} must be a positive integer, got {value!r}")
    for name in ("lr_d", "lr_g", "target_fid"):
        value = getattr(c, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise EmpiricalInputError(f"{name} must be a positive finite number, got {value!r}")
    if not (math.isfinite(c.gp_weight) and c.gp_weight >= 0):
        raise EmpiricalInputError(f"gp_weight must be a finite number >= 0, got {c.gp_weight!r}")
    if c.n_eval < 2 or c.n_reference < 2:
        raise EmpiricalInputError("n_eval and n_reference must be at least 2 (FID needs a covariance)")
    mixture = c.data in ("ring8", "grid25")
    if mixture != (c.model == "mlp"):
        raise EmpiricalInputError(
            f"model {c.model!r} does not fit data {c.data!r}: use mlp for ring8/grid25, dcgan for images"
        )
    expected = FEATURES_FOR.get(c.data, "inception")
    if c.features != expected:
        raise EmpiricalInputError(f"features {c.features!r} do not fit data {c.data!r}: use {expected}")
    if c.data in ("cifar10", "folder") and not c.data_path:
        raise EmpiricalInputError(f"data {c.data!r} needs data_path (a local folder; nothing is downloaded)")
    if c.loss == "wgan-gp" and c.model == "dcgan" and c.d_norm == "batch":
        raise EmpiricalInputError("WGAN-GP needs a critic without BatchNorm: set d_norm to layer or none")
