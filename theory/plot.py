"""K(b) and N(b) on log-log axes with the critical batch sizes marked (matplotlib, imported lazily)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from theory.analysis import Analysis

COLOURS = {"D": "tab:blue", "G": "tab:orange", "joint": "black"}
# |log10 x| up to which matplotlib's log axes work. Beyond it their ticks leave float64 (an OverflowError or a
# RuntimeWarning inside matplotlib), so such a figure plots log10 values on linear axes instead.
LOG_AXES_LIMIT = 300.0


def log10_or_nan(x) -> np.ndarray:
    """log10 of the positive finite entries of ``x``, nan elsewhere (nothing is drawn there)."""
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x) & (x > 0)
    return np.where(ok, np.log10(np.where(ok, x, 1.0)), np.nan)


def fits_log_axes(*arrays) -> bool:
    """Whether matplotlib can draw these values on a log axis. Its view adds a 5% margin, and its LogLocator
    steps by up to the whole view's span in decades (when only two ticks fit) and goes two steps past the view,
    so the view plus twice its span, and a decade, must stay within ±LOG_AXES_LIMIT decades."""
    v = np.concatenate([log10_or_nan(a).ravel() for a in arrays])
    v = v[np.isfinite(v)]
    if v.size == 0:
        return True
    margin = 0.05 * (v.max() - v.min())
    lo, hi = v.min() - margin, v.max() + margin
    reach = 2.0 * (hi - lo) + 1.0
    return bool(lo - reach > -LOG_AXES_LIMIT and hi + reach < LOG_AXES_LIMIT)


def batch_range(analysis: Analysis) -> np.ndarray:
    """800 batch sizes from just above the smallest pole c_P to well past b* and the grid, spaced evenly in
    log b; computed in log space so that 16·b* near float64's top does not overflow."""
    players = analysis.players
    log_lo = np.log10(min(r.c for r in players.values())) + np.log10(1.02)
    log_hi = max(np.log10(analysis.joint.b_star) + np.log10(16.0), np.log10(analysis.batch_sizes.max()),
                 log_lo + np.log10(4.0))
    log_hi = min(log_hi, np.log10(np.finfo(np.float64).max))
    with np.errstate(over="ignore"):  # 10**log10(max) may round up to inf: the last point is float64's max
        return np.minimum(np.logspace(log_lo, log_hi, 800), np.finfo(np.float64).max)


def plot_analysis(analysis: Analysis, path: str | Path) -> None:
    """Write a two-panel PNG: K(b) (steps) and N(b) = b·K(b) (SFO), per player and joint; log-log, or log10
    values on linear axes where the values reach beyond matplotlib's log axes (near float64's ends)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    players = analysis.players
    b = batch_range(analysis)
    K, N = analysis.curves(b)
    stars = {"D": players["D"].b_star, "G": players["G"].b_star, "joint": analysis.joint.b_star}
    grid = analysis.batch_sizes
    log_axes = fits_log_axes(b, grid, *K.values(), *N.values())
    axis = (lambda x: np.asarray(x, dtype=np.float64)) if log_axes else log10_or_nan
    unit = "" if log_axes else "log10 "

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, curves, label in ((axes[0], K, "K(b): steps to ε"), (axes[1], N, "N(b) = b·K(b): SFO")):
        for key, y in curves.items():
            y = np.where(np.isfinite(y), y, np.nan)
            # the joint curve is a translucent band under the players' lines, so both stay visible
            style = dict(lw=5, alpha=0.3, zorder=1) if key == "joint" else dict(lw=1.6, zorder=2)
            ax.plot(axis(b), axis(y), color=COLOURS[key], label=f"{key}  (b* = {stars[key]:.4g})", **style)
            ax.axvline(float(axis(stars[key])), color=COLOURS[key], ls=":", lw=1)
        yg = (analysis.K if curves is K else analysis.N)["joint"]
        ok = np.isfinite(yg)
        ax.plot(axis(grid[ok]), axis(yg[ok]), "o", color="black", ms=3.5, zorder=3, label="joint on the batch grid")
        if log_axes:
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlabel(f"{unit}batch size b")
        ax.set_ylabel(unit + label)
        ax.grid(True, which="both", alpha=0.25)
    for p, r in players.items():
        axes[0].axhline(float(axis(r.K_inf)), color=COLOURS[p], ls="--", lw=0.8, alpha=0.7)
    axes[0].legend(fontsize=8)
    e = analysis.epsilon_players
    target = (f"ε_D = {e['D'].value:g}, ε_G = {e['G'].value:g}" if analysis.per_player_epsilon
              else f"ε = {analysis.epsilon.value:g}")
    fig.suptitle(f"family '{analysis.family.name}', {target}: dotted = b*, dashed = K(∞); "
                 f"joint b* case: {analysis.joint.case}", fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
