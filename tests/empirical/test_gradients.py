"""empirical.gradients against independent truths: exact Hessians, per-sample loops, closed-form gradient noise."""

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from empirical.gradients import (
    averaged_noise_estimate,
    batch_gradient,
    gradient_norm_quantile,
    noise_scale,
    parameter_distance_inf,
    per_sample_gradient_stats,
    per_sample_gradient_variance,
    player_objective,
    split_batch_noise_estimate,
    squared_norm,
    top_hessian_eigenvalue,
    two_batch_noise_estimate,
    weighted_split_batch_noise_estimate,
)
from empirical.losses import discriminator_loss, generator_loss
from empirical.models import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator

RNG = torch.Generator().manual_seed(0)  # unused by the BCE loss; discriminator_loss's signature wants one


def d_loss(forward, batch):
    """BCE discriminator loss on (real, fake) pairs."""
    real, fake = batch
    return discriminator_loss("bce", forward, real, fake, RNG)[0]


def loop_trace(module: nn.Module, loss, batch) -> float:
    """tr Σ̂ by one ordinary backward per sample, in numpy float64."""
    n = len(batch[0]) if isinstance(batch, tuple) else len(batch)
    rows = []
    for i in range(n):
        module.zero_grad(set_to_none=True)
        one = tuple(t[i : i + 1] for t in batch) if isinstance(batch, tuple) else batch[i : i + 1]
        loss(module, one).backward()
        rows.append(np.concatenate([p.grad.double().numpy().ravel() for p in module.parameters()]))
    g = np.stack(rows)
    return float(((g - g.mean(0)) ** 2).sum() / (n - 1))


def test_per_sample_variance_matches_a_loop_for_the_mlp_discriminator():
    torch.manual_seed(1)
    g, d = MLPGenerator(2, 16, 2).double(), MLPDiscriminator(2, 16, 2).double()
    real = torch.randn(7, 2, dtype=torch.float64)
    with torch.no_grad():
        fake = g(torch.randn(7, 2, dtype=torch.float64))
    got = per_sample_gradient_variance(d, d_loss, (real, fake), chunk_size=3)  # chunks 3 + 3 + 1
    assert got == pytest.approx(loop_trace(d, d_loss, (real, fake)), rel=1e-6)


def test_per_sample_variance_matches_a_loop_for_the_mlp_generator_through_a_frozen_discriminator():
    torch.manual_seed(2)
    g, d = MLPGenerator(2, 16, 2).double(), MLPDiscriminator(2, 16, 2).double()
    z = torch.randn(9, 2, dtype=torch.float64)

    def g_loss(forward, z):
        return generator_loss("bce", d(forward(z)))

    stats = per_sample_gradient_stats(g, g_loss, z, chunk_size=4, frozen=(d,))
    # The mean of the per-sample gradients is the batch gradient.
    assert stats.mean_grad_norm_sq == pytest.approx(squared_norm(batch_gradient(g, g_loss, z).values()), rel=1e-9)
    assert all(p.grad is None for p in d.parameters())  # the frozen module recorded no gradients
    assert stats.trace_sigma == pytest.approx(loop_trace(g, g_loss, z), rel=1e-6)


def test_per_sample_variance_handles_buffers_and_float32():
    # A DCGAN generator with BatchNorm in eval mode (running statistics are buffers) through a norm-free critic.
    torch.manual_seed(3)
    g, d = DCGANGenerator(8, 4, 4, 1).eval(), DCGANDiscriminator(8, 4, 1, norm="none")
    with torch.no_grad():  # make the running statistics non-trivial
        g.net[1].running_mean.uniform_(-0.5, 0.5)
        g.net[1].running_var.uniform_(0.5, 2.0)
    z = torch.randn(6, 4)

    def g_loss(forward, z):
        return generator_loss("bce", d(forward(z)))

    got = per_sample_gradient_variance(g, g_loss, z, chunk_size=4, frozen=(d,))
    assert got == pytest.approx(loop_trace(g, g_loss, z), rel=1e-4)  # float32 throughout


def test_batchnorm_in_train_mode_is_refused_in_one_line():
    g = DCGANGenerator(8, 4, 4, 1)  # train mode
    with pytest.raises(ValueError) as info:
        per_sample_gradient_variance(g, lambda forward, z: forward(z).mean(), torch.randn(4, 4))
    assert "BatchNorm" in str(info.value) and "\n" not in str(info.value)
    d = MLPDiscriminator(1 * 8 * 8, 4, 1)
    with pytest.raises(ValueError, match="BatchNorm"):  # also in a frozen module the loss captures
        per_sample_gradient_variance(d, lambda f, z: f(g(z).flatten(1)).mean(), torch.randn(4, 4), frozen=(g,))


