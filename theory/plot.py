"""K(b) and N(b) on log-log axes with the critical batch sizes marked (matplotlib, imported lazily)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from theory.analysis import Analysis

COLOURS = {"D": "tab:blue", "G": "tab:orange", "joint": "black"}


def plot_analysis(analysis: Analysis, path: str | Path) -> None:
    """Write a two-panel PNG: K(b) (steps) and N(b) = b·K(b) (SFO), per player and joint."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    players = analysis.players
    lo = min(r.c for r in players.values()) * 1.02
    hi = max(16 * analysis.joint.b_star, float(analysis.batch_sizes.max()), 4 * lo)
    b = np.geomspace(lo, hi, 800)
    K, N = analysis.curves(b)
    stars = {"D": players["D"].b_star, "G": players["G"].b_star, "joint": analysis.joint.b_star}

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, curves, label in ((axes[0], K, "K(b): steps to ε"), (axes[1], N, "N(b) = b·K(b): SFO")):
        for key, y in curves.items():
            y = np.where(np.isfinite(y), y, np.nan)
            # the joint curve is a translucent band under the players' lines, so both stay visible
            style = dict(lw=5, alpha=0.3, zorder=1) if key == "joint" else dict(lw=1.6, zorder=2)
            ax.plot(b, y, color=COLOURS[key], label=f"{key}  (b* = {stars[key]:.4g})", **style)
            ax.axvline(stars[key], color=COLOURS[key], ls=":", lw=1)
        grid = analysis.batch_sizes
        yg = (analysis.K if curves is K else analysis.N)["joint"]
        ok = np.isfinite(yg)
        ax.plot(grid[ok], yg[ok], "o", color="black", ms=3.5, zorder=3, label="joint on the batch grid")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("batch size b")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.25)
    for p, r in players.items():
        axes[0].axhline(r.K_inf, color=COLOURS[p], ls="--", lw=0.8, alpha=0.7)
    axes[0].legend(fontsize=8)
    eps = analysis.epsilon.value
    fig.suptitle(f"family '{analysis.family.name}', ε = {eps:g}: dotted = b*, dashed = K(∞); "
                 f"joint b* case: {analysis.joint.case}", fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
