"""empirical.constants: measuring leaves the run unchanged, the file feeds theory.critical, bad input is one line."""

import json
import math

import pytest
import torch

from empirical import constants
from empirical.constants import EstimateSettings, estimate, record_run
from empirical.gradients import parameter_distance_inf
from empirical.presets import get_preset
from empirical.train import build_models, train
from theory import critical
from theory.schema import load_constants

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
        assert c[f"dist_{p}"]["value"] == max(parameter_distance_inf([a.theta[p]], [first.theta[p]]) for a in est.run)
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
    est = estimate(digits, seed=0, settings=QUICK)
    c = est.constants()
    assert "two-batch" in c["sigma2_G"]["method"] and "per-sample" in c["sigma2_D"]["method"]
    assert "wgan" in c["gap_D"]["method"].lower()


def test_cli_writes_a_file_that_theory_critical_reads(tmp_path, capsys):
    out = tmp_path / "constants.json"
    assert constants.main([*FLAGS, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wrote" in printed and "first-target" in printed
    f = load_constants(out)
    assert f.values["alpha_D"] == TINY.lr_d
    assert f.source["preset"] == "ring8" and f.source["checkpoints"]["start"]["step"] == 0
    assert set(f.noise_scale) <= {"D", "G"}
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
])
def test_bad_input_is_one_line(flags, message, capsys):
    assert constants.main([*FLAGS, *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
