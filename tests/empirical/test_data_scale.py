"""data_scale, the data-noise knob of the control game (issue 14): lqgan's and gauss-mlp's data is N(μ, s·Σ₀), and
every closed form follows s. Checked against independent truths: the Fréchet distance by scipy, Monte-Carlo
per-sample gradients, a hand-derived noise polynomial, numbers pinned before the knob existed (s = 1), a store
written before the field existed."""

from __future__ import annotations

import copy
import gzip
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.linalg import sqrtm

from empirical import sweep
from empirical import train as train_cli
from empirical.benchmarks import get_benchmark
from empirical.benchmarks.lqgan import (
    ExactFID,
    LQDiscriminator,
    LQGenerator,
    Players,
    config_target,
    equilibrium_players,
    exact_fid,
    exact_noise,
    noise_exponent,
    target,
)
from empirical.benchmarks.lqgan_batched import train_many
from empirical.benchmarks.lqgan_floor import equilibrium, exact_floor
from empirical.config import TrainConfig
from empirical.errors import EmpiricalInputError
from empirical.gradients import per_sample_gradient_stats
from empirical.objectives import Game
from empirical.presets import get_preset
from empirical.store import open_store, read_store
from empirical.train import train

PRESET = get_preset("lqgan")
DOUBLED = PRESET.with_(data_scale=2.0)
RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"


pytestmark = pytest.mark.usefixtures("one_thread")


def _players_at(theta: np.ndarray) -> tuple[LQGenerator, LQDiscriminator]:
    """Float64 LQ modules at θ = (μ_g, a | w, v) (lqgan_floor's layout)."""
    g, d = LQGenerator().double(), LQDiscriminator().double()
    parts = torch.split(torch.as_tensor(theta), [4, 10, 4, 10])
    with torch.no_grad():
        for p, value in zip((g.mu, g.a, d.w, d.v), parts, strict=True):
            p.copy_(value)
    return g, d


def test_the_scaled_data_is_the_seeded_data_with_its_covariance_times_s():
    one, two = target(4), config_target(DOUBLED)
    assert np.array_equal(two.mu, one.mu) and np.array_equal(two.sigma, 2.0 * one.sigma) and two.scale == 2.0
    samples = get_benchmark("lqgan").load_data(DOUBLED, torch.device("cpu")).sample(
        200_000, torch.Generator().manual_seed(0)).double().numpy()
    assert np.abs(np.cov(samples.T) - two.sigma).max() < 0.05


def test_at_s_2_the_equilibrium_has_exact_fid_0_and_no_population_gradient():
    theta = equilibrium(config_target(DOUBLED))
    g, d = _players_at(theta)
    assert abs(ExactFID(DOUBLED, torch.device("cpu"), 0)(g)) < 1e-12
    grads = get_benchmark("lqgan").exact_gradient(DOUBLED, g, d)
    assert all(float(t.abs().max()) < 1e-12 for t in grads.values())
    reference = get_benchmark("lqgan").exact_reference(DOUBLED)
    np.testing.assert_array_equal(torch.cat([reference["G"], reference["D"]]).numpy(), theta)
    # the s = 1 equilibrium is not one at s = 2: D's gradient (second moments) is not 0 there
    g1, d1 = _players_at(equilibrium(target(4)))
    assert float(get_benchmark("lqgan").exact_gradient(DOUBLED, g1, d1)["D"].abs().max()) > 0.1


def test_the_exact_fid_of_a_generator_fitted_to_s_1_against_s_2_data_is_the_frechet_distance():
    g, _ = _players_at(equilibrium(target(4)))  # N(μ, Σ₀) exactly
    sigma0 = target(4).sigma
    covmean = sqrtm(2 * sigma0 @ sigma0).real  # scipy, pytorch-fid's formula
    expected = float(np.trace(2 * sigma0 + sigma0 - 2 * covmean))
    assert ExactFID(DOUBLED, torch.device("cpu"), 0)(g) == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx((np.sqrt(2) - 1) ** 2 * np.trace(sigma0), rel=1e-9)  # by hand: (√2 − 1)² tr Σ₀


