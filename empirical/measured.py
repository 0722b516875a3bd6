"""The measured critical batch size: median K(b) and SFO over seeds, b* = argmin SFO, the fit K∞·b/(b − c).

Pure functions of run outcomes (numpy and scipy; no torch, no files). Runs that missed the target count as
K = ∞ (right-censored), never as max_steps: the median stays exact while fewer than half the seeds missed, and a
batch size is eligible for b* only when every seed reached the target.

    >>> runs = [Outcome(b, s, round(100 * b / (b - 3))) for b in (4, 8, 16, 32, 64) for s in range(3)]
    >>> measured_b_star(summarise(runs))   # SFO = b·K(b) is smallest at b = 8 when c = 3 (b*_fit = 2c = 6)
    8
    >>> fit = fit_hyperbola(summarise(runs))
    >>> round(fit.c, 2), round(fit.k_inf), round(fit.b_star, 1)
    (3.0, 100, 6.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import minimize_scalar

from theory.joint import Hyperbola

if TYPE_CHECKING:
    from theory.schema import ConstantsFile


@dataclass(frozen=True)
class Outcome:
    """One run as the analysis sees it: K is None when the run did not reach the target (or diverged); steps_run:
    the steps a run that missed trained before it stopped (settled, max_steps, diverged), its cost in the expected
    running time (None: not known)."""

    batch_size: int
    seed: int
    steps: int | None
    steps_run: int | None = None


@dataclass(frozen=True)
class BatchSummary:
    batch_size: int
    n_runs: int
    n_reached: int
    median_k: float  # censored median: inf when half or more of the seeds missed the target
    min_k: float | None  # over the runs that reached the target
    max_k: float | None
    log_k_var: float  # sample variance of log K over the runs that reached (0 with fewer than two)
    ert: float = math.nan  # expected running time in steps (:func:`expected_running_time`); nan: a miss's cost unknown

    @property
    def all_reached(self) -> bool:
        return self.n_reached == self.n_runs

    @property
    def median_sfo(self) -> float:
        return self.batch_size * self.median_k

    @property
    def restart_sfo(self) -> float:
        """Expected SFO to one run that reaches the target, restarting with a new seed after each miss: b·ERT."""
        return self.batch_size * self.ert


def censored_median(values: Sequence[float | None]) -> float:
    """Median with None as +∞; inf when the middle of the sorted list is a miss."""
    ordered = sorted(math.inf if v is None else float(v) for v in values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])


def expected_running_time(outcomes: Sequence[Outcome]) -> float:
    """Steps spent by all runs over the runs that reached: K for a run that reached, steps_run for one that missed.

    The expected running time of optimisation benchmarking (Auger & Hansen 2005; COCO, Hansen et al. 2021): the
    expected steps to a first run that reaches the target when every miss is stopped where it stopped and restarted
    with a new seed. It counts a seed that collapses early at its small cost, where the all-seeds rule of b* drops
    the whole batch size. inf when no run reached; nan when a miss's steps_run is unknown."""
    reached = sum(o.steps is not None for o in outcomes)
    spent = [o.steps if o.steps is not None else o.steps_run for o in outcomes]
    if not reached:
        return math.inf
    if any(x is None for x in spent):
        return math.nan
    return sum(spent) / reached


def summarise(outcomes: Sequence[Outcome]) -> list[BatchSummary]:
    """One summary per batch size, sorted by b."""
    out = []
    for b in sorted({o.batch_size for o in outcomes}):
        runs = [o for o in outcomes if o.batch_size == b]
        ks = [o.steps for o in runs]
        reached = [k for k in ks if k is not None]
        logs = np.log(reached) if reached else np.zeros(0)
        out.append(BatchSummary(
            batch_size=b, n_runs=len(ks), n_reached=len(reached), median_k=censored_median(ks),
            min_k=min(reached) if reached else None, max_k=max(reached) if reached else None,
            log_k_var=float(np.var(logs, ddof=1)) if len(logs) > 1 else 0.0, ert=expected_running_time(runs),
        ))
    return out


def measured_b_star(summaries: Sequence[BatchSummary]) -> int | None:
    """argmin of the median SFO among batch sizes whose runs all reached the target (None if there is none)."""
    eligible = [s for s in summaries if s.all_reached and s.n_runs > 0]
    return min(eligible, key=lambda s: (s.median_sfo, s.batch_size)).batch_size if eligible else None


def restart_b_star(summaries: Sequence[BatchSummary]) -> int | None:
    """argmin of the expected SFO with restarts, b·ERT(b), over the batch sizes where some run reached (None if
    none did, or if a miss's cost is unknown)."""
    known = [s for s in summaries if math.isfinite(s.ert)]
    if not known or any(math.isnan(s.ert) for s in summaries):
        return None
    return min(known, key=lambda s: (s.restart_sfo, s.batch_size)).batch_size


@dataclass(frozen=True)
class Fit:
    """K(b) = K∞·b/(b − c) fitted to the median K by weighted least squares on log K."""

    k_inf: float
    c: float
    r2: float  # weighted R² in log space
    n_points: int

    @property
    def b_star(self) -> float:
        return 2.0 * self.c  # argmin of b·K(b) = K∞·b²/(b − c)

    @property
    def hyperbola(self) -> Hyperbola:
        return Hyperbola(self.k_inf, self.c)


