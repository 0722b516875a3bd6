"""The theory's own stopping rule: steps until the running mean of the bound's measure falls to ε², per player.

The bounds of Sato & Iiduka certify V_P(K) = (1/K) Σ_{k≤K} m_P(θ_k) ≤ ε_P², with m_P the family's measure: the
squared gradient norm ‖∇_P L_P‖² (the SGD families) or the variational-inequality gap at a fixed reference point
(the Adam families). The sweep stops at an FID target instead; this module tests the bound on its own measure
before any relation to FID is assumed. Pure functions (no torch, no files): they read the per-evaluation fields
`grad_sq_d`, `grad_sq_g`, `vi_gap_d`, `vi_gap_g` of a run's history (None where not measured).

- **Running mean.** The measure is recorded at evaluations, not every step, so V_P(K) is approximated by the mean
  over the evaluations from the first after step 0, each weighted by the steps it stands for: the steps since the
  previous evaluation that has the measure (since step 0 for the first). With a fixed interval (eval_growth = 0)
  every weight is the same and this is the plain mean over evaluations; with a growing schedule (eval_growth > 0)
  the late, sparse evaluations stand for more steps, as they should in a mean over steps. An evaluation without
  the measure (None or NaN) is skipped and its steps count towards the next one that has it.
- **K_ε,P** is the first evaluation step at which that running mean is ≤ ε_P² (None if never within the run: a
  run stopped at its FID floor may end before). The joint K_ε = max(K_ε,D, K_ε,G), the theory's joint rule (both
  players must get there), None if either is None.
- **K_ε,P from which on it stays** (rule "stays"): the first evaluation step from which the running mean is ≤ ε_P²
  at every later evaluation of the run (None if it is above ε_P² at the last one). This is what the bound asserts,
  V_P(K) ≤ ε_P² for every K ≥ K(b), and it differs from the first hit when the measure starts small: in a game a
  player's gradient can be small at the start (a generator facing a discriminator that still knows nothing), so
  the running mean dips below ε² before training has done anything. Read against the run's last evaluation only:
  a run's mean may rise again after it stopped.
- **Per batch size** the K_ε of the seeds are :class:`empirical.measured.Outcome` s, so K_ε(b) gets exactly the
  FID K's machinery: censored median, b*_measured, the fit K∞·b/(b − c) with b*_fit = 2c, and the bootstrap.
- **The ε-mapping check.** The constants file's ε is the mean measure a reference run had when it first met the
  FID target, at one b. Here, at every b, the running mean at each run's own FID hit step is set beside ε_P²:
  if "FID ≤ target ⇔ mean measure ≤ ε²" held at every b, these would sit at ε_P² everywhere.

    >>> run = MeasureRun(8, 0, steps=(0, 10, 20, 40), values={"D": (None, 4.0, 2.0, 1.0), "G": (None, 1, 1, 1)},
    ...                  steps_to_target=20)
    >>> running_mean(run.steps, run.values["D"])   # (10·4)/10, (10·4 + 10·2)/20, (10·4 + 10·2 + 20·1)/40
    [(10, 4.0), (20, 3.0), (40, 2.0)]
    >>> k_epsilon(run, {"D": 2.5, "G": 1.0})
    {'D': 40, 'G': 10, 'joint': 40}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from empirical.measured import (
    BatchSummary,
    Bootstrap,
    Fit,
    Outcome,
    bootstrap,
    fit_hyperbola,
    measured_b_star,
    summarise,
)

PLAYERS = ("D", "G")
KEYS = ("D", "G", "joint")


@dataclass(frozen=True)
class Measure:
    """One of the theory's measures: the history fields it lives in and the bound families it belongs to."""

    name: str  # the EvalPoint field prefix: name_d, name_g
    words: str  # for a reader: "mean squared gradient norm"
    symbol: str  # the per-player quantity, {p} for the player: "‖∇_{p} L_{p}‖²"
    families: tuple[str, ...]  # the first with an ε in the constants file gives ε (they share one measure)

    def of(self, player: str) -> str:
        return self.symbol.format(p=player)


