"""Speed and agreement of empirical.fid against the FID baseline, at Inception's d = 2048.

    python benchmarks/fid_speed.py [--blas-threads 1] [--repeats 3] [--sqrtm-repeats 1]

Baseline: pytorch-fid's ``calculate_frechet_distance`` (pytorch_fid/fid_score.py), which takes
``scipy.linalg.sqrtm`` of the non-symmetric product Σ_r Σ_g (Schur decomposition), then the real part of its trace.
Measured against it, on synthetic correlated Gaussian features (n_real = 10000) in two cases, n_gen = 10000
(full-rank statistics) and n_gen = 1000 < d (rank-deficient generated statistics):

    (a) frechet_distance          one-off: Σ_r^{1/2} (one eigh) plus one symmetric eigenvalue problem
    (b) ReferenceStatistics.distance        per evaluation, Σ_r^{1/2} cached: two products and one eigvalsh
    (c) ReferenceStatistics.distance_to_features   per evaluation from the generated features (it includes their
        statistics; for n_gen <= d it solves an n x n Gram eigenproblem instead)

Each line prints the median wall time over --repeats (time.perf_counter), the factor "x faster than sqrtm" (goal:
>= 15x for (b)) and the relative difference of the value from sqrtm's (goal: <= 1e-9 at full rank). For (c), the
like-for-like baseline also needs the generated statistics, so its factor against sqrtm + statistics() is printed
too. When n_gen < d, sqrtm is itself off by ~1e-8 relative (square roots of round-off eigenvalues; see
tests/empirical/test_fid.py, which checks fid.py against a 40-digit mpmath value), so the difference between fid.py's
d x d and Gram paths is printed as well: that one is fid.py's own consistency.

BLAS threads: on a machine shared with other jobs, OpenBLAS threads that spin while waiting can slow eigensolvers
by 10x or more; --blas-threads 1 (needs threadpoolctl, installed with scikit-learn) gives steadier timings. Timings
on a busy machine are contended: compare ratios within one run, not across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics as stats
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy
import scipy.linalg
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout without installing

from empirical.fid import ReferenceStatistics, frechet_distance, statistics

D = 2048
N_REAL = 10_000
N_GEN_CASES = (10_000, 1_000)


def pytorch_fid_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's calculate_frechet_distance (sqrtm's deprecated ``disp=False`` left out; same square root)."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)  # "Matrix is singular" when n_gen < d
        covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def features(rng: np.random.Generator, n: int, shift: float) -> np.ndarray:
    """Correlated Gaussian features: decaying per-coordinate scales plus a rank-64 common part, shifted mean."""
    scales = np.logspace(0.5, -1.0, D)
    common = rng.standard_normal((n, 64)) @ (0.3 * rng.standard_normal((64, D)))
    return rng.standard_normal((n, D)) * scales + common + shift * np.linspace(-1.0, 1.0, D)


def timed(function: Callable[[], float], repeats: int) -> tuple[float, float]:
    """(median seconds, value of the last call) over `repeats` calls."""
    seconds, value = [], float("nan")
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        seconds.append(time.perf_counter() - start)
    return stats.median(seconds), value


def blas_limit(threads: int | None):
    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads, user_api="blas")


def blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (no threadpoolctl)"
    return ", ".join(f"{i['prefix']} {i.get('version')} x{i['num_threads']}" for i in threadpool_info()) or "none"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blas-threads", type=int, default=None, help="limit BLAS threads (default: BLAS's own)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of each fid.py path (median)")
    parser.add_argument("--sqrtm-repeats", type=int, default=1, help="timed sqrtm calls (~15 s each)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    with blas_limit(args.blas_threads):
        print(
            f"python {platform.python_version()}  numpy {np.__version__}  scipy {scipy.__version__}  "
            f"torch {torch.__version__}"
        )
        load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
        print(
            f"os.cpu_count() = {os.cpu_count()}  torch.get_num_threads() = {torch.get_num_threads()}  "
            f"BLAS: {blas_threads()}  load average: {load}"
        )
        rng = np.random.default_rng(args.seed)
        real = features(rng, N_REAL, shift=0.0)
        s_real = statistics(real)
        start = time.perf_counter()
        reference = ReferenceStatistics(s_real)
        print(
            f"d = {D}, n_real = {N_REAL}: ReferenceStatistics (cached Σ_r^1/2) built once in "
            f"{time.perf_counter() - start:.2f} s\n"
        )

        for n_gen in N_GEN_CASES:
            generated = features(rng, n_gen, shift=0.2)
            t_stats, _ = timed(lambda g=generated: statistics(g).n, args.repeats)
            s_gen = statistics(generated)
            rank = "full rank" if n_gen > D else f"rank-deficient, n_gen < d = {D}"
            print(f"n_gen = {n_gen} ({rank}); statistics() of the generated features: {t_stats:.2f} s")

            t_sqrtm, v_sqrtm = timed(
                lambda sg=s_gen: pytorch_fid_distance(s_real.mu, s_real.sigma, sg.mu, sg.sigma), args.sqrtm_repeats
            )
            print(f"  sqrtm (pytorch-fid)            {t_sqrtm:8.2f} s                          FID = {v_sqrtm:.12g}")
            paths = [
                (
                    "(a) frechet_distance, one-off",
                    lambda sg=s_gen: frechet_distance(s_real.mu, s_real.sigma, sg.mu, sg.sigma),
                ),
                ("(b) distance, cached", lambda sg=s_gen: reference.distance(sg)),
                ("(c) distance_to_features", lambda g=generated: reference.distance_to_features(g)),
            ]
            values = {}
            for name, function in paths:
                seconds, value = timed(function, args.repeats)
                values[name[:3]] = value
                line = (
                    f"  {name:<30} {seconds:8.3f} s  {t_sqrtm / seconds:6.1f}x faster than sqrtm  "
                    f"rel. diff vs sqrtm {abs(value - v_sqrtm) / abs(v_sqrtm):.1e}"
                )
                if name.startswith("(c)"):
                    line += f"  ({(t_sqrtm + t_stats) / seconds:.1f}x vs sqrtm + statistics())"
                print(line)
            if n_gen <= D:
                square = values["(b)"]
                print(
                    f"  fid.py self-consistency: |Gram (c) - d x d (b)| / (b) = "
                    f"{abs(values['(c)'] - square) / abs(square):.1e}, |(a) - (b)| / (b) = "
                    f"{abs(values['(a)'] - square) / abs(square):.1e}"
                )
                print(
                    "  note: at n_gen < d sqrtm itself is off by ~1e-8 relative (vs 40-digit mpmath, "
                    "tests/empirical/test_fid.py); its difference above is its error, not fid.py's"
                )
            print()
        print("timings are wall clock on this machine as it was (other jobs may share the cores)")


if __name__ == "__main__":
    main()
