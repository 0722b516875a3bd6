"""Scaling laws of the critical batch size: how b* moves with the learning rate α and the FID target, with intervals.

The absolute constants of a worst-case bound are loose; what the template b* = 2B/(ε² − C) really claims is how b*
moves: with B ∝ α it grows linearly in α, and as (ε² − C)⁻¹ when the target tightens towards the floor C. Over a
sweep's groups (one per FID target × optimizer × lr scale, :func:`empirical.report.analyse_store`) this module fits

    log b* = p·log α + q·log(target − C_F) + r·log s + const (one const per optimizer),

α the group's α_D, C_F its fitted floor constant (the floor analysis's C_F; 0 where the runs have no floor fit) and
s the data's noise scale (config.data_scale: the control game's data is N(μ, s·Σ)), keeping only the terms whose
variable varies: the `alpha` law (p, the exponent of α at fixed target), the `target` law (q, the exponent of
target − C_F at fixed α) and the `noise` law (r, the exponent of s; groups from several sweep folders, one per s).
 Three series of b*: b*_fit = 2c (the hyperbola fit),
b*_floor (the floor's prediction, no steps-to-target) and b*_measured (the grid's argmin, a power-of-two grid: too
coarse for a slope, reported for completeness). Intervals: bootstrap over seeds, every batch size's runs of an
(optimizer, lr scale) resampled with replacement as :func:`empirical.measured.bootstrap` does, one resample shared
by all the targets (they are the same runs), every group's b* recomputed and the exponents refitted; a resample
counts only where every point of the fit has a b* in it. C_F and the floor's transient are held at their fitted
values. Pure functions (numpy and scipy; no torch, no files).

    >>> pts = [Point("sgd", 1.0, a, t, 0.0, 3.0 * a / t) for a in (0.5, 1.0, 2.0) for t in (0.1, 0.05)]
    >>> {k: round(v, 6) for k, v in regress(pts).exponents.items()}
    {'alpha': 1.0, 'target': -1.0}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from empirical.floors import fit_floor, floor_b_star
from empirical.measured import Interval, Outcome, fit_hyperbola, measured_b_star, percentile_interval, summarise

if TYPE_CHECKING:
    from empirical.report import GroupAnalysis

SERIES = ("b_star_fit", "b_star_floor", "b_star_measured")
SERIES_WORDS = {"b_star_fit": "b*_fit = 2c", "b_star_floor": "b*_floor", "b_star_measured": "b*_measured (grid)"}
LAWS = ("alpha", "target", "noise")
# The template b* = 2B/(ε² − C) with B ∝ α (the noise term of every bound family is α·σ²·(…)). The noise law's
# value here is the template's at fixed smoothness (B ∝ σ² ∝ s); a benchmark whose closed forms give how L·σ² moves
# with s passes its own (analyse_scaling's `theory`).
THEORY = {"alpha": 1.0, "target": -1.0, "noise": 1.0}
THEORY_WORDS = {
    "alpha": "the template b* = 2B/(ε² − C) with B ∝ α: b* ∝ α, exponent 1",
    "target": "the template b* = 2B/(ε² − C): b* ∝ (ε² − C)⁻¹, exponent −1 in the target's own units, assuming "
              "ε² ↔ FID target and C ↔ C_F (an assumption: docs/findings.md shows the ε mapping drifts across b)",
    "noise": "the template b* = 2B/(ε² − C) with B ∝ σ² at fixed smoothness and ε: b* ∝ s, exponent 1",
}
LAW_WORDS = {"alpha": "α (p)", "target": "target − C_F (q)", "noise": "data noise scale s (r)"}


@dataclass(frozen=True)
class Point:
    """One group's b* in one series: where it sits (α, target, C_F) and its value (None: the group gives none)."""

    optimizer: str
    lr_scale: float
    alpha: float  # α_D
    target: float
    c_f: float  # the floor constant subtracted from the target (0 where the group has no floor fit)
    value: float | None
    interval: Interval | None = None  # bootstrap over seeds (90%)
    note: str = ""
    noise: float = 1.0  # the data's noise scale s (config.data_scale)
    censored: bool = False  # the value is only a bound (b* at or below the grid's edge): left out of the fit

    @property
    def usable(self) -> bool:
        return (self.value is not None and math.isfinite(self.value) and self.value > 0 and self.target > self.c_f
                and not self.censored)


@dataclass(frozen=True)
class Regression:
    """log b* = Σ exponent·log(variable) + const[optimizer], by least squares over the points."""

    exponents: dict[str, float]  # law -> exponent (only the laws whose variable varies)
    intercepts: dict[str, float]  # optimizer -> const
    n_points: int

    def predict(self, point: Point) -> float:
        log = self.intercepts[point.optimizer]
        if "alpha" in self.exponents:
            log += self.exponents["alpha"] * math.log(point.alpha)
        if "target" in self.exponents:
            log += self.exponents["target"] * math.log(point.target - point.c_f)
        if "noise" in self.exponents:
            log += self.exponents["noise"] * math.log(point.noise)
        return math.exp(log)