# ---------------------------------------------------------------------------------------------------------------
# Two-batch estimator on linear regression, where the gradient noise is known in closed form.
#
# x ~ N(0, I_d), y = w*·x + ε, ε ~ N(0, s²) independent; per-sample loss ½(w·x − y)², δ = w − w*.
# Per-sample gradient g = x(xᵀδ − ε).  Mean: E[xxᵀ]δ − E[x]E[ε] = δ, so ‖G‖² = ‖δ‖².
# Second moment: E‖g‖² = E[(xᵀδ)²‖x‖²] + s²E‖x‖² (the cross term has E[ε] = 0).  By Isserlis,
# E[x_i x_j x_k x_k] = δ_ij + 2δ_ik δ_jk, so Σ_k E[x_i x_j x_k²] = (d + 2)δ_ij and E[(xᵀδ)²‖x‖²] = (d + 2)‖δ‖².
# Hence tr Σ = E‖g‖² − ‖G‖² = (d + 1)‖δ‖² + d s².


def regression_batch_gradients(delta: torch.Tensor, s: float, batch: int, repeats: int, gen: torch.Generator):
    """`repeats` independent mini-batch gradients of the mean loss over `batch` samples, shape (repeats, d)."""
    x = torch.randn(repeats, batch, len(delta), generator=gen, dtype=torch.float64)
    eps = s * torch.randn(repeats, batch, generator=gen, dtype=torch.float64)
    residual = x @ delta - eps
    return (x * residual.unsqueeze(-1)).mean(1)


@settings(max_examples=15)
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(1, 6), s=st.floats(0.1, 2.0))
def test_two_batch_estimator_is_unbiased_on_linear_regression(seed, d, s):
    gen = torch.Generator().manual_seed(seed)
    delta = torch.randn(d, generator=gen, dtype=torch.float64)
    true_trace = (d + 1) * float(delta @ delta) + d * s**2
    true_sq = float(delta @ delta)
    repeats, b_small, b_big = 4000, 4, 32
    small = regression_batch_gradients(delta, s, b_small, repeats, gen).square().sum(1)
    big = regression_batch_gradients(delta, s, b_big, repeats, gen).square().sum(1)
    estimates = np.array([two_batch_noise_estimate(a, b, b_small, b_big) for a, b in zip(small, big, strict=True)])
    mean, se = estimates.mean(0), estimates.std(0, ddof=1) / np.sqrt(repeats)
    assert abs(mean[0] - true_trace) < 4 * se[0]
    assert abs(mean[1] - true_sq) < 4 * se[1]
    # Averaging the squared norms first gives the same mean estimates (both are linear in them).
    assert averaged_noise_estimate(small.tolist(), big.tolist(), b_small, b_big) == pytest.approx(tuple(mean))


@settings(max_examples=15)
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(1, 6), s=st.floats(0.1, 2.0))
def test_split_batch_estimator_is_unbiased_on_linear_regression(seed, d, s):
    gen = torch.Generator().manual_seed(seed)
    delta = torch.randn(d, generator=gen, dtype=torch.float64)
    true_trace = (d + 1) * float(delta @ delta) + d * s**2
    repeats, half = 4000, 8
    a = regression_batch_gradients(delta, s, half, repeats, gen)
    b = regression_batch_gradients(delta, s, half, repeats, gen)
    estimates = np.array([split_batch_noise_estimate(x, y, half) for x, y in zip(a, b, strict=True)])
    mean, se = estimates.mean(0), estimates.std(0, ddof=1) / np.sqrt(repeats)
    assert abs(mean[0] - true_trace) < 4 * se[0]
    assert abs(mean[1] - float(delta @ delta)) < 4 * se[1]


def test_per_sample_stats_match_the_closed_form_noise_of_linear_regression():
    gen = torch.Generator().manual_seed(5)
    d, s, n = 3, 0.5, 20000
    delta = torch.tensor([0.5, -1.0, 0.25], dtype=torch.float64)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = x @ (-delta) + s * torch.randn(n, generator=gen, dtype=torch.float64)  # w = 0, so δ = −w* ... w* = −δ
    model = nn.Linear(d, 1, bias=False).double()
    nn.init.zeros_(model.weight)

    def loss(forward, batch):
        xb, yb = batch
        return 0.5 * (forward(xb).squeeze(-1) - yb).square().mean()

    stats = per_sample_gradient_stats(model, loss, (x, y), chunk_size=4096)
    true_trace = (d + 1) * float(delta @ delta) + d * s**2
    assert stats.trace_sigma == pytest.approx(true_trace, rel=0.05)
    assert stats.grad_norm_sq == pytest.approx(float(delta @ delta), rel=0.05)
    assert noise_scale(stats.trace_sigma, stats.grad_norm_sq) == pytest.approx(true_trace / float(delta @ delta), 0.1)