def test_exact_noise_at_s_2_matches_per_sample_gradients():
    """tr Σ_D at s = 2 in closed form against exact per-sample gradients (vmap) of 40,000 real/fake pairs, at a
    point away from the equilibrium."""
    gen = torch.Generator().manual_seed(11)
    g, d = LQGenerator(), LQDiscriminator()
    with torch.no_grad():
        for p in (*g.parameters(), *d.parameters()):
            p.copy_(0.4 * torch.randn(p.shape, generator=gen))
        g.a.add_(torch.eye(4)[torch.tril_indices(4, 4)[0], torch.tril_indices(4, 4)[1]])
    data = get_benchmark("lqgan").load_data(DOUBLED, torch.device("cpu"))
    batch = Game(DOUBLED, g, d, data).batch("D", 40_000, torch.Generator().manual_seed(2))  # float32 samples
    game = Game(DOUBLED, copy.deepcopy(g).double(), copy.deepcopy(d).double(), data)
    batch = tuple(t.double() for t in batch)
    stats = per_sample_gradient_stats(game.module("D"), game.loss("D"), batch, chunk_size=4096, method="vmap")
    exact = exact_noise("D", Players.of(g, d), config_target(DOUBLED))
    assert stats.trace_sigma == pytest.approx(exact, rel=0.04)
    assert exact > 1.3 * exact_noise("D", Players.of(g, d), target(4))  # the check is not the s = 1 value


def test_d_noise_at_the_equilibrium_is_the_hand_derived_polynomial_and_its_exponent():
    """σ²_D(θ*) = 2·(tr Σ + Σ_{i≥j} c²_ij·Var(x_i x_j)) with Σ = s·Σ₀: Isserlis written out term by term gives
    a₁·s + a₂·s², a₁ from tr Σ₀ and the mean-cross terms, a₂ from Σ₀,ii Σ₀,jj + Σ₀,ij². Its exponent runs from 1
    (s → 0) to 2 (s → ∞); noise_exponent is its least-squares slope, and L_D = λ adds nothing."""
    mu, s0 = target(4).mu, target(4).sigma
    a1, a2 = 2 * np.trace(s0), 0.0
    for i in range(4):
        for j in range(i + 1):
            c2 = 1.0 if i == j else 4.0
            a1 += 2 * c2 * (mu[i] ** 2 * s0[j, j] + 2 * mu[i] * mu[j] * s0[i, j] + mu[j] ** 2 * s0[i, i])
            a2 += 2 * c2 * (s0[i, i] * s0[j, j] + s0[i, j] ** 2)
    for s in (0.5, 3.0):
        players = equilibrium_players(target(4, s))
        assert exact_noise("D", players, target(4, s)) == pytest.approx(a1 * s + a2 * s**2, rel=1e-12)
    grid = [0.5, 1.0, 2.0, 4.0]
    slope = np.polyfit(np.log(grid), np.log([a1 * s + a2 * s**2 for s in grid]), 1)[0]
    assert noise_exponent(grid, "D", "sigma2") == pytest.approx(slope, rel=1e-9)
    assert noise_exponent(grid, "D", "B") == pytest.approx(slope, rel=1e-9)
    assert noise_exponent([1e-7, 2e-7], "D", "sigma2") == pytest.approx(1.0, abs=1e-4)
    assert noise_exponent([1e7, 2e7], "D", "sigma2") == pytest.approx(2.0, abs=1e-4)
    with pytest.raises(ValueError, match="B_G at the equilibrium is 0"):  # no G noise at θ*, for every s
        noise_exponent(grid, "G")


def test_s_1_leaves_the_closed_forms_unchanged():
    """Numbers computed by the code before data_scale existed (same seeds): the exact floor and D's noise at θ*."""
    floor = exact_floor(PRESET.with_(data_scale=1.0))
    assert floor.b_f == 0.5489946463201145
    assert floor.gradient_b == {"D": 4.26856687322314, "G": 14.056001778536844}
    assert exact_noise("D", equilibrium_players(target(4)), target(4, 1.0)) == pytest.approx(56.09674741389127,
                                                                                          rel=1e-14)
    assert exact_floor(DOUBLED).b_f > 2.5 * floor.b_f  # and s moves the floor


def test_the_batched_trainer_follows_s_as_train_does():
    config = DOUBLED.with_(batch_size=8, max_steps=150, floor=False)
    single = train(config, 0)
    (many,) = train_many(config, [0])
    np.testing.assert_allclose([p.fid for p in many.history], [p.fid for p in single.history], rtol=1e-4)
    np.testing.assert_allclose([p.grad_sq_d for p in many.history], [p.grad_sq_d for p in single.history],
                               rtol=1e-4, atol=1e-9)
    other = train(config.with_(data_scale=1.0), 0)
    assert [p.fid for p in other.history] != [p.fid for p in single.history]


