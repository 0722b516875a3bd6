"""The theory-vs-measurement report of a sweep folder: report.md, PNG figures and CSV tables, written into it.

    python -m empirical.report runs/ring8 [--constants constants.json] [--bootstrap 1000]
    python -m empirical.report runs/lqgan-s0.5 runs/lqgan-s1 runs/lqgan-s2 --index runs/lqgan-noise


Per (optimizer, learning-rate scale) group, and per FID target where the sweep had several (--targets: K at each
read from the same runs' histories): median K(b) and SFO over seeds, the measured b* with a bootstrap interval,
the fit K∞·b/(b − c) (b*_fit = 2c), the theory's b* for the same learning rates from every bound family in
`theory`, and the gradient-noise-scale prediction. The constants come from --constants FILE, else from those
measured on the sweep's preset (theory/measured/PRESET.json) when they describe its config, else from the families'
illustrative defaults; the report says which. A folder with several groups (targets, α, optimizers) also gets
index.md: the laws of b* (scaling.json, scaling.png) first, then every group's b* with a link to its section.
Several folders that differ only in the data's noise scale (--data-scale) each get their report, and --index DIR
gets one index.md across them, with the noise law.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from empirical import benchmarks, index_page, scaling, theory_measure
from empirical.cli import OneLineParser, fail
from empirical.config import TrainConfig
from empirical.errors import EmpiricalInputError
from empirical.floors import FloorAnalysis, RunHistory, analyse_floors
from empirical.measured import (
    BatchSummary,
    Bootstrap,
    Fit,
    Interval,
    Outcome,
    bootstrap,
    fit_hyperbola,
    measured_b_star,
    restart_b_star,
    summarise,
)
from empirical.stopping import NOT_REACHED, REACHED, steps_to
from empirical.store import RECORDING_FIELDS, RunRow, Store, read_store
from empirical.theory_measure import MEASURES, MeasureAnalysis, MeasureRun
from theory.analysis import analyse, curves, resolve_constants, resolve_epsilons
from theory.errors import TheoryInputError
from theory.families import FAMILIES
from theory.measured import load_measured, measured_presets
from theory.schema import ConstantsFile, load_constants

PROG = "python -m empirical.report"


@dataclass
class GroupAnalysis:
    """The measured side for one (optimizer, lr_scale) slice of the grid at one FID target."""

    optimizer: str
    lr_scale: float
    lr_d: float
    lr_g: float
    target_fid: float
    n_eval: int  # 0 for an exact FID (no samples: lqgan)
    rows: list[RunRow]
    summaries: list[BatchSummary]
    b_star: int | None
    fit: Fit | None
    boot: Bootstrap
    n_diverged: int
    floor: FloorAnalysis | None = None  # runs trained to their noise floor (config.floor)
    exact_floor: Any = None  # the benchmark's exact F(b), where it has one (lqgan with SGD)
    n_settled: int = 0
    measure_runs: dict[str, list[MeasureRun]] = field(default_factory=dict)  # the theory's measures per run
    measure_notes: list[str] = field(default_factory=list)  # why a recorded measure has no K_ε analysis
    data_scale: float = 1.0  # the data's noise scale s (config.data_scale; the noise law across sweep folders)

    @property
    def label(self) -> str:
        return f"{self.optimizer}, α_D = {self.lr_d:g}, α_G = {self.lr_g:g} (×{self.lr_scale:g})"


def analyse_group(rows: Sequence[RunRow], base: TrainConfig, n_resamples: int = 1000, seed: int = 0,
                  histories: Sequence[RunHistory] | None = None, target: float | None = None) -> GroupAnalysis:
    """The measured side of one group; with `histories` (runs trained to their floor) also the floor analysis.
    `target`: the FID target the rows' outcomes are at (:func:`at_target`; None: the base config's)."""
    target = base.target_fid if target is None else target
    outcomes = [Outcome(r.cell.batch_size, r.cell.seed, r.steps_to_target if r.status == "reached" else None,
                        r.steps_run) for r in rows]
    summaries = summarise(outcomes)
    first = rows[0]
    return GroupAnalysis(
        optimizer=first.cell.optimizer, lr_scale=first.cell.lr_scale, lr_d=first.lr_d, lr_g=first.lr_g,
        target_fid=target, n_eval=0 if base.features == "exact" else base.n_eval, rows=list(rows),
        summaries=summaries,
        b_star=measured_b_star(summaries), fit=fit_hyperbola(summaries),
        boot=bootstrap(outcomes, n_resamples=n_resamples, seed=seed),
        n_diverged=sum(r.status == "diverged" for r in rows),
        floor=None if histories is None else analyse_floors(histories, target, n_resamples, seed),
        exact_floor=_exact_floor(base.with_(optimizer=first.cell.optimizer, lr_table=None, lr_d=first.lr_d,
                                            lr_g=first.lr_g)),
        n_settled=sum(r.status == "settled" for r in rows),
        data_scale=float(getattr(base, "data_scale", 1.0)),
    )


def _exact_floor(config: TrainConfig) -> Any:
    """The benchmark's exact F(b) for this group's optimizer and rates, or None where it has none (or the runs are a
    user's function's, not the benchmark's)."""
    if config.entry is not None or not benchmarks.is_registered(config.data):
        return None
    unit = benchmarks.get_benchmark(config.data)
    if unit.exact_floor is None:
        return None
    try:
        return unit.exact_floor(config)
    except ValueError:  # e.g. Adam (no linear iteration), or rates at which the linearisation is unstable
        return None


def at_target(row: RunRow, history: Sequence[tuple[int, float]], target: float) -> RunRow:
    """A run's outcome at a looser target than the one it stopped by, from its (step, FID) history: reached with K
    the first evaluation at or below it (empirical.stopping.steps_to, the K a run stopped at that target would
    have had), else the miss it was (not_reached, settled or diverged)."""
    k = steps_to(history, target)
    if k is not None:
        return replace(row, status=REACHED, steps_to_target=k, sfo=k * row.cell.batch_size)
    return replace(row, status=NOT_REACHED if row.status == REACHED else row.status, steps_to_target=None, sfo=None)


def analyse_store(store: Store, n_resamples: int = 1000) -> list[GroupAnalysis]:
    """Every group of the folder: per FID target (loosest first; one for a one-target folder), per (optimizer,
    lr_scale)."""
    base = store.base_config()
    targets = store.targets()
    groups: dict[tuple[str, float], list[RunRow]] = {}
    for row in store.runs():
        groups.setdefault((row.cell.optimizer, row.cell.lr_scale), []).append(row)
    finite: dict[int, list[tuple[int, float]]] = {}

    def steps_fids(row: RunRow) -> list[tuple[int, float]]:
        if row.id not in finite:
            finite[row.id] = [(p.step, p.fid) for p in store.history(row.id) if math.isfinite(p.fid)]
        return finite[row.id]

    def histories(rows: list[RunRow]) -> list[RunHistory] | None:
        if not base.floor:
            return None
        return [RunHistory(row.cell.batch_size, row.cell.seed, tuple(s for s, _ in steps_fids(row)),
                           tuple(f for _, f in steps_fids(row))) for row in rows]

    out = []
    for target in targets:
        for _, rows in sorted(groups.items()):
            # the runs stopped by the tightest target (base.target_fid): their stored outcome is theirs at it
            at = rows if target == base.target_fid else [at_target(r, steps_fids(r), target) for r in rows]
            out.append(analyse_group(at, base, n_resamples, histories=histories(rows), target=target))
    for g in out:  # the theory's own measures, where the runs recorded them (empirical/theory_measure.py)
        if g.target_fid != base.target_fid:
            continue  # set beside the FID K of the target the runs stopped by
        points = {r.id: store.history(r.id) for r in g.rows}
        for name in MEASURES:
            runs = [theory_measure.from_points(r.cell.batch_size, r.cell.seed, r.steps_to_target
                                               if r.status == "reached" else None, points[r.id], name)
                    for r in g.rows]
            if any(x.measured for x in runs):
                g.measure_runs[name] = runs
    return out


def analyse_measures(group: GroupAnalysis, choice: ConstantsChoice,
                     n_resamples: int = 1000) -> list[MeasureAnalysis]:
    """The group's K_ε analyses: each measure its runs recorded whose bound families model the group's optimizer,
    against that family's ε in the constants file. Where none of those has an ε (the constants file says why in
    `group.measure_notes`), every other recorded measure that has one, so the runs' stationarity is still shown."""
    in_scope_names = [n for n in group.measure_runs
                      if any(in_scope(f, group.optimizer) for f in MEASURES[n].families)]
    skipped = (choice.file.source.get("epsilon_skipped", {}) if choice.file is not None else {}) or {}

    def run(names: list[str]) -> list[MeasureAnalysis]:
        out = []
        for name in names:
            eps = theory_measure.epsilon_squared(choice.file, name)
            if eps is None:
                why = next((skipped[f] for f in MEASURES[name].families if f in skipped), "no ε in the constants")
                group.measure_notes.append(f"The {MEASURES[name].words}: no K_ε, since the constants give no ε for it "
                                           f"({why}).")
                continue
            out.append(theory_measure.analyse_measure(group.measure_runs[name], name, eps, n_resamples))
        return out

    analyses = run(in_scope_names)
    if not analyses:
        others = [n for n in group.measure_runs if n not in in_scope_names]
        analyses = run(others)
        if analyses and in_scope_names:
            group.measure_notes.append("Shown instead: the " + ", ".join(a.measure.words for a in analyses)
                                       + ", the measure of bound families that do not model these runs (so their "
                                       "b* rows are out of scope), as a plain record of how stationary the runs get.")
    return analyses


@dataclass
class TheoryPrediction:
    """One bound family's b* for the run's learning rates (or why it gives none)."""

    family: str
    constants_source: str
    b_star_d: float = math.nan
    b_star_g: float = math.nan
    b_star_joint: float = math.nan
    case: str = ""
    k_inf_joint: float = math.nan
    error: str | None = None
    players: dict = field(default_factory=dict)

    def joint_k(self, b: np.ndarray) -> np.ndarray:
        return curves(self.players, b)[0]["joint"]


@dataclass(frozen=True)
class ConstantsChoice:
    """The constants the report's theory rows use, and a line saying where they come from."""

    file: ConstantsFile | None  # None: the families' illustrative defaults
    label: str
    note: str = ""


# Fields of a run's config that do not change what the constants describe: the grid's own axes (batch size,
# optimizer, learning rates or their table: the report puts each group's α into the theory itself) and how
# often/long it evaluates.
_FREE_FIELDS = {"batch_size", "optimizer", "lr_d", "lr_g", "lr_table", "device", "max_steps", "eval_every",
                "eval_growth", *RECORDING_FIELDS}  # RECORDING_FIELDS: what a run records, not what it does


def choose_constants(constants_file: str | None, preset: str, base: TrainConfig) -> ConstantsChoice:
    """--constants FILE if given; else the constants measured on the sweep's preset when they describe its config."""
    if constants_file is not None:
        try:
            return ConstantsChoice(load_constants(constants_file), f"file {constants_file}")
        except TheoryInputError as error:
            raise EmpiricalInputError(str(error)) from None
    if preset not in measured_presets():
        return ConstantsChoice(None, "family defaults (illustrative)",
                               f"No constants were measured for preset {preset!r}: run python -m empirical.constants "
                               "and pass --constants FILE for a prediction.")
    measured = load_measured(preset)
    config = measured.source.get("preset_config", {})
    defaults = TrainConfig().to_dict()  # a field the file predates was measured at its default
    differ = sorted(k for k, v in base.to_dict().items()
                    if k not in _FREE_FIELDS and config.get(k, defaults[k]) != v)
    if differ:
        return ConstantsChoice(None, "family defaults (illustrative)",
                               f"The constants shipped for {preset} were measured for another config "
                               f"({', '.join(differ)} differ): run python -m empirical.constants with this "
                               "sweep's settings and pass --constants FILE.")
    where = f"theory/measured/{preset}.json"
    return ConstantsChoice(measured, f"measured on preset {preset} ({where})",
                           f"Constants and ε measured by `python -m empirical.constants --preset {preset}` on one "
                           f"reference run (b = {config.get('batch_size')}, α_D = {config.get('lr_d'):g}, "
                           f"α_G = {config.get('lr_g'):g}, {config.get('optimizer')}).")


# Which optimizers' runs each bound family describes. A family is set beside runs of those only; any other pairing
# is out of scope (an SGD bound fed Adam's α says nothing about Adam). The Adam-type families assume an AMSGrad-
# monotone preconditioner h_{n+1} >= h_n: only `amsgrad` has it (torch's Adam, RMSprop and AdaBelief do not).
MODELLED_OPTIMIZERS: dict[str, tuple[str, ...]] = {
    "sgd": ("sgd",),
    "sgd-frozen": ("sgd",),
    "adam": ("amsgrad",),
    "adam-cs": ("amsgrad",),
    "amsgrad-l1": ("amsgrad",),
}


def in_scope(family: str, optimizer: str | None) -> bool:
    """Whether `family` describes runs of `optimizer` (None: no runs to compare with, every family applies)."""
    return optimizer is None or optimizer in MODELLED_OPTIMIZERS.get(family, ())


def theory_predictions(lr_d: float, lr_g: float, choice: ConstantsChoice | None = None,
                       optimizer: str | None = None) -> list[TheoryPrediction]:
    """b*_D, b*_G and joint b* of every registered family at α_D = lr_d, α_G = lr_g; a family that does not model
    `optimizer`'s runs gets no number, only the reason (out of scope).

    ε is the one the measured run reached in the family's own measure when the constants file has it
    (docs/constants.md), else the family's default."""
    choice = choice or ConstantsChoice(None, "family defaults (illustrative)")
    file = choice.file
    out = []
    for name, family in FAMILIES.items():
        if not in_scope(name, optimizer):
            modelled = ", ".join(MODELLED_OPTIMIZERS.get(name, ())) or "no optimizer of this toolkit"
            out.append(TheoryPrediction(name, choice.label, error=f"out of scope: this family bounds {modelled} "
                                                                  f"runs, these are {optimizer}"))
            continue
        try:
            values = resolve_constants(family, {"alpha_D": lr_d, "alpha_G": lr_g}, file and file.values, choice.label)
            # each player's own ε where the file has one per player (a player asked for a target it had already
            # passed would make its bound look better than it is)
            eps = resolve_epsilons(family, None, file and file.epsilon_players, choice.label)
            a = analyse(family, values, eps)
        except TheoryInputError as error:
            out.append(TheoryPrediction(name, choice.label, error=str(error)))
            continue
        # ε that no run reached (the file has none for this family) makes b* a number about no target of these runs
        defaulted = sorted(p for p, e in eps.items() if e.source.startswith("default"))
        why = ((file.source.get("epsilon_skipped") or {}).get(name) if file is not None else None) or "none given"
        label = choice.label + ("" if not defaulted else
                                f"; ε_{'/'.join(defaulted)} is the family's illustrative default ({why}), so this "
                                "b* is not a prediction for these runs")
        out.append(TheoryPrediction(
            family=name, constants_source=label, b_star_d=a.players["D"].b_star,
            b_star_g=a.players["G"].b_star, b_star_joint=a.joint.b_star, case=a.joint.case,
            k_inf_joint=a.K_inf_joint, players=a.players,
        ))
    return out


@dataclass(frozen=True)
class NoisePrediction:
    """McCandlish's B_simple per player at the reference run's target, and the joint prediction (the larger)."""

    d: float
    g: float
    intervals: dict[str, list[float]]

    @property
    def joint(self) -> float:
        # K = max(K_D, K_G): the noisier player sets where the steps stop falling.
        return max(self.d, self.g)

    @property
    def b_star(self) -> float:
        """2·B_simple (joint): K ≈ K∞(1 + c/b) for b ≫ c is McCandlish's K∞(1 + B_noise/b), so c ↔ B_noise and the
        template's b* = 2c ↔ 2·B_noise."""
        return 2.0 * self.joint


def noise_prediction(choice: ConstantsChoice) -> NoisePrediction | None:
    f = choice.file
    if f is None or set(f.noise_scale) != {"D", "G"}:
        return None
    intervals = {p: f.noise_scale_details.get(p, {}).get("interval") for p in ("D", "G")}
    return NoisePrediction(f.noise_scale["D"], f.noise_scale["G"], {p: v for p, v in intervals.items() if v})


def _ratios(value: float, group: GroupAnalysis) -> str:
    """value / b*_measured and value / b*_fit, the numbers a reader compares."""
    parts = []
    if group.b_star:
        parts.append(f"{value / group.b_star:.2g}× b*_measured")
    if group.fit is not None and group.fit.b_star > 0:
        parts.append(f"{value / group.fit.b_star:.2g}× b*_fit")
    return "; ".join(parts)


def _interval(i: Interval | None, digits: str = ".3g") -> str:
    return "—" if i is None else f"[{i.low:{digits}}, {i.high:{digits}}]"


def _k(x: float | None) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:g}"


