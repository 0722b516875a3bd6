"""Fréchet distance between Gaussians fitted to features (FID), exact in float64 and fast for repeated evaluation.

FID = ‖μ_r − μ_g‖² + tr Σ_r + tr Σ_g − 2 tr (Σ_r Σ_g)^{1/2}   (Heusel et al. 2017).

pytorch-fid computes (Σ_r Σ_g)^{1/2} with ``scipy.linalg.sqrtm`` (a Schur decomposition of a non-symmetric matrix,
then drops the imaginary round-off). Only the trace is needed, and with S = Σ_r^{1/2} (symmetric, PSD)

    tr (Σ_r Σ_g)^{1/2} = Σ_i √λ_i(S Σ_g S),

because Σ_r Σ_g = S·(S Σ_g) has the eigenvalues of (S Σ_g)·S, a symmetric PSD matrix. So S is computed once per
real data set (:class:`ReferenceStatistics`), and each evaluation costs two matrix products and one symmetric
eigenvalue problem (LAPACK ``syevd``), with real eigenvalues by construction: no imaginary parts to discard.
When the generated statistics come from n < d samples, Σ_g = XᵀX/(n−1) for centred features X, and the non-zero
eigenvalues of S Σ_g S are those of the n×n matrix (XS)(XS)ᵀ/(n−1): cheaper and free of round-off zeros.

FID is biased upward at small sample counts, so :class:`Statistics` carries its n and comparisons should be made
at equal n.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from empirical.errors import EmpiricalInputError

# Eigenvalues of a PSD matrix below this multiple of the largest one (times the dimension) are round-off, not
# signal: a symmetric eigensolver returns them as ±O(d·eps·λ_max). Their square roots would add O(√eps) each to
# the trace, so they are set to zero, which is their exact value for rank-deficient statistics.
_ROUNDOFF = np.finfo(np.float64).eps


@dataclass(frozen=True)
class Statistics:
    """Mean and covariance (float64, ddof = 1) of n feature vectors."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int


def _as_features(features: object) -> np.ndarray:
    """Features as a float64 (n, d) array; accepts numpy arrays and (CPU or GPU) torch tensors."""
    if hasattr(features, "detach"):
        features = features.detach().to("cpu").double().numpy()  # type: ignore[union-attr]
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise EmpiricalInputError(f"FID needs an (n, d) feature array with n >= 2, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise EmpiricalInputError("FID features contain NaN or inf")
    return x


def statistics(features: object) -> Statistics:
    """Fit the Gaussian of FID to features: float64 mean and unbiased covariance."""
    x = _as_features(features)
    return Statistics(mu=x.mean(axis=0), sigma=np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1]), n=len(x))


def _clean_eigenvalues(eigenvalues: np.ndarray) -> np.ndarray:
    """Zero the eigenvalues of a PSD matrix that are round-off (negative, or tiny relative to the largest)."""
    top = float(np.max(np.abs(eigenvalues), initial=0.0))
    floor = len(eigenvalues) * _ROUNDOFF * top
    return np.where(eigenvalues > floor, eigenvalues, 0.0)


def psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix via its eigendecomposition (float64)."""
    sigma = np.asarray(sigma, dtype=np.float64)
    eigenvalues, vectors = np.linalg.eigh((sigma + sigma.T) / 2)
    return (vectors * np.sqrt(_clean_eigenvalues(eigenvalues))) @ vectors.T


class ReferenceStatistics:
    """Real-data statistics with Σ_r^{1/2} cached, so that each FID evaluation is one symmetric eigenproblem."""

    def __init__(self, stats: Statistics) -> None:
        self.stats = stats
        self.sqrt_sigma = psd_sqrt(stats.sigma)
        self.trace_sigma = float(np.trace(stats.sigma))

    @classmethod
    def from_features(cls, features: object) -> ReferenceStatistics:
        return cls(statistics(features))

    @property
    def n(self) -> int:
        return self.stats.n

    def _check_dim(self, d: int) -> None:
        if d != len(self.stats.mu):
            raise EmpiricalInputError(
                f"FID: generated features have dimension {d}, the reference has {len(self.stats.mu)}"
            )

    def distance(self, other: Statistics) -> float:
        """FID between the reference and another Gaussian."""
        self._check_dim(len(other.mu))
        s = self.sqrt_sigma
        m = s @ other.sigma @ s
        trace_sqrt = np.sqrt(_clean_eigenvalues(np.linalg.eigvalsh((m + m.T) / 2))).sum()
        return self._combine(other.mu, float(np.trace(other.sigma)), float(trace_sqrt))

    def distance_to_features(self, features: object) -> float:
        """FID between the reference and the Gaussian fitted to features; n×n eigenproblem when n ≤ d."""
        x = _as_features(features)
        n, d = x.shape
        self._check_dim(d)
        if n > d:
            return self.distance(statistics(x))
        mu = x.mean(axis=0)
        y = (x - mu) @ self.sqrt_sigma  # S Σ_g S = YᵀY/(n−1); its non-zero eigenvalues are those of YYᵀ/(n−1)
        gram = y @ y.T / (n - 1)
        trace_sqrt = np.sqrt(_clean_eigenvalues(np.linalg.eigvalsh(gram))).sum()
        trace_g = float(np.einsum("ij,ij->", x - mu, x - mu)) / (n - 1)
        return self._combine(mu, trace_g, float(trace_sqrt))

    def _combine(self, mu: np.ndarray, trace_g: float, trace_sqrt: float) -> float:
        diff = self.stats.mu - mu
        return float(diff @ diff + self.trace_sigma + trace_g - 2.0 * trace_sqrt)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """FID between N(μ1, Σ1) and N(μ2, Σ2), exact in float64 (one-off use; cache a ReferenceStatistics otherwise)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise EmpiricalInputError(
            f"FID: shapes do not match: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}"
        )
    reference = ReferenceStatistics(Statistics(mu1, sigma1, n=0))
    return reference.distance(Statistics(mu2, sigma2, n=0))
