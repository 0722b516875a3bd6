"""The report's figures (matplotlib, Agg): K(b) and N(b) with the fit and theory, training curves, (b, α) heat map."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from empirical.report import GroupAnalysis, TheoryPrediction
    from empirical.scaling import ScalingAnalysis
    from empirical.theory_measure import MeasureAnalysis
    from empirical.train import EvalPoint


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def plot_k_and_sfo(group: GroupAnalysis, theory: TheoryPrediction | None, path: Path,
                   noise_b: float | None = None) -> Path:
    """K(b) and N(b) = b·K(b), log-log: median over seeds with the min–max band, misses marked, measured b*, the
    fitted K∞·b/(b − c), the theory's joint curve scaled to the fitted K∞ (its shape and b* are the theory's) and
    the noise-scale prediction `noise_b` = 2·B_simple (K∞(1 + c/b) ↔ McCandlish's K∞(1 + B_noise/b): b* = 2c ↔
    2·B_noise)."""
    plt = _pyplot()
    s = group.summaries
    b = np.array([x.batch_size for x in s], dtype=np.float64)
    med = np.array([x.median_k for x in s])
    lo = np.array([np.nan if x.min_k is None else x.min_k for x in s], dtype=np.float64)
    hi = np.array([np.nan if x.max_k is None else x.max_k for x in s], dtype=np.float64)
    finite = np.isfinite(med)
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.4), constrained_layout=True)
    marks = [x for x in (noise_b, theory and theory.error is None and theory.b_star_joint) if x]
    dense = np.geomspace(min([b.min(), *marks]) / 1.5, max([b.max(), *marks]) * 1.5, 400)
    for ax, scale, label in ((axes[0], np.ones_like(b), "K(b): steps to target"),
                             (axes[1], b, "N(b) = b·K(b): SFO")):
        dscale = np.ones_like(dense) if ax is axes[0] else dense
        ax.fill_between(b, lo * scale, hi * scale, color="tab:blue", alpha=0.2, lw=0, label="min–max over seeds")
        ax.plot(b[finite], (med * scale)[finite], "o-", color="tab:blue", label="median over seeds")
        partial = [i for i, x in enumerate(s) if 0 < x.n_runs != x.n_reached]
        for i in partial:
            ax.annotate(f"{s[i].n_reached}/{s[i].n_runs}", (b[i], (hi * scale)[i] if np.isfinite(hi[i]) else 1),
                        textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7, color="tab:red")
        missed = ~finite
        if missed.any():
            top = np.nanmax(hi * scale) if np.isfinite(hi).any() else 1.0
            ax.plot(b[missed], np.full(missed.sum(), top * 1.3), "v", color="tab:red", label="median not reached")
        if group.fit is not None:
            near = dense > 1.25 * group.fit.c  # stop short of the pole, which would stretch the axis
            curve = group.fit.hyperbola.K(dense[near])
            ax.plot(dense[near], curve * dscale[near], "-", color="black", lw=1,
                    label=f"fit K∞·b/(b−c): c = {group.fit.c:.3g}, R² = {group.fit.r2:.2f}")
            ax.axvline(group.fit.b_star, color="black", ls=":", lw=1, label=f"b*_fit = 2c = {group.fit.b_star:.3g}")
        if theory is not None and theory.error is None and group.fit is not None:
            shape = theory.joint_k(dense)
            ax.plot(dense, shape / theory.k_inf_joint * group.fit.k_inf * dscale, "--", color="tab:green", lw=1.2,
                    label=f"theory '{theory.family}' (scaled to K∞), b* = {theory.b_star_joint:.3g}")
            ax.axvline(theory.b_star_joint, color="tab:green", ls=":", lw=1)
        if noise_b is not None:
            ax.axvline(noise_b, color="tab:purple", ls="-.", lw=1.2,
                       label=f"2·B_simple = {noise_b:.3g} (b* = 2c ↔ 2·B_noise)")
        if group.b_star is not None:
            ax.axvline(group.b_star, color="tab:red", ls="-", lw=1.5, alpha=0.6,
                       label=f"measured b* = {group.b_star}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size b")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.25)
    axes[1].legend(fontsize=7, loc="upper left")
    where = f"at n = {group.n_eval}" if group.n_eval else "(exact)"
    fig.suptitle(f"{group.label}: target FID ≤ {group.target_fid:g} {where}", fontsize=10)
    return _save(fig, path)


def plot_floor(group: GroupAnalysis, path: Path) -> Path:
    """The noise floor F(b), log-log: each run's settled FID, the median, the fit B_F/b^q + C_F, the exact floor
    where the benchmark has one, the target and the poles (floor's and the K fit's)."""
    plt = _pyplot()
    f = group.floor
    b = np.array([x for x, _, _ in f.floors], dtype=np.float64)
    values = np.array([v for _, _, v in f.floors])
    sizes = np.array(sorted(set(b.tolist())))
    fig, ax = plt.subplots(figsize=(6.4, 4.4), constrained_layout=True)
    ax.plot(b, values, ".", color="tab:blue", alpha=0.45, label="one run's floor (mean FID once settled)")
    ax.plot(sizes, [f.median(int(x)) for x in sizes], "o-", color="tab:blue", label="median over seeds")
    dense = np.geomspace(sizes.min() / 1.5, sizes.max() * 1.5, 300)
    if f.fit is not None:
        ax.plot(dense, f.fit.floor(dense), "-", color="black", lw=1,
                label=f"fit B_F/b^q + C_F: q = {f.fit.q:.2f}, C_F = {f.fit.c_f:.2g}")
    if group.exact_floor is not None:
        ax.plot(dense, group.exact_floor.floor(dense), "--", color="tab:green", lw=1.2,
                label="exact floor (linearised SGD, Lyapunov)")
    ax.axhline(group.target_fid, color="tab:red", ls="--", lw=1, label=f"target FID {group.target_fid:g}")
    if f.prediction is not None:
        ax.axvline(f.prediction.c_floor, color="black", ls=":", lw=1,
                   label=f"pole c_floor = {f.prediction.c_floor:.3g}")
        ax.axvline(f.prediction.b_star, color="tab:orange", ls="-.", lw=1.2,
                   label=f"b*_floor = {f.prediction.b_star:.3g}")
    if group.b_star is not None:
        ax.axvline(group.b_star, color="tab:red", lw=1.5, alpha=0.6, label=f"measured b* = {group.b_star}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size b")
    ax.set_ylabel("noise floor F(b): FID held at a constant learning rate")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7)
    ax.set_title(f"{group.label}", fontsize=9)
    return _save(fig, path)


BALANCE_WINDOW = 100  # steps: Wang et al. average the balance ratio over 100 iterations


def smoothed(steps: Sequence[int], values: Sequence[float], window: int = BALANCE_WINDOW) -> np.ndarray:
    """The mean of the finite values whose step lies in (t − window, t], at every step t (NaN where none is):
    the balance ratio is recorded at evaluations only, so the window is over steps, not over evaluations.

    >>> smoothed([10, 60, 120, 130], [1.0, 3.0, float("nan"), 5.0], window=100).tolist()
    [1.0, 2.0, 3.0, 4.0]
    """
    s, v = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    out = np.full(len(s), np.nan)
    for k, t in enumerate(s):
        inside = (s > t - window) & (s <= t) & np.isfinite(v)
        if inside.any():
            out[k] = v[inside].mean()
    return out


def plot_dynamics(histories: Mapping[int, Sequence[Sequence[EvalPoint]]], target_fid: float, path: Path) -> Path:
    """FID (every seed) and the balance ratio (per batch size, the median over seeds of each run's ratio smoothed
    over 100 steps, as Wang et al. average it) against steps, one colour per batch size."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.2), constrained_layout=True)
    sizes = sorted(histories)
    colours = plt.cm.viridis(np.linspace(0, 0.9, max(len(sizes), 1)))
    shown = []
    for colour, b in zip(colours, sizes, strict=True):
        curves: dict[int, list[float]] = {}
        for i, points in enumerate(histories[b]):
            steps = [p.step for p in points]
            axes[0].plot(steps, [p.fid for p in points], color=colour, lw=0.9, alpha=0.8, label=None if i else f"b={b}")
            later = [p for p in points if p.step > 0]  # step 0 has no update to measure
            for t, r in zip([p.step for p in later], smoothed([p.step for p in later],
                                                              [p.balance_ratio for p in later]), strict=True):
                if math.isfinite(r):
                    curves.setdefault(t, []).append(float(r))
        if curves:
            steps = sorted(curves)
            median = [float(np.median(curves[t])) for t in steps]
            axes[1].plot(steps, median, color=colour, lw=1.1, label=f"b={b}")
            shown += median
    axes[0].axhline(target_fid, color="tab:red", ls="--", lw=1, label="target")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("FID")
    axes[1].axhline(0, color="grey", lw=0.6)
    axes[1].set_ylabel("balance ratio, smoothed over 100 steps\n(G's step's effect on D's score ÷ D's real–fake gap)")
    if shown:  # a robust range: the 2nd to 98th percentile, so one spike does not flatten every curve
        lo, hi = np.percentile(shown, [2, 98])
        pad = 0.1 * (hi - lo) or 0.1
        axes[1].set_ylim(lo - pad, hi + pad)
    for ax in axes:
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(left=0)  # steps are never negative: no empty negative half of the symlog axis
        ax.set_xlabel("training step")
        ax.grid(True, which="both", alpha=0.25)
    axes[0].legend(fontsize=7, ncol=2)
    return _save(fig, path)


