"""empirical.fid against pytorch-fid's sqrtm route, a 40-digit mpmath truth, and the mathematical properties of FID.

Accuracy: on full-rank statistics every path of fid.py agrees with pytorch-fid's ``calculate_frechet_distance`` to
1e-9 relative. On rank-deficient statistics (fewer samples than dimensions) ``scipy.linalg.sqrtm`` itself is off by
~1e-8 relative (it takes square roots of round-off eigenvalues), so there the reference is mpmath at 40 digits,
computed from the features themselves, and sqrtm is only required to be within 1e-6; a test checks that sqrtm's error
is indeed the larger one. The d = 2048 full-rank case costs one sqrtm (13-15 s on one BLAS thread here) and takes
about 25 s; the whole file about 37 s (measured on a shared 2-core machine).
"""

import functools
import warnings

import mpmath
import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given
from hypothesis import strategies as st

from empirical.errors import EmpiricalInputError
from empirical.fid import ReferenceStatistics, Statistics, frechet_distance, psd_sqrt, statistics


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    """Run this module's linear algebra on one BLAS thread.

    OpenBLAS threads spin while they wait; on a two-core machine shared with other jobs a 2048x2048 eigvalsh took
    15 s with two threads and 0.7 s with one (sqrtm: 76 s vs 13 s), measured. Results do not depend on it.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an optional speed-up only
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


# ---------------------------------------------------------------------------------------------------------------
# References


def pytorch_fid_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's method: ``calculate_frechet_distance`` of pytorch_fid/fid_score.py (mseitzer/pytorch-fid).

    scipy.linalg.sqrtm of the non-symmetric product Σ1Σ2, an eps offset on the diagonals if the result is not finite,
    then the real part. The one change: pytorch-fid passes ``disp=False`` and discards the error estimate it returns;
    that argument is deprecated since SciPy 1.16, so it is not passed (same square root).
    """
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    assert mu1.shape == mu2.shape, "Training and test mean vectors have different lengths"
    assert sigma1.shape == sigma2.shape, "Training and test covariances have different dimensions"
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)  # "Matrix is singular": expected when n < d
        covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def _mp_moments(features: np.ndarray) -> tuple[list, mpmath.matrix]:
    """Mean and unbiased covariance of float64 features, formed in mpmath (so n < d gives exact rank n - 1)."""
    n, d = features.shape
    x = mpmath.matrix(features.tolist())
    mu = [mpmath.fsum(x[i, j] for i in range(n)) / n for j in range(d)]
    centred = mpmath.matrix(n, d)
    for i in range(n):
        for j in range(d):
            centred[i, j] = x[i, j] - mu[j]
    return mu, centred.T * centred / (n - 1)


def mpmath_fid(real: np.ndarray, generated: np.ndarray, dps: int = 40) -> float:
    """FID of the Gaussians fitted to two feature arrays, computed with dps significant digits.

    S = Σ_r^{1/2} from mpmath.eigsy of Σ_r, then the eigenvalues of S Σ_g S from mpmath.eigsy; eigenvalues that
    come out negative (round-off of size 10^-dps) are clamped to zero.
    """
    with mpmath.workdps(dps):
        mu_r, sigma_r = _mp_moments(real)
        mu_g, sigma_g = _mp_moments(generated)
        d = len(mu_r)
        eigenvalues, vectors = mpmath.eigsy(sigma_r)
        s = vectors * mpmath.diag([mpmath.sqrt(max(e, 0)) for e in eigenvalues]) * vectors.T
        product = mpmath.eigsy(s * sigma_g * s, eigvals_only=True)
        trace_sqrt = mpmath.fsum(mpmath.sqrt(max(e, 0)) for e in product)
        mean_term = mpmath.fsum((a - b) ** 2 for a, b in zip(mu_r, mu_g, strict=True))
        traces = mpmath.fsum(sigma_r[i, i] + sigma_g[i, i] for i in range(d))
        return float(mean_term + traces - 2 * trace_sqrt)


def correlated_features(rng: np.random.Generator, n: int, d: int, shift: float = 0.0, factors: int = 8) -> np.ndarray:
    """n draws of a correlated Gaussian in R^d: coordinate scales 0.5..2 plus a rank-`factors` common part."""
    independent = rng.standard_normal((n, d)) * np.linspace(0.5, 2.0, d)
    common = rng.standard_normal((n, factors)) @ rng.standard_normal((factors, d))
    return independent + common + shift * rng.standard_normal(d)


