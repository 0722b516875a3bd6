"""The configuration of one training run: a flat, frozen dataclass (so a sweep can key, store and compare it)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from empirical import benchmarks
from empirical.errors import EmpiricalInputError
from empirical.features import EXTRACTORS
from empirical.losses import LOSSES
from empirical.optimizers import OPTIMIZERS

PRECISIONS = ("fp32", "bf16")
COMPILE_MODES = ("none", "default", "max-autotune")  # torch.compile's mode, or none
DATASETS = ("ring8", "grid25", "digits", "cifar10", "folder")
MODELS = ("mlp", "dcgan")
FEATURES_FOR = {"ring8": "mixture", "grid25": "mixture", "digits": "digits"}  # real RGB image sets: inception
SCALABLE_DATA = ("lqgan", "gauss-mlp")  # the Gaussian data whose covariance data_scale multiplies

# (α_D, α_G) per optimizer, by table name. "paper-*": Sato & Iiduka's table (reference.md §1), the rates of the
# official scripts (iiduka-researches/GANs) for DCGAN on LSUN-Bedroom and WGAN-GP on CelebA.
LR_TABLES: dict[str, dict[str, tuple[float, float]]] = {
    "paper-dcgan": {"adam": (3e-4, 1e-4), "adabelief": (3e-5, 3e-4), "rmsprop": (3e-5, 1e-4)},
    "paper-wgangp": {"adam": (3e-4, 1e-4), "adabelief": (3e-5, 5e-4), "rmsprop": (1e-4, 3e-4)},
    # The CPU presets gauss-mlp-paper (× 10) and ring8-paper (× 20): paper-dcgan times one factor per preset, so the
    # paper's ratio α_D/α_G per optimizer. × 10/3 (Adam at the calibrated α_D = 1e-3) left AdaBelief and RMSProp
    # untrained on both (presets.py, gauss_mlp.py say what each factor gave).
    "paper-dcgan-x10": {"adam": (3e-3, 1e-3), "adabelief": (3e-4, 3e-3), "rmsprop": (3e-4, 1e-3)},
    "paper-dcgan-x20": {"adam": (6e-3, 2e-3), "adabelief": (6e-4, 6e-3), "rmsprop": (6e-4, 2e-3)},
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything but the seed that determines a run. One iteration = n_critic D steps, then one G step."""

    # data
    data: str = "ring8"
    data_path: str | None = None  # cifar10 / folder only
    data_limit: int | None = None  # folder only: the first N images in sorted path order (None: all)
    image_size: int = 8  # images only
    # lqgan / gauss-mlp only: the data is N(μ, s·Σ) with s = data_scale (μ, Σ the seeded ones), the knob of the
    # data's gradient noise (issue 14); 1 is the data of every run before the field existed.
    data_scale: float = 1.0
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
    lr_table: str | None = None  # a name in LR_TABLES: (lr_d, lr_g) follow the optimizer (see with_ and Cell.config)
    n_critic: int = 1
    batch_size: int = 64
    # steps-to-target
    max_steps: int = 5000
    eval_every: int = 50
    eval_growth: float = 0.0  # evaluate at multiples of eval_every at least (1 + eval_growth)× the previous one
    n_eval: int = 5000
    target_fid: float = 1.0
    # Noise floor (docs/sweep.md): a run that reaches the target goes on until its FID settles (or max_steps), so
    # that its floor F(b) is measured at every b, and a run settled clearly above the target stops early, as
    # status "settled" (a censored miss). K is the first hit either way.
    floor: bool = False
    # The theory's own measures (docs/sweep.md): with measure_batch > 0 every evaluation records, per player, the
    # unbiased ‖∇_P L_P‖² (two independent halves of measure_batch fresh samples, from a generator of their own, so
    # the trajectory is unchanged) and the VI gap ⟨θ_P − θ_ref,P, ∇_P L_P⟩; a benchmark with closed forms (lqgan)
    # uses its exact gradient instead, whatever the count. 0: off.
    measure_batch: int = 0
    # The G step's z: False reuses the last D step's z and fake (the official scripts' protocol); True draws a
    # fresh z, so G's gradient is not biased by D's step on the same fakes.
    g_fresh_z: bool = False
    features: str = "mixture"
    feature_weights: str | None = None  # inception only: a user-given weights file
    n_reference: int = 50_000  # samples for the real statistics (mixtures; image sets use every image)
    device: str = "auto"
    # GPU speed options (docs/paper-presets.md): bf16 autocast of the training steps' forward passes, and
    # torch.compile of the models used in training. Evaluation (FID) always runs the eager fp32 generator.
    precision: str = "fp32"
    compile: str = "none"
    # A user's own training function (empirical/entry.py), `module:function`, swept by `--entry`: it yields
    # (step, FID) and the fields above that it does not read (data, models, optimizer, evaluation) are unused.
    # entry_params: the --set keyword arguments it is called with, as sorted JSON ("" for none).
    entry: str | None = None
    entry_params: str = ""

    def __post_init__(self) -> None:
        check_config(self)

    def to_dict(self) -> dict:
        return asdict(self)

    def with_(self, **changes: object) -> TrainConfig:
        """A copy with some fields changed (validated).

        A change of optimizer or lr_table takes the rates it does not give from the learning-rate table at the new
        optimizer: `--optimizer rmsprop` on a paper preset trains at the table's RMSProp rates, and with
        `--lr-g X` (which drops the table) at the table's RMSProp α_D and α_G = X.
        """
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise EmpiricalInputError(f"unknown config field(s): {', '.join(sorted(unknown))}")
        return replace(self, **{**self._table_rates_left_out(changes), **changes})

    def _table_rates_left_out(self, changes: dict) -> dict:
        """lr_d/lr_g that a change of optimizer or table leaves out, from the new table, else the one it drops."""
        if not {"optimizer", "lr_table"} & changes.keys():
            return {}
        new = changes.get("lr_table", self.lr_table)
        table = new if new is not None else self.lr_table
        optimizer = changes.get("optimizer", self.optimizer)
        if table is None or (new is None and optimizer not in LR_TABLES.get(table, {})):
            return {}  # no table, or a dropped one without this optimizer: the current rates stay
        rates = dict(zip(("lr_d", "lr_g"), table_rates(table, optimizer), strict=True))
        return {name: rate for name, rate in rates.items() if name not in changes}

    def rates_for(self, optimizer: str) -> tuple[float, float]:
        """(α_D, α_G) of a run of this config with `optimizer`: the table's when there is one, else lr_d, lr_g."""
        return (self.lr_d, self.lr_g) if self.lr_table is None else table_rates(self.lr_table, optimizer)