def plot_heatmap(groups: Sequence[GroupAnalysis], path: Path) -> Path:
    """Median K and median SFO over (b, base learning rate α_D/b) (Masters & Luschi), one square per cell."""
    plt = _pyplot()
    from matplotlib import patheffects
    from matplotlib.colors import LogNorm

    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.6), constrained_layout=True)
    for ax, what in zip(axes, ("median K", "median SFO"), strict=True):
        xs, ys, vs, missed = [], [], [], []
        for g in groups:
            for s in g.summaries:
                x, y = s.batch_size, g.lr_d / s.batch_size
                v = s.median_k if what == "median K" else s.median_sfo
                if np.isfinite(v):
                    xs.append(x)
                    ys.append(y)
                    vs.append(v)
                else:
                    missed.append((x, y))
        if vs:
            points = ax.scatter(xs, ys, c=vs, s=260, marker="s", cmap="magma_r", norm=LogNorm())
            fig.colorbar(points, ax=ax, label=what)
            outline = [patheffects.withStroke(linewidth=1.5, foreground="white")]
            for x, y, v in zip(xs, ys, vs, strict=True):
                ax.annotate(f"{v:.0f}" if v < 1e4 else f"{v:.2g}", (x, y), ha="center", va="center", fontsize=5.5,
                            path_effects=outline)
        if missed:
            ax.scatter(*zip(*missed, strict=True), s=260, marker="s", facecolors="none", edgecolors="grey",
                       label="median not reached")
            ax.legend(fontsize=7)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size b")
        ax.set_ylabel("base learning rate α_D / b")
        ax.set_title(what, fontsize=10)
    return _save(fig, path)