def verdict(group: GroupAnalysis) -> list[str]:
    """Plain statements: does K fall with b, and does the SFO have an interior minimum on this grid?"""
    s = [x for x in group.summaries if x.all_reached]
    lines = []
    if len(s) >= 2:
        fall = s[0].median_k / s[-1].median_k
        lines.append(f"- Median K falls **{fall:.2f}×** from b = {s[0].batch_size} to b = {s[-1].batch_size} "
                     "(smallest and largest batch sizes whose runs all reached the target).")
    missed = [x for x in group.summaries if not x.all_reached]
    if missed:
        lines.append("- Not every run reached the target at b = " + ", ".join(
            f"{x.batch_size} ({x.n_reached}/{x.n_runs})" for x in missed)
            + "; these runs count as K = ∞ (never as max_steps), and such b are not eligible for b*.")
    if group.n_settled:
        below = sorted({r.cell.batch_size for r in group.rows if r.status == "settled"})
        lines.append(f"- {group.n_settled} run(s) settled on a noise floor above the target and stopped early (b = "
                     + ", ".join(map(str, below)) + "): at these batch sizes the target lies below what a constant "
                     "learning rate can reach, the theory's pole, not a failure.")
    if group.n_diverged:
        lines.append(f"- {group.n_diverged} run(s) diverged (NaN/inf); they are recorded as such.")
    if group.b_star is None:
        lines.append("- **No measured b\\***: no batch size had every seed reach the target.")
    elif len(s) == 1:
        lines.append(f"- Only b = {group.b_star} had every seed reach the target: one batch size cannot show where "
                     "the SFO is smallest. Sweep more batch sizes.")
    elif group.b_star == s[0].batch_size and any(x.batch_size < group.b_star for x in missed):
        below = max(x.batch_size for x in missed if x.batch_size < group.b_star)
        lines.append(f"- The SFO has an **interior minimum** at b = {group.b_star}, bounded by the pole: b = {below} "
                     "and below do not reach the target with every seed (their floor lies near or above it), so "
                     f"b = {group.b_star} is the cheapest batch size that does.")
    elif group.b_star == s[0].batch_size:
        # Why: N = b·K grows from b to b' whenever K falls by less than the factor b'/b.
        _, k_ratio, b_lo, b_hi = max((a.median_k / z.median_k * a.batch_size / z.batch_size, a.median_k / z.median_k,
                                      a.batch_size, z.batch_size) for a, z in zip(s, s[1:], strict=False))
        if k_ratio <= b_hi / b_lo:
            why = (f"between neighbouring batch sizes K never falls as fast as b grows (at its steepest, from b = "
                   f"{b_lo} to {b_hi}, K falls {k_ratio:.2f}× while b grows {b_hi / b_lo:g}×), so the runs are not "
                   "gradient-noise-limited even at the smallest b")
        else:
            why = (f"K falls faster than b grows only locally (from b = {b_lo} to {b_hi}, {k_ratio:.2f}× while b grows "
                   f"{b_hi / b_lo:g}×), which makes a local dip in the SFO but not one below b = {group.b_star}'s")
        lines.append(f"- **The SFO has no interior minimum on this grid**: it is smallest at the smallest eligible "
                     f"batch size, b = {group.b_star}, so the measured b* is ≤ {group.b_star} and this grid cannot "
                     f"locate it. Why: {why}: the critical batch size of this problem at this target lies at or "
                     "below the grid's edge. Extend --batch-sizes downward, or tighten the target or raise α (both "
                     "raise the noise scale and move b* up).")
    elif group.b_star == s[-1].batch_size:
        lines.append(f"- **The SFO has no interior minimum on this grid**: it is smallest at the largest batch size "
                     f"b = {group.b_star}; extend --batch-sizes upward.")
    else:
        lines.append(f"- The SFO has an **interior minimum** at b = {group.b_star}.")
    restart = restart_b_star(group.summaries)
    if restart is not None and restart != group.b_star:
        lines.append(f"- Restarting each missed seed (its steps counted until it stopped), the expected SFO is "
                     f"smallest at b = {restart}" + (
                         "" if group.b_star is None else f", not {group.b_star}: a seed that misses the target "
                         "early costs little, while the every-seed rule drops its batch size") + ".")
    return lines