def test_gauss_mlp_scores_against_the_scaled_data():
    from empirical.benchmarks.gauss_mlp import SampleFID

    config = get_preset("gauss-mlp").with_(data_scale=2.0, n_eval=20_000)
    fid = SampleFID(config, torch.device("cpu"), seed=0)
    fitted_to_2, _ = _players_at(equilibrium(target(4, 2.0)))
    fitted_to_1, _ = _players_at(equilibrium(target(4)))
    assert fid(fitted_to_2.float()) < 0.01  # small-n bias only
    assert fid(fitted_to_1.float()) == pytest.approx((np.sqrt(2) - 1) ** 2 * np.trace(target(4).sigma), rel=0.1)
    data = get_benchmark("gauss-mlp").load_data(config, torch.device("cpu"))
    samples = data.sample(100_000, torch.Generator().manual_seed(3)).double().numpy()
    assert np.abs(np.cov(samples.T) - 2 * target(4).sigma).max() < 0.06


@pytest.mark.parametrize("argv, words", [
    (["--preset", "lqgan", "--data-scale", "0"], "data_scale must be a positive finite number, got 0.0"),
    (["--preset", "lqgan", "--data-scale", "-1"], "data_scale must be a positive finite number, got -1.0"),
    (["--preset", "lqgan", "--data-scale", "nan"], "data_scale must be a positive finite number, got nan"),
    (["--preset", "ring8", "--data-scale", "2"], "data_scale scales the Gaussian data of lqgan and gauss-mlp only"),
])
@pytest.mark.parametrize("cli", [train_cli, sweep])
def test_a_bad_data_scale_is_a_one_line_error(capsys, tmp_path, cli, argv, words):
    extra = ["--out", str(tmp_path / "sweep")] if cli is sweep else []
    assert cli.main([*argv, *extra, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and words in err, err
    assert not (tmp_path / "sweep").exists()


def test_a_store_written_before_data_scale_opens_at_s_1_and_refuses_another_s(tmp_path):
    """The committed lqgan sweep, its base config stripped of the field as a store written before it has none,
    reads back at data_scale 1, and resuming it at s = 2 is refused as another config."""
    with gzip.open(RESULTS / "lqgan.db.gz", "rb") as src:
        (tmp_path / "sweep.db").write_bytes(src.read())
    with closing(sqlite3.connect(tmp_path / "sweep.db")) as db:
        stored = json.loads(db.execute("SELECT value FROM meta WHERE key = 'base_config'").fetchone()[0])
        stored.pop("data_scale", None)
        with db:
            db.execute("UPDATE meta SET value = ? WHERE key = 'base_config'", (json.dumps(stored),))
    with read_store(tmp_path) as store:
        base = store.base_config()
    defaults = TrainConfig().to_dict()  # every field the store lacks (data_scale, later ones) at its default
    assert base.data_scale == 1.0 and base.to_dict() == {**defaults, **stored}
    open_store(tmp_path, base, "lqgan").close()  # the same settings: accepted
    with pytest.raises(EmpiricalInputError, match=r"another config \(data_scale 1.0 -> 2.0\)"):
        open_store(tmp_path, base.with_(data_scale=2.0), "lqgan")


def test_the_exact_floor_at_s_2_is_the_mean_fid_of_its_stationary_parameter_noise():
    """F(b) = ½ tr(H_F P_GG)/b, the floor's second-order expansion, against the mean exact FID (against the s = 2
    data) of 4,000 generators drawn from N(θ*_G, P_GG/b): checks that the FID Hessian and P are those of s = 2."""
    floor, b = exact_floor(DOUBLED), 1024
    data = config_target(DOUBLED)
    theta_g = equilibrium(data)[:14]
    cov = floor.covariance_1[:14, :14] / b
    draws = np.random.default_rng(0).multivariate_normal(theta_g, cov, size=4000)
    rows, cols = np.tril_indices(4)
    fids = []
    for x in draws:
        a = np.zeros((4, 4))
        a[rows, cols] = x[4:]
        fids.append(exact_fid(x[:4], a @ a.T, 4, 2.0))
    fids = np.array(fids)
    assert fids.mean() == pytest.approx(floor.floor(b), abs=4 * fids.std(ddof=1) / np.sqrt(len(fids)))
    assert abs(fids.mean() - exact_floor(PRESET).floor(b)) > 8 * fids.std(ddof=1) / np.sqrt(len(fids))  # not s = 1's
