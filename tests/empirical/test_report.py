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


def test_report_tables_match_the_runs(tmp_path):
    fill(tmp_path, miss=(4, 2))
    path = report.write_report(tmp_path, n_resamples=50)
    text = path.read_text()
    for b in BATCHES[1:]:
        ks = sorted(k_of(b, s, 1.0) for s in range(3))
        assert f"| {b} | 3/3 | {ks[1]} | {ks[0]}–{ks[2]} | {ks[1] * b} |" in text
    # b = 4 lost a seed: the median of (K, K, ∞) is the larger reached K, and b = 4 cannot be b*
    ks4 = sorted(k_of(4, s, 1.0) for s in range(2))
    assert f"| 4 | 2/3 | {ks4[1]} | {ks4[0]}–{ks4[1]} | {ks4[1] * 4} |" in text
    assert "b = 4 (2/3)" in text
    assert "| b*_measured (argmin median SFO) | 8 |" in text  # N = b·K on the grid is smallest at b = 8
    assert "b*_fit = 2c | 6" in text
    for name in ("k_n_adam_x1.png", "dynamics.png", "summary.csv", "runs.csv", "history.csv"):
        assert (tmp_path / name).is_file()
    assert (tmp_path / "k_n_adam_x1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "heatmap.png").exists()
    with (tmp_path / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["batch_size"]) for r in rows] == list(BATCHES)
    assert float(rows[1]["median_k"]) == sorted(k_of(8, s, 1.0) for s in range(3))[1]


def test_report_states_when_the_minimum_is_at_the_grid_edge(tmp_path):
    with open_store(tmp_path, BASE, "ring8") as store:
        for b in (16, 32, 64):  # K ∝ b/(b − 3): c = 3 is far below the grid, so N grows with b
            for seed in range(3):
                cell = Cell(b, seed)
                k = k_of(b, seed, 1.0)
                store.add(cell, RunResult(cell.config(BASE), seed, "reached", k, k, None, "cpu", 1.0,
                                          [EvalPoint(k, 3.0, 0.7, 0.8, 1.0, 1.0, 0.5, 1.0)]))
    text = report.write_report(tmp_path, n_resamples=20).read_text()
    assert "no interior minimum on this grid" in text and "b* is ≤ 16" in text


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
    assert "| b*_noise = B_simple: D, G, **joint** | 40, 12, **40** | D [30, 50] |" in text
    assert "5× b*_measured" in text  # b*_noise 40 against the measured b* = 8
    assert "b*_theory (adam) | — | — | out of scope: this family bounds adam" in text  # Adam bounds, SGD runs
    with (tmp_path / "summary.csv").open() as f:
        row = next(csv.DictReader(f))
    assert float(row["b_star_noise"]) == 40.0
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
    assert "| b*_theory (adam) | — | — | out of scope" not in text