def _k_table(g: GroupAnalysis) -> list[str]:
    """Per batch size: reached runs, K, SFO, and where measured the noise floor (and the benchmark's exact one)."""
    head = "| b | runs reached | median K | min–max K | median SFO | expected SFO with restarts |"
    rule = "|---:|---:|---:|---:|---:|---:|"
    if g.floor is not None:
        head, rule = head + " median floor F(b) (runs settled) |", rule + "---:|"
    if g.exact_floor is not None:
        head, rule = head + " exact F(b) (measured/exact) |", rule + "---:|"
    lines = [head, rule]
    for x in g.summaries:
        spread = "—" if x.min_k is None else f"{x.min_k:g}–{x.max_k:g}"
        line = (f"| {x.batch_size} | {x.n_reached}/{x.n_runs} | {_k(x.median_k)} | {spread} | {_k(x.median_sfo)} | "
                f"{_k(round(x.restart_sfo) if math.isfinite(x.restart_sfo) else None)} |")
        floor = g.floor.median(x.batch_size) if g.floor is not None else None
        if g.floor is not None:
            line += f" {'—' if floor is None else f'{floor:.3g}'} ({g.floor.count(x.batch_size)}/{x.n_runs}) |"
        if g.exact_floor is not None:
            exact = float(g.exact_floor.floor(x.batch_size))
            line += f" {exact:.3g}" + ("" if floor is None else f" ({floor / exact:.2f}×)") + " |"
        lines.append(line)
    return lines