def _k_curve(ax, summaries, fit, colour: str, label: str, dense: np.ndarray) -> None:
    """One steps-to-criterion on log-log axes: median over seeds, the seeds' min–max band, misses marked, the fit."""
    b = np.array([x.batch_size for x in summaries], dtype=np.float64)
    med = np.array([x.median_k for x in summaries], dtype=np.float64)
    lo = np.array([np.nan if x.min_k is None else x.min_k for x in summaries], dtype=np.float64)
    hi = np.array([np.nan if x.max_k is None else x.max_k for x in summaries], dtype=np.float64)
    finite = np.isfinite(med)
    ax.fill_between(b, lo, hi, color=colour, alpha=0.15, lw=0)
    ax.plot(b[finite], med[finite], "o", color=colour, ms=4, label=f"{label} (median; ▼ not reached)")
    if (~finite).any():
        top = np.nanmax(hi) if np.isfinite(hi).any() else 1.0
        ax.plot(b[~finite], np.full((~finite).sum(), top * 1.3), "v", color=colour, alpha=0.7)
    if fit is not None:
        near = dense > 1.25 * fit.c
        ax.plot(dense[near], fit.hyperbola.K(dense[near]), "-", color=colour, lw=1,
                label=f"  fit K∞·b/(b−c): b* = 2c = {fit.b_star:.3g}")


