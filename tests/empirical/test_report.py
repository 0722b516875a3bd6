"""The report: tables equal to the stored runs, b* and fit stated, figures written, errors in one line."""

import csv
import math

import pytest

from empirical import report
from empirical.config import TrainConfig
from empirical.store import Cell, open_store
from empirical.train import EvalPoint, RunResult

BASE = TrainConfig(lr_d=1e-3, lr_g=2.5e-4, max_steps=4000, eval_every=5, target_fid=4.0, n_eval=5000)
BATCHES = (4, 8, 16, 32, 64, 128)


def k_of(b: int, seed: int, scale: float) -> int:
    """Steps on K = 200·b/(b − 3) (b*_fit = 6), seed-dependent by ±5%, slower at smaller α."""
    return round(200 / scale * b / (b - 3) * (1 + 0.05 * (seed - 1)))


def fill(folder, scales=(1.0,), miss=None, optimizer="adam"):
    with open_store(folder, BASE, "ring8") as store:
        for scale in scales:
            for b in BATCHES:
                for seed in range(3):
                    cell = Cell(b, seed, scale, optimizer)
                    k = k_of(b, seed, scale)
                    status = "not_reached" if (b, seed) == miss else "reached"
                    history = [EvalPoint(0, 250.0, *[math.nan] * 5, 0.0, 0, 0.0),
                               EvalPoint(k, 3.9, 0.7, 0.8, 1.0, 1.0, 0.5, 1.0, 8, 0.9)]
                    store.add(cell, RunResult(cell.config(BASE), seed, status, k if status == "reached" else None,
                                              k, None, "cpu", 1.0, history))