def _floor_rows(g: GroupAnalysis) -> list[str]:
    """The b* table's rows from the noise floor: b*_floor and the pole against the K fit's pole."""
    f = g.floor
    if f is None:
        return []
    if f.fit is None:
        return ["| b*_floor | — | — | fewer than 3 batch sizes whose runs settled on a floor |"]
    boot = f.boot
    fit = (f"F(b) = B_F/b^q + C_F with B_F = {f.fit.b_f:.3g} {_interval(boot and boot.b_f)}, q = {f.fit.q:.3g} "
           f"{_interval(boot and boot.q)}, C_F = {f.fit.c_f:.3g} {_interval(boot and boot.c_f)}")
    pole = f.fit.pole(g.target_fid)
    pole_text = f"pole c_floor = {pole:.3g} {_interval(boot and boot.c_floor)}" if math.isfinite(pole) else (
        "no pole: the target is at or below C_F")
    if g.fit is not None and math.isfinite(pole) and g.fit.c > 0:
        pole_text += f" against the K fit's c = {g.fit.c:.3g} ({pole / g.fit.c:.2g}×)"
    if f.prediction is None:
        why = "no transient could be fitted" if f.transient is None else "no interior minimum of b·K_floor(b)"
        return [f"| b*_floor | — | — | {fit}; {pole_text}; {why} |"]
    p, t = f.prediction, f.transient
    shape = (f"geometric, time constant {1 / t.rate:.3g} steps" if t.kind == "geometric"
             else f"power law t^−{t.rate:.3g}")
    return [f"| b*_floor (from floors alone) | {p.b_star:.3g} | {_interval(boot and boot.b_star)} | "
            f"{_ratios(p.b_star, g)}; {fit}; {pole_text}; transient {shape} (R² {t.r2:.2f}, median curve at b = "
            f"{f.transient_batch}) gives b*/c_floor = {p.factor:.3g} |"]