def relative(value: float, reference: float) -> float:
    return abs(value - reference) / abs(reference)


# ---------------------------------------------------------------------------------------------------------------
# Full rank: n > d samples on both sides


@pytest.mark.parametrize(
    "d",
    [2, 16, 64, 256, pytest.param(2048, id="2048-one-sqrtm")],
)
def test_full_rank_matches_pytorch_fid(d):
    rng = np.random.default_rng(d)
    n = d + max(d // 4, 40)
    real, generated = correlated_features(rng, n, d), correlated_features(rng, n + 10, d, shift=0.3)
    s_real, s_gen = statistics(real), statistics(generated)
    reference = ReferenceStatistics(s_real)

    expected = pytorch_fid_distance(s_real.mu, s_real.sigma, s_gen.mu, s_gen.sigma)
    one_off = frechet_distance(s_real.mu, s_real.sigma, s_gen.mu, s_gen.sigma)
    cached = reference.distance(s_gen)
    from_features = reference.distance_to_features(generated)

    assert expected > 0
    assert relative(one_off, expected) <= 1e-9
    assert relative(cached, expected) <= 1e-9
    assert relative(from_features, expected) <= 1e-9


# ---------------------------------------------------------------------------------------------------------------
# Near-singular: fewer samples than dimensions


@functools.cache
def _mpmath_case(d: int, n: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Real and generated features, both n < d samples with different means, and their FID at 40 digits."""
    rng = np.random.default_rng(1000 + d)
    real, generated = correlated_features(rng, n, d), correlated_features(rng, n, d, shift=0.3)
    return real, generated, mpmath_fid(real, generated)


MPMATH_CASES = [(32, 20), (48, 30)]  # about 0.7 s and 2.4 s of mpmath


@pytest.mark.parametrize(("d", "n"), MPMATH_CASES)
def test_rank_deficient_matches_mpmath(d, n):
    real, generated, truth = _mpmath_case(d, n)
    s_real, s_gen = statistics(real), statistics(generated)
    reference = ReferenceStatistics(s_real)

    assert relative(reference.distance(s_gen), truth) <= 1e-12
    assert relative(reference.distance_to_features(generated), truth) <= 1e-12
    assert relative(frechet_distance(s_real.mu, s_real.sigma, s_gen.mu, s_gen.sigma), truth) <= 1e-12


@pytest.mark.parametrize(("d", "n"), MPMATH_CASES)
def test_sqrtm_is_less_accurate_than_fid_py_on_rank_deficient_statistics(d, n):
    """The claim behind comparing with mpmath, checked: sqrtm's error (~1e-8, measured) dwarfs ours (~1e-16)."""
    real, generated, truth = _mpmath_case(d, n)
    s_real, s_gen = statistics(real), statistics(generated)
    ours = relative(ReferenceStatistics(s_real).distance(s_gen), truth)
    theirs = relative(pytorch_fid_distance(s_real.mu, s_real.sigma, s_gen.mu, s_gen.sigma), truth)
    assert theirs > 1e-10
    assert theirs > 100 * max(ours, 1e-16)


@pytest.mark.parametrize(
    ("d", "n_real", "n_gen", "small"),
    [
        (64, 40, 40, True),
        (256, 100, 100, True),
        (256, 400, 100, True),  # full-rank reference, rank-deficient generated statistics
        # A second d = 2048 sqrtm would add ~15 s to the file; benchmarks/fid_speed.py compares it there. The
        # one-off frechet_distance (a second 2048 eigendecomposition) is covered at d = 2048 by the full-rank test.
        pytest.param(2048, 1000, 1000, False, id="2048-1000-1000-no-sqrtm"),
    ],
)
def test_rank_deficient_square_and_gram_paths_agree(d, n_real, n_gen, small):
    rng = np.random.default_rng(2000 + d + n_real)
    real, generated = correlated_features(rng, n_real, d), correlated_features(rng, n_gen, d, shift=0.3)
    s_real, s_gen = statistics(real), statistics(generated)
    reference = ReferenceStatistics(s_real)

    square = reference.distance(s_gen)  # d x d eigenproblem, round-off eigenvalues zeroed
    gram = reference.distance_to_features(generated)  # n x n Gram eigenproblem, no round-off zeros
    assert relative(gram, square) <= 1e-11
    if small:
        assert relative(frechet_distance(s_real.mu, s_real.sigma, s_gen.mu, s_gen.sigma), square) <= 1e-11
        # Only 1e-6: sqrtm's own error on rank-deficient statistics is ~1e-8 relative (measured: 3e-8 at d = 64,
        # 7e-8 at d = 256), which is why the 1e-12 accuracy claim is checked against mpmath above.
        assert relative(pytorch_fid_distance(s_real.mu, s_real.sigma, s_gen.mu, s_gen.sigma), square) <= 1e-6


# ---------------------------------------------------------------------------------------------------------------
# Mathematical properties (small d, exactly known statistics)


def _orthonormal(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


@st.composite
def feature_sets(draw, d=None, full_rank=False):
    """(features, mean, covariance): n points in R^d whose sample covariance is exactly U diag(λ) Uᵀ.

    The covariance has rank k <= min(d, n - 1) (k = d when full_rank) and condition number at most 1e4 on its
    range; the overall scale spans 1e-6..1e6.
    """
    d = draw(st.integers(1, 8)) if d is None else d
    n = draw(st.integers(d + 1 if full_rank else 2, 24))
    k = d if full_rank else draw(st.integers(1, min(d, n - 1)))
    log_eigenvalues = np.array(draw(st.lists(st.floats(-2, 2), min_size=k, max_size=k)))
    log_scale = draw(st.floats(-3, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    eigenvalues = 10.0 ** (log_eigenvalues + 2 * log_scale)
    mean = 10.0**log_scale * rng.normal(scale=3.0, size=d)
    basis = _orthonormal(rng, d)[:, :k]
    centred = rng.standard_normal((n, k))
    centred -= centred.mean(axis=0)
    q, _ = np.linalg.qr(centred)  # n x k, orthonormal columns orthogonal to the all-ones vector
    features = np.sqrt(n - 1) * (q * np.sqrt(eigenvalues)) @ basis.T + mean
    return features, mean, (basis * eigenvalues) @ basis.T


# Pairs are full rank: for two rank-deficient covariances with different ranges FID is not Lipschitz in the input
# (a perturbation δ of Σ_r along its null space moves FID by ~√(δ·λ_g)), so the rounding of the inputs alone limits
# any float64 method to ~1e-8 there. Rank-deficient accuracy is checked against mpmath on exact features above.
pairs = st.integers(1, 8).flatmap(lambda d: st.tuples(feature_sets(d, full_rank=True), feature_sets(d, full_rank=True)))


def _all_paths(x: np.ndarray, y: np.ndarray) -> list[float]:
    """FID of x's Gaussian against y's by every entry point of fid.py."""
    sx, sy = statistics(x), statistics(y)
    reference = ReferenceStatistics(sx)
    return [
        frechet_distance(sx.mu, sx.sigma, sy.mu, sy.sigma),
        reference.distance(sy),
        reference.distance_to_features(y),
    ]


def _scale(x: np.ndarray, y: np.ndarray) -> float:
    sx, sy = statistics(x), statistics(y)
    return float(np.trace(sx.sigma) + np.trace(sy.sigma) + np.sum((sx.mu - sy.mu) ** 2))


@given(feature_sets())
def test_fid_of_a_set_with_itself_is_zero(case):
    x, _, sigma = case
    scale = float(np.trace(sigma))
    for value in _all_paths(x, x):
        assert abs(value) <= 1e-9 * scale


@given(pairs)
def test_fid_is_symmetric_and_non_negative(pair):
    (x, _, _), (y, _, _) = pair
    scale = _scale(x, y)
    forward, backward = _all_paths(x, y), _all_paths(y, x)
    for a, b in zip(forward, backward, strict=True):
        assert abs(a - b) <= 1e-9 * scale
    # FID is a squared Wasserstein distance: >= 0 up to round-off (worst seen in 3000 examples: -4e-13 * scale).
    assert min(forward + backward) >= -1e-10 * scale


@given(pairs, st.integers(0, 2**32 - 1), st.floats(-2, 2))
def test_shifting_both_sets_leaves_fid_unchanged(pair, seed, log_size):
    (x, _, _), (y, _, _) = pair
    v = 10.0**log_size * np.sqrt(_scale(x, y)) * np.random.default_rng(seed).standard_normal(x.shape[1])
    scale = _scale(x, y)
    for before, after in zip(_all_paths(x, y), _all_paths(x + v, y + v), strict=True):
        assert abs(after - before) <= 1e-9 * scale


@given(feature_sets(), st.integers(0, 2**32 - 1), st.floats(-2, 2))
def test_shifting_one_set_adds_the_squared_shift(case, seed, log_size):
    x, _, sigma = case
    v = 10.0**log_size * np.sqrt(np.trace(sigma)) * np.random.default_rng(seed).standard_normal(x.shape[1])
    expected = float(v @ v)
    tolerance = 1e-9 * (np.trace(sigma) + expected)
    s = statistics(x)
    shifted = Statistics(s.mu + v, s.sigma, s.n)
    assert abs(frechet_distance(s.mu, s.sigma, shifted.mu, shifted.sigma) - expected) <= tolerance
    assert abs(ReferenceStatistics(s).distance(shifted) - expected) <= tolerance
    assert abs(ReferenceStatistics(s).distance_to_features(x + v) - expected) <= tolerance


nonnegative = st.one_of(st.just(0.0), st.floats(-2, 2).map(lambda e: 10.0**e))


@given(st.integers(1, 8).flatmap(lambda d: st.tuples(*[st.tuples(nonnegative, nonnegative)] * d)), st.data())
def test_diagonal_covariances_have_the_closed_form(pairs_of_variances, data):
    """Σ(√a_i − √b_i)² + ‖Δμ‖²; diagonal matrices are exact in float64, so zero variances are allowed."""
    a, b = np.array(pairs_of_variances).T
    d = len(a)
    mu1 = np.array(data.draw(st.lists(st.floats(-10, 10), min_size=d, max_size=d)))
    mu2 = np.array(data.draw(st.lists(st.floats(-10, 10), min_size=d, max_size=d)))
    expected = float(np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + np.sum((mu1 - mu2) ** 2))
    scale = float(a.sum() + b.sum() + np.sum((mu1 - mu2) ** 2))
    assert abs(frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) - expected) <= 1e-9 * scale
    reference = ReferenceStatistics(Statistics(mu1, np.diag(a), n=0))
    assert abs(reference.distance(Statistics(mu2, np.diag(b), n=0)) - expected) <= 1e-9 * scale


@given(
    st.integers(1, 8).flatmap(lambda d: st.tuples(*[st.tuples(st.floats(-2, 2), st.floats(-2, 2))] * d)),
    st.integers(0, 2**32 - 1),
)
def test_commuting_covariances_have_the_closed_form(log_variances, seed):
    """Σ_a = Q diag(a) Qᵀ and Σ_b = Q diag(b) Qᵀ commute; full rank (condition <= 1e4) since Q is not exact."""
    a, b = 10.0 ** np.array(log_variances).T
    rng = np.random.default_rng(seed)
    q = _orthonormal(rng, len(a))
    mu1, mu2 = rng.standard_normal(len(a)), rng.standard_normal(len(a))
    expected = float(np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + np.sum((mu1 - mu2) ** 2))
    scale = float(a.sum() + b.sum() + np.sum((mu1 - mu2) ** 2))
    value = frechet_distance(mu1, (q * a) @ q.T, mu2, (q * b) @ q.T)
    assert abs(value - expected) <= 1e-9 * scale


def test_scalar_gaussians():
    assert frechet_distance(0.0, 4.0, 0.0, 1.0) == pytest.approx(1.0, rel=1e-15)  # (√4 − √1)²
    assert frechet_distance([3.0], [[1.0]], [1.0], [[1.0]]) == pytest.approx(4.0, rel=1e-15)


# ---------------------------------------------------------------------------------------------------------------
# statistics() and input checks


def test_statistics_equal_numpy_mean_and_cov():
    x = np.random.default_rng(0).standard_normal((50, 7)) * np.arange(1, 8) + 3.0
    s = statistics(x)
    assert s.n == 50
    assert s.mu.dtype == np.float64 and s.sigma.dtype == np.float64
    np.testing.assert_array_equal(s.mu, np.mean(x, axis=0))
    np.testing.assert_array_equal(s.sigma, np.cov(x, rowvar=False))


def test_statistics_accept_float32_torch_tensors_and_arrays():
    t = torch.randn(40, 5, generator=torch.Generator().manual_seed(0), requires_grad=True)
    as_float64 = t.detach().double().numpy()
    for features in (t, t.detach().numpy()):  # a float32 tensor (with grad) and a float32 array
        s = statistics(features)
        assert s.sigma.dtype == np.float64
        np.testing.assert_array_equal(s.mu, np.mean(as_float64, axis=0))
        np.testing.assert_array_equal(s.sigma, np.cov(as_float64, rowvar=False))
    reference = ReferenceStatistics.from_features(t)
    assert reference.n == 40
    assert abs(reference.distance_to_features(t)) <= 1e-12 * np.trace(reference.stats.sigma)


def test_statistics_of_one_dimensional_features():
    x = np.array([[1.0], [2.0], [4.0]])
    s = statistics(x)
    assert s.sigma.shape == (1, 1)
    assert s.sigma[0, 0] == pytest.approx(np.var(x, ddof=1))


@pytest.mark.parametrize(
    "features",
    [
        np.ones(5),  # 1-D
        np.ones((1, 3)),  # n < 2
        np.ones((2, 3, 4)),  # 3-D
        np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]]),
        np.array([[0.0, 1.0], [np.inf, 2.0], [1.0, 1.0]]),
        torch.tensor([[0.0, float("nan")], [1.0, 2.0]]),
    ],
    ids=["1d", "n1", "3d", "nan", "inf", "torch-nan"],
)
def test_bad_features_are_refused(features):
    with pytest.raises(EmpiricalInputError):
        statistics(features)
    reference = ReferenceStatistics.from_features(np.random.default_rng(0).standard_normal((10, 2)))
    with pytest.raises(EmpiricalInputError):
        reference.distance_to_features(features)


def test_dimension_mismatch_is_refused():
    rng = np.random.default_rng(0)
    reference = ReferenceStatistics.from_features(rng.standard_normal((20, 4)))
    with pytest.raises(EmpiricalInputError):
        reference.distance(statistics(rng.standard_normal((20, 5))))
    with pytest.raises(EmpiricalInputError):
        reference.distance_to_features(rng.standard_normal((20, 5)))  # n > d: d x d path
    with pytest.raises(EmpiricalInputError):
        reference.distance_to_features(rng.standard_normal((3, 5)))  # n <= d: Gram path
    with pytest.raises(EmpiricalInputError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(EmpiricalInputError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))


# ---------------------------------------------------------------------------------------------------------------
# psd_sqrt


@given(
    st.integers(1, 8).flatmap(lambda d: st.lists(st.one_of(st.none(), st.floats(-3, 3)), min_size=d, max_size=d)),
    st.integers(0, 2**32 - 1),
)
def test_psd_sqrt_squares_back(log_eigenvalues, seed):
    """R = psd_sqrt(S) is symmetric PSD with R R = S, also for singular S (None draws a zero eigenvalue)."""
    eigenvalues = np.array([0.0 if e is None else 10.0**e for e in log_eigenvalues])
    q = _orthonormal(np.random.default_rng(seed), len(eigenvalues))
    s = (q * eigenvalues) @ q.T
    r = psd_sqrt(s)
    size = float(eigenvalues.max())
    assert np.max(np.abs(r - r.T)) <= 1e-12 * np.sqrt(size)
    assert np.linalg.eigvalsh((r + r.T) / 2).min() >= -1e-12 * np.sqrt(size)
    assert np.max(np.abs(r @ r - s)) <= 1e-12 * size


def test_psd_sqrt_of_singular_and_zero_matrices():
    np.testing.assert_allclose(psd_sqrt(np.ones((3, 3))), np.ones((3, 3)) / np.sqrt(3), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(psd_sqrt(np.zeros((4, 4))), np.zeros((4, 4)))
    np.testing.assert_allclose(psd_sqrt(np.diag([4.0, 0.0, 9.0])), np.diag([2.0, 0.0, 3.0]), rtol=0, atol=1e-15)
