"""empirical.constants: measuring leaves the run unchanged, every number it writes agrees with an independent truth
(brute force from the recorded measurements; on the lqgan control game, the closed forms of its expected losses,
gradients, noise and smoothness within sampling errors computed here), the file feeds theory.critical, bad input is
one line."""

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from empirical import constants
from empirical.benchmarks.lqgan import Players, exact_noise, exact_smoothness, target
from empirical.benchmarks.lqgan_floor import Layout, _population_losses, equilibrium
from empirical.constants import EstimateSettings, estimate, record_run
from empirical.gradients import parameter_distance_inf
from empirical.optimizers import OPTIMIZERS, make_optimizer
from empirical.presets import get_preset
from empirical.reference_point import reference_point
from empirical.train import build_models, train
from theory import critical
from theory.families import FAMILIES
from theory.schema import load_constants

ROOT = Path(__file__).resolve().parents[2]

TINY = get_preset("ring8").with_(width=16, depth=2, max_steps=40, eval_every=5, n_eval=400, n_reference=2000,
                                 target_fid=1e-6)
QUICK = EstimateSettings(samples=32, repeats=2, hessian_samples=64, hessian_repeats=2, power_iters=30, big_batch=128)
FLAGS = ["--width", "16", "--depth", "2", "--max-steps", "20", "--eval-every", "5", "--n-eval", "400",
         "--n-reference", "2000", "--samples", "32", "--repeats", "2", "--hessian-samples", "64", "--big-batch", "128",
         "--no-progress"]


def test_observing_a_run_does_not_change_it():
    plain = train(TINY, seed=3)
    observed, snapshots = record_run(TINY, seed=3)
    assert [p.fid for p in observed.history] == [p.fid for p in plain.history]
    assert [s.step for s in snapshots] == [p.step for p in plain.history]
    torch.manual_seed(3)
    g0, _ = build_models(TINY, channels=1)
    for a, b in zip(snapshots[0].generator.parameters(), g0.parameters(), strict=True):
        assert torch.equal(a, b)  # the first copy is the initialisation, not a later state
    assert not torch.equal(next(snapshots[-1].generator.parameters()), next(g0.parameters()))


@pytest.fixture(scope="module")
def ring_estimate():
    return estimate(TINY.with_(max_steps=30), seed=0, settings=QUICK)


def test_constants_agree_with_direct_measurements(ring_estimate):
    est = ring_estimate
    c = est.constants()
    assert c["alpha_D"]["value"] == TINY.lr_d and c["alpha_G"]["value"] == TINY.lr_g
    assert c["beta1_D"]["value"] == 0.5
    for p in ("D", "G"):
        first, *_, last = est.run
        # Dist bounds the distance to the VI gap's reference point θ_ref (A3), not to the start
        assert est.reference is not None
        assert c[f"dist_{p}"]["value"] == max(float((a.theta[p] - est.reference[p]).abs().max()) for a in est.run)
        assert c[f"dist_{p}"]["value"] != max(parameter_distance_inf([a.theta[p]], [first.theta[p]])
                                              for a in est.run)
        assert c[f"dim_{p}"]["value"] == first.theta[p].numel() == last.theta[p].numel()
        assert 0 < c[f"h_min_{p}"]["value"] <= c[f"h_max_{p}"]["value"]
        # the file's σ² and L are the largest of the three checkpoints' (the theory's constants are bounds)
        assert c[f"sigma2_{p}"]["value"] == max(est.sigma2[k, p].value for k in constants.CHECKPOINTS)
        assert c[f"smoothness_{p}"]["value"] == max(est.smooth[k, p].value for k in constants.CHECKPOINTS)
        lo, hi = c[f"sigma2_{p}"]["interval"]
        assert lo <= c[f"sigma2_{p}"]["value"] <= hi
    assert est.checkpoint_steps == {"start": 0, "mid": 15, "first-target": 30}


def test_the_same_seed_gives_the_same_constants(ring_estimate):
    again = estimate(TINY.with_(max_steps=30), seed=0, settings=QUICK)
    assert again.constants() == ring_estimate.constants()
    assert again.epsilon() == ring_estimate.epsilon()


def test_batchnorm_generator_uses_the_two_batch_estimator():
    digits = get_preset("digits").with_(width=8, z_dim=8, max_steps=6, eval_every=3, n_eval=200, target_fid=1e-6)
    torch.manual_seed(0)
    g, d = build_models(digits, channels=1)
    origin = {p: torch.zeros(sum(q.numel() for q in m.parameters())) for p, m in (("D", d), ("G", g))}
    est = estimate(digits, seed=0, settings=QUICK, reference=origin)  # θ_ref given: no reference run to train
    assert est.reference_method == "given by the caller"
    c = est.constants()
    assert "two-batch" in c["sigma2_G"]["method"] and "per-sample" in c["sigma2_D"]["method"]
    assert "wgan" in c["gap_D"]["method"].lower()


