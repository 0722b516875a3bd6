"""Seed ensembles (empirical/ensemble.py) against the reference, train(config, seed), run by run: the same parameters,
FID histories, stops and K; a diverging or finished run leaves the others as they would be alone; the sweep's
--ensemble auto stores what --ensemble off stores."""

from pathlib import Path

import pytest
import torch

from empirical import sweep
from empirical.ensemble import train_many
from empirical.presets import get_preset
from empirical.store import read_store
from empirical.train import Checkpoint, train

SEEDS = (0, 1, 2, 3)
# Tiny and short: 40 steps, 5 evaluations (step 0 included), a target no run meets unless a test sets one.
TINY = {"width": 16, "depth": 2, "eval_every": 10, "max_steps": 40, "target_fid": 1e-9, "floor": False,
        "device": "cpu", "batch_size": 32}
RING8 = get_preset("ring8").with_(**TINY, n_eval=500, n_reference=2000)
GAUSS = get_preset("gauss-mlp").with_(**TINY, eval_growth=0.0, n_eval=2000)
# A run in an ensemble is bitwise train(config, seed) on one thread (empirical/ensemble.py says why): every
# comparison below is exact.


pytestmark = pytest.mark.usefixtures("one_thread")


def flat(parameters: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for _, p in sorted(parameters.items())])


def alone(config, seed, poison: bool = False):
    """train(config, seed) and its parameters (G then D) at its last evaluation; `poison`: G's first weight set to
    NaN at the step-0 evaluation, so the run diverges at its next evaluation."""
    last = {}

    def observe(checkpoint: Checkpoint) -> None:
        if poison and checkpoint.step == 0:
            with torch.no_grad():
                next(checkpoint.generator.parameters()).fill_(float("nan"))
        last["theta"] = torch.cat([flat(dict(checkpoint.generator.named_parameters())),
                                   flat(dict(checkpoint.discriminator.named_parameters()))])

    return train(config, seed, observe=observe), last["theta"]


def together(config, seeds, poisoned: int | None = None):
    """train_many(config, seeds) and each run's parameters at its last evaluation (run `poisoned` made to diverge
    as in `alone`)."""
    last = {}

    def observe(seed, step, g, d) -> None:
        if seed == poisoned and step == 0:
            g["net.0.weight"].fill_(float("nan"))
        last[seed] = torch.cat([flat(g), flat(d)])

    return train_many(config, seeds, observe=observe), last


def assert_same_run(many, single, theta_many, theta_single) -> None:
    assert (many.status, many.steps_to_target, many.steps_run, many.diverged_at) == (
        single.status, single.steps_to_target, single.steps_run, single.diverged_at)
    fields = ("step", "fid", "loss_d", "loss_g", "grad_norm_d", "grad_norm_g", "balance_ratio", "modes",
              "high_quality")
    for field in fields:  # NaN-aware: the step-0 point logs NaN losses
        values = [[repr(getattr(p, field)) for p in run.history] for run in (many, single)]
        assert values[0] == values[1], field
    nan = theta_single.isnan()  # a diverged run's poisoned weights
    assert torch.equal(theta_many.isnan(), nan)
    assert torch.equal(theta_many[~nan], theta_single[~nan])


@pytest.mark.parametrize("config", [RING8, GAUSS, RING8.with_(optimizer="amsgrad", loss="wgan-gp"),
                                    GAUSS.with_(optimizer="rmsprop", g_fresh_z=True, n_critic=2)],
                         ids=["ring8-adam", "gauss-mlp-adam", "ring8-amsgrad-wgangp", "gauss-mlp-rmsprop-fresh-z"])
def test_each_run_of_an_ensemble_equals_train_alone(config):
    results, thetas = together(config, SEEDS)
    for seed, many in zip(SEEDS, results, strict=True):
        single, theta = alone(config, seed)
        assert many.seed == seed
        assert_same_run(many, single, thetas[seed], theta)
    assert thetas[0].shape == theta.shape and not torch.equal(thetas[0], thetas[1])  # seeds do differ


def test_a_diverging_run_stops_as_alone_and_leaves_the_others_unchanged():
    results, thetas = together(RING8, SEEDS, poisoned=1)
    assert (results[1].status, results[1].diverged_at, results[1].steps_run) == ("diverged", 10, 10)
    for seed, many in zip(SEEDS, results, strict=True):
        single, theta = alone(RING8, seed, poison=seed == 1)
        assert_same_run(many, single, thetas[seed], theta)
    assert results[0].steps_run == results[2].steps_run == 40


def test_a_run_that_meets_its_target_early_stops_with_the_k_it_has_alone():
    config = RING8.with_(target_fid=227.5, max_steps=60)
    singles = [alone(config, seed) for seed in SEEDS]
    assert len({s.steps_run for s, _ in singles}) == 3  # the runs stop at three different steps (one at max_steps)
    assert {s.status for s, _ in singles} == {"reached", "not_reached"}
    results, thetas = together(config, SEEDS)
    for seed, many, (single, theta) in zip(SEEDS, results, singles, strict=True):
        assert_same_run(many, single, thetas[seed], theta)