MEASURES: dict[str, Measure] = {
    "grad_sq": Measure("grad_sq", "mean squared gradient norm", "‖∇_{p} L_{p}‖²", ("sgd-frozen", "sgd")),
    "vi_gap": Measure("vi_gap", "mean variational-inequality gap", "⟨θ_{p} − θ_ref, ∇_{p} L_{p}⟩",
                      ("adam", "adam-cs", "amsgrad-l1")),
}


@dataclass(frozen=True)
class MeasureRun:
    """One run as this analysis sees it: the measure per player at each evaluation and the FID steps-to-target."""

    batch_size: int
    seed: int
    steps: tuple[int, ...]
    values: Mapping[str, tuple[float | None, ...]]  # "D" / "G" -> the measure at each step (None: not measured)
    steps_to_target: int | None  # the FID K (None: the run did not reach the FID target)

    def __post_init__(self) -> None:
        for p in PLAYERS:
            if len(self.values.get(p, ())) != len(self.steps):
                raise ValueError(f"run b={self.batch_size} seed={self.seed}: {p} has "
                                 f"{len(self.values.get(p, ()))} values for {len(self.steps)} steps")
        if any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError(f"run b={self.batch_size} seed={self.seed}: steps must increase, got {self.steps}")

    @property
    def measured(self) -> bool:
        """Whether any evaluation after step 0 has the measure for both players."""
        return all(any(_present(v) for s, v in zip(self.steps, self.values[p], strict=True) if s > 0)
                   for p in PLAYERS)


def _present(v: float | None) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def from_points(batch_size: int, seed: int, steps_to_target: int | None, points: Sequence[Any],
                measure: str) -> MeasureRun:
    """A MeasureRun from a run's history (objects with `step` and `<measure>_d`, `<measure>_g`; a missing field
    reads as None, so histories written before the field existed give an unmeasured run)."""
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}; known: {', '.join(MEASURES)}")
    return MeasureRun(batch_size, seed, tuple(int(p.step) for p in points),
                      {p: tuple(getattr(x, f"{measure}_{p.lower()}", None) for x in points) for p in PLAYERS},
                      steps_to_target)


def running_mean(steps: Sequence[int], values: Sequence[float | None]) -> list[tuple[int, float]]:
    """(step, running mean) at every evaluation after step 0 that has the measure; each value weighted by the
    steps since the previous such evaluation (since step 0 for the first). +inf stays +inf from there on."""
    out: list[tuple[int, float]] = []
    total, weight, previous = 0.0, 0, 0
    for s, v in zip(steps, values, strict=True):
        if s <= 0 or not _present(v):
            continue
        w = s - previous
        total += w * float(v)
        weight += w
        previous = s
        out.append((s, total / weight))
    return out


def first_at_or_below(curve: Sequence[tuple[int, float]], threshold: float) -> int | None:
    """The first step of the curve whose value is ≤ threshold (None if none)."""
    return next((s for s, v in curve if v <= threshold), None)


def value_at(curve: Sequence[tuple[int, float]], step: int) -> float | None:
    """The curve's value at the last of its steps ≤ `step` (None if it has none)."""
    before = [v for s, v in curve if s <= step]
    return before[-1] if before else None


def stays_at_or_below(curve: Sequence[tuple[int, float]], threshold: float) -> int | None:
    """The first step of the curve from which every value is ≤ threshold (None if the last one is above)."""
    start = None
    for s, v in reversed(curve):
        if not v <= threshold:
            break
        start = s
    return start


RULES = {"first": first_at_or_below, "stays": stays_at_or_below}


def k_epsilon(run: MeasureRun, epsilon_sq: Mapping[str, float], rule: str = "first") -> dict[str, int | None]:
    """K_ε per player (rule "first": the first evaluation step whose running mean is ≤ ε_P²; "stays": the first from
    which it stays so) and joint = the later of the two."""
    find = RULES[rule]
    out: dict[str, int | None] = {p: find(running_mean(run.steps, run.values[p]), epsilon_sq[p]) for p in PLAYERS}
    out["joint"] = None if None in (out["D"], out["G"]) else max(out["D"], out["G"])
    return out


# -----------------------------------------------------------------------------------------------------------------
# ε from the constants file