def test_noise_scale_refuses_a_non_positive_signal():
    assert noise_scale(6.0, 2.0) == 3.0
    with pytest.raises(ValueError):
        noise_scale(1.0, -0.1)


# ---------------------------------------------------------------------------------------------------------------
# Power iteration against the exact Hessian.


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_power_iteration_matches_the_exact_hessian(seed):
    torch.manual_seed(seed)
    g, d = MLPGenerator(2, 6, 1).double(), MLPDiscriminator(2, 8, 1).double()
    real = torch.randn(16, 2, dtype=torch.float64)
    with torch.no_grad():
        fake = g(torch.randn(16, 2, dtype=torch.float64))
    params, objective = player_objective(d, d_loss, (real, fake))
    names, shapes = list(params), [p.shape for p in params.values()]
    sizes = [p.numel() for p in params.values()]

    def flat_objective(flat):
        pieces = torch.split(flat, sizes)
        return objective({k: t.reshape(s) for k, t, s in zip(names, pieces, shapes, strict=True)})

    flat = torch.cat([p.reshape(-1) for p in params.values()])
    eigenvalues = np.linalg.eigvalsh(torch.autograd.functional.hessian(flat_objective, flat).numpy())
    truth = eigenvalues[np.argmax(np.abs(eigenvalues))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # must converge
        start = torch.Generator().manual_seed(0)
        got = top_hessian_eigenvalue(objective, params, max_iters=2000, tol=1e-7, generator=start)
    assert got == pytest.approx(truth, rel=1e-4)


def test_power_iteration_on_an_indefinite_quadratic_returns_the_signed_largest_magnitude():
    a = torch.diag(torch.tensor([1.0, -5.0, 2.0, 0.5], dtype=torch.float64))
    params = {"w": torch.ones(4, dtype=torch.float64)}
    start = torch.Generator().manual_seed(1)
    got = top_hessian_eigenvalue(lambda p: 0.5 * p["w"] @ a @ p["w"], params, generator=start)
    assert got == pytest.approx(-5.0, rel=1e-8)
    # float64 from a float32 point, through player_objective's cast
    model = nn.Linear(3, 1).float()
    params, objective = player_objective(model, lambda f, x: f(x).square().mean(), torch.randn(5, 3), torch.float64)
    assert top_hessian_eigenvalue(objective, params, max_iters=500, generator=torch.Generator()) > 0


# ---------------------------------------------------------------------------------------------------------------
# Small helpers.


def test_quantile_and_sup_distance():
    assert gradient_norm_quantile(torch.arange(101, dtype=torch.float32), 0.9) == pytest.approx(90.0)
    theta0 = [torch.zeros(2, 3), torch.zeros(4)]
    theta = [torch.zeros(2, 3), torch.tensor([0.0, -0.7, 0.2, 0.0])]
    assert parameter_distance_inf(theta, theta0) == pytest.approx(0.7)
    with pytest.raises(ValueError):
        parameter_distance_inf(theta[:1], theta0)


def test_batch_gradient_matches_autograd_and_leaves_buffers_alone():
    torch.manual_seed(4)
    g = DCGANGenerator(8, 4, 4, 1)  # BatchNorm in train mode is fine for a batch gradient
    before = g.net[1].running_mean.clone()
    z = torch.randn(5, 4)
    grads = batch_gradient(g, lambda forward, z: forward(z).square().mean(), z)
    assert torch.equal(before, g.net[1].running_mean)  # train-mode BatchNorm updated a copy, not the module
    g(z).square().mean().backward()
    for name, p in g.named_parameters():
        assert torch.allclose(grads[name], p.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0])
def test_a_weighted_estimate_refuses_weights_that_are_no_diagonal_metric(bad):
    a, b = torch.ones(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    weights = torch.tensor([1.0, 2.0, bad, 0.5])
    with pytest.raises(ValueError, match="weights must be finite and >= 0"):
        weighted_split_batch_noise_estimate(a, b, 8, weights)
    ok = torch.tensor([1.0, 2.0, 0.0, 0.5])  # zero is a weight (a parameter that never moves)
    assert weighted_split_batch_noise_estimate(a, b, 8, ok) == (pytest.approx(8 * 3.5 / 2), 0.0)