def test_cli_writes_a_file_that_theory_critical_reads(tmp_path, capsys, monkeypatch):
    seen = []
    real_estimate = constants.estimate
    monkeypatch.setattr(constants, "estimate", lambda *a, **k: seen.append(real_estimate(*a, **k)) or seen[-1])
    out = tmp_path / "constants.json"
    assert constants.main([*FLAGS, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wrote" in printed and "first-target" in printed
    f = load_constants(out)
    (est,) = seen
    assert f.values["alpha_D"] == TINY.lr_d
    assert f.source["preset"] == "ring8" and f.source["checkpoints"]["start"]["step"] == 0
    # the noise scale of each player, by the documented rule from the recorded measurements (both resolved here,
    # so a missing one fails)
    assert set(f.noise_scale) == {"D", "G"}
    assert f.noise_scale == pytest.approx(_window_noise_scales(est.run), rel=1e-12)
    # per-player ε in the file: each player's own mean measure
    assert f.epsilon_players["sgd"] == pytest.approx(
        {p: math.sqrt(np.mean([a.grad_norm_sq[p] for a in est.run])) for p in "DG"}, rel=1e-12)
    # every constant of the sgd family is in the file; theory.critical takes them all from it
    assert critical.main(["--constants", str(out), "--family", "sgd", "--epsilon", "1e6", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {k: c["value"] for k, c in doc["constants"].items()} == {k: f.values[k] for k in doc["constants"]}
    assert all(c["source"] == f"file {out}" for c in doc["constants"].values())
    assert math.isfinite(doc["b_star"]["joint"])


@pytest.mark.parametrize("flags, message", [
    (["--samples", "0"], "samples must be a positive integer"),
    (["--repeats", "-1"], "repeats must be a positive integer"),
    (["--quantile", "2"], "quantile must be in [0, 1]"),
    (["--preset", "nope"], "unknown preset"),
    (["--lr-d", "-1"], "lr_d must be a positive finite number"),
    (["--out", "/nonexistent-folder/c.json"], "need a file path in an existing folder"),
    (["--device", "cuda:999"], "device 'cuda:999'"),
    (["--seeds", ""], "--seeds must be a comma-separated list of integers"),
    (["--seeds", "0,,2"], "--seeds must be a comma-separated list of integers"),
    (["--seeds", "0,x"], "--seeds: 'x' is not an integer"),
    (["--seeds", "1.5"], "--seeds: '1.5' is not an integer"),
    (["--seeds", "0,1,0"], "seed 0 is given twice"),
    (["--seeds", "0,1", "--seed", "2"], "--seed and --seeds exclude each other"),
])
def test_bad_input_is_one_line(flags, message, capsys):
    assert constants.main([*FLAGS, *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


# ---------------------------------------------------------------------------------------------------------------
# Brute force from the recorded measurements, by the rules docs/constants.md states


def _window_noise_scales(run) -> dict[str, float]:
    """B_simple over the second half: the evaluations from the one nearest half the last step (the midway
    checkpoint) to the last (the target), sum tr Σ / sum ‖G‖²; a player whose sums are not both positive has none."""
    steps = [a.step for a in run]
    mid = min(range(len(steps)), key=lambda i: abs(steps[i] - steps[-1] / 2))
    out = {}
    for p in "DG":
        trace = math.fsum(a.trace_sigma[p] for a in run[mid:])
        norm = math.fsum(a.grad_norm_sq[p] for a in run[mid:])
        if trace > 0 and norm > 0:
            out[p] = trace / norm
    return out


def _vi_gap_means(run, reference) -> dict[str, float]:
    return {p: float(np.mean([((a.theta[p] - reference[p]) @ a.grad[p]).item() for a in run])) for p in "DG"}


_MEASURES = (FAMILIES["sgd"].measure, FAMILIES["adam"].measure)


def _measure_of(family: str) -> str:
    return "gradient" if FAMILIES[family].measure == FAMILIES["sgd"].measure else "vi_gap"


def test_ring8_epsilon_is_each_players_own_mean_measure(ring_estimate):
    """ε_P² = P's own mean measure, not the larger player's for both; the VI gap at empirical.reference_point's
    θ_ref (an independent run), not at the run's own parameters at the target."""
    est = ring_estimate
    reference = reference_point(TINY.with_(max_steps=30))
    assert not torch.equal(reference["D"], est.run[-1].theta["D"])
    truth = {"gradient": {p: float(np.mean([a.grad_norm_sq[p] for a in est.run])) for p in "DG"},
             "vi_gap": _vi_gap_means(est.run, reference)}
    eps = est.epsilon()
    assert set(eps) | set(est.epsilon_skipped()) == {f for f, v in FAMILIES.items() if v.measure in _MEASURES}
    assert "sgd" in eps
    for family, e in eps.items():
        sq = truth[_measure_of(family)]
        assert e.players == pytest.approx({p: math.sqrt(sq[p]) for p in "DG"}, rel=1e-12), family
        assert e.value == max(e.players.values()) and e.entry()["players"] == e.players
    # the players differ: taking one player's for both would fail above
    assert abs(truth["gradient"]["D"] - truth["gradient"]["G"]) > 0.1 * max(truth["gradient"].values())
    assert est.measures()["vi_gap"] == pytest.approx(truth["vi_gap"], rel=1e-12)
    for family in VI_FAMILIES:  # a player whose mean gap is not positive has no ε_P: the family is left out
        assert (family in eps) == (min(truth["vi_gap"].values()) > 0) != (family in est.epsilon_skipped())


def test_ring8_quantiles_and_noise_scale_by_brute_force(ring_estimate):
    est, c = ring_estimate, ring_estimate.constants()
    for p in "DG":
        norms = np.sqrt(np.maximum(0.0, [a.grad_norm_sq[p] for a in est.run]))
        assert c[f"grad_bound_{p}"]["value"] == pytest.approx(np.quantile(norms, 0.95), rel=1e-12)
        cross = np.array([a.cross_norm[p] for a in est.run])
        assert c[f"cross_lip_{p}"]["value"] == pytest.approx(np.quantile(cross, 0.95), rel=1e-12)
    assert {p: v["value"] for p, v in est.noise_scales().items()} == pytest.approx(
        _window_noise_scales(est.run), rel=1e-12)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_beta_settings_are_the_optimizers_own(name, ring_estimate):
    """beta2_P = the second-moment coefficient of the optimizer the run builds (betas[1]; RMSprop's alpha) for the
    Adam-type optimizers and absent for the others; beta1_P = betas[0], else 0 (no momentum)."""
    group = make_optimizer(name, [torch.nn.Parameter(torch.zeros(2))], lr=1e-3).param_groups[0]
    est = ring_estimate
    c = constants.Estimate(TINY.with_(optimizer=name), 0, est.result, QUICK, est.checkpoint_steps, est.sigma2,
                           est.grad_norm_sq, est.smooth, est.run, est.h_bounds, est.dim).constants()
    beta2 = {"adam": group.get("betas", (0, 0))[1], "amsgrad": group.get("betas", (0, 0))[1],
             "adabelief": group.get("betas", (0, 0))[1], "rmsprop": group.get("alpha")}.get(name)
    for p in "DG":
        assert c[f"beta1_{p}"]["value"] == group.get("betas", (0.0,))[0]
        if beta2 is None:
            assert f"beta2_{p}" not in c
        else:
            assert c[f"beta2_{p}"] == {"value": beta2, "method": "optimizer setting"}
    assert beta2 in ({"rmsprop": 0.99}.get(name, 0.999), None)


# ---------------------------------------------------------------------------------------------------------------
# The lqgan control game: every number against the closed forms, within sampling errors computed here

LQ = get_preset("lqgan")  # its reference run reaches FID 0.05 at step 100, 21 evaluations, in about a second
LQ_SETTINGS = EstimateSettings(samples=2048, repeats=4, hessian_samples=8192, hessian_repeats=1, power_iters=200,
                               power_tol=1e-6, big_batch=65536, chunk_size=512)
HALF = LQ_SETTINGS.big_batch // 2
N_G = 4 + 10  # G's parameters (μ_g, a) come first in lqgan_floor's flat θ, then D's (w, v)
VI_FAMILIES = [f for f, v in FAMILIES.items() if v.measure == FAMILIES["adam"].measure]


def _quadratic_variance(w: np.ndarray, v: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> float:
    """Var(wᵀx + xᵀVx) for x ~ N(mean, cov): (w + 2V·mean)ᵀ cov (w + 2V·mean) + 2 tr((V cov)²)."""
    u = w + 2 * v @ mean
    return float(u @ cov @ u + 2 * np.trace(v @ cov @ v @ cov))


def _closed_form(g, d) -> dict:
    """At one snapshot: each player's expected-loss gradient, cross gradient (P's loss in the opponent's
    parameters) and loss, from lqgan_floor's population losses; tr Σ of the per-sample gradient (exact_noise); the
    covariance of the per-sample gradient and cross gradient (from 2·10⁴ closed-form samples); the variance of one
    sample's loss (Gaussian moments)."""
    loss_d, loss_g = _population_losses(Layout(4), target(), LQ.gp_weight)
    theta = torch.cat([q.detach().double().reshape(-1) for m in (g, d) for q in m.parameters()])
    grad_d, grad_g = torch.func.grad(loss_d)(theta), torch.func.grad(loss_g)(theta)
    players, data = Players.of(g, d), target()
    noise = {p: exact_noise(p, players, data) for p in "DG"}
    sigma_g = players.a @ players.a.T
    fake = _quadratic_variance(players.w, players.v, players.mu_g, sigma_g)
    rng = np.random.default_rng(1)
    samples = {p: _per_sample_gradients(p, players, 20_000, rng) for p in ("D", "G", "G-cross")}
    cov = {p: np.cov(x, rowvar=False) for p, x in samples.items()}
    return {"grad": {"D": grad_d[N_G:], "G": grad_g[:N_G]}, "cross": {"D": grad_d[:N_G], "G": grad_g[N_G:]},
            "loss": {"D": float(loss_d(theta)), "G": float(loss_g(theta))},
            "trace": noise, "cov": {"D": cov["D"], "G": cov["G"]},
            "cross_cov": {"D": cov["G"], "G": cov["G-cross"]},  # D's cross sample is −(G's own); G's is −φ(x_fake)
            "loss_var": {"D": fake + _quadratic_variance(players.w, players.v, data.mu, data.sigma), "G": fake},
            "players": players}


def _inner_sd(exact: list[dict], key: str, player: str) -> tuple[np.ndarray, np.ndarray]:
    """(‖G‖², the standard deviation of ⟨g_A, g_B⟩) at each snapshot, g_A and g_B means of HALF samples each:
    Var = 2GᵀΣG/h + tr(Σ²)/h² (key "grad" with Σ = "cov", or "cross" with "cross_cov")."""
    cov_key = "cov" if key == "grad" else "cross_cov"
    norm_sq, var = [], []
    for e in exact:
        grad, cov = e[key][player].numpy(), e[cov_key][player]
        norm_sq.append(float(grad @ grad))
        var.append(2 * float(grad @ cov @ grad) / HALF + float(np.trace(cov @ cov)) / HALF**2)
    return np.array(norm_sq), np.sqrt(var)


@pytest.fixture(scope="module")
def lq():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        est = estimate(LQ, seed=0, settings=LQ_SETTINGS)
        _, snapshots = record_run(LQ.with_(floor=False), 0)
    finally:
        torch.set_num_threads(threads)
    assert [s.step for s in snapshots] == [a.step for a in est.run]
    return est, [_closed_form(s.generator, s.discriminator) for s in snapshots], snapshots


def test_lqgan_epsilon_is_each_players_mean_squared_gradient_norm(lq):
    """ε_P² (sgd families) = P's own mean of the recorded ‖∇_P L_P‖² (brute force), and that mean is the closed
    form's mean ‖∇E L_P(θ_k)‖² within its sampling error; each evaluation's estimate within 5 of its s.d."""
    est, exact, _ = lq
    eps = est.epsilon()
    for p in "DG":
        got = np.array([a.grad_norm_sq[p] for a in est.run])
        true, sd = _inner_sd(exact, "grad", p)
        assert np.all(np.abs(got - true) <= 5 * sd), p
        mean_sd = math.sqrt(float((sd**2).sum())) / len(sd)
        assert mean_sd < 0.05 * true.mean()  # tight enough to tell the players apart (D 0.36, G 1.35)
        for family in ("sgd", "sgd-frozen"):
            assert eps[family].players[p] ** 2 == pytest.approx(got.mean(), rel=1e-12)
            assert abs(eps[family].players[p] ** 2 - true.mean()) <= 4 * mean_sd, (family, p)
    assert eps["sgd"].value == max(eps["sgd"].players.values())


def test_lqgan_vi_gap_is_taken_at_the_exact_equilibrium(lq):
    """The VI gap's θ_ref on lqgan is θ* (μ_g = μ, A = chol Σ, D = 0), not the run's parameters at the target: the
    mean gap per player equals the brute-force mean at θ*, and the closed form's within sampling error."""
    est, exact, _ = lq
    star = torch.as_tensor(equilibrium(target()))
    ref = {"D": star[N_G:], "G": star[:N_G]}
    means = est.measures()["vi_gap"]
    assert means == pytest.approx(_vi_gap_means(est.run, ref), rel=1e-9, abs=1e-12)
    assert means != pytest.approx(_vi_gap_means(est.run, est.run[-1].theta), rel=0.1)
    for p in "DG":
        deltas = [a.theta[p] - ref[p] for a in est.run]
        true = np.array([float(dl @ e["grad"][p]) for dl, e in zip(deltas, exact, strict=True)])
        # Var ⟨Δ, (g_A + g_B)/2⟩ = ΔᵀΣΔ/(2h)
        var = np.array([float(dl.numpy() @ e["cov"][p] @ dl.numpy()) / (2 * HALF)
                        for dl, e in zip(deltas, exact, strict=True)])
        assert abs(means[p] - true.mean()) <= 4 * math.sqrt(var.sum()) / len(var), p
    # a player whose mean gap is not positive has no ε_P: the Adam-type families are then left out, with the reason
    eps, skipped = est.epsilon(), est.epsilon_skipped()
    for family in VI_FAMILIES:
        assert (family in eps) == (min(means.values()) > 0) != (family in skipped)
    # the rule where both are positive: a reference point moved against the run's mean gradient
    far = {p: ref[p] - 10 * sum(a.grad[p] for a in est.run) for p in "DG"}
    gaps = _vi_gap_means(est.run, far)
    assert min(gaps.values()) > 0
    moved = dataclasses.replace(est, reference=far).epsilon()
    for family in VI_FAMILIES:
        assert moved[family].players == pytest.approx({p: math.sqrt(gaps[p]) for p in "DG"}, rel=1e-9)


def test_lqgan_noise_scale_is_the_second_half_of_the_run(lq):
    est, _, _ = lq
    assert est.checkpoint_steps == {"start": 0, "mid": 50, "first-target": 100}
    scales = est.noise_scales()
    assert set(scales) == {"D", "G"}
    assert {p: v["value"] for p, v in scales.items()} == pytest.approx(_window_noise_scales(est.run), rel=1e-12)
    assert all(v["n"] == 11 for v in scales.values())  # steps 50, 55, ..., 100


def test_lqgan_grad_bound_and_cross_lip_against_the_closed_forms(lq):
    """The 0.95-quantile over the evaluations of the recorded norms (numpy's quantile, brute force), and of the
    closed-form norms within the largest per-evaluation error (a quantile moves by at most that much)."""
    est, exact, _ = lq
    c = est.constants()
    for name, key in (("grad_bound", "grad"), ("cross_lip", "cross")):
        for p in "DG":
            if name == "grad_bound":
                got = np.sqrt(np.maximum(0.0, [a.grad_norm_sq[p] for a in est.run]))
            else:
                got = np.array([a.cross_norm[p] for a in est.run])
            assert c[f"{name}_{p}"]["value"] == pytest.approx(np.quantile(got, 0.95), rel=1e-12), (name, p)
            true_sq, sd = _inner_sd(exact, key, p)
            err = 5 * sd
            tol = np.minimum(np.sqrt(err), err / np.sqrt(true_sq))  # |√x − √t| <= both, for x >= 0
            assert np.all(np.abs(got - np.sqrt(true_sq)) <= tol), (name, p)
            assert abs(c[f"{name}_{p}"]["value"] - np.quantile(np.sqrt(true_sq), 0.95)) <= tol.max(), (name, p)
            assert tol.max() < 0.2 * np.quantile(np.sqrt(true_sq), 0.95)


def test_lqgan_gap_against_the_closed_form_loss(lq):
    """gap_P (WGAN: L_P(θ_0) − the lowest L_P seen): the recorded losses against the expected loss, each within 5
    s.d. of one half batch's mean loss, and the gap itself by brute force and against the closed form's."""
    est, exact, _ = lq
    c = est.constants()
    for p in "DG":
        got = np.array([a.loss[p] for a in est.run])
        true = np.array([e["loss"][p] for e in exact])
        sd = np.sqrt(np.array([e["loss_var"][p] for e in exact]) / HALF)
        assert np.all(np.abs(got - true) <= 5 * sd), p
        assert c[f"gap_{p}"]["value"] == pytest.approx(got[0] - got.min(), rel=1e-12)
        assert abs(c[f"gap_{p}"]["value"] - (true[0] - true.min())) <= 5 * (sd[0] + sd.max())


def _per_sample_gradients(player: str, p: Players, n: int, rng: np.random.Generator) -> np.ndarray:
    """n per-sample gradients of P's loss in closed form (numpy), less their constant part: D's (x_fake, x_real) ->
    φ(x_fake) − φ(x_real), φ(x) = (x, c_ij·x_i·x_j over i >= j), c = 1 on the diagonal and 2 off it; G's z ->
    −(u, u_i·z_j over i >= j) with u = w + 2V(μ_g + Az); "G-cross" (G's loss in D's parameters) z -> −φ(x_fake)."""
    data, dim = target(), len(p.mu_g)
    rows, cols = np.tril_indices(dim)
    z = rng.standard_normal((n, dim))
    fake = p.mu_g + z @ p.a.T
    c = np.where(rows == cols, 1.0, 2.0)

    def phi(x):
        return np.hstack([x, c * x[:, rows] * x[:, cols]])
    if player == "G-cross":  # G's loss −D(x_fake) in D's parameters
        return -phi(fake)
    if player == "D":
        real = data.mu + rng.standard_normal((n, dim)) @ np.linalg.cholesky(data.sigma).T
        return phi(fake) - phi(real)
    u = p.w + 2 * fake @ p.v  # V symmetric
    return -np.hstack([u, u[:, rows] * z[:, cols]])


def test_lqgan_sigma2_and_smoothness_against_the_closed_forms(lq):
    """σ²_P at every checkpoint against exact_noise within 5 s.d. of the estimator (Var tr Σ̂ ≈ Var‖g − G‖²/n, from
    10⁵ closed-form per-sample gradients), L_D = λ exactly, L_G against exact_smoothness = 2ρ(V) within Weyl's bound
    2ρ(V)·‖M̂ − I‖ for the batch's second moment M̂ of (1, z) (its 99.9% level simulated here)."""
    est, _, snapshots = lq
    rng = np.random.default_rng(0)
    n, dim = LQ_SETTINGS.hessian_samples, 4
    spread = []
    for _ in range(200):
        y = np.hstack([np.ones((n, 1)), rng.standard_normal((n, dim))])
        spread.append(np.linalg.norm(y.T @ y / n - np.eye(dim + 1), 2))
    weyl = float(np.quantile(spread, 0.999))
    by_step = {s.step: s for s in snapshots}
    for checkpoint, step in est.checkpoint_steps.items():
        players = Players.of(by_step[step].generator, by_step[step].discriminator)
        for p in "DG":
            g = _per_sample_gradients(p, players, 100_000, rng)
            r = ((g - g.mean(0)) ** 2).sum(1)
            exact = exact_noise(p, players, target())
            assert r.mean() == pytest.approx(exact, rel=0.03)  # the sampler above is the closed form's
            sd = math.sqrt(r.var() / (LQ_SETTINGS.samples * LQ_SETTINGS.repeats))
            assert abs(est.sigma2[checkpoint, p].value - exact) <= 5 * sd, (checkpoint, p)
            assert 5 * sd < 0.15 * exact
            smooth = exact_smoothness(p, players, LQ.gp_weight)
            tol = 1e-4 * smooth if p == "D" else smooth * (weyl + 1e-3)
            assert abs(est.smooth[checkpoint, p].value - smooth) <= tol, (checkpoint, p)


def test_regenerated_lqgan_file_has_the_shipped_files_form(tmp_path, capsys, lq):
    """python -m empirical.constants on a short lqgan run writes what theory/measured/lqgan.json holds: the same
    constants, sections and players, the constants the closed form fixes (α, dim, L_D = λ, σ²_D at the shared
    start) of the same value, every shipped ε family written or its absence explained; the schema loads it and
    theory.critical takes each player's ε from it."""
    out = tmp_path / "lqgan.json"
    flags = ["--preset", "lqgan", "--max-steps", "60", "--samples", "256", "--repeats", "2", "--hessian-samples",
             "1024", "--big-batch", "2048", "--no-progress", "--out", str(out)]
    assert constants.main(flags) == 0
    capsys.readouterr()
    new, shipped = (json.loads(Path(f).read_text()) for f in (out, ROOT / "theory" / "measured" / "lqgan.json"))
    assert set(new) == set(shipped) and set(new["constants"]) == set(shipped["constants"])
    assert set(new["noise_scale"]) == set(shipped["noise_scale"]) == {"D", "G"}
    assert set(shipped["source"]) <= set(new["source"])
    assert set(shipped["epsilon"]) <= set(new["epsilon"]) | set(new["source"]["epsilon_skipped"])
    assert all(set(e["players"]) == {"D", "G"} for e in new["epsilon"].values())
    start = lq[2][0]  # seed 0's initialisation, the start of both runs
    sigma2_d = exact_noise("D", Players.of(start.generator, start.discriminator), target())
    for name in ("alpha_D", "alpha_G", "dim_D", "dim_G", "beta1_D"):
        assert new["constants"][name]["value"] == shipped["constants"][name]["value"]
    for doc in (new, shipped):
        assert doc["constants"]["smoothness_D"]["value"] == pytest.approx(LQ.gp_weight, rel=1e-4)
        assert doc["constants"]["sigma2_D"]["value"] == pytest.approx(sigma2_d, rel=0.25)
    f = load_constants(out)
    assert critical.main(["--constants", str(out), "--family", "sgd-frozen", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    for p in "DG":
        assert doc["epsilon_players"][p]["value"] == f.epsilon_players["sgd-frozen"][p]
        assert str(out) in doc["epsilon_players"][p]["source"]
    assert f.epsilon_players["sgd-frozen"]["D"] != f.epsilon_players["sgd-frozen"]["G"]


# ---------------------------------------------------------------------------------------------------------------
# --seeds: one reference run and estimate per seed, combined by the one-seed file's rules

LQ_SHORT = LQ.with_(max_steps=60)  # 13 evaluations; two seeds' runs and estimates in about a second
LQ_SHORT_SETTINGS = EstimateSettings(samples=256, repeats=2, hessian_samples=1024, big_batch=2048)
LQ_FLAGS = ["--preset", "lqgan", "--max-steps", "60", "--samples", "256", "--repeats", "2", "--hessian-samples",
            "1024", "--big-batch", "2048", "--no-progress"]
LARGEST = {"sigma2", "smoothness", "grad_bound", "cross_lip", "dist", "h_max", "gap"}


@pytest.fixture(scope="module")
def lq_two_seeds(tmp_path_factory):
    """`--seeds 0,1` on short lqgan runs through the CLI, and the two seeds' estimates made independently."""
    out = tmp_path_factory.mktemp("seeds") / "lqgan-seeds.json"
    assert constants.main([*LQ_FLAGS, "--seeds", "0,1", "--out", str(out)]) == 0
    return json.loads(out.read_text()), [estimate(LQ_SHORT, seed=s, settings=LQ_SHORT_SETTINGS) for s in (0, 1)]


@pytest.fixture(scope="module")
def ring_two_seeds(ring_estimate, tmp_path_factory):
    """Seeds 0 and 1 of the tiny ring8 (Adam: h_min, h_max, the VI gap at a trained θ_ref), combined by
    write_seeds from two independent estimate() calls."""
    out = tmp_path_factory.mktemp("seeds") / "ring8-seeds.json"
    ests = [ring_estimate, estimate(TINY.with_(max_steps=30), seed=1, settings=QUICK)]
    constants.write_seeds(ests, out, "ring8")
    return json.loads(out.read_text()), ests


@pytest.mark.parametrize("which", ["lq_two_seeds", "ring_two_seeds"])
def test_seeds_file_combines_the_seeds_by_the_one_seed_rules(which, request):
    """Each bound the largest of the two seeds' values (h_min the smallest), settings equal to each seed's, the
    noise scale the mean, ε_P² the mean of the seeds' ε_P², every interval covering each seed's value and interval,
    n the seeds' counts added; the source keeps each seed's K and checkpoint table."""
    doc, ests = request.getfixturevalue(which)
    per = [e.constants() for e in ests]
    for key, entry in doc["constants"].items():
        name, seeds = key[:-2], [c[key] for c in per]
        if name not in LARGEST | {"h_min"}:
            assert entry == seeds[0] == seeds[1], key
            continue
        assert entry["value"] == (max if name in LARGEST else min)(s["value"] for s in seeds), key
        assert entry["n"] == sum(s["n"] for s in seeds) and "over seeds 0, 1 " in entry["method"], key
        lo, hi = entry["interval"]
        for s in seeds:
            own = [s["value"], *s.get("interval", [])]
            assert lo <= min(own) and max(own) <= hi, key
    names = {k[:-2] for k in doc["constants"]}
    assert {"sigma2", "smoothness", "grad_bound", "dist", "gap"} <= names
    assert ({"h_min", "h_max"} <= names) == (which == "ring_two_seeds")
    for p, entry in doc["noise_scale"].items():
        seeds = [e.noise_scales()[p] for e in ests]
        assert entry["value"] == pytest.approx((seeds[0]["value"] + seeds[1]["value"]) / 2, rel=1e-12)
        assert entry["n"] == seeds[0]["n"] + seeds[1]["n"]
        assert entry["interval"][0] <= min(min(s["interval"]) for s in seeds)
        assert entry["interval"][1] >= max(max(s["interval"]) for s in seeds)
    assert set(doc["noise_scale"]) == {"D", "G"}
    for family, entry in doc["epsilon"].items():
        sq = {p: [e.measures()[_measure_of(family)][p] for e in ests] for p in "DG"}
        assert entry["players"] == pytest.approx({p: math.sqrt((a + b) / 2) for p, (a, b) in sq.items()}, rel=1e-12)
        for i, e in enumerate(ests):  # each seed's own ε, where it has one, is its mean measure: as above
            if family in e.epsilon():
                assert e.epsilon()[family].players == pytest.approx({p: math.sqrt(sq[p][i]) for p in "DG"},
                                                                    rel=1e-12)
                assert entry["interval"][0] <= e.epsilon()[family].value <= entry["interval"][1]
    assert "sgd" in doc["epsilon"]
    for family, why in doc["source"]["epsilon_skipped"].items():
        mean = {p: np.mean([e.measures()[_measure_of(family)][p] for e in ests]) for p in "DG"}
        assert min(mean.values()) <= 0 and "over seeds 0, 1" in why
    source = doc["source"]
    assert source["seeds"] == [0, 1] and [r["seed"] for r in source["runs"]] == [0, 1]
    for run, e in zip(source["runs"], ests, strict=True):
        assert run["steps_to_target"] == e.result.steps_to_target and run["checkpoints"] == e.checkpoint_table()
    # the seeds' trajectories differ, so the combination is not one seed's numbers twice
    assert per[0]["sigma2_D"]["value"] != per[1]["sigma2_D"]["value"]


def test_seeds_share_one_reference_point(ring_two_seeds):
    """θ_ref does not depend on the seed: estimate_seeds makes it once, and it is the one estimate() makes alone."""
    _, (seed0, seed1) = ring_two_seeds
    shared = constants.estimate_seeds(TINY.with_(max_steps=30), [2, 3], settings=QUICK)
    for e in (*shared, seed1):
        assert e.reference_method == seed0.reference_method
        assert all(torch.equal(e.reference[p], seed0.reference[p]) for p in "DG")


def test_one_seed_gives_the_one_seed_file(lq_two_seeds, tmp_path, capsys):
    """`--seeds 0` and `--seed 0` write the file write() makes from one estimate, byte for byte but for the timing."""
    _, (seed0, _) = lq_two_seeds
    constants.write(seed0, tmp_path / "direct.json", "lqgan")
    for flags in (["--seeds", "0"], ["--seed", "0"]):
        assert constants.main([*LQ_FLAGS, *flags, "--out", str(tmp_path / "cli.json")]) == 0
        texts = [(tmp_path / f).read_text() for f in ("direct.json", "cli.json")]
        untimed = [re.sub(r'"estimation_seconds": [0-9.]+', "", t) for t in texts]
        assert untimed[0] == untimed[1] and "estimation_seconds" in texts[1]
    assert "over seeds" not in capsys.readouterr().out


def test_seeds_file_feeds_theory_critical(lq_two_seeds, tmp_path, capsys):
    doc, _ = lq_two_seeds
    out = tmp_path / "c.json"
    out.write_text(json.dumps(doc))
    f = load_constants(out)
    assert critical.main(["--constants", str(out), "--family", "sgd-frozen", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["epsilon_players"]["D"]["value"] == f.epsilon_players["sgd-frozen"]["D"]
    assert result["constants"]["sigma2_D"]["value"] == doc["constants"]["sigma2_D"]["value"]


# ---------------------------------------------------------------------------------------------------------------
# The noise scale in the metric Adam steps in: B_noise,H = tr(HΣ) / GᵀHG, H = diag(1/(√v̂ + eps))


def test_weighted_halves_estimator_against_the_closed_forms():
    """Per-sample gradients G + √Σ_ii·ξ (diagonal Σ): over many pairs of independent half means, the weighted
    estimates average to Σ h_i Σ_ii and Σ h_i G_i² (within 5 standard errors, tighter than the gap to what an
    unweighted or wrongly weighted estimator would give); with h = 1 they are the unweighted ones bit for bit."""
    from empirical.gradients import HalvesGradient, split_batch_noise_estimate, weighted_split_batch_noise_estimate

    gen = torch.Generator().manual_seed(0)
    mean = torch.tensor([1.0, -0.5, 0.2, 0.0, 2.0, -1.0], dtype=torch.float64)
    var = torch.tensor([4.0, 0.5, 9.0, 1.0, 0.1, 2.0], dtype=torch.float64)
    h = torch.tensor([0.1, 3.0, 0.05, 1.0, 5.0, 0.2], dtype=torch.float64)
    half, draws = 8, 4000
    samples = mean + var.sqrt() * torch.randn(draws, 2, half, len(mean), generator=gen, dtype=torch.float64)
    means = samples.mean(2)  # (draws, 2, d): the two halves' mean gradients
    got = np.array([weighted_split_batch_noise_estimate(a, b, half, h) for a, b in means])
    truth = np.array([float(h @ var), float(h @ mean.square())])
    se = got.std(0, ddof=1) / math.sqrt(draws)
    assert np.all(np.abs(got.mean(0) - truth) <= 5 * se), (got.mean(0), truth, se)
    # the test can tell the metric apart: the unweighted truths (scaled by the mean weight) are far outside
    assert np.all(np.abs(truth - float(h.mean()) * np.array([float(var.sum()), float(mean @ mean)])) > 20 * se)
    ones = torch.ones_like(h)
    for a, b in means[:50]:
        plain = split_batch_noise_estimate(a, b, half)
        assert weighted_split_batch_noise_estimate(a, b, half, ones) == plain  # exactly, not approximately
        assert HalvesGradient(a, b, half).weighted(ones) == (HalvesGradient(a, b, half).trace_sigma,
                                                             HalvesGradient(a, b, half).norm_sq)
    with pytest.raises(ValueError, match="one entry per parameter"):
        weighted_split_batch_noise_estimate(means[0, 0], means[0, 1], half, h[:3])
    with pytest.raises(ValueError, match="finite and >= 0"):
        weighted_split_batch_noise_estimate(means[0, 0], means[0, 1], half, -h)


def test_adam_run_writes_the_preconditioned_noise_scale(ring_estimate, tmp_path):
    """ring8 (Adam): both players' entries hold "preconditioned" = mean tr(HΣ) / mean GᵀHG over the second half
    (brute force from the recorded evaluations), value inside its interval, different from B_simple; the file
    loads and empirical.measured's reader returns it."""
    from empirical.measured import preconditioned_noise_scales

    est = ring_estimate
    assert all(set(a.weighted_trace) == set(a.weighted_norm_sq) == {"D", "G"} for a in est.run[1:])
    assert est.run[0].weighted_trace == {}  # step 0: no optimizer state yet
    scales = est.noise_scales()
    steps = [a.step for a in est.run]
    mid = min(range(len(steps)), key=lambda i: abs(steps[i] - steps[-1] / 2))
    window = [a for a in est.run[mid:] if a.weighted_norm_sq]
    for p in "DG":
        entry = scales[p]["preconditioned"]
        truth = math.fsum(a.weighted_trace[p] for a in window) / math.fsum(a.weighted_norm_sq[p] for a in window)
        assert entry["value"] == pytest.approx(truth, rel=1e-12)
        assert entry["interval"][0] <= entry["value"] <= entry["interval"][1] and entry["n"] == len(window)
        assert entry["value"] != pytest.approx(scales[p]["value"], rel=1e-3)
    constants.write(est, tmp_path / "c.json", "ring8")
    f = load_constants(tmp_path / "c.json")
    assert f.noise_scale_preconditioned == {p: scales[p]["preconditioned"]["value"] for p in "DG"}
    read = preconditioned_noise_scales(f)
    for p in "DG":
        value, interval = read[p]
        assert value == scales[p]["preconditioned"]["value"]
        assert [interval.low, interval.high] == scales[p]["preconditioned"]["interval"]


def test_sgd_run_has_no_preconditioned_noise_scale(tmp_path):
    from empirical.measured import preconditioned_noise_scales

    sgd = TINY.with_(optimizer="sgd", lr_d=0.05, lr_g=0.05, max_steps=10)
    torch.manual_seed(0)
    g, d = build_models(sgd, channels=1)
    origin = {p: torch.zeros(sum(q.numel() for q in m.parameters())) for p, m in (("D", d), ("G", g))}
    est = estimate(sgd, seed=0, settings=QUICK, reference=origin)
    assert all(a.weighted_trace == a.weighted_norm_sq == {} for a in est.run)
    constants.write(est, tmp_path / "c.json", "ring8")
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["noise_scale"] and not any("preconditioned" in e for e in doc["noise_scale"].values())
    assert preconditioned_noise_scales(load_constants(tmp_path / "c.json")) is None
    assert preconditioned_noise_scales(None) is None


def test_seeds_file_averages_the_preconditioned_noise_scale(ring_two_seeds):
    doc, ests = ring_two_seeds
    for p in "DG":
        entry = doc["noise_scale"][p]["preconditioned"]
        seeds = [e.noise_scales()[p]["preconditioned"] for e in ests]
        assert entry["value"] == pytest.approx((seeds[0]["value"] + seeds[1]["value"]) / 2, rel=1e-12)
        assert entry["n"] == seeds[0]["n"] + seeds[1]["n"]
        assert entry["interval"][0] <= min(min(s["interval"]) for s in seeds)
        assert entry["interval"][1] >= max(max(s["interval"]) for s in seeds)