@dataclass(frozen=True)
class EpsilonSquared:
    """ε_P² per player for one measure, and where it comes from."""

    d: float
    g: float
    family: str
    per_player: bool  # False: the file has one ε (the larger player's), used for both

    def __getitem__(self, player: str) -> float:
        return {"D": self.d, "G": self.g}[player]

    def as_dict(self) -> dict[str, float]:
        return {"D": self.d, "G": self.g}


def epsilon_squared(file: Any, measure: str) -> EpsilonSquared | None:
    """ε_P² for `measure` from a parsed constants file (theory.schema.ConstantsFile), None when it has no ε for the
    measure's families. Per-player ε from the section's "players" {"D": ε_D, "G": ε_G} where given (an attribute
    `epsilon_players` if the schema exposes one, else the entry's details), else the one "value" for both."""
    if file is None:
        return None
    for family in MEASURES[measure].families:
        if family not in file.epsilon:
            continue
        given = file.epsilon_details.get(family, {}).get("players")
        players = (getattr(file, "epsilon_players", None) or {}).get(family) or given
        if isinstance(players, Mapping) and all(isinstance(players.get(p), (int, float)) for p in PLAYERS):
            return EpsilonSquared(float(players["D"]) ** 2, float(players["G"]) ** 2, family, given is not None)
        e2 = float(file.epsilon[family]) ** 2
        return EpsilonSquared(e2, e2, family, False)
    return None


# -----------------------------------------------------------------------------------------------------------------
# Per batch size


@dataclass(frozen=True)
class KAnalysis:
    """One steps-to-criterion over a group's runs: the same summary, b*, fit and bootstrap as the FID K."""

    outcomes: tuple[Outcome, ...]
    summaries: list[BatchSummary]
    b_star: int | None
    fit: Fit | None
    boot: Bootstrap


def analyse_k(outcomes: Sequence[Outcome], n_resamples: int = 1000, seed: int = 0) -> KAnalysis:
    summaries = summarise(outcomes)
    return KAnalysis(tuple(outcomes), summaries, measured_b_star(summaries), fit_hyperbola(summaries),
                     bootstrap(outcomes, n_resamples=n_resamples, seed=seed))


@dataclass(frozen=True)
class RunK:
    """One run's K_ε per player and joint (first hit, and from which on it stays), its FID K, and the running mean
    of each player at the FID hit."""

    batch_size: int
    seed: int
    k: dict[str, int | None]
    k_stay: dict[str, int | None]
    k_fid: int | None
    mean_at_fid: dict[str, float | None]


@dataclass(frozen=True)
class MappingRow:
    """The ε-mapping check at one b: the running means at the runs' FID hits, against ε_P²."""

    batch_size: int
    n_runs: int  # runs with the measure
    n_hit: int  # of which reached the FID target
    median: dict[str, float | None]
    low: dict[str, float | None]
    high: dict[str, float | None]
    n_below: dict[str, int]  # runs whose mean at the FID hit is ≤ ε_P²


@dataclass
class MeasureAnalysis:
    """The theory's measure over one sweep group."""

    measure: Measure
    epsilon_sq: EpsilonSquared
    runs: list[RunK]
    k: dict[str, KAnalysis]  # "D", "G", "joint": the first hit
    stay: dict[str, KAnalysis]  # the same, from which on the mean stays ≤ ε²
    mapping: list[MappingRow] = field(default_factory=list)
    n_unmeasured: int = 0  # runs of the group without the measure (left out)


def mapping_rows(runs: Sequence[RunK], epsilon_sq: EpsilonSquared) -> list[MappingRow]:
    out = []
    for b in sorted({r.batch_size for r in runs}):
        at_b = [r for r in runs if r.batch_size == b]
        hit = [r for r in at_b if r.k_fid is not None]
        med, lo, hi, below = {}, {}, {}, {}
        for p in PLAYERS:
            vals = [r.mean_at_fid[p] for r in hit if r.mean_at_fid[p] is not None]
            med[p] = float(np.median(vals)) if vals else None
            lo[p] = min(vals) if vals else None
            hi[p] = max(vals) if vals else None
            below[p] = sum(v <= epsilon_sq[p] for v in vals)
        out.append(MappingRow(b, len(at_b), len(hit), med, lo, hi, below))
    return out