def law_variable(law: str, point: Point) -> float:
    """The law's variable at a point: α_D, target − C_F or the data's noise scale s."""
    return {"alpha": point.alpha, "target": point.target - point.c_f, "noise": point.noise}[law]


def varying_laws(points: Sequence[Point]) -> list[str]:
    """The laws whose variable varies among the points: `alpha` where some optimizer has two α, `target` where
    there are two targets, `noise` where there are two data noise scales."""
    laws = []
    by_optimizer: dict[str, set[float]] = {}
    for p in points:
        by_optimizer.setdefault(p.optimizer, set()).add(p.alpha)
    if any(len(alphas) > 1 for alphas in by_optimizer.values()):
        laws.append("alpha")
    if len({p.target for p in points}) > 1:
        laws.append("target")
    if len({p.noise for p in points}) > 1:
        laws.append("noise")
    return laws


def regress(points: Sequence[Point], laws: Sequence[str] | None = None,
            values: Sequence[float] | None = None) -> Regression | None:
    """Least squares of log b* on the laws' log variables and one intercept per optimizer; None when the points do
    not determine every exponent (too few, or the variables collinear). `values` replace the points' own b*
    (the bootstrap's)."""
    laws = varying_laws(points) if laws is None else list(laws)
    if not laws or not points:
        return None
    y = np.log(np.asarray([p.value for p in points] if values is None else values, dtype=np.float64))
    optimizers = sorted({p.optimizer for p in points})
    columns = {law: [math.log(law_variable(law, p)) for p in points] for law in laws}
    design = np.column_stack([np.asarray(columns[law]) for law in laws]
                             + [np.asarray([float(p.optimizer == o) for p in points]) for o in optimizers])
    if len(points) < design.shape[1] or np.linalg.matrix_rank(design) < design.shape[1]:
        return None
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    return Regression(exponents={law: float(c) for law, c in zip(laws, coef, strict=False)},
                      intercepts={o: float(c) for o, c in zip(optimizers, coef[len(laws):], strict=True)},
                      n_points=len(points))


@dataclass(frozen=True)
class LawFit:
    """One law's exponent in one series, with its bootstrap interval and the theory's value."""

    law: str
    series: str
    exponent: float | None
    interval: Interval | None
    theory: float
    n_points: int
    n_resamples: int  # resamples that gave every point a b* (the interval's sample)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"exponent": self.exponent, "interval": None if self.interval is None else
                [self.interval.low, self.interval.high], "theory": self.theory, "n_points": self.n_points,
                "series": self.series, "n_resamples": self.n_resamples, "note": self.note}


@dataclass
class ScalingAnalysis:
    """Every series' points, its regression and its laws; `notes`: what holds for every law (C_F's source)."""

    points: dict[str, list[Point]]
    regressions: dict[str, Regression | None]
    laws: list[LawFit]
    notes: list[str] = field(default_factory=list)
    theory_words: dict[str, str] = field(default_factory=lambda: dict(THEORY_WORDS))

    def law(self, law: str, series: str) -> LawFit | None:
        return next((x for x in self.laws if x.law == law and x.series == series), None)

    def to_json(self) -> dict[str, Any]:
        """scaling.json: {law: {series: {exponent, interval, theory, n_points, series, …, points}}}."""
        out: dict[str, Any] = {}
        for x in self.laws:
            entry = x.to_json()
            entry["theory_note"] = self.theory_words[x.law]
            entry["points"] = [{"optimizer": p.optimizer, "lr_scale": p.lr_scale, "alpha": p.alpha,
                                "target": p.target, "c_f": p.c_f, "noise": p.noise, "b_star": p.value,
                                "censored": p.censored,
                                "interval": None if p.interval is None else [p.interval.low, p.interval.high],
                                **({"note": p.note} if p.note else {})}
                               for p in self.points[x.series]]
            out.setdefault(x.law, {})[x.series] = entry
        return out


# ------------------------------------------------------------------------------------------------------------------
# From a sweep's groups


def _outcome(row: Any) -> Outcome:
    return Outcome(row.cell.batch_size, row.cell.seed, row.steps_to_target if row.status == "reached" else None)


def _c_f(group: GroupAnalysis) -> float | None:
    fit = group.floor and group.floor.fit
    return None if not fit else float(fit.c_f)


