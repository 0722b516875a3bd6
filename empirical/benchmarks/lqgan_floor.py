"""The exact noise floor of constant-step TTUR SGD on the LQ GAN: linearise, solve a Lyapunov equation, expand FID.

At the equilibrium θ* (μ_g = μ, A = chol Σ, D = 0) one TTUR iteration (a D step on a fresh batch, then a G step
against the updated D) is, to first order, δ' = J·δ + η: J = ∂(mean map)/∂θ at θ* (torch.func.jacrev of the
population losses' update), and η the minibatch noise. At θ* the generator's per-sample gradient is zero (it is
−(w + 2Vx)·(1, zᵀ) and D = 0), so all the noise enters through D's gradient: η = K·ξ with ξ the mean of b
per-sample D-gradient deviations, Cov ξ = Σ_D/b, and K = ∂(iteration)/∂ξ (the D step moves by −α_D ξ, and the G
step that follows feels the moved D). The stationary covariance of the parameters then solves the discrete
Lyapunov equation P = J P Jᵀ + K Σ_D Kᵀ / b (scipy.linalg.solve_discrete_lyapunov), and the FID floor is the
second-order expansion F(b) = ½ tr(H_F P_GG), H_F the Hessian of the exact FID in G's parameters at θ*. Everything
is ∝ 1/b: F(b) = B_F/b exactly (q = 1, C_F = 0) in this linear theory. The same P gives the floor in the template's
own measure E‖∇_P L_P‖², to set beside the smooth-SGD template's B = L·α·σ² (ExactFloor.gradient_b, template_b).
Σ is the config's data covariance, s·Σ₀ with s = data_scale (empirical/benchmarks/lqgan.py config_target).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import solve_discrete_lyapunov
from torch.func import jacrev

from empirical.benchmarks.lqgan import GaussianTarget, config_target, exact_fid, symmetric_scatter, tril_scatter
from empirical.config import TrainConfig


@dataclass(frozen=True)
class Layout:
    """Where each parameter sits in the flat vector θ = (μ_g, a | w, v): G's first, then D's."""

    dim: int

    @property
    def m(self) -> int:
        return self.dim * (self.dim + 1) // 2

    @property
    def n_g(self) -> int:
        return self.dim + self.m

    @property
    def size(self) -> int:
        return 2 * (self.dim + self.m)

    def split(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        d, m = self.dim, self.m
        return theta[:d], theta[d:d + m], theta[d + m:2 * d + m], theta[2 * d + m:]


def equilibrium(data: GaussianTarget) -> np.ndarray:
    """θ*: μ_g = μ, A = the Cholesky factor of Σ (lower-triangular, positive diagonal), w = 0, V = 0."""
    dim = data.dim
    rows, cols = np.tril_indices(dim)
    a = np.linalg.cholesky(data.sigma)[rows, cols]
    return np.concatenate([data.mu, a, np.zeros(dim), np.zeros(len(rows))])


def _phi_moments(data: GaussianTarget) -> np.ndarray:
    """Cov φ(x) for x ~ N(μ, Σ), φ(x) = ∂D(x)/∂(w, v) = (x, c_ij·x_i x_j over i ≥ j), c = 1 on the diagonal, 2 off.
    Isserlis: Cov(x_i, x_k x_l) = μ_k Σ_il + μ_l Σ_ik; Cov(x_i x_j, x_k x_l) = Σ_ik Σ_jl + Σ_il Σ_jk + μ_i μ_k Σ_jl
    + μ_i μ_l Σ_jk + μ_j μ_k Σ_il + μ_j μ_l Σ_ik."""
    mu, s = data.mu, data.sigma
    rows, cols = np.tril_indices(data.dim)
    c = np.where(rows == cols, 1.0, 2.0)
    i, j = rows[:, None], cols[:, None]
    k, l_ = rows[None, :], cols[None, :]
    quad = (s[i, k] * s[j, l_] + s[i, l_] * s[j, k] + mu[i] * mu[k] * s[j, l_] + mu[i] * mu[l_] * s[j, k]
            + mu[j] * mu[k] * s[i, l_] + mu[j] * mu[l_] * s[i, k])
    cross = mu[None, rows] * s[:, cols] + mu[None, cols] * s[:, rows]  # Cov(x_a, x_k x_l), shape (d, m)
    top = np.hstack([s, cross * c[None, :]])
    bottom = np.hstack([(cross * c[None, :]).T, quad * np.outer(c, c)])
    return np.vstack([top, bottom])


def d_gradient_covariance(data: GaussianTarget) -> np.ndarray:
    """Σ_D at θ*: the covariance of one sample's D gradient φ(x_fake) − φ(x_real), fakes distributed as the data."""
    return 2.0 * _phi_moments(data)


def _population_losses(layout: Layout, data: GaussianTarget, penalty: float):
    """L_D(θ) and L_G(θ_G; θ_D) in expectation over the data and z (float64 torch)."""
    mu = torch.as_tensor(data.mu)
    second = torch.as_tensor(data.sigma + np.outer(data.mu, data.mu))
    e_tril = tril_scatter(layout.dim).double()
    e_sym = symmetric_scatter(layout.dim).double()
    dim = layout.dim

    def matrices(theta):
        mu_g, a, w, v = layout.split(theta)
        return mu_g, (e_tril @ a).reshape(dim, dim), w, (e_sym @ v).reshape(dim, dim)

    def loss_d(theta):
        mu_g, a, w, v = matrices(theta)
        second_g = a @ a.T + torch.outer(mu_g, mu_g)
        _, _, w_raw, v_raw = layout.split(theta)
        return w @ (mu_g - mu) + torch.trace(v @ (second_g - second)) + 0.5 * penalty * (w_raw @ w_raw + v_raw @ v_raw)

    def loss_g(theta):
        mu_g, a, w, v = matrices(theta)
        return -(w @ mu_g + mu_g @ v @ mu_g + torch.trace(a.T @ v @ a))

    return loss_d, loss_g