def analyse_measure(runs: Sequence[MeasureRun], measure: str, epsilon_sq: EpsilonSquared,
                    n_resamples: int = 1000, seed: int = 0) -> MeasureAnalysis | None:
    """K_ε per run and player, K_ε(b) analysed like the FID K, and the ε-mapping table; None when no run has the
    measure. Runs without it are left out (counted in n_unmeasured), not counted as misses."""
    measured = [r for r in runs if r.measured]
    if not measured:
        return None
    out = []
    for r in measured:
        curves = {p: running_mean(r.steps, r.values[p]) for p in PLAYERS}
        at_fid = {p: None if r.steps_to_target is None else value_at(curves[p], r.steps_to_target) for p in PLAYERS}
        eps = epsilon_sq.as_dict()
        out.append(RunK(r.batch_size, r.seed, k_epsilon(r, eps), k_epsilon(r, eps, "stays"), r.steps_to_target,
                        at_fid))
    k = {key: analyse_k([Outcome(r.batch_size, r.seed, r.k[key]) for r in out], n_resamples, seed) for key in KEYS}
    stay = {key: analyse_k([Outcome(r.batch_size, r.seed, r.k_stay[key]) for r in out], n_resamples, seed)
            for key in KEYS}
    return MeasureAnalysis(MEASURES[measure], epsilon_sq, out, k, stay, mapping_rows(out, epsilon_sq),
                           len(runs) - len(measured))


# -----------------------------------------------------------------------------------------------------------------
# Tables (markdown lines and CSV rows; the report writes them)


def _num(x: float | None, digits: str = ".3g") -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:{digits}}"


def _iv(i: Any, digits: str = ".3g") -> str:
    return "—" if i is None else f"[{i.low:{digits}}, {i.high:{digits}}]"


def _median_cell(s: BatchSummary | None) -> str:
    if s is None:
        return "—"
    return f"{_num(s.median_k, 'g')} ({s.n_reached}/{s.n_runs})"