def _target_text(base: TrainConfig, targets: Sequence[float] | None = None) -> str:
    """The target in words; `targets`: several, read from the same runs (the last the tightest)."""
    value = f"{base.target_fid:g}" if not targets else ", ".join(f"{t:g}" for t in targets)
    if base.entry is not None:
        return f"FID ≤ {value} (as the user's function computes it)"
    if base.features == "exact":
        return f"exact FID ≤ {value} (the closed form from the generator's parameters, no samples)"
    return f"FID ≤ {value} on n = {base.n_eval} samples ({base.features} features)"


def _targets(groups: Sequence[GroupAnalysis]) -> list[float]:
    """The groups' FID targets, loosest first."""
    return sorted({g.target_fid for g in groups}, reverse=True)


def _figure_key(kind: str, g: GroupAnalysis) -> str:
    return f"{kind}:{g.optimizer}:{g.lr_scale}:{g.target_fid}"


def _figure_name(kind: str, g: GroupAnalysis, several: bool) -> str:
    """A group's figure file; with several targets the target is in the name (one-target folders keep theirs)."""
    return f"{kind}_{g.optimizer}_x{g.lr_scale:g}" + (f"_fid{g.target_fid:g}" if several else "") + ".png"


def _by_target(groups: Sequence[GroupAnalysis]) -> list[str]:
    """A sweep with several targets: b*_measured, b*_fit and b*_floor of every group at every target, one table."""
    lines = ["## The critical batch size against the target", "",
             "One sweep, read at every target: each run trained until the tightest target (or max_steps, or its "
             "floor), and its K at a looser target is the first evaluation at or below it in the same FID history. "
             "Per target and group below, the full tables.", "",
             "| target | group | b*_measured | 90% interval | b*_fit = 2c | 90% interval | b*_floor | 90% interval |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for g in groups:
        fit = ("—", "—") if g.fit is None else (f"{g.fit.b_star:.3g}", _interval(g.boot.b_star_fit))
        p = g.floor and g.floor.prediction
        floor = ("—", "—") if not p else (f"{p.b_star:.3g}", _interval(g.floor.boot and g.floor.boot.b_star))
        lines.append(f"| {g.target_fid:g} | {g.label} | {_k(g.b_star)} | {_interval(g.boot.b_star, 'g')} | "
                     f"{fit[0]} | {fit[1]} | {floor[0]} | {floor[1]} |")
    return [*lines, ""]


def _schedule(base: TrainConfig) -> str:
    """The evaluation schedule in words (eval_growth > 0: growing steps, empirical.train.next_evaluation)."""
    if not base.eval_growth:
        return f"every {base.eval_every} steps"
    return (f"at multiples of {base.eval_every} steps, each at least {1 + base.eval_growth:g}× the previous "
            f"evaluation's step (K known to within {base.eval_growth:.0%} + {base.eval_every}/K)")


def render_markdown(folder: Path, preset: str, base: TrainConfig, groups: Sequence[GroupAnalysis],
                    theory: dict[tuple[str, float], list[TheoryPrediction]], figures: dict[str, str],
                    choice: ConstantsChoice | None = None, noise: NoisePrediction | None = None,
                    measures: dict[tuple[str, float], list[MeasureAnalysis]] | None = None, *,
                    laws: Sequence[str] = ()) -> str:
    """report.md; `laws`: the scaling-law section (empirical.scaling.markdown), shown first where given."""
    choice = choice or ConstantsChoice(None, "family defaults (illustrative)")
    targets = _targets(groups)
    several = len(targets) > 1
    what = (f"evaluated {_schedule(base)}, at most {base.max_steps} steps. Model {base.model} (width {base.width}), "
            f"loss {base.loss}, data {base.data}. K = steps to the target (one D step and one G step per step)"
            if base.entry is None else
            f"evaluated where the user's function `{base.entry}` yields its FID, at most {base.max_steps} steps; "
            f"its parameters: {base.entry_params or 'none'}. K = its steps to the target")
    lines = [
        f"# Batch-size sweep: {preset}",
        "",
        f"Folder `{folder}`. {'Targets' if several else 'Target'}: {_target_text(base, targets if several else None)}"
        f", {what}, SFO = K·b. Intervals are 90% bootstrap intervals over seeds.",
        "",
    ]
    lines += laws
    if several:
        lines += _by_target(groups)
    for g in groups:
        lines += [f'<a id="{index_page.anchor(g)}"></a>', "",
                  f"## FID ≤ {g.target_fid:g}: {g.label}" if several else f"## {g.label}", ""]
        if _figure_key("k_n", g) in figures:
            lines += [f"![K(b) and N(b)]({figures[_figure_key('k_n', g)]})", ""]
        if _figure_key("floor", g) in figures:
            lines += [f"![noise floor F(b)]({figures[_figure_key('floor', g)]})", ""]
        lines += _k_table(g)
        lines += ["", *verdict(g), ""]
        lines += ["| critical batch size | value | 90% interval | note |", "|---|---:|---:|---|"]
        lines.append(f"| b*_measured (argmin median SFO) | {_k(g.b_star)} | {_interval(g.boot.b_star, 'g')} | "
                     "on the grid |")
        restart = restart_b_star(g.summaries)
        lines.append(f"| b*_restart (argmin expected SFO with restarts) | {_k(restart)} | "
                     f"{_interval(g.boot.b_star_restart, 'g')} | on the grid; b·(steps of all runs, a miss counted "
                     "until it stopped)/(runs that reached): a missed seed is restarted, as in COCO's expected "
                     "running time |")
        if g.fit is not None:
            lines.append(f"| b*_fit = 2c | {g.fit.b_star:.3g} | {_interval(g.boot.b_star_fit)} | fit of "
                         f"K∞·b/(b − c): c = {g.fit.c:.3g} {_interval(g.boot.c)}, K∞ = {g.fit.k_inf:.4g} "
                         f"{_interval(g.boot.k_inf, '.4g')}, R² (log K) = {g.fit.r2:.3f}, {g.fit.n_points} points |")
        else:
            lines.append("| b*_fit = 2c | — | — | fewer than 3 batch sizes with a finite median K |")
        lines += _floor_rows(g)
        for t in theory[(g.optimizer, g.lr_scale)]:
            if t.error is not None:
                lines.append(f"| b*_theory ({t.family}) | — | — | {t.error} |")
            else:
                lines.append(f"| b*_theory ({t.family}): D, G, **joint** | {t.b_star_d:.3g}, {t.b_star_g:.3g}, "
                             f"**{t.b_star_joint:.3g}** | — | {_ratios(t.b_star_joint, g)}; joint case {t.case}; "
                             f"constants: {t.constants_source} |")
        if noise is not None:
            iv = ", ".join(f"{p} [{lo:.3g}, {hi:.3g}]" for p, (lo, hi) in noise.intervals.items())
            iv2 = ", ".join(f"{p} [{2 * lo:.3g}, {2 * hi:.3g}]" for p, (lo, hi) in noise.intervals.items())
            lines.append(f"| 2·B_simple (the template's b* = 2c ↔ 2·B_noise): D, G, **joint** | {2 * noise.d:.3g}, "
                         f"{2 * noise.g:.3g}, **{noise.b_star:.3g}** | {iv2 or '—'} | {_ratios(noise.b_star, g)}; "
                         f"B_simple = tr Σ/‖G‖² of the reference run (McCandlish's noise scale): D {noise.d:.3g}, "
                         f"G {noise.g:.3g}, joint (the larger) {noise.joint:.3g}" + (f", {iv}" if iv else "") + " |")
        lines.append("")
        if g.measure_notes:
            lines += ["### The theory's own measure: notes", "", *(f"- {x}" for x in g.measure_notes), ""]
        # the theory's measures are set beside the FID K of the target the runs stopped by (the tightest)
        for a in (measures or {}).get((g.optimizer, g.lr_scale), []) if g.target_fid == base.target_fid else []:
            picture = figures.get("theory_measure")
            if picture and not any(picture in x for x in lines):  # one figure for every group: shown once
                lines += [f"![steps until the theory's measure ≤ ε², and until the FID target]"
                          f"({picture})", ""]
            lines += theory_measure.markdown(a, g, theory[(g.optimizer, g.lr_scale)], _target_text(base))
    lines += [
        "## How to read this",
        "",
        "- The theory's step bound K(b) = A·b/((ε² − C)·b − B) has a scale A that steps alone cannot measure: "
        "the figure draws the theory's joint curve scaled to the fitted K∞. Its shape and its b* are the "
        "theory's own and are absolute.",
        f"- The theory's constants: {choice.label}. {choice.note}".rstrip(),
        "- A bound family is set beside runs of the optimizer it models only: `sgd` and `sgd-frozen` beside SGD "
        "runs, `adam`, `adam-cs` and `amsgrad-l1` beside `amsgrad` runs only (they assume a monotone "
        "preconditioner, which torch's Adam, RMSprop and AdaBelief do not have). Any other pairing is marked out of "
        "scope, with no number.",
        "- ε: the target each family must certify is the ε the measured reference run reached when it first met "
        "the FID target, in the family's own measure (squared gradient norm, or variational-inequality gap), "
        "averaged over its evaluations up to then (docs/constants.md). A group with another α or optimizer than "
        "the reference run reuses those constants and that ε: an extrapolation.",
        "- B_simple is the gradient noise scale tr Σ/‖G‖² of the reference run, averaged over the second half of its "
        "way to the target (McCandlish et al. 2018). It is set beside b* as 2·B_simple: for b ≫ c the template's "
        "K∞·b/(b − c) ≈ K∞(1 + c/b) is McCandlish's K∞(1 + B_noise/b), so c ↔ B_noise and b* = 2c ↔ 2·B_noise. "
        "Its interval is the constants file's (90% bootstrap over the evaluations), doubled.",
        "- The fit and b*_fit use the batch sizes whose median K is finite, weighted by the inverse variance of "
        "log K over seeds; c is confined to [0, smallest b).",
    ]
    if base.floor:
        lines += [
            "- Noise floor F(b): each run went on past the target until its FID settled (the window (t/2, t] of its "
            "last evaluations shows no trend, first seen at t₁ and still so at t ≥ 2t₁), and F is the time-averaged "
            "FID over that window; runs settled clearly above the target stopped there (status settled). "
            "b*_floor uses no steps-to-target: the pole c_floor solves F(c) = target, and b*_floor = argmin b·K(b) "
            "with K(b) the steps the fitted transient takes to fall to target − F(b).",
        ]
    lines.append("")
    if "dynamics" in figures:
        lines += ["## Training curves", "", f"![FID and balance ratio]({figures['dynamics']})", ""]
    if "heatmap" in figures:
        lines += ["## Batch size × base learning rate", "", f"![heat map]({figures['heatmap']})", ""]
    lines += ["Data: `summary.csv` (this table), `runs.csv` and `history.csv` (every run and evaluation), "
              "`sweep.db` (SQLite).", ""]
    return "\n".join(lines)


def write_summary_csv(groups: Sequence[GroupAnalysis], theory: dict[tuple[str, float], list[TheoryPrediction]],
                      noise: NoisePrediction | None, path: Path) -> Path:
    """One row per (group, b), the group's FID target in the last column; the b* columns repeat per group. A family
    without a prediction has an empty cell."""
    temporary = path.with_name(path.name + ".tmp")  # replaced atomically, like every file the report writes
    families = list(FAMILIES)
    with temporary.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["optimizer", "lr_scale", "lr_d", "lr_g", "batch_size", "n_runs", "n_reached", "median_k",
                         "min_k", "max_k", "median_sfo", "restart_sfo", "b_star_measured", "b_star_restart",
                         "b_star_fit", "c_fit", "k_inf_fit",
                         "b_star_noise", "b_simple", "floor_median", "floor_exact", "c_floor", "b_star_floor",
                         *(f"b_star_theory_{name}" for name in families), "target_fid"])
        for g in groups:
            predicted = {t.family: t.b_star_joint for t in theory[(g.optimizer, g.lr_scale)] if t.error is None}
            prediction = g.floor and g.floor.prediction
            for x in g.summaries:
                writer.writerow([g.optimizer, g.lr_scale, g.lr_d, g.lr_g, x.batch_size, x.n_runs, x.n_reached,
                                 x.median_k, x.min_k, x.max_k, x.median_sfo, x.restart_sfo, g.b_star,
                                 restart_b_star(g.summaries),
                                 g.fit and g.fit.b_star, g.fit and g.fit.c, g.fit and g.fit.k_inf,
                                 noise and noise.b_star, noise and noise.joint,
                                 g.floor and g.floor.median(x.batch_size),
                                 None if g.exact_floor is None else float(g.exact_floor.floor(x.batch_size)),
                                 prediction and prediction.c_floor, prediction and prediction.b_star,
                                 *(predicted.get(name) for name in families), g.target_fid])
    temporary.replace(path)
    return path