def fit_at_bound(summaries: Sequence[Any], c: float) -> bool:
    """Whether the hyperbola's c sits at its upper bound (the smallest b of the fit): b*_fit is then censored."""
    finite = [s.batch_size for s in summaries if math.isfinite(s.median_k) and s.n_reached > 0]
    return bool(finite) and c >= 0.999 * min(finite)


def _values(group: GroupAnalysis, outcomes: Sequence[Outcome], floor_fit: Any) -> dict[str, float | None]:
    """The group's three b* from (resampled) outcomes and floor fit."""
    summaries = summarise(outcomes)
    fit = fit_hyperbola(summaries)
    star = measured_b_star(summaries)
    transient = group.floor and group.floor.transient
    prediction = floor_b_star(floor_fit, transient, group.target_fid) if floor_fit and transient else None
    return {"b_star_fit": fit and fit.b_star, "b_star_floor": prediction and prediction.b_star,
            "b_star_measured": None if star is None else float(star)}


def analyse_scaling(groups: Sequence[GroupAnalysis], n_resamples: int = 1000, seed: int = 0,
                    level: float = 0.9, theory: dict[str, tuple[float, str]] | None = None) -> ScalingAnalysis:
    """The laws over the groups of one sweep folder or several (one per data noise scale): the points (each group's
    b* per series, with its interval), the regressions and, per varying law and series, the exponent with its
    bootstrap interval. `theory`: law -> (exponent, words) replacing the template's default (THEORY)."""
    expected = {**THEORY, **{law: v for law, (v, _) in (theory or {}).items()}}
    words = {**THEORY_WORDS, **{law: w for law, (_, w) in (theory or {}).items()}}
    families: dict[tuple[str, float, float], list[GroupAnalysis]] = {}
    for g in groups:  # the runs of one (optimizer, lr scale, data scale): every target's group holds the same runs
        families.setdefault((g.optimizer, g.lr_scale, g.data_scale), []).append(g)
    notes = []
    no_floor = sorted({g.label for g in groups if _c_f(g) is None})
    if no_floor:
        notes.append("C_F = 0 (no floor fit) for " + "; ".join(no_floor) + ": the target law uses the target itself.")
    else:
        notes.append("C_F: each group's fitted floor constant (F(b) = B_F/b^q + C_F), held fixed in the bootstrap.")

    # the point estimates
    estimates: dict[int, dict[str, float | None]] = {}
    at_bound: dict[int, bool] = {}
    for g in groups:
        estimates[id(g)] = {"b_star_fit": g.fit and g.fit.b_star,
                            "b_star_floor": (g.floor and g.floor.prediction and g.floor.prediction.b_star) or None,
                            "b_star_measured": None if g.b_star is None else float(g.b_star)}
        at_bound[id(g)] = bool(g.fit) and fit_at_bound(g.summaries, g.fit.c)
    # b*_measured at the grid's smallest batch size says only b* <= it: a bound, not a value
    at_edge = {id(g): g.b_star is not None and bool(g.summaries) and g.b_star == min(x.batch_size for x in g.summaries)
               for g in groups}

    # the bootstrap: one resample of each (optimizer, lr scale)'s runs per batch size, shared by its targets
    rng = np.random.default_rng(seed)
    draws: dict[int, dict[str, list[float | None]]] = {id(g): {s: [] for s in SERIES} for g in groups}
    # every target's group of a family holds the same runs (b, seed): resampled once, read at every target
    runs_of = {id(g): {(r.cell.batch_size, r.cell.seed): r for r in g.rows} for g in groups}
    seeds_of: dict[tuple[str, float, float], dict[int, list[int]]] = {}
    for key, family in families.items():
        for row in family[0].rows:
            seeds_of.setdefault(key, {}).setdefault(row.cell.batch_size, []).append(row.cell.seed)
    for _ in range(n_resamples):
        for key, family in families.items():
            picked = [(b, seeds[j]) for b, seeds in seeds_of[key].items()
                      for j in rng.integers(0, len(seeds), len(seeds))]
            floors = {(b, s): f for b, s, f in (family[0].floor.floors if family[0].floor else ())}
            kept = [(k[0], floors[k]) for k in picked if k in floors]
            floor_fit = fit_floor([b for b, _ in kept], [f for _, f in kept]) if kept else None
            for g in family:
                values = _values(g, [_outcome(runs_of[id(g)][k]) for k in picked if k in runs_of[id(g)]],
                                 floor_fit)
                for s in SERIES:
                    draws[id(g)][s].append(values[s])

    points: dict[str, list[Point]] = {}
    regressions: dict[str, Regression | None] = {}
    laws: list[LawFit] = []
    for s in SERIES:
        series_points = []
        for g in groups:
            value = estimates[id(g)][s]
            finite = [v for v in draws[id(g)][s] if v is not None and math.isfinite(v) and v > 0]
            c_f = _c_f(g)
            censored = (s == "b_star_fit" and at_bound[id(g)]) or (s == "b_star_measured" and at_edge[id(g)])
            note = ""
            if censored:
                note = ("c at its upper bound (the smallest b with a finite median K): b*_fit censored, left out"
                        if s == "b_star_fit" else "b* at the grid's smallest batch size (a bound): left out")
            if c_f is not None and g.target_fid <= c_f:
                note = f"target {g.target_fid:g} <= C_F = {c_f:.3g}: no b reaches it, left out"
            series_points.append(Point(g.optimizer, g.lr_scale, g.lr_d, g.target_fid, c_f or 0.0,
                                       value if value is None else float(value),
                                       percentile_interval(finite, level), note, g.data_scale, censored))
        points[s] = series_points
        usable = [(g, p) for g, p in zip(groups, series_points, strict=True) if p.usable]
        wanted = varying_laws(series_points)
        regression = regress([p for _, p in usable], wanted) if usable and wanted else None
        regressions[s] = regression
        refits: list[Regression] = []
        if regression is not None:
            for r in range(n_resamples):
                values = [draws[id(g)][s][r] for g, _ in usable]
                if all(v is not None and math.isfinite(v) and v > 0 for v in values):
                    if (again := regress([p for _, p in usable], wanted, values)) is not None:
                        refits.append(again)
        for law in wanted:
            if regression is None:
                laws.append(LawFit(law, s, None, None, expected[law], len(usable), 0,
                                   f"too few groups with a {SERIES_WORDS[s]} to fit ({len(usable)})"))
                continue
            interval = percentile_interval([x.exponents[law] for x in refits], level)
            note = ""
            if len(refits) < 0.5 * n_resamples:
                note = (f"only {len(refits)} of {n_resamples} resamples gave every point a {SERIES_WORDS[s]}: "
                        "the interval is conditional on those")
            laws.append(LawFit(law, s, regression.exponents[law], interval, expected[law], regression.n_points,
                               len(refits), note))
    return ScalingAnalysis(points, regressions, laws, notes, words)


