"""The noise floor of constant-learning-rate training: F(b) = B_F/b^q + C_F, its pole, and the b* it predicts.

At a constant learning rate the FID of a run falls and then fluctuates around a floor F(b) that depends on the batch
size b (reference §9): a target below F(b) is never reached at that b, which is the pole c of K(b) = K∞·b/(b − c).
From floors alone c_floor = (B_F/(target − C_F))^(1/q). With the transient FID(t) − F(b) ≈ transient(t) of a run,
the steps to the target are K_floor(b) = transient⁻¹(target − F(b)) and b*_floor = argmin_b b·K_floor(b).
Pure functions (numpy and scipy; no torch, no files).

    >>> b = [4, 8, 16, 32, 64, 128]
    >>> fit = fit_floor(b, [400 / x + 5 for x in b])   # SGD-like floor: q = 1
    >>> round(fit.b_f, 6), round(fit.q, 6), round(fit.c_f, 6)
    (400.0, 1.0, 5.0)
    >>> round(fit.pole(15.0), 6)                       # F(40) = 400/40 + 5 = 15
    40.0
    >>> pred = floor_b_star(fit, Transient("power", scale=100.0, rate=0.5, r2=1.0), target=15.0)
    >>> round(pred.b_star, 4), round(pred.factor, 4)   # power transient t^(−p): b* = c(1 + q/p)^(1/q) = 3c
    (120.0, 3.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares, minimize_scalar

from empirical.measured import Interval, percentile_interval

Q_BOUNDS = (0.1, 3.0)  # the floor exponent q: 1 for SGD on a quadratic, about 1/2 for Adam


# ----------------------------------------------------------------------------------------------------------------
# The plateau of one run


@dataclass(frozen=True)
class Plateau:
    """The stationary phase of one run's FID history: the window (start, end] of steps and its statistics."""

    start: int
    end: int
    mean: float  # step-weighted mean FID over the window: the floor estimate
    sd: float  # step-weighted standard deviation of the FID over the window: the size of the fluctuations
    n: int  # evaluations in the window