def table_row(text: str, first: str) -> list[str]:
    """The cells of the one markdown table row whose first cell is exactly `first` (a substring match would let
    "6.9" pass for "6", or "25×" for "5×")."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.startswith("|")]
    (row,) = [r for r in rows if r[0] == first]
    return row


def test_report_tables_match_the_runs(tmp_path):
    fill(tmp_path, miss=(4, 2))
    path = report.write_report(tmp_path, n_resamples=50)
    text = path.read_text()
    for b in BATCHES[1:]:
        ks = sorted(k_of(b, s, 1.0) for s in range(3))
        # every seed reached: the expected SFO with restarts is b times the mean K
        assert table_row(text, str(b)) == [str(b), "3/3", str(ks[1]), f"{ks[0]}–{ks[2]}", str(ks[1] * b),
                                           str(round(b * sum(ks) / 3))]
    # b = 4 lost a seed: the median of (K, K, ∞) is the larger reached K, and b = 4 cannot be b*; with restarts
    # the miss costs the steps it ran (k_of(4, 2)), spread over the two runs that reached
    ks4 = sorted(k_of(4, s, 1.0) for s in range(2))
    assert table_row(text, "4") == ["4", "2/3", str(ks4[1]), f"{ks4[0]}–{ks4[1]}", str(ks4[1] * 4),
                                    str(round(4 * (sum(ks4) + k_of(4, 2, 1.0)) / 2))]
    assert "- Not every run reached the target at b = 4 (2/3); " in text
    assert table_row(text, "b*_measured (argmin median SFO)")[1] == "8"  # N = b·K is smallest at b = 8
    assert table_row(text, "b*_fit = 2c")[1] == "6"  # K ≈ 200·b/(b − 3) (rounded): c = 3
    for name in ("k_n_adam_x1.png", "dynamics.png", "summary.csv", "runs.csv", "history.csv"):
        assert (tmp_path / name).is_file()
    assert (tmp_path / "k_n_adam_x1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "heatmap.png").exists()
    with (tmp_path / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["batch_size"]) for r in rows] == list(BATCHES)
    assert float(rows[1]["median_k"]) == sorted(k_of(8, s, 1.0) for s in range(3))[1]
    assert float(rows[1]["restart_sfo"]) == pytest.approx(8 * sum(k_of(8, s, 1.0) for s in range(3)) / 3)
    assert rows[1]["b_star_restart"] == table_row(text, "b*_restart (argmin expected SFO with restarts)")[1]


def test_report_states_when_the_minimum_is_at_the_grid_edge(tmp_path):
    with open_store(tmp_path, BASE, "ring8") as store:
        for b in (16, 32, 64):  # K ∝ b/(b − 3): c = 3 is far below the grid, so N grows with b
            for seed in range(3):
                cell = Cell(b, seed)
                k = k_of(b, seed, 1.0)
                store.add(cell, RunResult(cell.config(BASE), seed, "reached", k, k, None, "cpu", 1.0,
                                          [EvalPoint(k, 3.0, 0.7, 0.8, 1.0, 1.0, 0.5, 1.0)]))
    text = report.write_report(tmp_path, n_resamples=20).read_text()
    assert "no interior minimum on this grid" in text
    assert "smallest eligible batch size, b = 16, so the measured b* is ≤ 16 and this grid" in text
    # median K 246, 221, 210: the steepest fall is 246/221 = 1.11× from b = 16 to 32
    assert "(at its steepest, from b = 16 to 32, K falls 1.11× while b grows 2×)" in text


def test_learning_rate_grid_gets_a_heat_map_and_a_section_per_scale(tmp_path):
    fill(tmp_path, scales=(0.5, 1.0, 2.0))
    text = report.write_report(tmp_path, n_resamples=20).read_text()
    assert (tmp_path / "heatmap.png").is_file()
    for scale, lr in ((0.5, 5e-4), (1.0, 1e-3), (2.0, 2e-3)):
        assert f"## adam, α_D = {lr:g}, α_G = {lr / 4:g} (×{scale:g})" in text


def test_theory_rows_use_the_sweep_learning_rates():
    (adam, *_) = report.theory_predictions(2e-4, 5e-5)
    from theory.analysis import ConstantValue

    direct = report.analyse(report.FAMILIES["adam"], report.resolve_constants(
        report.FAMILIES["adam"], {"alpha_D": 2e-4, "alpha_G": 5e-5}), ConstantValue(
        "epsilon", report.FAMILIES["adam"].epsilon.value, "default"))
    assert adam.family == "adam"
    assert adam.b_star_joint == pytest.approx(direct.joint.b_star)
    assert adam.b_star_d == pytest.approx(direct.players["D"].b_star)


@pytest.mark.parametrize("args, message", [
    (["{tmp}/nothing"], "holds no sweep"),
    (["{tmp}", "--bootstrap", "0"], "--bootstrap must be at least 1"),
    (["{tmp}", "--constants", "{tmp}/missing.json"], "missing.json"),
])
def test_report_errors_are_one_line(tmp_path, capsys, args, message):
    fill(tmp_path)
    status = report.main([a.format(tmp=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert status == 2 and message in err and err.count("\n") == 1, err


def test_a_single_eligible_batch_size_is_reported_not_a_crash(tmp_path):
    with open_store(tmp_path, BASE, "ring8") as store:
        for seed in range(2):
            cell = Cell(64, seed)
            store.add(cell, RunResult(cell.config(BASE), seed, "reached", 100, 100, None, "cpu", 1.0,
                                      [EvalPoint(100, 3.0, 0.7, 0.8, 1.0, 1.0, 0.5, 1.0)]))
    text = report.write_report(tmp_path, n_resamples=10).read_text()
    assert "Only b = 64 had every seed reach the target" in text
    assert "| b*_measured (argmin median SFO) | 64 |" in text


def test_measured_constants_give_theory_and_noise_scale_rows(tmp_path, capsys):
    from theory import critical
    from theory.schema import write_constants

    fill(tmp_path, optimizer="sgd")  # the sgd families describe SGD runs
    constants = {"alpha_D": 9.0, "alpha_G": 9.0,  # the report puts each group's α in their place
                 "smoothness_D": 50.0, "smoothness_G": 20.0, "sigma2_D": 60.0, "sigma2_G": 70.0,
                 "gap_D": 1.4, "gap_G": 0.7}
    path = tmp_path / "c.json"
    write_constants(path, constants, {"preset": "test"}, epsilon={"sgd-frozen": 2.0},
                    noise_scale={"D": {"value": 40.0, "interval": [30.0, 50.0]}, "G": 12.0})
    text = report.write_report(tmp_path, str(path), n_resamples=20).read_text()
    # b*_theory is what theory.critical prints for the same constants, α and ε
    assert critical.main(["--family", "sgd-frozen", "--constants", str(path), "--alpha-d", "1e-3",
                          "--alpha-g", "2.5e-4", "--json"]) == 0
    b = __import__("json").loads(capsys.readouterr().out)["b_star"]
    assert b["D"] == pytest.approx(2 * 50.0 * 1e-3 * 60.0 / 4.0)  # 2·L·α·σ²/ε², C = 0
    assert f"**{b['joint']:.3g}**" in text and "b*_theory (sgd-frozen)" in text
    # B_simple is set beside b* doubled (b* = 2c ↔ 2·B_noise): 2·40 = 80 = 10× the measured b* = 8, 80/6.x = 13×
    # b*_fit; B_simple itself stays in the row as a value, with its own interval.
    b_fit = float(next(x for x in text.splitlines() if x.startswith("| b*_fit = 2c |")).split("|")[2])
    assert round(80 / b_fit) == 13
    assert ("| 2·B_simple (the template's b* = 2c ↔ 2·B_noise): D, G, **joint** | 80, 24, **80** | D [60, 100] | "
            "10× b*_measured; 13× b*_fit; B_simple = tr Σ/‖G‖² of the reference run (McCandlish's noise scale): D 40, "
            "G 12, joint (the larger) 40, D [30, 50] |") in text.splitlines()
    assert ("| b*_theory (adam) | — | — | out of scope: this family bounds amsgrad runs, these are sgd |"
            in text.splitlines())  # an Adam-type bound, SGD runs
    with (tmp_path / "summary.csv").open() as f:
        row = next(csv.DictReader(f))
    assert float(row["b_star_noise"]) == 80.0 and float(row["b_simple"]) == 40.0
    assert float(row["b_star_theory_sgd-frozen"]) == pytest.approx(b["joint"]) and row["b_star_theory_adam"] == ""


def test_shipped_constants_are_used_only_for_the_config_they_describe(tmp_path):
    from empirical.presets import get_preset
    from theory.measured import load_measured

    ring8 = get_preset("ring8")
    choice = report.choose_constants(None, "ring8", ring8.with_(batch_size=8, max_steps=99))
    assert choice.file is not None and choice.file.values == load_measured("ring8").values
    other = report.choose_constants(None, "ring8", ring8.with_(target_fid=2.0))
    assert other.file is None and "target_fid differ" in other.note
    assert report.choose_constants(None, "custom", ring8).file is None


@pytest.mark.parametrize("preset", ["ring8", "grid25", "digits"])
def test_the_shipped_constants_match_their_presets(preset):
    from empirical.presets import get_preset

    assert report.choose_constants(None, preset, get_preset(preset)).file is not None


def test_a_field_missing_from_a_constants_files_config_compares_at_its_default(monkeypatch):
    # A file written before a config field existed was measured at that field's default.
    import dataclasses

    from empirical.presets import get_preset
    from theory.measured import load_measured

    ring8, shipped = get_preset("ring8"), load_measured("ring8")
    older = {k: v for k, v in shipped.source["preset_config"].items() if k not in ("depth", "d_norm", "eval_growth")}
    monkeypatch.setattr(report, "load_measured", lambda preset: dataclasses.replace(
        shipped, source={**shipped.source, "preset_config": older}))
    assert report.choose_constants(None, "ring8", ring8).file is not None  # depth 3, d_norm batch: the defaults
    assert "depth differ" in report.choose_constants(None, "ring8", ring8.with_(depth=2)).note


def test_a_local_dip_in_the_sfo_is_not_called_a_minimum(tmp_path):
    ks = {4: 100, 8: 120, 16: 130, 32: 60}  # SFO 400, 960, 2080, 1920: smallest at b = 4, a dip from 16 to 32
    with open_store(tmp_path, BASE, "ring8") as store:
        for b, k in ks.items():
            for seed in range(3):
                cell = Cell(b, seed)
                store.add(cell, RunResult(cell.config(BASE), seed, "reached", k, k, None, "cpu", 1.0,
                                          [EvalPoint(k, 3.0, 0.7, 0.8, 1.0, 1.0, 0.5, 1.0)]))
    text = report.write_report(tmp_path, n_resamples=20).read_text()
    assert "no interior minimum on this grid" in text and "K never falls" not in text
    assert "only locally (from b = 16 to 32, 2.17× while b grows 2×)" in text


def test_a_bound_family_is_set_beside_runs_of_the_optimizer_it_models_only(tmp_path):
    """An SGD bound fed Adam's α says nothing about Adam runs: the report gives no number, only the reason."""
    fill(tmp_path, optimizer="adam")
    text = report.write_report(tmp_path, n_resamples=20).read_text()
    assert "| b*_theory (sgd-frozen) | — | — | out of scope: this family bounds sgd runs, these are adam |" in text
    assert "| b*_theory (sgd) | — | — | out of scope" in text
    # torch's Adam is not monotone: the Adam-type families, which assume it is, are out of scope there too
    assert "| b*_theory (adam) | — | — | out of scope: this family bounds amsgrad runs, these are adam |" in text
    fill(tmp_path / "ams", optimizer="amsgrad")
    text = report.write_report(tmp_path / "ams", n_resamples=20).read_text()
    assert "| b*_theory (adam) | — | — | out of scope" not in text
    assert "| b*_theory (amsgrad-l1) | — | — | out of scope" not in text


