"""The scaling laws of b*: exact power laws recovered, bootstrap intervals that hold the truth under seed noise, and
scaling.json from a real lqgan sweep with several targets and learning-rate scales."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from empirical import report, scaling, sweep
from empirical.config import TrainConfig
from empirical.scaling import Point, regress
from empirical.store import Cell, RunRow

BASE = TrainConfig(lr_d=0.05, lr_g=0.0125, max_steps=100000, eval_every=5, target_fid=0.025, n_eval=5000)
BATCHES = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256, 512)
K_INF = 2000.0


def test_an_exact_power_law_in_alpha_and_target_minus_the_floor_constant_is_recovered():
    """b* = 3·α^0.7·(t − C_F)^−1.3 on a 3 × 3 grid of (α, t), C_F = 0.01: the regression's exponents are the law's
    to round-off; without C_F subtracted they are not."""
    truth = [Point("sgd", s, 0.05 * s, t, 0.01, 3.0 * (0.05 * s) ** 0.7 * (t - 0.01) ** -1.3)
             for s in (0.5, 1.0, 2.0) for t in (0.1, 0.05, 0.025)]
    fit = regress(truth)
    assert fit.exponents == pytest.approx({"alpha": 0.7, "target": -1.3}, abs=1e-10)
    assert fit.predict(truth[4]) == pytest.approx(truth[4].value, rel=1e-10)
    naive = regress([Point(p.optimizer, p.lr_scale, p.alpha, p.target, 0.0, p.value) for p in truth])
    assert abs(naive.exponents["target"] + 1.3) > 0.1


def test_one_varying_variable_gives_one_law_and_optimizers_get_their_own_constant():
    """Only α varies: only the alpha law; two optimizers on different constants share the exponent."""
    points = [Point(o, s, 0.01 * s, 0.05, 0.0, k * (0.01 * s) ** 1.0) for o, k in (("adam", 5.0), ("sgd", 900.0))
              for s in (0.5, 1.0, 2.0, 4.0)]
    assert scaling.varying_laws(points) == ["alpha"]
    fit = regress(points)
    assert fit.exponents == pytest.approx({"alpha": 1.0}, abs=1e-10)
    assert math.exp(fit.intercepts["adam"]) == pytest.approx(5.0, rel=1e-10)
    assert regress(points[:1], ["alpha"]) is None  # one point does not determine a slope


def rows_for(scale: float, t: float, rng: np.random.Generator | None, n_seeds: int) -> list[RunRow]:
    """Runs on K = K∞·b/(b − c) with c = 2·scale·(0.1/t) (so b*_fit = 2c ∝ α·t⁻¹); b <= c·1.05 never reaches t. With
    `rng`, each run's K is multiplied by a log-normal seed factor (σ = 0.1), the same run at every target."""
    c = 2.0 * scale * 0.1 / t
    rows = []
    for b in BATCHES:
        for seed in range(n_seeds):
            noise = 1.0 if rng is None else float(np.exp(0.1 * rng.standard_normal()))
            reached = b > 1.05 * c
            k = round(K_INF * b / (b - c) * noise) if reached else None
            rows.append(RunRow(len(rows), Cell(b, seed, scale, "sgd"), "reached" if reached else "not_reached", k,
                               k and k * b, k or 500, None, None, None, 0.05 * scale, 0.0125 * scale, 1.0, "cpu"))
    return rows


def groups_for(rng: np.random.Generator | None, n_seeds: int = 3) -> list[report.GroupAnalysis]:
    out = []
    for scale in (0.5, 1.0, 2.0):
        noises = None if rng is None else rng.bit_generator.state
        for t in (0.1, 0.05, 0.025):
            if rng is not None:  # the same seeds' noise at every target: the runs are one sweep's
                rng.bit_generator.state = noises
            out.append(report.analyse_group(rows_for(scale, t, rng, n_seeds), BASE, n_resamples=5, target=t))
    return out


def test_the_laws_of_groups_on_exact_hyperbolas_are_the_generating_ones():
    """Every group's median K lies on K∞·b/(b − c) (integer rounding aside) with b*_fit = 2c = 4·α/α₀·(0.1/t):
    exponents 1 and −1 in b*_fit; C_F = 0 is said, since these groups have no floor fit."""
    analysis = scaling.analyse_scaling(groups_for(None), n_resamples=20)
    alpha, target = analysis.law("alpha", "b_star_fit"), analysis.law("target", "b_star_fit")
    assert alpha.exponent == pytest.approx(1.0, abs=0.01) and target.exponent == pytest.approx(-1.0, abs=0.01)
    assert (alpha.theory, target.theory, alpha.n_points) == (1.0, -1.0, 9)
    assert analysis.law("alpha", "b_star_floor").exponent is None  # no floors: no b*_floor, said so
    assert any(n.startswith("C_F = 0 (no floor fit)") for n in analysis.notes)
    entry = analysis.to_json()["target"]["b_star_fit"]
    assert set(entry) >= {"exponent", "interval", "theory", "n_points", "series"}
    assert entry["series"] == "b_star_fit" and len(entry["points"]) == 9