def write_theory_measure_csv(groups: Sequence[GroupAnalysis], measures: dict[tuple[str, float],
                             list[MeasureAnalysis]], path: Path) -> Path:
    """theory_measure.csv: per run and measure, K_ε per player and joint, the FID K and the means at the FID hit."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["optimizer", "lr_scale", *theory_measure.CSV_HEADER])
        for g in groups:
            for a in measures[(g.optimizer, g.lr_scale)]:
                writer.writerows((g.optimizer, g.lr_scale, *row) for row in theory_measure.csv_rows(a))
    temporary.replace(path)
    return path


@dataclass
class FolderAnalysis:
    """Everything the report says about one sweep folder, before any figure or file is written."""

    base: TrainConfig
    preset: str
    groups: list[GroupAnalysis]
    stopped_by: list[GroupAnalysis]  # the groups at the target the runs stopped by (the tightest)
    main_group: GroupAnalysis
    histories: dict[int, list]  # the main group's FID histories per batch size, for the training-curves figure
    choice: ConstantsChoice
    noise: NoisePrediction | None
    theory: dict[tuple[str, float], list[TheoryPrediction]]
    measures: dict[tuple[str, float], list[MeasureAnalysis]]


def analyse_folder(folder: str | Path, constants_file: str | None = None, n_resamples: int = 1000,
                   export_csv: bool = False) -> FolderAnalysis:
    """Analyse the sweep in `folder` (the measured side, the theory's predictions and its own measure);
    `export_csv`: also write runs.csv and history.csv there."""
    folder = Path(folder)
    with read_store(folder) as store:
        base, preset = store.base_config(), store.meta("preset") or "custom"
        groups = analyse_store(store, n_resamples)
        if not groups:
            raise EmpiricalInputError(f"{folder} holds no finished runs yet")
        stopped_by = [g for g in groups if g.target_fid == base.target_fid]  # the runs' own target, the tightest
        main_group = min(stopped_by, key=lambda g: (abs(math.log(g.lr_scale)), g.optimizer))
        histories: dict[int, list] = {}
        for row in main_group.rows:
            histories.setdefault(row.cell.batch_size, []).append(store.history(row.id))
        if export_csv:
            store.export_csv(folder)
    choice = choose_constants(constants_file, preset, base)
    theory = {(g.optimizer, g.lr_scale): theory_predictions(g.lr_d, g.lr_g, choice, g.optimizer) for g in groups}
    # the theory's measures: beside the FID K of the target the runs stopped by (analyse_store records them there)
    measures = {(g.optimizer, g.lr_scale): analyse_measures(g, choice, n_resamples) for g in stopped_by}
    return FolderAnalysis(base, preset, groups, stopped_by, main_group, histories, choice,
                          noise_prediction(choice), theory, measures)


def write_report(folder: str | Path, constants_file: str | None = None, n_resamples: int = 1000) -> Path:
    """Analyse the sweep in `folder` and write report.md, figures and CSV there (and index.md where it has several
    groups); return the report's path."""
    folder = Path(folder)
    return _write_folder(folder, analyse_folder(folder, constants_file, n_resamples, export_csv=True), n_resamples)


def _write_laws(groups: Sequence[GroupAnalysis], out: Path, n_resamples: int,
                theory: dict[str, tuple[float, str]] | None = None) -> list[str]:
    """scaling.json and scaling.png in `out` for groups that span a law; the laws' markdown section."""
    from empirical import figures as fig

    analysis = scaling.analyse_scaling(groups, n_resamples, theory=theory)
    json_path = out / "scaling.json"
    json_path.with_name("scaling.json.tmp").write_text(json.dumps(analysis.to_json(), indent=1) + "\n")
    json_path.with_name("scaling.json.tmp").replace(json_path)
    picture = "scaling.png" if any(analysis.law(law, "b_star_fit") for law in scaling.LAWS) else None
    if picture:
        fig.plot_scaling(analysis, out / picture)
    return scaling.markdown(analysis, picture)


def _write_text(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def _write_folder(folder: Path, a: FolderAnalysis, n_resamples: int, laws_here: bool = True) -> Path:
    """report.md, figures and summary CSVs of one analysed folder; `laws_here`: also its own laws and index.md."""
    from empirical import figures as fig

    base, preset, groups, stopped_by, histories = a.base, a.preset, a.groups, a.stopped_by, a.histories
    choice, noise, theory, measures = a.choice, a.noise, a.theory, a.measures
    several = len(_targets(groups)) > 1
    figures = {}
    for g in groups:
        name = _figure_name("k_n", g, several)
        first = next((t for t in theory[(g.optimizer, g.lr_scale)] if t.error is None), None)
        fig.plot_k_and_sfo(g, first, folder / name, noise and noise.b_star)
        figures[_figure_key("k_n", g)] = name
        if g.floor is not None and g.floor.floors:
            name = _figure_name("floor", g, several)
            fig.plot_floor(g, folder / name)
            figures[_figure_key("floor", g)] = name
    fig.plot_dynamics(histories, base.target_fid, folder / "dynamics.png")
    figures["dynamics"] = "dynamics.png"
    if len({g.lr_scale for g in groups}) > 1:
        fig.plot_heatmap(stopped_by, folder / "heatmap.png")
        figures["heatmap"] = "heatmap.png"
    write_summary_csv(groups, theory, noise, folder / "summary.csv")
    panels = [(g.label, a, g) for g in stopped_by for a in measures[(g.optimizer, g.lr_scale)]]
    if panels:
        fig.plot_theory_measure(panels, folder / "theory_measure.png")
        figures["theory_measure"] = "theory_measure.png"
        write_theory_measure_csv(stopped_by, measures, folder / "theory_measure.csv")
    laws: list[str] = []
    if laws_here and scaling.several(groups):  # two targets or two lr scales: the laws of b* (empirical/scaling.py)
        laws = _write_laws(groups, folder, n_resamples)
    path = folder / "report.md"
    _write_text(path, render_markdown(folder, preset, base, groups, theory, figures, choice, noise, measures,
                                      laws=laws))
    if laws_here and len(groups) > 1:
        intro = (f"Sweep folder `{folder}` (preset {preset}): {len(groups)} groups. "
                 f"{'Targets' if several else 'Target'}: {_target_text(base, _targets(groups) if several else None)}."
                 " The full report: [report.md](report.md).")
        _write_text(folder / "index.md", index_page.render_index(
            f"Critical batch size: {preset}", intro, laws, [index_page.Entry("report.md", g) for g in groups]))
    return path


# Config fields several folders of one noise law may differ in: the data's noise scale itself, the targets (each
# folder's tightest), and whatever the constants ignore (the grid's axes, the evaluation schedule).
_INDEX_FREE_FIELDS = _FREE_FIELDS | {"data_scale", "target_fid"}


def noise_theory(base: TrainConfig, scales: Sequence[float]) -> dict[str, tuple[float, str]] | None:
    """The benchmark's own theory value for the noise law (its closed forms), where it has one."""
    if len(set(scales)) < 2 or not benchmarks.is_registered(base.data):
        return None
    law = benchmarks.get_benchmark(base.data).noise_law
    return None if law is None else {"noise": law(base, sorted(set(scales)))}


def write_index(folders: Sequence[str | Path], out: str | Path, constants_file: str | None = None,
                n_resamples: int = 1000) -> Path:
    """Reports of several sweep folders of one preset that differ in the data's noise scale (or only in their
    targets), and in `out` one index.md across them: the laws (noise, and target/α where they vary) and every
    group. Return the index's path."""
    out = Path(out)
    folders = [Path(f) for f in folders]
    configs = []
    for f in folders:  # first the cheap check that the folders belong on one index, then the analyses
        with read_store(f) as store:
            configs.append((store.meta("preset") or "custom", store.base_config().to_dict()))
    for f, (preset, config) in zip(folders[1:], configs[1:], strict=True):
        differ = sorted(k for k, v in config.items() if k not in _INDEX_FREE_FIELDS and configs[0][1].get(k) != v)
        if preset != configs[0][0] or differ:
            what = ", ".join(differ) if differ else f"preset {preset} vs {configs[0][0]}"
            raise EmpiricalInputError(f"{f} and {folders[0]} differ in {what}: one index's laws need the same "
                                      "config but for the data's noise scale (data_scale) and the targets")
    analyses = [analyse_folder(f, constants_file, n_resamples, export_csv=True) for f in folders]
    first = analyses[0]
    for f, a in zip(folders, analyses, strict=True):
        _write_folder(f, a, n_resamples)
    out.mkdir(parents=True, exist_ok=True)
    groups = [g for a in analyses for g in a.groups]
    scales = [g.data_scale for g in groups]
    laws = _write_laws(groups, out, n_resamples, noise_theory(first.base, scales)) if scaling.several(groups) \
        else []
    entries = [index_page.Entry(str(Path(os.path.relpath(f, out)) / "report.md"), g)
               for f, a in zip(folders, analyses, strict=True) for g in a.groups]
    scale_text = ", ".join(f"{s:g}" for s in sorted(set(scales)))
    intro = (f"{len(folders)} sweep folders of preset {first.preset} ({', '.join(f'`{f}`' for f in folders)}), "
             f"data noise scale s = {scale_text} (the data's covariance s·Σ), {len(groups)} groups in all; each "
             "folder's own report is linked from its groups below.")
    path = out / "index.md"
    _write_text(path, index_page.render_index(f"Critical batch size across sweeps: {first.preset}", intro, laws,
                                              entries))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog=PROG, description="Write report.md, figures and CSV for a sweep folder.")
    parser.add_argument("folder", nargs="+", help="a folder written by python -m empirical.sweep (several: one per "
                        "data noise scale, with --index)")
    parser.add_argument("--index", metavar="DIR", help="with several folders: where index.md, scaling.json and "
                        "scaling.png across them are written")
    parser.add_argument("--constants", help="ttur-constants/1 JSON for the theory's b* (default: the constants "
                        "measured on the sweep's preset, theory/measured/PRESET.json, when they fit its config)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    args = parser.parse_args(argv)
    try:
        if args.bootstrap < 1:
            raise EmpiricalInputError(f"--bootstrap must be at least 1, got {args.bootstrap}")
        if len(args.folder) > 1 and args.index is None:
            raise EmpiricalInputError("several folders need --index DIR (where the index across them goes)")
        path = write_report(args.folder[0], args.constants, args.bootstrap) if args.index is None else \
            write_index(args.folder, args.index, args.constants, args.bootstrap)
    except EmpiricalInputError as error:
        return fail(PROG, error)
    except OSError as error:
        return fail(PROG, f"cannot write the report: {error}")
    print(f"{'index' if args.index else 'report'}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