@pytest.mark.parametrize(("change", "named"), [
    ({"optimizer": "nsgda"}, "elementwise optimizer"),
    ({"measure_batch": 64}, "measure_batch 0"),
    ({"precision": "bf16"}, "fp32 without torch.compile"),
])
def test_configs_it_cannot_train_are_refused_naming_what_it_supports(change, named):
    with pytest.raises(ValueError, match=named):
        train_many(RING8.with_(**change), SEEDS)
    with pytest.raises(ValueError, match="model mlp on ring8, grid25, gauss-mlp"):
        train_many(get_preset("digits"), SEEDS)


def test_bundles_hold_the_seeds_of_a_cell_up_to_r_and_off_keeps_one_run_each():
    cells = sweep.grid([4, 8], [0, 1, 2, 3, 4])
    ring = get_preset("ring8")
    assert all(len(b) == 1 for b in sweep.bundles(ring, cells))
    assert [[c.seed for c in b] for b in sweep.bundles(ring, cells, "auto")] == [[0, 1, 2, 3, 4]] * 2
    assert [[c.seed for c in b] for b in sweep.bundles(ring, cells, 2)] == [[0, 1], [2, 3], [4]] * 2
    assert all(len(b) == 1 for b in sweep.bundles(ring, sweep.grid([4], [0, 1], optimizers=["graft"]), "auto"))
    lq = get_preset("lqgan").with_(optimizer="sgd")  # lqgan's own batched seeds, whatever the flag
    assert [len(b) for b in sweep.bundles(lq, cells, "off")] == [5, 5]
    with pytest.raises(Exception, match="--ensemble must be auto, off or a positive integer"):
        sweep.parse_ensemble("0")


def test_auto_splits_ensembles_when_there_are_fewer_than_workers_but_never_lqgans_batches():
    one_b = sweep.grid([4], range(8))
    ring = get_preset("ring8")
    seeds = lambda bundles: [[c.seed for c in b] for b in bundles]  # noqa: E731
    assert seeds(sweep.bundles(ring, one_b, "auto", workers=1)) == [list(range(8))]
    assert seeds(sweep.bundles(ring, one_b, "auto", workers=2)) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert seeds(sweep.bundles(ring, one_b, "auto", workers=3)) == [[0, 1, 2], [3, 4, 5], [6, 7]]
    two_b = sweep.grid([4, 8], range(8))
    assert [len(b) for b in sweep.bundles(ring, two_b, "auto", workers=2)] == [8, 8]  # one per worker already
    assert [len(b) for b in sweep.bundles(ring, two_b, "auto", workers=4)] == [4, 4, 4, 4]
    assert [len(b) for b in sweep.bundles(ring, two_b, 3, workers=4)] == [3, 3, 2, 3, 3, 2]  # R is R
    lq = get_preset("lqgan").with_(optimizer="sgd")
    assert [len(b) for b in sweep.bundles(lq, one_b, "auto", workers=4)] == [8]


GRID = ["--preset", "ring8", "--batch-sizes", "8,64", "--seeds", "0,1,2", "--max-steps", "60", "--eval-every", "10",
        "--n-eval", "500", "--n-reference", "2000", "--width", "32", "--target-fid", "200", "--no-progress",
        "--workers", "1"]


def rows(folder: Path) -> list[tuple]:
    with read_store(folder) as store:
        return sorted((r.cell, r.status, r.steps_to_target, r.steps_run, r.best_fid, r.final_fid,
                       tuple(p.fid for p in store.history(r.id))) for r in store.runs())


def test_a_sweep_with_ensembles_stores_what_one_run_per_cell_stores(tmp_path):
    assert sweep.main([*GRID, "--out", str(tmp_path / "off"), "--ensemble", "off"]) == 0
    assert sweep.main([*GRID, "--out", str(tmp_path / "auto"), "--ensemble", "auto"]) == 0
    off, auto = rows(tmp_path / "off"), rows(tmp_path / "auto")
    assert len(off) == 6 and {r[1] for r in off} == {"reached", "not_reached"}
    assert auto == off  # cell, status, K, steps run, best and final FID, FID history: bitwise


@pytest.mark.parametrize("batch_size", [4, 8])
def test_at_ring8s_own_width_eight_runs_are_bitwise_train_alone(batch_size):
    """ring8's width 128 at small b, 8 runs: the shapes where one (R, b) tensor of logits would put a run's values in
    other SIMD lanes than train()'s (b,) tensor, and where the earlier ensemble drifted from train() by 1e-8."""
    config = get_preset("ring8").with_(max_steps=30, eval_every=10, target_fid=1e-9, floor=False, device="cpu",
                                       batch_size=batch_size, n_eval=200, n_reference=2000)
    seeds = tuple(range(8))
    results, thetas = together(config, seeds)
    for seed, many in zip(seeds, results, strict=True):
        single, theta = alone(config, seed)
        assert_same_run(many, single, thetas[seed], theta)


def test_a_bad_ensemble_flag_is_one_line_naming_the_choices(tmp_path, capsys):
    assert sweep.main([*GRID, "--out", str(tmp_path / "s"), "--ensemble", "bogus"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--ensemble must be auto, off or a positive integer" in err
    assert not (tmp_path / "s").exists()  # refused before any folder is made