def _weighted_stats(x: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    """Weighted mean, standard deviation and effective sample size (Σw)²/Σw². The variance uses reliability
    weights, so with equal weights it is the ordinary ddof=1 sample variance."""
    v1, v2 = float(w.sum()), float(np.sum(w * w))
    mean = float(np.sum(w * x) / v1)
    denom = v1 - v2 / v1
    var = float(np.sum(w * (x - mean) ** 2) / denom) if denom > 0 else 0.0
    return mean, math.sqrt(var), v1 * v1 / v2


def _window(s: np.ndarray, f: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """The FIDs with step in (lo, hi] and their weights: the part of (lo, hi] each evaluation covers, i.e. the
    interval since the previous evaluation (since step 0 for the first), clipped at lo."""
    i, j = int(np.searchsorted(s, lo, side="right")), int(np.searchsorted(s, hi, side="right"))
    previous = s[i - 1] if i > 0 else 0.0
    starts = np.maximum(np.concatenate([[previous], s[i:j - 1]]), lo) if j > i else np.zeros(0)
    return f[i:j], s[i:j] - starts


def detect_plateau(steps: Sequence[int], fids: Sequence[float], *, min_points: int = 8, rel_tol: float = 0.05,
                   z: float = 2.0) -> Plateau | None:
    """The plateau ending at the last evaluation, or None while the FID still falls (or too few points).

    Rule: take the evaluations with step in (t/2, t], t the last step; split them at 3t/4 into an early and a late
    half (each needs >= min_points//2 points); the run has settled when the late mean differs from the early mean by
    no more than max(rel_tol·early mean, z·standard error of the difference), in either direction: a falling FID is
    still in its transient, a rising one still filling its noise ball. The plateau is the whole window (t/2, t].

    Each evaluation is weighted by the steps it covers (see _window), so the means are time averages and a geometric
    schedule, denser early in the window, does not pull them towards the early (higher) FIDs. The standard error
    treats the fluctuations as independent; if they are correlated it is too small, which only makes the test
    stricter (and rel_tol bounds the threshold from below). Only the window is read: a non-finite FID in it gives
    None, while a degenerate one before it (an untrained generator) does not matter. Cost: O(n).
    """
    s, f = np.asarray(steps, dtype=np.float64), np.asarray(fids, dtype=np.float64)
    if s.shape != f.shape or s.ndim != 1:
        raise ValueError("steps and fids must be 1-D sequences of equal length")
    if len(s) == 0:
        return None
    if np.any(np.diff(s) <= 0):
        raise ValueError("steps must be strictly increasing")
    t = float(s[-1])
    early, w_early = _window(s, f, t / 2, 3 * t / 4)
    late, w_late = _window(s, f, 3 * t / 4, t)
    half = min_points // 2
    if len(early) < max(half, 1) or len(late) < max(half, 1):
        return None
    if not (np.all(np.isfinite(early)) and np.all(np.isfinite(late))):
        return None
    m_early, sd_early, n_early = _weighted_stats(early, w_early)
    m_late, sd_late, n_late = _weighted_stats(late, w_late)
    se_diff = math.sqrt(sd_early**2 / n_early + sd_late**2 / n_late)
    if abs(m_early - m_late) > max(rel_tol * m_early, z * se_diff):
        return None  # still falling, or still rising (the noise ball of a slow mode filling up)
    mean, sd, _ = _weighted_stats(np.concatenate([early, late]), np.concatenate([w_early, w_late]))
    return Plateau(start=int(t // 2), end=int(t), mean=mean, sd=sd, n=len(early) + len(late))


def settled_above(plateau: Plateau, target: float, z: float = 2.0) -> bool:
    """Early-stop rule: the run sits on a floor clearly above the target (plateau.mean − z·plateau.sd > target)."""
    return plateau.mean - z * plateau.sd > target


# ----------------------------------------------------------------------------------------------------------------
# The floor across batch sizes: F(b) = B_F/b^q + C_F


@dataclass(frozen=True)
class FloorFit:
    """F(b) = B_F/b^q + C_F, fitted by least squares on log F (relative errors: floors span decades)."""

    b_f: float
    q: float
    c_f: float
    n_points: int  # distinct batch sizes
    r2: float  # in log space

    def floor(self, b: float | np.ndarray) -> float | np.ndarray:
        value = self.b_f * np.asarray(b, dtype=np.float64) ** -self.q + self.c_f
        return float(value) if np.ndim(value) == 0 else value

    def pole(self, target: float) -> float:
        """c_floor, the b where F(b) = target: b > c_floor reaches the target. math.inf when target <= C_F,
        since then no batch size reaches it (the pole has moved to infinity); never nan."""
        if target <= self.c_f:
            return math.inf
        return (self.b_f / (target - self.c_f)) ** (1.0 / self.q)


def _log_model(log_b: np.ndarray, log_b_f: float, q: float, c_f: float) -> np.ndarray:
    """log(B_F·b^−q + C_F), stable for C_F = 0 (log 0 = −inf is the identity of logaddexp)."""
    with np.errstate(divide="ignore"):
        return np.logaddexp(log_b_f - q * log_b, math.log(c_f) if c_f > 0 else -math.inf)


def _grid_start(b: np.ndarray, floors: np.ndarray, qs: np.ndarray) -> tuple[float, float, float]:
    """The best (q, B_F, C_F) over a grid of q. For fixed q the model is linear in (B_F, C_F), so each q gets the
    nonnegative least squares on the relative error (B_F·b^−q + C_F)/F − 1, which is the log error to first order;
    the grid point with the smallest log error is the start of the full fit."""
    x = b[None, :] ** -qs[:, None] / floors  # column B_F of the design, one row per q; column C_F is u = 1/F
    u = np.broadcast_to(1.0 / floors, x.shape)
    sxx, sxu, suu = np.sum(x * x, 1), np.sum(x * u, 1), np.sum(u * u, 1)
    sx1, su1 = np.sum(x, 1), np.sum(u, 1)
    # Two nonnegative unknowns: the unconstrained solution if it is feasible, else the better one-column fit.
    det = sxx * suu - sxu**2
    with np.errstate(divide="ignore", invalid="ignore"):
        both = np.stack([(sx1 * suu - su1 * sxu) / det, (su1 * sxx - sx1 * sxu) / det], 1)
    candidates = [both, np.stack([sx1 / sxx, 0 * sx1], 1), np.stack([0 * su1, su1 / suu], 1)]
    best = np.zeros_like(both)
    best_rss = np.full(len(qs), np.inf)
    for coef in candidates:
        ok = np.all(np.isfinite(coef) & (coef >= 0), axis=1)
        rss = np.sum((coef[:, :1] * x + coef[:, 1:] * u - 1.0) ** 2, 1)
        better = ok & (rss < best_rss)
        best[better], best_rss[better] = coef[better], rss[better]
    # B_F = 0 (flat floors) has no logarithm: use a coefficient negligible at every b instead.
    b_f = np.maximum(best[:, 0], 1e-12 * float(np.min(floors)) * b.min() ** qs)
    log_err = np.log(b_f[:, None] * b[None, :] ** -qs[:, None] + best[:, 1:]) - np.log(floors)
    i = int(np.argmin(np.sum(log_err**2, 1)))
    return float(qs[i]), float(b_f[i]), float(best[i, 1])


def fit_floor(batch_sizes: Sequence[float], floors: Sequence[float], *, q: float | None = None) -> FloorFit | None:
    """Least squares in log F over (log B_F, q, C_F >= 0) with q in [0.1, 3] (q fixed when given); None with < 3
    distinct b.

    Several runs per batch size are reduced to their median first: one cycling or late-settling seed then cannot
    drag the curve, and every batch size counts once whatever its number of seeds. The fit starts from the best
    point of a grid over q (linear in B_F, C_F there), then scipy's bounded least_squares refines all three.
    """
    b_all, f_all = np.asarray(batch_sizes, dtype=np.float64), np.asarray(floors, dtype=np.float64)
    if b_all.shape != f_all.shape or b_all.ndim != 1:
        raise ValueError("batch_sizes and floors must be 1-D sequences of equal length")
    if not (np.all(np.isfinite(b_all)) and np.all(b_all > 0) and np.all(np.isfinite(f_all)) and np.all(f_all > 0)):
        raise ValueError("batch sizes and floors must be finite and positive")
    b = np.unique(b_all)
    if len(b) < 3:
        return None
    f = np.array([np.median(f_all[b_all == x]) for x in b])
    log_b, y = np.log(b), np.log(f)
    scale = float(np.median(f))  # C_F is optimised in units of the typical floor, like the other two parameters

    def cost(log_b_f: float, q_: float, c_f: float) -> float:
        return float(np.sum((_log_model(log_b, log_b_f, q_, c_f) - y) ** 2))

    q0, b_f0, c_f0 = _grid_start(b, f, np.array([q]) if q is not None else np.linspace(*Q_BOUNDS, 59))

    def unpack(theta: np.ndarray) -> tuple[float, float, float]:
        return (theta[0], q, theta[1] * scale) if q is not None else (theta[0], theta[1], theta[2] * scale)

    def residuals(theta: np.ndarray) -> np.ndarray:
        return _log_model(log_b, *unpack(theta)) - y

    def jacobian(theta: np.ndarray) -> np.ndarray:
        log_b_f, q_, c_f = unpack(theta)
        model = _log_model(log_b, log_b_f, q_, c_f)
        share = np.exp(log_b_f - q_ * log_b - model)  # the power term's share of F: ∂ log F/∂ log B_F
        d_c = scale * np.exp(-model)  # ∂ log F/∂(C_F/scale)
        columns = [share, d_c] if q is not None else [share, -share * log_b, d_c]
        return np.stack(columns, axis=1)

    # Parameters (log B_F, q, C_F/scale), or (log B_F, C_F/scale) with q fixed; bounds q ∈ Q_BOUNDS, C_F >= 0.
    if q is not None:
        x0, lower, upper = [math.log(b_f0), c_f0 / scale], [-np.inf, 0.0], [np.inf, np.inf]
    else:
        x0 = [math.log(b_f0), q0, c_f0 / scale]
        lower, upper = [-np.inf, Q_BOUNDS[0], 0.0], [np.inf, Q_BOUNDS[1], np.inf]
    result = least_squares(residuals, x0, jac=jacobian, bounds=(lower, upper), method="trf",
                           ftol=1e-14, xtol=1e-14, gtol=1e-14, max_nfev=2000)
    log_b_f, q_fit, c_f = unpack(result.x)
    if cost(log_b_f, q_fit, c_f) > cost(math.log(b_f0), q0, c_f0):  # never worse than the grid start
        log_b_f, q_fit, c_f = math.log(b_f0), q0, c_f0
    total = float(np.sum((y - y.mean()) ** 2))
    rss = cost(log_b_f, q_fit, c_f)
    r2 = 1.0 - rss / total if total > 0 else 1.0
    return FloorFit(b_f=math.exp(log_b_f), q=float(q_fit), c_f=float(c_f), n_points=len(b), r2=r2)


# ----------------------------------------------------------------------------------------------------------------
# The transient of one run: FID(t) − floor


@dataclass(frozen=True)
class Transient:
    """FID(t) − floor ≈ D·exp(−t/T) ("geometric", rate = 1/T) or D·t^(−p) ("power", rate = p)."""

    kind: str
    scale: float  # D
    rate: float  # 1/T for geometric, p for power
    r2: float  # of the fit in log space

    def __post_init__(self) -> None:
        if self.kind not in ("geometric", "power"):
            raise ValueError(f"kind must be 'geometric' or 'power', not {self.kind!r}")
        if not (self.scale > 0 and self.rate > 0):
            raise ValueError("a transient decays: scale and rate must be positive")

    def value(self, t: float | np.ndarray) -> float | np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        with np.errstate(divide="ignore"):
            v = self.scale * (np.exp(-self.rate * t) if self.kind == "geometric" else t**-self.rate)
        return float(v) if v.ndim == 0 else v

    def steps_to(self, gap: float | np.ndarray) -> float | np.ndarray:
        """First t with value(t) <= gap, as a continuous step count (inf when gap <= 0). A geometric transient
        starts at D, so a gap >= D takes 0 steps; a power law is infinite at t = 0 and never takes 0."""
        g = np.asarray(gap, dtype=np.float64)
        positive = g > 0
        ratio = np.log(self.scale / np.where(positive, g, 1.0))  # log(D/gap)
        t = np.maximum(ratio / self.rate, 0.0) if self.kind == "geometric" else np.exp(ratio / self.rate)
        t = np.where(positive, t, math.inf)
        return float(t) if t.ndim == 0 else t


def _log_linear_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Ordinary least squares y = a − r·x: returns (a, r, R²)."""
    slope, intercept = np.polyfit(x, y, 1)
    rss = float(np.sum((y - intercept - slope * x) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    return float(intercept), float(-slope), 1.0 - rss / total if total > 0 else 1.0


def fit_transient(steps: Sequence[int], fids: Sequence[float], floor: float, *, noise: float | None = None,
                  z: float = 2.0) -> Transient | None:
    """Fit FID(t) − floor on the decaying part by both a geometric and a power law in log space; return the better
    fit (higher R²: both regress the same log gaps, so this is the smaller residual). None with < 3 points.

    The decaying part is the evaluations at t > 0 up to (not including) the first whose gap is not clearly positive,
    gap <= max(z·noise, 1e-6·floor): after that the gap is noise, and keeping only its positive excursions would bend
    the tail. noise is the FID's fluctuation around the floor; by default the sd of the run's plateau (0 if none).
    Evaluations are unweighted: a geometric schedule is even in log t, the power law's own axis.
    """
    s, f = np.asarray(steps, dtype=np.float64), np.asarray(fids, dtype=np.float64)
    if s.shape != f.shape or s.ndim != 1:
        raise ValueError("steps and fids must be 1-D sequences of equal length")
    if noise is None:
        plateau = detect_plateau(steps, fids) if len(s) else None
        noise = plateau.sd if plateau is not None else 0.0
    gap = f - floor
    clear = np.isfinite(gap) & (gap > max(z * noise, 1e-6 * abs(floor)))
    keep = s > 0
    ends = np.flatnonzero(keep & ~clear)  # the first evaluation after t = 0 that is not clearly above the floor
    if len(ends):
        keep[ends[0]:] = False
    t, log_gap = s[keep], np.log(gap[keep])
    if len(t) < 3:
        return None
    fits = []
    for kind, x in (("geometric", t), ("power", np.log(t))):
        intercept, rate, r2 = _log_linear_fit(x, log_gap)
        if rate > 0:  # a rising fit is no transient
            fits.append(Transient(kind=kind, scale=math.exp(intercept), rate=rate, r2=r2))
    return max(fits, key=lambda tr: tr.r2) if fits else None


# ----------------------------------------------------------------------------------------------------------------
# The critical batch size the floor predicts


@dataclass(frozen=True)
class FloorPrediction:
    c_floor: float  # the pole: F(c_floor) = target
    b_star: float  # argmin_b b·K_floor(b)
    factor: float  # b_star / c_floor
    k_star: float  # K_floor(b*)


def floor_b_star(fit: FloorFit, transient: Transient, target: float) -> FloorPrediction | None:
    """b*_floor = argmin over b > c_floor of b·K_floor(b), K_floor(b) = transient⁻¹(target − F(b)).

    None when target <= C_F (no b reaches the target), when the floor has no pole (B_F = 0: the smallest b is
    cheapest), or when a geometric transient's start D is within reach of every large b (target − C_F >= D: the
    run would begin below the target, so b·K has no interior minimum).
    """
    c = fit.pole(target)
    if not (math.isfinite(c) and c > 0):
        return None
    if transient.kind == "geometric" and target - fit.c_f >= transient.scale:
        return None

    def log_cost(u: float | np.ndarray) -> np.ndarray:  # log(b·K) at b = c·e^u; finite for u > 0
        b = c * np.exp(u)
        with np.errstate(divide="ignore"):
            return np.log(b) + np.log(transient.steps_to(target - fit.floor(b)))

    # b·K → ∞ at the pole and grows like b far above it. A grid in u = log(b/c), dense near the pole (the geometric
    # case's minimum sits just above it), finds the basin; bounded Brent refines between the grid neighbours.
    grid = np.geomspace(1e-10, 60.0, 600)
    values = log_cost(grid)
    i = int(np.argmin(values))
    if i == len(grid) - 1 or not np.isfinite(values[i]):
        return None
    lo, hi = (grid[i - 1] if i > 0 else 0.0), grid[i + 1]
    best = minimize_scalar(lambda u: float(log_cost(u)), bounds=(lo, hi), method="bounded",
                           options={"xatol": 1e-13 * max(hi, 1e-6)})
    u = float(best.x) if best.fun <= values[i] else float(grid[i])
    b_star = c * math.exp(u)
    return FloorPrediction(c_floor=c, b_star=b_star, factor=b_star / c,
                           k_star=float(transient.steps_to(target - fit.floor(b_star))))


# ----------------------------------------------------------------------------------------------------------------
# Uncertainty over seeds


@dataclass(frozen=True)
class FloorBootstrap:
    """Percentile intervals over resamples of seeds within each batch size (None where no resample gave a value).
    The transient is held fixed, so b_star's interval is the floor's part of the uncertainty only."""

    b_f: Interval | None
    q: Interval | None
    c_f: Interval | None
    c_floor: Interval | None
    b_star: Interval | None
    n_resamples: int


def bootstrap_floor(runs: Sequence[tuple[int, int, float]], target: float, transient: Transient | None,
                    n_resamples: int = 1000, seed: int = 0, level: float = 0.9, *,
                    q: float | None = None) -> FloorBootstrap:
    """runs: (batch size, seed, floor) per run; resample each batch size's runs with replacement, refit (with q
    fixed when given); seeded, so reproducible."""
    rng = np.random.default_rng(seed)
    by_b: dict[int, list[float]] = {}
    for b, _, floor in runs:
        by_b.setdefault(b, []).append(float(floor))
    fits, poles, stars = [], [], []
    for _ in range(n_resamples):
        bs, fs = [], []
        for b, floors in by_b.items():
            bs += [b] * len(floors)
            fs += [floors[i] for i in rng.integers(0, len(floors), len(floors))]
        fit = fit_floor(bs, fs, q=q)
        if fit is None:
            continue
        fits.append(fit)
        if math.isfinite(pole := fit.pole(target)):
            poles.append(pole)
        if transient is not None and (pred := floor_b_star(fit, transient, target)) is not None:
            stars.append(pred.b_star)
    return FloorBootstrap(
        b_f=percentile_interval([f.b_f for f in fits], level),
        q=percentile_interval([f.q for f in fits], level),
        c_f=percentile_interval([f.c_f for f in fits], level),
        c_floor=percentile_interval(poles, level),
        b_star=percentile_interval(stars, level),
        n_resamples=n_resamples,
    )


# ----------------------------------------------------------------------------------------------------------------
# A sweep's floors, end to end


@dataclass(frozen=True)
class RunHistory:
    """One run as the floor analysis sees it: its batch size, seed and FID at each evaluation."""

    batch_size: int
    seed: int
    steps: tuple[int, ...]
    fids: tuple[float, ...]


@dataclass(frozen=True)
class FloorAnalysis:
    """The floors of one sweep group: per run (where its FID settled), the fit, the transient and b*_floor."""

    floors: tuple[tuple[int, int, float], ...]  # (b, seed, F) of every run whose history ends on a plateau
    fit: FloorFit | None
    transient: Transient | None
    transient_batch: int | None  # the batch size whose median FID curve gave the transient
    prediction: FloorPrediction | None
    boot: FloorBootstrap | None

    def median(self, b: int) -> float | None:
        values = [f for x, _, f in self.floors if x == b]
        return float(np.median(values)) if values else None

    def count(self, b: int) -> int:
        return sum(x == b for x, _, _ in self.floors)


def run_floor(run: RunHistory) -> float | None:
    """The floor of a run: the mean FID of the plateau its history ends on (None if it ends still moving)."""
    if len(run.steps) < 2:
        return None
    plateau = detect_plateau(run.steps, run.fids)
    return None if plateau is None else plateau.mean


def median_curve(runs: Sequence[RunHistory]) -> tuple[np.ndarray, np.ndarray]:
    """The pointwise median FID of runs that share an evaluation schedule, up to the shortest run's end."""
    n = min(len(r.steps) for r in runs)
    return np.asarray(runs[0].steps[:n], dtype=np.float64), np.median([r.fids[:n] for r in runs], axis=0)


def analyse_floors(runs: Sequence[RunHistory], target: float, n_resamples: int = 1000,
                   seed: int = 0) -> FloorAnalysis:
    """Floors per run, F(b) fitted to them, the transient from the largest batch size's median curve (where the
    floor is lowest and the decay longest), and b*_floor with bootstrap intervals over seeds."""
    floors = tuple((r.batch_size, r.seed, f) for r in runs if (f := run_floor(r)) is not None and f > 0)
    fit = fit_floor([b for b, _, _ in floors], [f for _, _, f in floors]) if floors else None
    transient = transient_batch = None
    settled = sorted({b for b, _, _ in floors})
    if settled:
        transient_batch = settled[-1]
        steps, curve = median_curve([r for r in runs if r.batch_size == transient_batch])
        floor = float(np.median([f for b, _, f in floors if b == transient_batch]))
        transient = fit_transient(steps, curve, floor)
    prediction = floor_b_star(fit, transient, target) if fit is not None and transient is not None else None
    boot = bootstrap_floor(floors, target, transient, n_resamples, seed) if fit is not None else None
    return FloorAnalysis(floors, fit, transient, transient_batch, prediction, boot)