def config_from_dict(stored: dict) -> TrainConfig:
    """A config stored as a dict (a sweep folder's, a constants file's): keys it lacks take today's defaults, so
    folders written before a field was added still open; a key this version does not know is a one-line error."""
    unknown = set(stored) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise EmpiricalInputError(f"stored config has unknown field(s) {', '.join(sorted(unknown))}: "
                                  "it was written by another version of this toolkit")
    return TrainConfig(**stored)


def table_rates(table: str, optimizer: str) -> tuple[float, float]:
    """(α_D, α_G) of `optimizer` in the learning-rate table `table`; a one-line error when either is unknown."""
    if table not in LR_TABLES:
        raise EmpiricalInputError(f"lr_table must be one of {', '.join(LR_TABLES)}, got {table!r}")
    if optimizer not in LR_TABLES[table]:
        raise EmpiricalInputError(f"lr_table {table!r} has no rates for optimizer {optimizer!r} (it has "
                                  f"{', '.join(LR_TABLES[table])}); set lr_d and lr_g without a table (--lr-d, --lr-g)")
    return LR_TABLES[table][optimizer]


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise EmpiricalInputError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def check_config(c: TrainConfig) -> None:
    """Refuse a config that cannot run, with a one-line reason."""
    _choice("data", c.data, DATASETS + tuple(benchmarks.REGISTERED))
    if benchmarks.is_registered(c.data):
        _check_benchmark(c)
    else:
        _choice("model", c.model, MODELS)
        _choice("features", c.features, EXTRACTORS)
    _choice("loss", c.loss, LOSSES)
    _choice("optimizer", c.optimizer, OPTIMIZERS)
    _choice("d_norm", c.d_norm, ("batch", "layer", "none"))
    _choice("precision", c.precision, PRECISIONS)
    _choice("compile", c.compile, COMPILE_MODES)
    for name in ("z_dim", "width", "n_critic", "batch_size", "max_steps", "eval_every", "n_eval", "n_reference"):
        value = getattr(c, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise EmpiricalInputError(f"{name} must be a positive integer, got {value!r}")
    for name in ("lr_d", "lr_g", "target_fid"):
        value = getattr(c, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise EmpiricalInputError(f"{name} must be a positive finite number, got {value!r}")
    for name in ("gp_weight", "eval_growth"):
        value = getattr(c, name)
        if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise EmpiricalInputError(f"{name} must be a finite number >= 0, got {value!r}")
    _check_data_scale(c)
    if c.n_eval < 2 or c.n_reference < 2:
        raise EmpiricalInputError("n_eval and n_reference must be at least 2 (FID needs a covariance)")
    for name in ("floor", "g_fresh_z"):
        if not isinstance(getattr(c, name), bool):
            raise EmpiricalInputError(f"{name} must be true or false, got {getattr(c, name)!r}")
    m = c.measure_batch
    if isinstance(m, bool) or not isinstance(m, int) or not (m == 0 or m >= 2):
        raise EmpiricalInputError(f"measure_batch must be 0 (off) or an integer >= 2 (two halves), "
                                  f"got {c.measure_batch!r}")
    if not benchmarks.is_registered(c.data):
        _check_builtin_data(c)
    _check_data_limit(c)
    _check_lr_table(c)


def _check_benchmark(c: TrainConfig) -> None:
    """A registered benchmark (empirical/benchmarks) names its own model, metric and losses."""
    unit = benchmarks.get_benchmark(c.data)
    _choice("model", c.model, (unit.model,))
    _choice("features", c.features, (unit.features,))
    if c.loss not in unit.losses:
        raise EmpiricalInputError(f"loss {c.loss!r} does not fit data {c.data!r}: use {', '.join(unit.losses)}")


def _check_builtin_data(c: TrainConfig) -> None:
    if c.loss == "wgan-l2":
        raise EmpiricalInputError("loss wgan-l2 is the lqgan control game's; use bce or wgan-gp")
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


def _check_data_scale(c: TrainConfig) -> None:
    """s multiplies a Gaussian's covariance: it must be positive, and only the Gaussian data (lqgan's) has one."""
    value = c.data_scale
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise EmpiricalInputError(f"data_scale must be a positive finite number, got {value!r}")
    if value != 1.0 and c.data not in SCALABLE_DATA:
        raise EmpiricalInputError(f"data_scale scales the Gaussian data of {' and '.join(SCALABLE_DATA)} only, "
                                  f"not {c.data!r}: leave it at 1")


def _check_data_limit(c: TrainConfig) -> None:
    if c.data_limit is None:
        return
    if isinstance(c.data_limit, bool) or not isinstance(c.data_limit, int) or c.data_limit < 1:
        raise EmpiricalInputError(f"data_limit must be a positive integer or None, got {c.data_limit!r}")
    if c.data != "folder":
        raise EmpiricalInputError(f"data_limit applies to folder data only, not {c.data!r}")


def _check_lr_table(c: TrainConfig) -> None:
    """With a table, lr_d/lr_g must be its entry for the optimizer: the config states the rates it trains at."""
    if c.lr_table is None:
        return
    expected = table_rates(c.lr_table, c.optimizer)
    if not all(math.isclose(x, y, rel_tol=1e-9) for x, y in zip((c.lr_d, c.lr_g), expected, strict=True)):
        raise EmpiricalInputError(
            f"lr_d, lr_g = {c.lr_d:g}, {c.lr_g:g} differ from lr_table {c.lr_table!r} at {c.optimizer} "
            f"({expected[0]:g}, {expected[1]:g}); to train at other rates, drop the table (lr_table None)"
        )