def test_the_bootstrap_interval_holds_the_true_exponent_under_seed_noise():
    """Log-normal seed noise (σ = 0.1, 5 seeds) moves the point estimate off the truth; the 90% bootstrap interval
    over seeds still contains it, and is not a point."""
    analysis = scaling.analyse_scaling(groups_for(np.random.default_rng(7), n_seeds=5), n_resamples=100)
    for law, truth in (("alpha", 1.0), ("target", -1.0)):
        fit = analysis.law(law, "b_star_fit")
        assert fit.exponent != pytest.approx(truth, abs=1e-3)
        assert fit.interval.low < truth < fit.interval.high, (law, fit)
        assert fit.n_resamples > 50


# A real sweep: the lqgan control game (batched seeds, exact FID), two targets and two learning-rate scales.
GRID = ["--preset", "lqgan", "--batch-sizes", "4,16,64,256", "--seeds", "0,1,2", "--targets", "0.1,0.05",
        "--lr-scale", "0.5,1", "--max-steps", "3000", "--no-progress"]


@pytest.fixture(scope="module")
def lqgan_folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lqgan-laws")
    assert sweep.main([*GRID, "--out", str(out), "--workers", "1"]) == 0
    return out


@pytest.fixture(scope="module")
def lqgan_report(lqgan_folder) -> Path:
    return report.write_report(lqgan_folder, n_resamples=20)


def test_a_real_sweep_writes_scaling_json_and_its_figure_first_in_the_report(lqgan_folder, lqgan_report):
    text = lqgan_report.read_text()
    laws = json.loads((lqgan_folder / "scaling.json").read_text())
    assert set(laws) == {"alpha", "target"}
    for law, theory in (("alpha", 1.0), ("target", -1.0)):
        assert set(laws[law]) == set(scaling.SERIES)
        for series, entry in laws[law].items():
            assert entry["series"] == series and entry["theory"] == theory
            assert {"exponent", "interval", "theory", "n_points"} <= set(entry)
    fit = laws["target"]["b_star_fit"]
    assert fit["n_points"] == 4 and math.isfinite(fit["exponent"]) and fit["interval"][0] <= fit["interval"][1]
    assert all(p["c_f"] > 0 for p in fit["points"])  # the floor constant of each group's floor fit
    assert (lqgan_folder / "scaling.png").is_file()
    first = text.index("## Scaling laws of b*")
    assert first < text.index("## FID ≤") and "![b* against each varied quantity" in text[first:]


def test_the_noise_law_is_recovered_beside_the_other_two():
    """b* = 2·α·s^0.8/(t − C_F) over a 2 × 2 × 3 grid of (α, t, s): all three exponents, to round-off."""
    truth = [Point("sgd", a / 0.05, a, t, 0.001, 2.0 * a * s ** 0.8 / (t - 0.001), noise=s)
             for a in (0.05, 0.1) for t in (0.1, 0.05) for s in (0.5, 1.0, 2.0)]
    assert scaling.varying_laws(truth) == ["alpha", "target", "noise"]
    assert regress(truth).exponents == pytest.approx({"alpha": 1.0, "target": -1.0, "noise": 0.8}, abs=1e-10)


def _anchors_resolve(index: Path) -> int:
    """Every [details](report.md#id) link of index.md names an <a id> of that report; the number of links."""
    links = re.findall(r"\[details\]\(([^)#]+)#([^)]+)\)", index.read_text())
    for page, anchor in links:
        assert f'<a id="{anchor}"></a>' in (index.parent / page).read_text(), (page, anchor)
    return len(links)


def test_a_folder_with_several_groups_gets_an_index_whose_links_resolve(lqgan_folder, lqgan_report):
    index = lqgan_folder / "index.md"
    text = index.read_text()
    assert text.index("## Scaling laws of b*") < text.index("## The groups")
    assert _anchors_resolve(index) == 4  # two targets × two lr scales


NOISE_GRID = ["--preset", "lqgan", "--batch-sizes", "4,16,64", "--seeds", "0,1", "--max-steps", "2000",
              "--no-progress", "--workers", "1"]


def test_folders_at_two_data_scales_give_the_noise_law_on_one_index(tmp_path):
    folders = [tmp_path / f"s{s}" for s in ("1", "2")]
    for folder, s in zip(folders, ("1", "2"), strict=True):
        assert sweep.main([*NOISE_GRID, "--data-scale", s, "--out", str(folder)]) == 0
    assert report.main([*map(str, folders), "--index", str(tmp_path / "noise"), "--bootstrap", "10"]) == 0
    laws = json.loads((tmp_path / "noise" / "scaling.json").read_text())
    assert set(laws) == {"noise"}
    fit = laws["noise"]["b_star_fit"]
    assert sorted(p["noise"] for p in fit["points"]) == [1.0, 2.0]
    assert _anchors_resolve(tmp_path / "noise" / "index.md") == 2
    assert all((f / "report.md").is_file() for f in folders)


def test_an_index_of_folders_that_differ_in_more_than_the_noise_is_a_one_line_error(tmp_path, capsys):
    folders = [tmp_path / "a", tmp_path / "b"]
    assert sweep.main([*NOISE_GRID, "--seeds", "0", "--out", str(folders[0])]) == 0
    assert sweep.main([*NOISE_GRID, "--seeds", "0", "--gp-weight", "2", "--out", str(folders[1])]) == 0
    assert report.main([*map(str, folders), "--bootstrap", "5"]) == 2  # several folders, no --index
    assert "need --index" in capsys.readouterr().err
    assert report.main([*map(str, folders), "--index", str(tmp_path / "i"), "--bootstrap", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gp_weight" in err
