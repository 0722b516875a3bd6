"""The linear-quadratic Gaussian GAN: a control game where the TTUR theory's assumptions hold, with exact FID.

Feizi, Farnia, Ginart and Tse (2017), "Understanding GANs: the LQG setting" (reference.md §8). Data N(μ, Σ) in
d = 4 dimensions; generator x = μ_g + A·z, z ~ N(0, I_d), A lower-triangular (every Gaussian has such an A, and the
triangle removes the rotation symmetry A → A·R, which would otherwise leave a flat, noise-driven direction in the
game); discriminator D(x) = wᵀx + xᵀVx with V symmetric; WGAN losses with an L2 penalty (λ/2)·‖θ_D‖² on D's
parameters (loss "wgan-l2"), so D's problem is λ-strongly convex and λ-smooth for a fixed G. At the equilibrium
μ_g = μ, A·Aᵀ = Σ and D = 0.

The data's noise is a knob: Σ = s·Σ₀ with s = config.data_scale (1 by default) and Σ₀, μ the seeded ones of
:func:`target`, so the scaling of the critical batch size in the gradient noise can be measured (issue 14). Every
closed form below takes the scaled data (:func:`config_target`).

Everything the theory needs has a closed form here: FID is the Fréchet distance between N(μ_g, AAᵀ) and N(μ, Σ)
computed from the parameters (no samples, no feature network), each player's smoothness and per-sample gradient
covariance come from Gaussian moments (:func:`exact_noise`, :func:`exact_smoothness`), and the noise floor of
constant-step SGD from a discrete Lyapunov equation (empirical/benchmarks/lqgan_floor.py). The modules accept a
leading run axis on their parameters, which is how empirical/benchmarks/lqgan_batched.py trains many seeds as one
computation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from empirical.benchmarks import Benchmark
from empirical.config import TrainConfig
from empirical.fid import ReferenceStatistics, Statistics

DIM = 4
CONDITION = 2.0  # λ_max(Σ)/λ_min(Σ)
DATA_SEED = 20_261_202


@dataclass(frozen=True)
class GaussianTarget:
    """The data distribution N(μ, Σ), float64; `scale` is the s that Σ already carries (Σ = s·Σ₀, see target)."""

    mu: np.ndarray
    sigma: np.ndarray
    scale: float = 1.0

    @property
    def dim(self) -> int:
        return len(self.mu)


@lru_cache(maxsize=16)
def target(dim: int = DIM, scale: float = 1.0) -> GaussianTarget:
    """The seeded data N(μ, s·Σ₀): Σ₀ = Q·diag(1 … 1/CONDITION, geometric)·Qᵀ with Q a random rotation,
    μ ~ N(0, I/4), s = `scale`. Only the covariance scales (μ and the shape of Σ₀ stay the seeded ones), so s
    turns the per-sample gradient noise up or down at a fixed geometry; s = 1 is the data of every run before
    data_scale existed, to the bit (x·1.0 is exact)."""
    rng = np.random.default_rng(DATA_SEED)
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    q = q * np.sign(np.diag(r))  # the Haar-distributed rotation (QR's sign convention fixed)
    eigenvalues = np.geomspace(1.0, 1.0 / CONDITION, dim)
    sigma = (q * eigenvalues) @ q.T
    return GaussianTarget(mu=0.5 * rng.standard_normal(dim), sigma=float(scale) * ((sigma + sigma.T) / 2),
                          scale=float(scale))


def config_target(config: TrainConfig) -> GaussianTarget:
    """The data of an lqgan config: target(z_dim, data_scale)."""
    return target(config.z_dim, config.data_scale)


def tril_scatter(dim: int) -> torch.Tensor:
    """The (d², d(d+1)/2) 0/1 matrix E with vec(A) = E·a for the lower-triangular A whose entries (row-major) are a."""
    rows, cols = torch.tril_indices(dim, dim)
    scatter = torch.zeros(dim * dim, len(rows))
    scatter[rows * dim + cols, torch.arange(len(rows))] = 1.0
    return scatter


def symmetric_scatter(dim: int) -> torch.Tensor:
    """The (d², d(d+1)/2) matrix S with vec(V) = S·v for the symmetric V whose lower triangle (row-major) is v."""
    rows, cols = torch.tril_indices(dim, dim)
    scatter = torch.zeros(dim * dim, len(rows))
    index = torch.arange(len(rows))
    scatter[rows * dim + cols, index] = 1.0
    scatter[cols * dim + rows, index] = 1.0
    return scatter


class LQGenerator(nn.Module):
    """x = μ_g + A·z, A lower-triangular. Parameters may carry a leading run axis: mu (R, d), a (R, m), z (R, n, d)."""

    def __init__(self, dim: int = DIM) -> None:
        super().__init__()
        self.dim = dim
        self.mu = nn.Parameter(torch.zeros(dim))
        self.a = nn.Parameter(torch.zeros(dim * (dim + 1) // 2))
        self.register_buffer("scatter", tril_scatter(dim), persistent=False)

    def matrix(self) -> torch.Tensor:
        """A, shape (..., d, d)."""
        return (self.a @ self.scatter.T).unflatten(-1, (self.dim, self.dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mu.unsqueeze(-2) + z @ self.matrix().transpose(-1, -2)


class LQDiscriminator(nn.Module):
    """D(x) = wᵀx + xᵀVx with V symmetric (its lower triangle v). A leading run axis works as in LQGenerator."""

    def __init__(self, dim: int = DIM) -> None:
        super().__init__()
        self.dim = dim
        self.w = nn.Parameter(torch.zeros(dim))
        self.v = nn.Parameter(torch.zeros(dim * (dim + 1) // 2))
        self.register_buffer("scatter", symmetric_scatter(dim), persistent=False)

    def matrix(self) -> torch.Tensor:
        """V, shape (..., d, d)."""
        return (self.v @ self.scatter.T).unflatten(-1, (self.dim, self.dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        linear = (x * self.w.unsqueeze(-2)).sum(-1)
        return linear + ((x @ self.matrix()) * x).sum(-1)


def build_models(config: TrainConfig) -> tuple[LQGenerator, LQDiscriminator]:
    """G starts at μ_g ~ N(0, 0.01 I), A = I + 0.1·N(0, 1) on the triangle; D at w, v ~ N(0, 0.01²), all drawn from
    the current torch RNG. (A = 0 would be a saddle: the gradient in A is −2VA.)"""
    g, d = LQGenerator(config.z_dim), LQDiscriminator(config.z_dim)
    rows, cols = torch.tril_indices(config.z_dim, config.z_dim)
    with torch.no_grad():
        g.mu.normal_(0.0, 0.1)
        g.a.copy_((rows == cols).float() + 0.1 * torch.randn(len(rows)))
        d.w.normal_(0.0, 0.01)
        d.v.normal_(0.0, 0.01)
    return g, d


class GaussianData:
    """N(μ, Σ) (the target's, s included) sampled on the fly on the training device (float32)."""

    def __init__(self, distribution: GaussianTarget, device: torch.device) -> None:
        self.distribution = distribution
        self.mu = torch.as_tensor(distribution.mu, dtype=torch.float32, device=device)
        self.cholesky = torch.as_tensor(np.linalg.cholesky(distribution.sigma), dtype=torch.float32, device=device)
        self.shape = (distribution.dim,)
        self.device = device

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(n, len(self.mu), generator=generator, device=self.device)
        return self.mu + z @ self.cholesky.T

    def reference(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.sample(n, generator)


def load_data(config: TrainConfig, device: torch.device) -> GaussianData:
    return GaussianData(config_target(config), device)


def generator_gaussian(g: LQGenerator) -> tuple[np.ndarray, np.ndarray]:
    """(μ_g, Σ_g = AAᵀ) of the generator's output, float64 (a leading run axis is kept)."""
    with torch.no_grad():
        a = g.matrix().detach().double().cpu().numpy()
        return g.mu.detach().double().cpu().numpy(), a @ np.swapaxes(a, -1, -2)


@lru_cache(maxsize=16)
def data_statistics(dim: int, scale: float = 1.0) -> ReferenceStatistics:
    """The exact data Gaussian N(μ, s·Σ₀) as FID's reference statistics (cached): exact FID and gauss-mlp's sample
    FID."""
    data = target(dim, scale)
    return ReferenceStatistics(Statistics(data.mu, data.sigma, n=0))


def exact_fid(mu_g: np.ndarray, sigma_g: np.ndarray, dim: int = DIM, scale: float = 1.0) -> float:
    """The Fréchet distance between N(μ_g, Σ_g) and the data N(μ, s·Σ₀): FID with the identity as feature map and
    infinitely many samples. NaN when the generator's parameters are not finite."""
    if not (np.isfinite(mu_g).all() and np.isfinite(sigma_g).all()):
        return float("nan")
    return data_statistics(dim, scale).distance(Statistics(mu_g, sigma_g, n=0))


class ExactFID:
    """Scores an LQ generator by its exact FID against the config's data (the evaluation seed is unused: nothing is
    sampled)."""

    def __init__(self, config: TrainConfig, device: torch.device, seed: int) -> None:
        del device, seed
        self.dim, self.scale = config.z_dim, config.data_scale

    def __call__(self, g: nn.Module) -> float:
        return exact_fid(*generator_gaussian(g), dim=self.dim, scale=self.scale)


# ---------------------------------------------------------------------------------------------------------------
# Closed-form constants (float64): the independent truth that empirical.constants is checked against


@dataclass(frozen=True)
class Players:
    """Both players' parameters as float64 arrays: G's μ_g, A and D's w, V."""

    mu_g: np.ndarray
    a: np.ndarray
    w: np.ndarray
    v: np.ndarray

    @classmethod
    def of(cls, g: LQGenerator, d: LQDiscriminator) -> Players:
        def numpy(t: torch.Tensor) -> np.ndarray:
            return t.detach().double().cpu().numpy()

        with torch.no_grad():
            return cls(numpy(g.mu), numpy(g.matrix()), numpy(d.w), numpy(d.matrix()))


def _product_variance(mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Var(x_i x_j) for x ~ N(m, C), all i, j (Isserlis with a mean):
    C_ii C_jj + C_ij² + m_i² C_jj + 2 m_i m_j C_ij + m_j² C_ii."""
    diag, m = np.diag(cov), mean
    return (np.outer(diag, diag) + cov**2 + np.outer(m**2, diag) + 2 * np.outer(m, m) * cov
            + np.outer(diag, m**2))


def exact_noise(player: str, p: Players, data: GaussianTarget) -> float:
    """tr Σ_P: the trace of the covariance of one sample's gradient of player P's loss (the σ² of the template),
    from Gaussian moments.

    D (sample = a real x and a fake G(z)): ∂/∂w = x_f − x_r (+ λw, not random), ∂/∂v_ij = c_ij·(x_f,i x_f,j −
    x_r,i x_r,j) with c = 1 on the diagonal and 2 off it (v holds V's lower triangle), so
    tr Σ_D = tr Σ_g + tr Σ + Σ_{i≥j} c_ij²·(Var_g(x_i x_j) + Var_data(x_i x_j)).
    G (sample = z): with u = w + 2V·x = c + B·z, c = w + 2Vμ_g, B = 2VA, ∂/∂μ_g = −u and ∂/∂A_ij = −u_i z_j
    (i ≥ j), so tr Σ_G = ‖B‖_F² + Σ_{i≥j} (c_i² + ‖B_i·‖² + B_ij²), using E[z_k z_l z_j²] = δ_kl(1 + 2δ_kj).
    """
    dim = len(p.mu_g)
    lower = np.tril(np.ones((dim, dim), dtype=bool))
    if player == "D":
        sigma_g = p.a @ p.a.T
        weight = np.where(np.eye(dim, dtype=bool), 1.0, 4.0)
        products = _product_variance(p.mu_g, sigma_g) + _product_variance(data.mu, data.sigma)
        return float(np.trace(sigma_g) + np.trace(data.sigma) + (weight * products)[lower].sum())
    c = p.w + 2 * p.v @ p.mu_g
    b = 2 * p.v @ p.a
    per_entry = c[:, None] ** 2 + (b**2).sum(1)[:, None] + b**2  # Var(u_i z_j) at (i, j)
    return float((b**2).sum() + per_entry[lower].sum())


def exact_smoothness(player: str, p: Players, penalty: float) -> float:
    """The largest |eigenvalue| of ∇²L_P in P's own parameters (population loss).

    D is linear in (w, v), so its loss's Hessian is λ·I: L_D = λ. L_G(μ_g, A) = −wᵀμ_g − μ_gᵀVμ_g − tr(AᵀVA) has
    Hessian −2V in μ_g and −2V restricted to rows ≥ j in column j of A; principal submatrices interlace, so
    L_G = 2·ρ(V).
    """
    if player == "D":
        return float(penalty)
    return float(2 * np.abs(np.linalg.eigvalsh(p.v)).max())


def exact_gradients(
    g: LQGenerator, d: LQDiscriminator, data: GaussianTarget, penalty: float
) -> dict[str, torch.Tensor]:
    """Each player's gradient of its expected loss in its own parameters, flattened float64 in parameters() order
    (D: w, v; G: μ_g, a); a leading run axis on the parameters is kept.

    With S_g = AAᵀ + μ_gμ_gᵀ and S = Σ + μμᵀ the second moments, L_D = wᵀ(μ_g − μ) + tr V(S_g − S) + (λ/2)‖θ_D‖²
    gives ∇_w = μ_g − μ + λw and ∇_v = Sᵀvec(S_g − S) + λv (V = S·v); L_G = −(wᵀμ_g + μ_gᵀVμ_g + tr AᵀVA) gives
    ∇_μ = −(w + 2Vμ_g) and ∇_a = −Eᵀvec(2VA) (vec(A) = E·a): the minibatch gradients of lqgan_batched with the
    batch moments replaced by their expectations."""
    with torch.no_grad():
        mu_g, w, v = g.mu.double(), d.w.double(), d.v.double()
        e_tril, e_sym = g.scatter.double(), d.scatter.double()
        dim = g.dim
        a = (g.a.double() @ e_tril.T).unflatten(-1, (dim, dim))
        v_matrix = (v @ e_sym.T).unflatten(-1, (dim, dim))
        mu = torch.as_tensor(data.mu, dtype=torch.float64, device=mu_g.device)
        second = torch.as_tensor(data.sigma + np.outer(data.mu, data.mu), dtype=torch.float64, device=mu_g.device)
        second_g = a @ a.transpose(-1, -2) + mu_g.unsqueeze(-1) * mu_g.unsqueeze(-2)
        grad_w = mu_g - mu + penalty * w
        grad_v = (second_g - second).flatten(-2) @ e_sym + penalty * v
        grad_mu = -(w + 2 * (v_matrix @ mu_g.unsqueeze(-1)).squeeze(-1))
        grad_a = -(2 * v_matrix @ a).flatten(-2) @ e_tril
    return {"D": torch.cat([grad_w, grad_v], -1), "G": torch.cat([grad_mu, grad_a], -1)}


def equilibrium_players(data: GaussianTarget) -> Players:
    """θ* as Players: μ_g = μ, A = chol Σ (so A·Aᵀ = Σ, the scaled one), w = 0, V = 0."""
    dim = data.dim
    return Players(mu_g=data.mu.copy(), a=np.linalg.cholesky(data.sigma), w=np.zeros(dim), v=np.zeros((dim, dim)))


TEMPLATE_QUANTITIES = ("B", "L", "sigma2")


def equilibrium_template(config: TrainConfig) -> dict[str, dict[str, float]]:
    """Per player, the smooth-SGD template's constants at θ* of the config's data, in closed form: L (exact
    smoothness), σ² (exact per-sample gradient noise) and B = L·α·σ² (theory/families.py, family "sgd"). At θ*,
    L_D = λ and σ²_D grows with s, while D = 0 leaves G no gradient noise and no curvature: L_G = σ²_G = B_G = 0."""
    players = equilibrium_players(config_target(config))
    out = {}
    for player, alpha in (("D", config.lr_d), ("G", config.lr_g)):
        smooth = exact_smoothness(player, players, config.gp_weight)
        noise = exact_noise(player, players, config_target(config))
        out[player] = {"L": smooth, "sigma2": noise, "B": smooth * alpha * noise}
    return out


def scaling_exponent(scales: Sequence[float], values: Sequence[float]) -> float:
    """The least-squares slope of log(value) on log(scale): the exponent p of value ∝ s^p over the grid."""
    x, y = np.log(np.asarray(scales, dtype=np.float64)), np.asarray(values, dtype=np.float64)
    if len(x) != len(y) or len(np.unique(x)) < 2:
        raise ValueError(f"an exponent needs values at two or more distinct scales, got {len(x)} scales, "
                         f"{len(y)} values")
    if not (np.isfinite(y).all() and (y > 0).all()):
        raise ValueError(f"an exponent needs positive finite values (a power law), got {y.tolist()}")
    return float(np.polyfit(x, np.log(y), 1)[0])


def noise_exponent(scales: Sequence[float], player: str, quantity: str = "B",
                   config: TrainConfig | None = None) -> float:
    """d log Q/d log s of the template's Q ∈ {B, L, σ²} at θ* for `player`, over the data scales s in `scales`
    (least squares; config: the lqgan preset's α and λ unless given). With μ fixed, σ²_D = a₁·s + a₂·s² (the
    linear features' variance ∝ s, the quadratic ones' ∝ s² plus mean-cross terms ∝ s), so D's exponent runs from 1
    (s → 0) to 2 (s → ∞). G's constants are 0 at θ* for every s: a one-line ValueError, there is no exponent."""
    if player not in ("D", "G") or quantity not in TEMPLATE_QUANTITIES:
        raise ValueError(f"player must be D or G and quantity one of {', '.join(TEMPLATE_QUANTITIES)}, "
                         f"got {player!r}, {quantity!r}")
    base = PRESETS["lqgan"] if config is None else config
    values = [equilibrium_template(base.with_(data_scale=float(s)))[player][quantity] for s in scales]
    if not all(v > 0 for v in values):
        raise ValueError(f"{quantity}_{player} at the equilibrium is {values[0]:g} at s = {scales[0]:g} (not positive "
                         "at every scale): no power law in s")
    return scaling_exponent(scales, values)


def noise_law(config: TrainConfig, scales: Sequence[float]) -> tuple[float, str]:
    """The noise law's theory value for the report (Benchmark.noise_law): the exponent in s of the template's
    B_D = L_D·α_D·σ²_D at θ* over `scales` (G's B is 0 there: D is the player whose noise sets b*)."""
    exponent = noise_exponent(scales, "D", "B", config)
    words = (f"the template b* = 2B/(ε² − C) with B = L_D·α_D·σ²_D at the equilibrium (closed forms): L_D = λ for "
             f"every s and σ²_D = a₁·s + a₂·s², so B_D ∝ s^{exponent:.2f} over s = "
             f"{', '.join(f'{x:g}' for x in scales)} at fixed ε and C (G's B is 0 at the equilibrium)")
    return exponent, words


# ---------------------------------------------------------------------------------------------------------------
# Presets and registration

def _exact_gradient(config: TrainConfig, g: nn.Module, d: nn.Module) -> dict[str, torch.Tensor]:
    return exact_gradients(g, d, config_target(config), config.gp_weight)


def _exact_reference(config: TrainConfig) -> dict[str, torch.Tensor]:
    """θ*, the exact equilibrium (lqgan_floor.equilibrium), split into the players' flat parameter vectors."""
    from empirical.benchmarks.lqgan_floor import equilibrium

    theta = torch.as_tensor(equilibrium(config_target(config)), dtype=torch.float64)
    n_g = config.z_dim + config.z_dim * (config.z_dim + 1) // 2
    return {"D": theta[n_g:], "G": theta[:n_g]}


def _train_many(config: TrainConfig, seeds: Sequence[int]) -> list:  # lazily: the batched trainer builds on train.py
    from empirical.benchmarks.lqgan_batched import train_many

    return train_many(config, seeds)


def _exact_floor(config: TrainConfig) -> object:  # imported lazily: scipy's Lyapunov solver and torch.func
    from empirical.benchmarks.lqgan_floor import exact_floor

    return exact_floor(config)


# The unit is registered before its presets are made: a TrainConfig checks its model, metric and loss against it.
PRESETS: dict[str, TrainConfig] = {}
BENCHMARK = Benchmark(
    data="lqgan", model="lq", features="exact", losses=("wgan-l2",), load_data=load_data,
    build_models=build_models, evaluator=ExactFID, presets=PRESETS, train_many=_train_many,
    exact_floor=_exact_floor, exact_gradient=_exact_gradient, exact_reference=_exact_reference,
    noise_law=noise_law,
)

# Calibrated (docs/benchmarks.md): λ = 1 and α_D·λ² = 4·α_G make the mean dynamics of (w, μ_g) critically
# damped; the covariance modes are under-damped with the same decay rate α_D·λ/2 per step. measure_batch = 2
# switches on the theory's measures, here from the exact gradients (the count is unused): nearly free.
PRESETS.update({
    "lqgan": TrainConfig(
        data="lqgan", model="lq", z_dim=DIM, loss="wgan-l2", gp_weight=0.5, optimizer="sgd", lr_d=0.05,
        lr_g=0.0125, batch_size=64, max_steps=20_000, eval_every=5, eval_growth=0.02, target_fid=0.05,
        features="exact", floor=True, measure_batch=2,
    ),
    "lqgan-adam": TrainConfig(
        data="lqgan", model="lq", z_dim=DIM, loss="wgan-l2", gp_weight=0.5, optimizer="adam", lr_d=0.01,
        lr_g=0.0025, batch_size=64, max_steps=20_000, eval_every=5, eval_growth=0.02, target_fid=0.01,
        features="exact", floor=True, measure_batch=2,
    ),
    # lqgan-adam with AMSGrad (a monotone preconditioner, the Adam-type bounds' assumption): same rates and target.
    "lqgan-amsgrad": TrainConfig(
        data="lqgan", model="lq", z_dim=DIM, loss="wgan-l2", gp_weight=0.5, optimizer="amsgrad", lr_d=0.01,
        lr_g=0.0025, batch_size=64, max_steps=20_000, eval_every=5, eval_growth=0.02, target_fid=0.01,
        features="exact", floor=True, measure_batch=2,
    ),
})  # fmt: skip


