"""Every predictor of the critical batch size, scored against the measured one across sweeps.

A *cell* is one group of a sweep (preset, optimizer, α, FID target, data noise scale) whose hyperbola fit gives
b*_fit = 2c, not censored (c below its bound, the smallest batch size with a finite K). Each predictor gives a
b* for the cell without the cell's own steps-to-target:

- `b*_floor`: the noise-floor analysis (empirical/floors.py): the runs' settled FID F(b) and their transient, no K;
- one row per bound family that models the cell's optimizer (report.MODELLED_OPTIMIZERS), from the constants
  measured on that preset and optimizer, at the cell's α and the ε its reference run reached at *its* target (a
  cell at another target has no ε: the family gives no number there, rather than one about another target);
- `2·B_simple`: twice McCandlish's noise scale tr Σ/‖G‖² of the reference run (the larger player's): for b ≫ c the
  template's K∞·b/(b − c) is McCandlish's K∞(1 + B_noise/b), so b* = 2c ↔ 2·B_noise;
- `2·B_noise,H`: the same in the metric the optimizer steps in, tr(HΣ)/(GᵀHG) with H = diag(1/(√v̂ + eps)) the
  preconditioner along the reference run (empirical/constants.py); for SGD H = I and it is 2·B_simple.

Each is divided by the cell's b*_fit and scored by the median |log₂ ratio| and the share of cells within 2×, on
the control game (data lqgan) and on the neural GANs separately; and, since the hyperbola's 2c can sit well below
the grid's argmin where the fit is poor, also by the shares within 2× of b*_measured and of b*_restart (the argmin
of the expected SFO with restarts, empirical/measured.py). The noise scales and the
families' constants come from a file measured with the cell's own preset and optimizer (and data scale); where there
is none the predictor has no value there and the table says so. Pure functions: the caller reads the files
(empirical.published.constants_for).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from empirical.measured import restart_b_star

if TYPE_CHECKING:
    from empirical.report import GroupAnalysis
    from theory.schema import ConstantsFile

FAMILY_ORDER = ("sgd-frozen", "sgd", "adam", "amsgrad-l1", "adam-cs")
MISSED = "†"
NOISE_PREDICTORS = ("2·B_simple", "2·B_noise,H")


@dataclass(frozen=True)
class Cell:
    """One group of one sweep, where it sits and whether it is the control game."""

    sweep: str  # the committed store's name (docs/results/NAME.db.gz)
    preset: str
    group: GroupAnalysis
    control: bool  # the linear-quadratic control game (data lqgan) rather than a neural GAN

    @property
    def b_fit(self) -> float | None:
        """b*_fit = 2c, or None where there is none or it is censored (c at its bound: only an upper bound)."""
        from empirical.scaling import fit_at_bound

        fit = self.group.fit
        if fit is None or not fit.b_star > 0 or fit_at_bound(self.group.summaries, fit.c):
            return None
        return float(fit.b_star)


@dataclass(frozen=True)
class Value:
    """One predictor's b* at one cell, or why it has none (value None)."""

    value: float | None
    why: str = ""
    mark: str = ""  # a footnote mark the table shows after the value ("†": from a reference run that missed)

    def ratio(self, b_fit: float | None) -> float | None:
        if self.value is None or b_fit is None or not math.isfinite(self.value) or self.value <= 0:
            return None
        return self.value / b_fit


@dataclass
class Row:
    """A cell and every predictor's value there."""

    cell: Cell
    values: dict[str, Value] = field(default_factory=dict)


def _joint_noise(scales: dict[str, float]) -> float | None:
    # K = max(K_D, K_G): the noisier player sets where the steps stop falling (report.NoisePrediction.joint)
    return 2.0 * max(scales.values()) if set(scales) == {"D", "G"} else None


def noise_values(cell: Cell, file: ConstantsFile | None) -> dict[str, Value]:
    """2·B_simple and 2·B_noise,H at a cell, from the constants measured for its preset and optimizer."""
    if file is None:
        why = "no constants measured for this preset, optimizer and data scale"
        return {name: Value(None, why) for name in NOISE_PREDICTORS}
    simple = _joint_noise(file.noise_scale)
    pre = _joint_noise(file.noise_scale_preconditioned)
    if pre is None and cell.group.optimizer in ("sgd",):
        pre = simple  # SGD steps in the identity metric: tr(IΣ)/(GᵀIG) = B_simple
    # a reference run that missed its target measured its noise over the second half of max_steps instead
    mark = "" if file.source.get("status", "reached") == "reached" else MISSED
    return {"2·B_simple": Value(simple, "" if simple else "no noise scale in the constants file", mark),
            "2·B_noise,H": Value(pre, "" if pre else "no preconditioned noise scale in the constants file", mark)}