def markdown(a: MeasureAnalysis, fid: Any, theory: Sequence[Any], target_text: str) -> list[str]:
    """The report's section for one group and measure. `fid`: the FID K's analysis (anything with summaries,
    b_star, fit and boot, as report.GroupAnalysis); `theory`: the group's bound-family predictions (family,
    b_star_d, b_star_g, b_star_joint, error), of which this measure's families are listed."""
    m, e = a.measure, a.epsilon_sq
    how = ("per player" if e.per_player else "one ε for both players: the constants file gives one, the larger "
           "player's")
    lines = [
        f"### The theory's own measure: the {m.words}",
        "",
        f"The bound certifies that the running mean (1/K) Σ_{{k≤K}} {m.of('P')} falls to ε_P² for each player P. "
        f"K_ε,P is the first evaluated step at which it has: the mean over the evaluations after step 0, each "
        f"weighted by the steps since the previous one. ε_D² = {e.d:.4g}, ε_G² = {e.g:.4g} (family `{e.family}` of "
        f"the constants file, {how}). The joint K_ε is the later of the two players' (both must get there). "
        "\"Stays\": the step from which the running mean stays ≤ ε² to the run's last evaluation, which is what "
        "the bound asserts (V(K) ≤ ε² for every K ≥ K(b)); the first hit can come early when a player's measure "
        "starts small. A run that stopped before its mean got (or stayed) there counts as K_ε = ∞, like a run that "
        "missed the FID target."
        + (f" {a.n_unmeasured} run(s) without the measure are left out." if a.n_unmeasured else ""),
        "",
        "| b | median K_ε,D (runs reached) | median K_ε,G | median joint K_ε | joint K_ε, stays | median K_FID |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    by = {key: {s.batch_size: s for s in a.k[key].summaries} for key in KEYS}
    stays = {s.batch_size: s for s in a.stay["joint"].summaries}
    fid_by = {s.batch_size: s for s in fid.summaries}
    for b in sorted(by["D"]):
        lines.append(f"| {b} | " + " | ".join(_median_cell(by[key].get(b)) for key in KEYS)
                     + f" | {_median_cell(stays.get(b))} | {_median_cell(fid_by.get(b))} |")
    lines += ["", "| steps until | b*_measured | 90% interval | b*_fit = 2c | 90% interval | c | K∞ | R² (log K) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    rows = [(f"mean {m.of('D')} ≤ ε_D² (K_ε,D)", a.k["D"]), (f"mean {m.of('G')} ≤ ε_G² (K_ε,G)", a.k["G"]),
            ("both players (joint K_ε)", a.k["joint"]),
            (f"mean {m.of('D')} stays ≤ ε_D²", a.stay["D"]), (f"mean {m.of('G')} stays ≤ ε_G²", a.stay["G"]),
            ("both players' means stay ≤ ε² (joint)", a.stay["joint"]), (f"{target_text} (K_FID)", fid)]
    for label, k in rows:
        fit = k.fit
        fit_cells = (f"{fit.b_star:.3g} | {_iv(k.boot.b_star_fit)} | {fit.c:.3g} | {fit.k_inf:.4g} | {fit.r2:.3f}"
                     if fit is not None else "— | — | — | — | fewer than 3 finite medians")
        lines.append(f"| {label} | {_num(k.b_star, 'g')} | {_iv(k.boot.b_star, 'g')} | {fit_cells} |")
    lines += ["", "| bound family | b*_D | b*_G | joint b* | note |", "|---|---:|---:|---:|---|"]
    for t in theory:
        if t.family not in m.families:
            continue
        if t.error is not None:
            lines.append(f"| `{t.family}` | — | — | — | {t.error} |")
        else:
            notes = []
            for name, ks in (("first hit", a.k), ("stays", a.stay)):
                ratios = [f"{key} {value / ks[key].fit.b_star:.2g}×" for key, value in
                          (("D", t.b_star_d), ("G", t.b_star_g), ("joint", t.b_star_joint))
                          if ks[key].fit is not None and ks[key].fit.b_star > 0 and math.isfinite(value)]
                notes.append(f"{name} {', '.join(ratios) if ratios else '—'}")
            lines.append(f"| `{t.family}` | {t.b_star_d:.3g} | {t.b_star_g:.3g} | {t.b_star_joint:.3g} | "
                         f"÷ b*_fit of K_ε: {'; '.join(notes)} |")
    lines += [
        "",
        f"**ε-mapping check.** The constants' ε is the mean measure one reference run had when it first met the FID "
        "target, at its b. If \"FID ≤ target ⇔ mean measure ≤ ε²\" held at every b, each run's running mean at its "
        f"own FID hit would sit at ε_P² (ε_D² = {e.d:.4g}, ε_G² = {e.g:.4g}) whatever b:",
        "",
        "| b | runs that hit the FID target | D: running mean at the hit, median [min, max] | D: runs ≤ ε_D² | "
        "G: running mean at the hit, median [min, max] | G: runs ≤ ε_G² |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in a.mapping:
        cells = [f"{_num(r.median[p])} [{_num(r.low[p], '.3g')}, {_num(r.high[p], '.3g')}] | "
                 f"{r.n_below[p]}/{r.n_hit}" for p in PLAYERS]
        lines.append(f"| {r.batch_size} | {r.n_hit}/{r.n_runs} | {cells[0]} | {cells[1]} |")
    return lines + [""]


CSV_HEADER = ("measure", "batch_size", "seed", "k_eps_d", "k_eps_g", "k_eps_joint", "k_stay_d", "k_stay_g",
              "k_stay_joint", "k_fid", "mean_at_fid_d", "mean_at_fid_g", "eps2_d", "eps2_g", "epsilon_family")


def csv_rows(a: MeasureAnalysis) -> list[tuple]:
    """One row per run (the columns of CSV_HEADER); an empty K is a run whose mean did not get to ε² (or FID)."""
    return [(a.measure.name, r.batch_size, r.seed, r.k["D"], r.k["G"], r.k["joint"], r.k_stay["D"], r.k_stay["G"],
             r.k_stay["joint"], r.k_fid, r.mean_at_fid["D"], r.mean_at_fid["G"], a.epsilon_sq.d, a.epsilon_sq.g,
             a.epsilon_sq.family) for r in a.runs]