def several(groups: Sequence[GroupAnalysis]) -> bool:
    """Whether the groups span a law: two targets, two lr scales or two data noise scales (else no scaling.json)."""
    return any(len({key(g) for g in groups}) > 1 for key in (lambda g: g.target_fid, lambda g: g.lr_scale,
                                                               lambda g: g.data_scale))


def _number(x: float) -> str:
    """An exponent to 3 significant digits, round-off (±1e-15 for an exact 0) shown as 0."""
    return f"{round(x, 9) + 0.0:.3g}"


def markdown(analysis: ScalingAnalysis, figure: str | None) -> list[str]:
    """The report's first section: the figure and a short table of exponents against the theory's."""
    lines = ["## Scaling laws of b*", ""]
    if figure:
        lines += [f"![b* against each varied quantity, log-log]({figure})", ""]
    terms = {"alpha": "p·log α_D", "target": "q·log(target − C_F)", "noise": "r·log s"}
    varying = [law for law in LAWS if any(x.law == law for x in analysis.laws)]
    lines += [f"Exponents of log b* = {' + '.join(terms[law] for law in varying)} + const, fitted over the groups "
              "below; 90% bootstrap intervals over seeds (`scaling.json`).", "",
              "| law | series | exponent | 90% interval | theory | groups |", "|---|---|---:|---:|---:|---:|"]
    for x in analysis.laws:
        value = "—" if x.exponent is None else _number(x.exponent)
        interval = "—" if x.interval is None else f"[{_number(x.interval.low)}, {_number(x.interval.high)}]"
        lines.append(f"| {LAW_WORDS[x.law]} | {SERIES_WORDS[x.series]} | {value} | {interval} | {x.theory:.3g} | "
                     f"{x.n_points} |")
    lines += ["", *(f"- {n}" for n in analysis.notes)]
    lines += [f"- Theory, {law}: {analysis.theory_words[law]}." for law in LAWS if analysis.law(law, SERIES[0])]
    lines += [f"- {SERIES_WORDS[x.series]}, {x.law}: {x.note}." for x in analysis.laws if x.note]
    for series in ("b_star_fit", "b_star_measured"):
        censored = sum(p.censored for p in analysis.points[series])
        if censored:
            lines.append(f"- {censored} {SERIES_WORDS[series]} point(s) left out as censored (scaling.json, `points`): "
                         + ("c at its bound, the smallest b with a finite K" if series == "b_star_fit" else
                            "b* at the grid's smallest batch size, so only b* ≤ it is known") + ".")
    lines.append("- b*_measured lies on the power-of-two grid, so its exponent moves in steps: b*_fit and b*_floor "
                 "are the ones to read.")
    return [*lines, ""]