def plot_theory_measure(rows: Sequence[tuple[str, MeasureAnalysis, GroupAnalysis]], path: Path) -> Path:
    """Per sweep group (one row of panels) and player (D, G, both): the steps until the running mean of the
    theory's measure first falls to ε² and until it stays there, against the steps until the FID target, each with
    its fit, log-log."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), 3, figsize=(14, 4.8 * len(rows)), constrained_layout=True, squeeze=False)
    for (title, a, group), row in zip(rows, axes, strict=True):
        sizes = [x.batch_size for x in a.k["D"].summaries] + [x.batch_size for x in group.summaries]
        dense = np.geomspace(min(sizes) / 1.5, max(sizes) * 1.5, 300)
        words = a.measure.words
        for ax, key, who in zip(row, ("D", "G", "joint"), ("the discriminator", "the generator", "both players"),
                                strict=True):
            eps = {"D": "ε_D²", "G": "ε_G²", "joint": "ε²"}[key]
            _k_curve(ax, a.k[key].summaries, a.k[key].fit, "tab:blue", f"first ≤ {eps}", dense)
            _k_curve(ax, a.stay[key].summaries, a.stay[key].fit, "tab:orange", f"stays ≤ {eps}", dense)
            _k_curve(ax, group.summaries, group.fit, "tab:grey", f"FID ≤ {group.target_fid:g}", dense)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("batch size b")
            ax.set_ylabel(f"steps until the {words} ≤ {eps}\n(first, or from which on it stays; grey: FID)")
            ax.set_title(f"{title}: {who}", fontsize=9)
            ax.grid(True, which="both", alpha=0.25)
            ax.legend(fontsize=6.5, loc="upper right", framealpha=0.6)
    return _save(fig, path)


def plot_scaling(analysis: ScalingAnalysis, path: Path) -> Path:
    """The scaling laws, log-log: b* against target − C_F, against α and against the data's noise scale, one panel
    per law that the grid varies, a line per value of the other variables. Points: b*_fit (filled) and b*_floor
    (open) with their 90% bootstrap intervals over seeds, b*_measured (×, on the grid); lines: the fitted law through
    b*_fit (solid) and b*_floor (dotted), and the theory's slope drawn through each line's b*_fit centre (dashed)."""
    from empirical.scaling import LAWS, SERIES_WORDS, law_variable

    plt = _pyplot()
    laws = [law for law in ("target", "alpha", "noise") if analysis.law(law, "b_star_fit")]
    fig, axes = plt.subplots(1, len(laws), figsize=(6.2 * len(laws), 6.0), constrained_layout=True, squeeze=False)
    colours = plt.get_cmap("viridis")
    names = {"alpha": "α_D", "target": "target", "noise": "data scale s"}
    for ax, law in zip(axes[0], laws, strict=True):
        others = [x for x in LAWS if x != law and analysis.law(x, "b_star_fit")]

        def x_of(p, law=law):
            return law_variable(law, p)

        def key_of(p, others=others):  # the other variables: a line per value of them
            return (p.optimizer, *((p.alpha if x == "alpha" else p.target if x == "target" else p.noise)
                                   for x in others))

        theory = next(x.theory for x in analysis.laws if x.law == law)
        keys = sorted({key_of(p) for p in analysis.points["b_star_fit"]})
        for n, key in enumerate(keys):
            colour = colours(n / max(len(keys) - 1, 1) * 0.85)
            words = ", ".join(f"{names[x]} {v:g}" for x, v in zip(others, key[1:], strict=True))
            if len({k[0] for k in keys}) > 1:
                words = f"{key[0]}, {words}" if words else key[0]
            for series, marker, face in (("b_star_fit", "o", colour), ("b_star_floor", "s", "none"),
                                         ("b_star_measured", "x", colour)):
                pts = sorted((p for p in analysis.points[series] if key_of(p) == key and p.usable), key=x_of)
                if not pts:
                    continue
                x = np.array([x_of(p) for p in pts])
                y = np.array([p.value for p in pts])
                if series == "b_star_measured":
                    ax.plot(x, y, marker, color=colour, ms=5, alpha=0.6)
                    continue
                lo = np.array([p.interval.low if p.interval else v for p, v in zip(pts, y, strict=True)])
                hi = np.array([p.interval.high if p.interval else v for p, v in zip(pts, y, strict=True)])
                ax.errorbar(x, y, yerr=[np.maximum(y - lo, 0), np.maximum(hi - y, 0)], fmt=marker, color=colour,
                            mfc=face, ms=6, capsize=2, lw=1, label=(words or None) if series == "b_star_fit" else None)
                regression = analysis.regressions.get(series)
                if regression is not None and law in regression.exponents:
                    ax.plot(x, [regression.predict(p) for p in pts], "-" if series == "b_star_fit" else ":",
                            color=colour, lw=1.3)
                if series == "b_star_fit" and len(pts) > 1:
                    cx, cy = np.exp(np.mean(np.log(x))), np.exp(np.mean(np.log(y)))
                    dense = np.geomspace(x.min(), x.max(), 50)
                    ax.plot(dense, cy * (dense / cx) ** theory, "--", color=colour, lw=1, alpha=0.7)
        # the styles, once, in words
        for series, style in (("b_star_fit", "o-"), ("b_star_floor", "s:"), ("b_star_measured", "x")):
            fit = analysis.law(law, series)
            if fit is None:
                continue
            slope = "no fit" if fit.exponent is None else f"slope {round(fit.exponent, 9) + 0.0:.2f}" + (
                f" [{round(fit.interval.low, 9) + 0.0:.2f}, {round(fit.interval.high, 9) + 0.0:.2f}]"
                if fit.interval else "")
            ax.plot([], [], style, color="grey", mfc="none" if series == "b_star_floor" else "grey",
                    label=f"{SERIES_WORDS[series]}: {slope}")
        ax.plot([], [], "--", color="grey", label=f"theory's slope {theory:.3g} through the b*_fit points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        if law == "target":
            ax.set_xlabel("FID target − C_F (the floor constant)   ← tighter")
            ax.set_title("b* as the target tightens, at fixed learning rate", fontsize=10)
        elif law == "alpha":
            ax.set_xlabel("learning rate α_D (α_G in its fixed ratio)")
            ax.set_title("b* against the learning rate, at fixed target", fontsize=10)
        else:
            ax.set_xlabel("data noise scale s (data covariance s·Σ)")
            ax.set_title("b* against the gradient noise, at fixed target and learning rate", fontsize=10)
        ax.set_ylabel("critical batch size b*")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)  # below: clear of the data
    return _save(fig, path)