def iteration(config: TrainConfig, data: GaussianTarget):
    """step(θ, ξ): one TTUR SGD iteration of the population game with ξ added to D's gradient (float64 torch)."""
    layout = Layout(data.dim)
    loss_d, loss_g = _population_losses(layout, data, config.gp_weight)
    n_g = layout.n_g

    def step(theta: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        grad_d = torch.func.grad(loss_d)(theta)[n_g:] + xi
        theta_d = theta[n_g:] - config.lr_d * grad_d
        moved = torch.cat([theta[:n_g], theta_d])
        grad_g = torch.func.grad(loss_g)(moved)[:n_g]
        return torch.cat([theta[:n_g] - config.lr_g * grad_g, theta_d])

    return step, layout


def fid_hessian(data: GaussianTarget, theta_g: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """∇²FID in G's parameters (μ_g, a) by central differences of the exact FID (float64; FID is smooth at θ*, where
    (S Σ_g S)^{1/2} has distinct eigenvalues). Step h = 1e-4: truncation O(h²), round-off O(1e-16/h²), both ~1e-8."""
    dim = data.dim
    e_tril = tril_scatter(dim).double().numpy()

    def fid(x: np.ndarray) -> float:
        a = (e_tril @ x[dim:]).reshape(dim, dim)
        return exact_fid(x[:dim], a @ a.T, dim, data.scale)

    n = len(theta_g)
    hess = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            def shifted(si: float, sj: float, i=i, j=j) -> float:
                x = theta_g.copy()
                x[i] += si * h
                x[j] += sj * h
                return fid(x)

            value = (shifted(1, 1) - shifted(1, -1) - shifted(-1, 1) + shifted(-1, -1)) / (4 * h * h)
            hess[i, j] = hess[j, i] = value
    return hess


@dataclass(frozen=True)
class ExactFloor:
    """F(b) = b_f / b, from the linearised TTUR SGD iteration at θ* (valid while the noise ball stays small).

    gradient_b: the same floor in the template's own measure, E‖∇_P L_P‖² = gradient_b[P] / b at stationarity
    (∇L_P ≈ H_P·δ with H_P the Jacobian of P's population gradient in all parameters, so E‖∇L_P‖² = tr H_P P H_Pᵀ).
    template_b: the smooth-SGD template's B_P = L_P·α_P·σ²_P with L and σ² exact at θ*, to set beside it."""

    b_f: float
    spectral_radius: float  # of J: < 1 means the linearised iteration is stable
    covariance_1: np.ndarray  # the stationary parameter covariance at b = 1 (P(b) = covariance_1 / b)
    gradient_b: dict[str, float]
    template_b: dict[str, float]

    def floor(self, b: float | np.ndarray) -> float | np.ndarray:
        return self.b_f / np.asarray(b, dtype=np.float64)


def exact_floor(config: TrainConfig) -> ExactFloor:
    """The exact SGD noise floor of an lqgan config (its α_D, α_G and λ; the batch size is the free variable)."""
    if config.optimizer != "sgd":
        raise ValueError(f"the exact floor is for plain SGD (a linear iteration); {config.optimizer!r} is not")
    data = config_target(config)
    step, layout = iteration(config, data)
    theta = torch.as_tensor(equilibrium(data))
    xi = torch.zeros(layout.size - layout.n_g, dtype=torch.float64)
    jac = jacrev(step, argnums=(0, 1))(theta, xi)
    j_theta, k_xi = (t.numpy() for t in jac)
    radius = float(np.abs(np.linalg.eigvals(j_theta)).max())
    if radius >= 1.0:
        raise ValueError(f"the linearised iteration is unstable at these rates (spectral radius {radius:.4f} >= 1)")
    noise = k_xi @ d_gradient_covariance(data) @ k_xi.T
    p1 = solve_discrete_lyapunov(j_theta, noise)  # P = J P Jᵀ + Q at b = 1
    n_g = layout.n_g
    hess = fid_hessian(data, equilibrium(data)[:n_g])
    loss_d, loss_g = _population_losses(layout, data, config.gp_weight)
    jacobians = {"D": jacrev(lambda t: torch.func.grad(loss_d)(t)[n_g:])(theta).numpy(),
                 "G": jacrev(lambda t: torch.func.grad(loss_g)(t)[:n_g])(theta).numpy()}
    # At θ*: L_D = λ (D is linear in its parameters), L_G = 2ρ(V) = 0 (V = 0), σ²_D = tr Σ_D, σ²_G = 0 (G's
    # per-sample gradient −(w + 2Vx)·(1, zᵀ) vanishes with D): the template sees no noise in G at all.
    template = {"D": config.gp_weight * config.lr_d * float(np.trace(d_gradient_covariance(data))), "G": 0.0}
    return ExactFloor(b_f=0.5 * float(np.trace(hess @ p1[:n_g, :n_g])), spectral_radius=radius, covariance_1=p1,
                      gradient_b={p: float(np.trace(h @ p1 @ h.T)) for p, h in jacobians.items()},
                      template_b=template)