def family_values(cell: Cell, file: ConstantsFile | None, target_of_file: float | None,
                  predict: Callable[[GroupAnalysis], list]) -> dict[str, Value]:
    """Each in-scope family's joint b* at the cell (`predict`: report.theory_predictions for the group's α with the
    cell's constants), or why none: out of scope, another target than the constants' ε, not certifiable."""
    from empirical.report import in_scope

    out: dict[str, Value] = {}
    g = cell.group
    for t in predict(g):
        if not in_scope(t.family, g.optimizer):
            continue
        if file is None:
            out[t.family] = Value(None, "no constants measured for this preset and optimizer")
        elif target_of_file is None:
            out[t.family] = Value(None, "the constants file names no FID target for its ε")
        elif not math.isclose(g.target_fid, target_of_file, rel_tol=1e-9):
            out[t.family] = Value(None, f"ε measured at target {target_of_file:g}, not this cell's")
        elif t.error is not None:
            out[t.family] = Value(None, "not certifiable" if "not certifiable" in t.error else t.error.split(":")[0])
        elif "not a prediction" in t.constants_source:
            out[t.family] = Value(None, "no ε: the reference run reached none in this family's measure")
        else:
            out[t.family] = Value(float(t.b_star_joint))
    return out


def floor_value(cell: Cell) -> Value:
    p = cell.group.floor and cell.group.floor.prediction
    if not p:
        return Value(None, "no floor analysis (runs not trained to their floor)" if cell.group.floor is None
                     else "no floor prediction")
    return Value(float(p.b_star))


@dataclass(frozen=True)
class Score:
    """How one predictor fares over the cells it gives a value at."""

    predictor: str
    n_cells: int  # cells with a b*_fit
    n_valued: int  # of those, cells where the predictor gives a number
    median_log2: float | None  # median |log₂(prediction / b*_fit)|
    within_2x: float | None  # share of valued cells with 1/2 ≤ ratio ≤ 2
    within_2x_control: tuple[int, int]  # (within, valued) on the control game
    within_2x_neural: tuple[int, int]  # (within, valued) on the neural GANs
    median_ratio: float | None
    within_2x_measured: float | None = None  # share within 2× of b*_measured (the grid's argmin) instead
    within_2x_restart: float | None = None  # share within 2× of b*_restart (argmin of the expected SFO with restarts)


def score(rows: Sequence[Row], predictor: str) -> Score:
    """The predictor's median |log₂ ratio| and share within 2× over the rows that have a b*_fit."""
    have = [r for r in rows if r.cell.b_fit is not None]
    ratios = [(r.cell.control, v) for r in have
              if predictor in r.values and (v := r.values[predictor].ratio(r.cell.b_fit)) is not None]
    logs = [abs(math.log2(x)) for _, x in ratios]

    def within(control: bool) -> tuple[int, int]:
        mine = [x for c, x in ratios if c == control]
        return sum(0.5 <= x <= 2.0 for x in mine), len(mine)

    def share_within_2x(reference: Callable[[Cell], int | None]) -> float | None:
        """The share of the valued cells within 2× of another reference b* than b*_fit."""
        found = [v for r in have if predictor in r.values and (b := reference(r.cell)) is not None
                 and (v := r.values[predictor].ratio(float(b))) is not None]
        return sum(0.5 <= x <= 2.0 for x in found) / len(found) if found else None

    return Score(predictor, len(have), len(ratios), statistics.median(logs) if logs else None,
                 sum(x <= 1.0 for x in logs) / len(logs) if logs else None, within(True), within(False),
                 statistics.median(x for _, x in ratios) if ratios else None,
                 share_within_2x(lambda cell: cell.group.b_star),
                 share_within_2x(lambda cell: restart_b_star(cell.group.summaries)))


def predictors_in(rows: Sequence[Row]) -> list[str]:
    """The predictors the rows hold, in a fixed order: floor, families, noise scales."""
    seen = {name for r in rows for name in r.values}
    order = ["b*_floor", *FAMILY_ORDER, *NOISE_PREDICTORS]
    return [x for x in order if x in seen] + sorted(seen - set(order))