def _weights(summaries: Sequence[BatchSummary]) -> np.ndarray:
    """Inverse variance of each log-median. With 3 seeds a point's own variance is too noisy to trust (two seeds
    that agree by chance would get an enormous weight), so it is averaged with the mean variance over points."""
    var = np.array([s.log_k_var for s in summaries])
    n = np.array([s.n_reached for s in summaries], dtype=np.float64)
    pooled = var.mean()
    shrunk = 0.5 * (var + pooled)
    return n if pooled == 0 else n / np.maximum(shrunk, 1e-12)


def _profile(b: np.ndarray, y: np.ndarray, w: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For fixed c the best log K∞ is a weighted mean (log K = log K∞ + log b − log(b − c)); return it and the
    weighted residual sum of squares, for each c of an array. The fit is then a 1-D search over c."""
    shift = np.log(b) - np.log(b - np.asarray(c, dtype=np.float64)[..., None])
    log_k_inf = np.sum(w * (y - shift), axis=-1) / np.sum(w)
    return log_k_inf, np.sum(w * (y - log_k_inf[..., None] - shift) ** 2, axis=-1)


def fit_hyperbola(summaries: Sequence[BatchSummary]) -> Fit | None:
    """Fit K∞ and c ∈ [0, min b) to the finite medians; None with fewer than 3 such batch sizes."""
    points = [s for s in summaries if math.isfinite(s.median_k) and s.n_reached > 0]
    if len(points) < 3:
        return None
    b = np.array([s.batch_size for s in points], dtype=np.float64)
    y = np.log([s.median_k for s in points])
    w = _weights(points)
    upper = b.min() * (1 - 1e-9)
    # A grid over c finds the basin (the profile can be flat or have a boundary minimum), then a bounded scalar
    # minimisation refines it to full precision.
    grid = upper * (1 - np.geomspace(1, 1e-6, 400))  # dense towards the pole, where the curvature lives
    grid = np.unique(np.concatenate([grid, np.linspace(0, upper, 200)]))
    rss = _profile(b, y, w, grid)[1]
    i = int(np.argmin(rss))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    best = minimize_scalar(lambda c: float(_profile(b, y, w, c)[1]), bounds=(lo, hi), method="bounded",
                           options={"xatol": 1e-10 * max(upper, 1.0)})
    c = float(best.x) if best.fun <= rss[i] else float(grid[i])
    log_k_inf, rss_best = (float(v) for v in _profile(b, y, w, c))
    total = float(np.sum(w * (y - np.sum(w * y) / np.sum(w)) ** 2))
    r2 = 1.0 - rss_best / total if total > 0 else 1.0
    return Fit(k_inf=math.exp(log_k_inf), c=c, r2=r2, n_points=len(points))


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class Bootstrap:
    """Percentile intervals over resamples of the seeds (each batch size's runs resampled with replacement)."""

    b_star: Interval | None  # on the grid
    b_star_fit: Interval | None
    c: Interval | None
    k_inf: Interval | None
    n_resamples: int
    b_star_restart: Interval | None = None  # on the grid


def percentile_interval(values: list[float], level: float) -> Interval | None:
    """The central `level` percentile interval of bootstrap values (None if there are none)."""
    if not values:
        return None
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return Interval(float(lo), float(hi))


def bootstrap(outcomes: Sequence[Outcome], n_resamples: int = 1000, seed: int = 0, level: float = 0.9) -> Bootstrap:
    """Resample each batch size's runs with replacement and recompute b* and the fit; seeded, so reproducible."""
    rng = np.random.default_rng(seed)
    by_b: dict[int, list[Outcome]] = {}
    for o in outcomes:
        by_b.setdefault(o.batch_size, []).append(o)
    stars, fits, restarts = [], [], []
    for _ in range(n_resamples):
        sample = [runs[i] for runs in by_b.values() for i in rng.integers(0, len(runs), len(runs))]
        summaries = summarise(sample)
        star = measured_b_star(summaries)
        if star is not None:
            stars.append(star)
        restart = restart_b_star(summaries)
        if restart is not None:
            restarts.append(restart)
        fit = fit_hyperbola(summaries)
        if fit is not None:
            fits.append(fit)
    return Bootstrap(
        b_star=percentile_interval(stars, level),
        b_star_fit=percentile_interval([f.b_star for f in fits], level),
        c=percentile_interval([f.c for f in fits], level),
        k_inf=percentile_interval([f.k_inf for f in fits], level),
        n_resamples=n_resamples,
        b_star_restart=percentile_interval(restarts, level),
    )


def preconditioned_noise_scales(file: ConstantsFile | None) -> dict[str, tuple[float, Interval | None]] | None:
    """Player -> (B_noise,H, its interval or None) from a constants file: the gradient noise scale in the metric an
    Adam-type optimizer steps in, tr(HΣ)/GᵀHG with H = diag(1/(√v̂ + eps)), measured along the reference run
    (empirical.constants). Its prediction of b* is 2·B_noise,H, as 2·B_simple is SGD's. None when the file (or
    no file) has none for either player: SGD-type runs (whose metric is the identity, so B_simple is it) and files
    written before it was measured."""
    if file is None or not file.noise_scale_preconditioned:
        return None
    out = {}
    for player, value in file.noise_scale_preconditioned.items():
        interval = file.noise_scale_details[player]["preconditioned"].get("interval")
        out[player] = (value, Interval(*interval) if interval else None)
    return out
