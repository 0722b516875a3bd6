"""The lqgan control game: its closed forms against independent computations, and its batched trainer against
train(config, seed)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from empirical.benchmarks import get_benchmark
from empirical.benchmarks.lqgan import (
    LQDiscriminator,
    LQGenerator,
    Players,
    exact_fid,
    exact_noise,
    exact_smoothness,
    generator_gaussian,
    target,
)
from empirical.benchmarks.lqgan_batched import train_many
from empirical.benchmarks.lqgan_floor import equilibrium, exact_floor
from empirical.config import TrainConfig
from empirical.errors import EmpiricalInputError
from empirical.fid import ReferenceStatistics, Statistics, frechet_distance
from empirical.gradients import per_sample_gradient_stats, player_objective
from empirical.objectives import Game
from empirical.presets import get_preset
from empirical.train import train

PRESET = get_preset("lqgan")


pytestmark = pytest.mark.usefixtures("one_thread")


def _random_players(seed: int) -> tuple[LQGenerator, LQDiscriminator]:
    """A generator and a discriminator away from the equilibrium (D non-zero, G off the data)."""
    gen = torch.Generator().manual_seed(seed)
    g, d = LQGenerator(), LQDiscriminator()
    with torch.no_grad():
        for p in (*g.parameters(), *d.parameters()):
            p.copy_(0.4 * torch.randn(p.shape, generator=gen))
        g.a.add_(torch.eye(4)[torch.tril_indices(4, 4)[0], torch.tril_indices(4, 4)[1]])
    return g, d


def _at_equilibrium() -> LQGenerator:
    g = LQGenerator()
    theta = torch.as_tensor(equilibrium(target()), dtype=torch.float32)
    with torch.no_grad():
        g.mu.copy_(theta[:4])
        g.a.copy_(theta[4:14])
    return g


def test_data_has_the_stated_condition_number_and_the_generator_its_gaussian():
    data = target()
    eigenvalues = np.linalg.eigvalsh(data.sigma)
    assert eigenvalues.max() / eigenvalues.min() == pytest.approx(2.0, rel=1e-12)
    g, _ = _random_players(0)
    mu_g, sigma_g = generator_gaussian(g)
    samples = g(torch.randn(200_000, 4, generator=torch.Generator().manual_seed(1))).detach().double().numpy()
    assert np.abs(samples.mean(0) - mu_g).max() < 0.02
    assert np.abs(np.cov(samples.T) - sigma_g).max() < 0.03


def test_exact_fid_is_zero_at_the_equilibrium_and_matches_scipy_elsewhere():
    assert abs(exact_fid(*generator_gaussian(_at_equilibrium()))) < 1e-5
    g, _ = _random_players(3)
    mu_g, sigma_g = generator_gaussian(g)
    data = target()
    # the reference implementation's route: scipy.linalg.sqrtm of the product (pytorch-fid's formula)
    from scipy.linalg import sqrtm

    covmean = sqrtm(data.sigma @ sigma_g).real
    expected = float(((data.mu - mu_g) ** 2).sum() + np.trace(data.sigma + sigma_g - 2 * covmean))
    assert exact_fid(mu_g, sigma_g) == pytest.approx(expected, rel=1e-9)
    assert exact_fid(mu_g, sigma_g) == pytest.approx(frechet_distance(data.mu, data.sigma, mu_g, sigma_g), rel=1e-12)


def _sample_fids(g: LQGenerator, n: int, repeats: int, seed: int) -> np.ndarray:
    data = target()
    reference = ReferenceStatistics(Statistics(data.mu, data.sigma, n=0))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return np.array([reference.distance_to_features(g(torch.randn(n, 4, generator=gen)).double().numpy())
                         for _ in range(repeats)])


def test_sample_fid_at_the_equilibrium_is_its_small_n_bias():
    """With the generator exactly on the data the exact FID is 0 and a sample FID is pure small-n bias: between
    tr Σ/n (the mean's share alone) and (tr Σ + d(d+1)·λ_max(Σ))/n, and ∝ 1/n."""
    g = _at_equilibrium()
    trace, top = np.trace(target().sigma), np.linalg.eigvalsh(target().sigma).max()
    scaled = {n: n * _sample_fids(g, n, 40, seed=n).mean() for n in (500, 8_000)}
    for value in scaled.values():
        assert trace < value < trace + 20 * top
    assert scaled[500] == pytest.approx(scaled[8_000], rel=0.15)


def test_sample_fid_away_from_the_equilibrium_matches_the_exact_fid():
    """Off the equilibrium the sample FID fluctuates at O(1/√n) around exact + O(1/n) bias."""
    g, _ = _random_players(5)
    exact = exact_fid(*generator_gaussian(g))
    values = _sample_fids(g, 16_000, 20, seed=7)
    bias = (np.trace(generator_gaussian(g)[1]) + 20 * np.linalg.eigvalsh(target().sigma).max()) / 16_000
    assert abs(values.mean() - exact) < 4 * values.std(ddof=1) / math.sqrt(len(values)) + bias


@pytest.mark.parametrize("player", ["D", "G"])
def test_exact_noise_matches_per_sample_gradients(player):
    """tr Σ_P in closed form against exact per-sample gradients (torch.func vmap) on 40,000 samples."""
    g, d = _random_players(11)
    config = PRESET
    game = Game(config, g, d, get_benchmark("lqgan").load_data(config, torch.device("cpu")))
    rng = torch.Generator().manual_seed(2)
    game64 = Game(config, copy.deepcopy(g).double(), copy.deepcopy(d).double(), game.data)
    batch = game.batch(player, 40_000, rng)
    batch = tuple(t.double() for t in batch) if isinstance(batch, tuple) else batch.double()
    stats = per_sample_gradient_stats(game64.module(player), game64.loss(player), batch, chunk_size=4096,
                                      frozen=[game64.discriminator] if player == "G" else [], method="vmap")
    exact = exact_noise(player, Players.of(g, d), target())
    assert stats.trace_sigma == pytest.approx(exact, rel=0.04)


@pytest.mark.parametrize("player", ["D", "G"])
def test_exact_smoothness_matches_the_hessian(player):
    """L_P in closed form against the largest |eigenvalue| of the dense Hessian of a 100,000-sample batch loss."""
    g, d = _random_players(13)
    game = Game(PRESET, g, d, get_benchmark("lqgan").load_data(PRESET, torch.device("cpu")))
    batch = game.batch(player, 100_000, torch.Generator().manual_seed(4))
    batch = tuple(t.double() for t in batch) if isinstance(batch, tuple) else batch.double()
    game64 = Game(PRESET, copy.deepcopy(g).double(), copy.deepcopy(d).double(), game.data)
    params, objective = player_objective(game64.module(player), game64.loss(player), batch)
    names, shapes = list(params), [p.shape for p in params.values()]
    sizes = [p.numel() for p in params.values()]

    def flat_objective(x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, sizes)
        return objective({k: v.reshape(s) for k, v, s in zip(names, parts, shapes, strict=True)})

    hessian = torch.autograd.functional.hessian(flat_objective, torch.cat([p.reshape(-1) for p in params.values()]))
    top = float(torch.linalg.eigvalsh(hessian).abs().max())
    assert top == pytest.approx(exact_smoothness(player, Players.of(g, d), PRESET.gp_weight), rel=0.02)


@pytest.mark.parametrize("name", ["lqgan", "lqgan-adam"])
def test_batched_seeds_equal_single_runs(name):
    """Each seed of a batched run follows train(config, seed): same status, K and stop, FID to float round-off."""
    config = get_preset(name).with_(batch_size=4, max_steps=600, target_fid=0.05)
    batched = train_many(config, [0, 1, 2])
    for seed, many in zip((0, 1, 2), batched, strict=True):
        single = train(config, seed)
        assert (many.status, many.steps_to_target, many.steps_run) == (
            single.status, single.steps_to_target, single.steps_run)
        fids_many, fids_single = (np.array([p.fid for p in r.history]) for r in (many, single))
        np.testing.assert_allclose(fids_many, fids_single, rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose([p.loss_d for p in many.history[1:]], [p.loss_d for p in single.history[1:]],
                                   rtol=1e-4, atol=1e-6)
        for name in ("grad_sq_d", "grad_sq_g", "vi_gap_d", "vi_gap_g"):  # the theory's measures (measure_batch)
            np.testing.assert_allclose([getattr(p, name) for p in many.history],
                                       [getattr(p, name) for p in single.history], rtol=1e-4, atol=1e-6)


def test_batched_training_refuses_a_coupling_optimizer():
    with pytest.raises(ValueError, match="elementwise"):
        train_many(PRESET.with_(optimizer="nsgda"), [0, 1])


def test_exact_floor_is_the_measured_floor_at_moderate_batch_sizes():
    """The Lyapunov floor of the linearised SGD iteration against the time-averaged FID the runs settle on."""
    floor = exact_floor(PRESET)
    assert floor.spectral_radius < 1
    for b in (32, 256):
        runs = train_many(PRESET.with_(batch_size=b, target_fid=1e-9, max_steps=4000), range(6))
        measured = [np.mean([p.fid for p in r.history if p.step > r.steps_run / 2]) for r in runs]
        assert all(r.status == "settled" for r in runs)
        assert np.median(measured) == pytest.approx(floor.floor(b), rel=0.25)


def test_exact_floor_is_only_for_sgd():
    with pytest.raises(ValueError, match="SGD"):
        exact_floor(get_preset("lqgan-adam"))


def test_lqgan_configs_are_checked():
    with pytest.raises(EmpiricalInputError, match="model"):
        PRESET.with_(model="mlp")
    with pytest.raises(EmpiricalInputError, match="loss"):
        PRESET.with_(loss="bce")
    with pytest.raises(EmpiricalInputError, match="wgan-l2"):
        get_preset("ring8").with_(loss="wgan-l2")
    assert TrainConfig().floor is False


def test_train_on_lqgan_reaches_a_loose_target_at_every_batch_size():
    for b in (2, 64):
        result = train(PRESET.with_(batch_size=b, target_fid=1.0, floor=False), 0)
        assert result.status == "reached" and math.isfinite(result.history[-1].fid)


def test_constants_recovers_the_closed_form_sigma2_and_smoothness():
    """python -m empirical.constants's estimators (per-sample gradients, power iteration) against the closed forms
    at the same checkpoints of the same reference run: within 10%, the independent truth they lacked."""
    from empirical.constants import EstimateSettings, estimate, record_run

    config = PRESET.with_(target_fid=0.05)
    settings = EstimateSettings(samples=4096, repeats=3, hessian_samples=20_000, hessian_repeats=1, big_batch=512,
                                chunk_size=1024, power_iters=500, power_tol=1e-5)
    est = estimate(config, seed=0, settings=settings)
    _, snapshots = record_run(config.with_(floor=False), 0)
    at = {s.step: s for s in snapshots}
    for checkpoint, step in est.checkpoint_steps.items():
        players = Players.of(at[step].generator, at[step].discriminator)
        for player in ("D", "G"):
            exact = exact_noise(player, players, target())
            assert est.sigma2[checkpoint, player].value == pytest.approx(exact, rel=0.10), (checkpoint, player)
            smooth = exact_smoothness(player, players, config.gp_weight)
            assert est.smooth[checkpoint, player].value == pytest.approx(smooth, rel=0.10), (checkpoint, player)


def test_gauss_mlp_scores_samples_against_the_exact_data_gaussian():
    """The neural preset's FID: a generator that outputs the data exactly (an affine map of z) scores the small-n
    bias only, and a shifted one the shift's squared norm on top (the mean term of the Fréchet distance)."""
    from empirical.benchmarks.gauss_mlp import SampleFID

    config = get_preset("gauss-mlp").with_(n_eval=20_000)
    fid = SampleFID(config, torch.device("cpu"), seed=0)
    g = _at_equilibrium()
    assert 0 < fid(g) < 3 * (np.trace(target().sigma) + 20 * np.linalg.eigvalsh(target().sigma).max()) / 20_000
    with torch.no_grad():
        g.mu.add_(torch.tensor([0.3, 0.0, 0.0, 0.0]))
    assert fid(g) == pytest.approx(0.09, abs=0.01)
    result = train(config.with_(batch_size=32, max_steps=60, target_fid=1e-9), 0)
    assert result.status in ("not_reached", "settled") and result.history[-1].fid < result.history[0].fid
    wide = train(config.with_(batch_size=8, max_steps=10, z_dim=8), 0)  # z_dim sizes the noise, not the data
    assert math.isfinite(wide.history[-1].fid)


def test_the_gradient_floor_of_a_frozen_generator_is_sgd_on_a_quadratic():
    """With α_G → 0 the generator stays at θ* and D runs SGD on its λ-strongly convex quadratic: the stationary
    E‖∇L_D‖² is then λ·α_D·tr Σ_D/(2 − α_D·λ) per unit 1/b (the Lyapunov equation of a scalar contraction), a
    closed form the full Lyapunov machinery must reproduce."""
    from empirical.benchmarks.lqgan_floor import d_gradient_covariance

    config = PRESET.with_(lr_g=1e-9)
    floor = exact_floor(config)
    lam, alpha = config.gp_weight, config.lr_d
    expected = lam * alpha * np.trace(d_gradient_covariance(target())) / (2 - alpha * lam)
    assert floor.gradient_b["D"] == pytest.approx(expected, rel=1e-6)
    assert floor.template_b["D"] == pytest.approx(expected * (2 - alpha * lam), rel=1e-9)  # the template's slack


def test_with_ttur_coupling_the_template_underestimates_the_gradient_floor():
    """At the preset's α_G the generator's motion feeds D's floor and D's noise becomes G's: the measured-in-theory
    floors exceed the template's B = L·α·σ² (which is 0 for G, whose own per-sample gradient vanishes at θ*)."""
    floor = exact_floor(PRESET)
    assert floor.gradient_b["D"] > floor.template_b["D"] and floor.gradient_b["G"] > 0 == floor.template_b["G"]


def test_recorded_measures_are_the_exact_expected_gradient_at_each_evaluation():
    """grad_sq and vi_gap of an lqgan run against autograd on the expected losses (lqgan_floor's population losses,
    written independently of the closed-form gradient) at the parameters each evaluation saw, θ_ref = θ*."""
    from empirical.benchmarks.lqgan_floor import Layout, _population_losses

    config = PRESET.with_(batch_size=8, max_steps=40, eval_growth=0.0, floor=False)
    layout = Layout(4)
    loss_d, loss_g = _population_losses(layout, target(), config.gp_weight)
    theta_star = torch.as_tensor(equilibrium(target()))
    seen = {}

    def observe(checkpoint):
        seen[checkpoint.step] = torch.cat([p.detach().double().reshape(-1) for p in (
            checkpoint.generator.mu, checkpoint.generator.a, checkpoint.discriminator.w, checkpoint.discriminator.v)])

    result = train(config, 0, observe=observe)
    assert len(result.history) == 9
    n_g = layout.n_g
    for point in result.history:
        theta = seen[point.step]
        grad_d = torch.func.grad(loss_d)(theta)[n_g:]
        grad_g = torch.func.grad(loss_g)(theta)[:n_g]
        assert point.grad_sq_d == pytest.approx(float(grad_d @ grad_d), rel=1e-9)
        assert point.grad_sq_g == pytest.approx(float(grad_g @ grad_g), rel=1e-9)
        assert point.vi_gap_d == pytest.approx(float((theta - theta_star)[n_g:] @ grad_d), rel=1e-9, abs=1e-12)
        assert point.vi_gap_g == pytest.approx(float((theta - theta_star)[:n_g] @ grad_g), rel=1e-9, abs=1e-12)
    assert result.history[-1].grad_sq_d < result.history[0].grad_sq_d  # the run moves: the check is not at one θ


def test_measures_vanish_at_the_equilibrium():
    """At θ* = θ_ref both gradients of the expected losses are 0, so are the VI gaps (float32 parameters: ~1e-14)."""
    from empirical.train import Measurer

    g, d = _at_equilibrium(), LQDiscriminator()
    with torch.no_grad():
        d.w.zero_()
        d.v.zero_()
    data = get_benchmark("lqgan").load_data(PRESET, torch.device("cpu"))
    measured = Measurer(PRESET, data, torch.device("cpu"), seed=0)(g, d)
    assert all(abs(v) < 1e-12 for v in measured.values()), measured
    moved, _ = _random_players(3)
    away = Measurer(PRESET, data, torch.device("cpu"), seed=0)(moved, d)
    assert away["grad_sq_g"] == 0.0 and away["grad_sq_d"] > 0.01  # D = 0 leaves G no gradient; D has one


def test_fresh_generator_z_changes_the_run_and_the_batched_trainer_follows_it():
    """g_fresh_z: the G step draws its own z (a different trajectory), and train_many draws it as train() does."""
    config = PRESET.with_(batch_size=4, max_steps=200, floor=False)
    fresh = config.with_(g_fresh_z=True)
    old, new = train(config, 0), train(fresh, 0)
    assert [p.fid for p in old.history] != [p.fid for p in new.history]
    for seed, many in zip((0, 1), train_many(fresh, [0, 1]), strict=True):
        single = new if seed == 0 else train(fresh, seed)
        np.testing.assert_allclose([p.fid for p in many.history], [p.fid for p in single.history], rtol=1e-4)
        np.testing.assert_allclose([p.grad_sq_g for p in many.history], [p.grad_sq_g for p in single.history],
                                   rtol=1e-4, atol=1e-9)