def test_the_theorys_own_measure_gets_its_section_figure_and_csv(tmp_path):
    """Runs whose D measure makes K_ε,D = 96·b/(b − 4) exactly (b*_fit = 8, on the grid b*_measured = 8) and
    K_ε,G = 2·b: the section's numbers are those, and the ε-mapping reads the running mean at each FID hit."""
    from theory.schema import write_constants

    k_d = {b: 96 * b // (b - 4) for b in (5, 6, 8, 12, 20)}  # 480, 288, 192, 144, 120
    with open_store(tmp_path, BASE, "ring8") as store:
        for b, kd in k_d.items():
            for seed in range(2):
                cell, k, kg = Cell(b, seed, 1.0, "sgd"), k_of(b, seed, 1.0), 2 * b
                # D measured at step 1 (1.0) and at K_ε,D (0.0): its running mean is 1, then 1/K_ε,D ≤ 0.5 = ε².
                history = [EvalPoint(t, 3.9 if t == k else 10.0, *[math.nan] * 5, 0.0,
                                     grad_sq_d=1.0 if t == 1 else 0.0 if t == kd else None,
                                     grad_sq_g=1.0 if t == 1 else 0.0 if t == kg else None)
                           for t in sorted({0, 1, kd, kg, k})]
                store.add(cell, RunResult(cell.config(BASE), seed, "reached", k, k, None, "cpu", 1.0, history))
    path = tmp_path / "c.json"
    half = math.sqrt(0.5)
    write_constants(path, {"alpha_D": 9.0, "alpha_G": 9.0, "smoothness_D": 50.0, "smoothness_G": 20.0,
                           "sigma2_D": 60.0, "sigma2_G": 70.0, "gap_D": 1.4, "gap_G": 0.7}, {"preset": "test"},
                    epsilon={"sgd-frozen": {"value": half, "players": {"D": half, "G": half}}})
    lines = report.write_report(tmp_path, str(path), n_resamples=20).read_text().splitlines()
    assert "### The theory's own measure: the mean squared gradient norm" in lines
    # median FID K at b = 5: seeds K = round(500·0.95) = 475 and 500, median 487.5
    assert "| 5 | 480 (2/2) | 10 (2/2) | 480 (2/2) | 480 (2/2) | 487.5 (2/2) |" in lines  # stays: the same here
    assert "| mean ‖∇_D L_D‖² ≤ ε_D² (K_ε,D) | 8 | [8, 8] | 8 | [8, 8] | 4 | 96 | 1.000 |" in lines
    assert any(x.startswith("| `sgd-frozen` | ") and "—" not in x for x in lines)
    # b = 5: seed 0 hits the FID target at 475 < 480 (D's mean still 1), seed 1 at 500 (1/480); G's is 1/10 at both.
    assert "| 5 | 2/2 | 0.501 [0.00208, 1] | 1/2 | 0.1 [0.1, 0.1] | 2/2 |" in lines
    assert (tmp_path / "theory_measure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (tmp_path / "theory_measure.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 and {r["measure"] for r in rows} == {"grad_sq"}
    assert {(int(r["batch_size"]), int(r["k_eps_d"]), int(r["k_eps_g"]), int(r["k_eps_joint"])) for r in rows} == {
        (b, kd, 2 * b, kd) for b, kd in k_d.items()}
    assert all(r["k_stay_joint"] == r["k_eps_joint"] for r in rows)


def test_amsgrad_runs_without_a_vi_gap_epsilon_say_why_and_show_the_gradient_measure(tmp_path):
    """AMSGrad runs recording both measures, a constants file whose VI-gap ε was skipped (a negative mean gap): the
    in-scope measure gets no K_ε and the reason from the file; the squared-gradient measure is shown instead, and
    the Adam-type b* rows say their ε is the family's illustrative default."""
    from theory.schema import write_constants

    with open_store(tmp_path, BASE, "ring8") as store:
        for b in (4, 8, 16):
            for seed in range(2):
                cell, k = Cell(b, seed, 1.0, "amsgrad"), k_of(b, seed, 1.0)
                history = [EvalPoint(t, 3.9 if t == k else 10.0, *[math.nan] * 5, 0.0, grad_sq_d=1.0, grad_sq_g=1.0,
                                     vi_gap_d=-0.2, vi_gap_g=-0.7) for t in (1, k)]
                store.add(cell, RunResult(cell.config(BASE), seed, "reached", k, k, None, "cpu", 1.0, history))
    path = tmp_path / "c.json"
    why = "the mean vi_gap is not positive for a player (D -0.2, G -0.7): no ε_P with ε_P² = it"
    write_constants(path, {"alpha_D": 9.0, "alpha_G": 9.0, "beta1_D": 0.5, "beta1_G": 0.5, "beta2_D": 0.999,
                           "beta2_G": 0.999, "sigma2_D": 60.0, "sigma2_G": 70.0, "grad_bound_D": 1.0,
                           "grad_bound_G": 1.0, "dist_D": 0.1, "dist_G": 0.1, "dim_D": 100, "dim_G": 100,
                           "h_max_D": 1.0, "h_max_G": 1.0, "h_min_D": 1e-8, "h_min_G": 1e-8},
                    {"preset": "test", "epsilon_skipped": {"adam": why, "adam-cs": why, "amsgrad-l1": why}},
                    epsilon={"sgd-frozen": {"value": 2.0, "players": {"D": 1.5, "G": 2.0}}})
    lines = report.write_report(tmp_path, str(path), n_resamples=20).read_text().splitlines()
    assert (f"- The mean variational-inequality gap: no K_ε, since the constants give no ε for it ({why})."
            in lines)
    assert "### The theory's own measure: the mean squared gradient norm" in lines
    row = next(x for x in lines if x.startswith("| b*_theory (amsgrad-l1)"))
    assert f"ε_D/G is the family's illustrative default ({why}), so this b* is not a prediction" in row


def test_b_star_fit_and_its_interval_on_an_exact_hyperbola(tmp_path):
    """Median K = K∞·b/(b − c) exactly (K∞ = 105, c = 3: K = 420, 210, 168, 140, 120 at b = 4, 6, 8, 12, 24; seeds
    at K − d, K, K + d), so the fit must find c = 3 and b*_fit = 2c = 6; the interval printed is
    empirical.measured.bootstrap's on the same runs."""
    from empirical.measured import Outcome, bootstrap

    ks = {4: 420, 6: 210, 8: 168, 12: 140, 24: 120}
    runs = []
    with open_store(tmp_path, BASE, "ring8") as store:
        for b, k in ks.items():
            for seed, steps in enumerate((k - k // 20, k, k + k // 20)):
                cell = Cell(b, seed)
                runs.append(Outcome(b, seed, steps))
                store.add(cell, RunResult(cell.config(BASE), seed, "reached", steps, steps, None, "cpu", 1.0,
                                          [EvalPoint(steps, 3.0, 0.7, 0.8, 1.0, 1.0, 0.5, 1.0)]))
    text = report.write_report(tmp_path, n_resamples=200).read_text()
    boot = bootstrap(runs, n_resamples=200, seed=0)
    interval = f"[{boot.b_star_fit.low:.3g}, {boot.b_star_fit.high:.3g}]"
    assert boot.b_star_fit.low < 6 < boot.b_star_fit.high and boot.b_star_fit.low != boot.b_star_fit.high
    value, printed, note = table_row(text, "b*_fit = 2c")[1:]
    assert (value, printed) == ("6", interval)
    assert note == (f"fit of K∞·b/(b − c): c = 3 [{boot.c.low:.3g}, {boot.c.high:.3g}], K∞ = 105 "
                    f"[{boot.k_inf.low:.4g}, {boot.k_inf.high:.4g}], R² (log K) = 1.000, 5 points")
    measured = table_row(text, "b*_measured (argmin median SFO)")
    assert measured[1:3] == ["6", f"[{boot.b_star.low:g}, {boot.b_star.high:g}]"]  # SFO 1680, 1260, 1344, ...
    with (tmp_path / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [float(r["median_k"]) for r in rows] == list(ks.values())
    for r in rows:
        assert float(r["b_star_fit"]) == pytest.approx(6.0, rel=1e-7)
        assert float(r["c_fit"]) == pytest.approx(3.0, rel=1e-7)
        assert float(r["k_inf_fit"]) == pytest.approx(105.0, rel=1e-7)
        assert float(r["b_star_measured"]) == 6


def test_the_report_states_unreached_settled_and_diverged_runs_with_their_counts(tmp_path):
    statuses = {4: ("diverged", "not_reached", "reached"), 8: ("settled", "reached", "reached"),
                16: ("reached",) * 3, 32: ("reached", "diverged", "reached")}
    with open_store(tmp_path, BASE, "ring8") as store:
        for b, row in statuses.items():
            for seed, status in enumerate(row):
                cell, k = Cell(b, seed), 100 + seed
                reached = status == "reached"
                store.add(cell, RunResult(cell.config(BASE), seed, status, k if reached else None, k,
                                          k if status == "diverged" else None, "cpu", 1.0,
                                          [EvalPoint(k, 3.0 if reached else 9.0, 0.7, 0.8, 1.0, 1.0, 0.5, 1.0)]))
    lines = report.write_report(tmp_path, n_resamples=20).read_text().splitlines()
    assert "- Not every run reached the target at b = 4 (1/3), 8 (2/3), 32 (2/3); these runs count as K = ∞ (never " \
           "as max_steps), and such b are not eligible for b*." in lines
    assert "- 1 run(s) settled on a noise floor above the target and stopped early (b = 8): at these batch sizes " \
           "the target lies below what a constant learning rate can reach, the theory's pole, not a failure." in lines
    assert "- 2 run(s) diverged (NaN/inf); they are recorded as such." in lines
    text = "\n".join(lines)
    # K is censored at ∞: b = 4's median (102, ∞, ∞) is ∞; b = 8's (∞, 101, 102) and b = 32's (100, ∞, 102) are 102.
    # With restarts every run costs the steps it ran (k = 100 + seed here), over the runs that reached.
    assert table_row(text, "4") == ["4", "1/3", "—", "102–102", "—", str(4 * 303)]
    assert table_row(text, "8") == ["8", "2/3", "102", "101–102", "816", str(8 * 303 // 2)]
    assert table_row(text, "32") == ["32", "2/3", "102", "100–102", "3264", str(32 * 303 // 2)]
    assert table_row(text, "b*_measured (argmin median SFO)")[1] == "16"  # the only b whose seeds all reached
    # b·ERT: 1212, 1212, 1616 (16·101), 4848: the smallest b wins the tie
    assert table_row(text, "b*_restart (argmin expected SFO with restarts)")[1] == "4"
    assert "- Restarting each missed seed (its steps counted until it stopped), the expected SFO is smallest at " \
           "b = 4, not 16: a seed that misses the target early costs little, while the every-seed rule drops its " \
           "batch size." in lines


def test_a_runs_outcome_at_a_looser_target_is_read_from_its_history(tmp_path):
    """K_t is the first evaluation after step 0 at or below t; a run that never met t keeps the miss it was, and one
    that met t before diverging counts as reached at t."""
    history = [(0, 1.0), (10, 9.0), (20, 4.5), (30, 3.0), (40, 5.0)]  # step 0 below every target: never counts
    with open_store(tmp_path, BASE, "ring8") as store:
        for seed, status in enumerate(("settled", "diverged", "not_reached")):
            cell = Cell(8, seed)
            points = [EvalPoint(s, f, *[math.nan] * 5, 0.0) for s, f in history]
            store.add(cell, RunResult(cell.config(BASE), seed, status, None, 40, None, "cpu", 1.0, points))
        rows = [(r, [(p.step, p.fid) for p in store.history(r.id)]) for r in store.runs()]
    for target, expected in ((5.0, (20, 160)), (4.5, (20, 160)), (3.5, (30, 240))):
        assert {(x.status, x.steps_to_target, x.sfo) for x in (report.at_target(r, h, target) for r, h in rows)} == {
            ("reached", *expected)}
    assert [report.at_target(r, h, 2.0).status for r, h in rows] == [r.status for r, _ in rows]
    assert all(report.at_target(r, h, 2.0).steps_to_target is None for r, h in rows)
