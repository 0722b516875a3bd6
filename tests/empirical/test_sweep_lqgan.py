"""A sweep of the lqgan control game: seeds trained together, the noise floor measured, the report's floor rows, and
several targets read from one sweep."""

import csv
import math
from pathlib import Path

import pytest

from empirical import report, sweep
from empirical.presets import get_preset
from empirical.stopping import steps_to
from empirical.store import Cell, read_store
from empirical.train import train

# Below the pole (b = 2: its floor is about 10× the target) and above it; runs go on to their floors.
GRID = ["--preset", "lqgan", "--batch-sizes", "2,16,64,256", "--seeds", "0,1,2", "--target-fid", "0.05",
        "--max-steps", "3000", "--no-progress"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lqgan")
    assert sweep.main([*GRID, "--out", str(out), "--workers", "2"]) == 0
    return out


def test_seeds_of_a_batch_size_are_one_bundle_and_other_benchmarks_are_not():
    lq, ring = get_preset("lqgan"), get_preset("ring8")
    cells = sweep.grid([4, 8], [0, 1, 2])
    assert [[c.seed for c in b] for b in sweep.bundles(lq.with_(optimizer="sgd"), cells)] == [[0, 1, 2], [0, 1, 2]]
    assert all(len(b) == 1 for b in sweep.bundles(ring, cells))
    assert all(len(b) == 1 for b in sweep.bundles(lq, sweep.grid([4], [0, 1], optimizers=["nsgda"])))


def test_a_swept_run_equals_train(folder):
    config = get_preset("lqgan").with_(batch_size=16, target_fid=0.05, max_steps=3000)
    alone = train(config, 1)
    with read_store(folder) as store:
        (row,) = [r for r in store.runs() if r.cell == Cell(16, 1, 1.0, "sgd")]
        stored = [p.fid for p in store.history(row.id)]
    assert (row.status, row.steps_to_target, row.steps_run) == (alone.status, alone.steps_to_target, alone.steps_run)
    assert stored == pytest.approx([p.fid for p in alone.history], rel=1e-4, abs=1e-9)


def test_below_the_pole_runs_settle_and_above_it_they_reach_and_go_on_to_their_floor(folder):
    with read_store(folder) as store:
        rows = store.runs()
    small = [r for r in rows if r.cell.batch_size == 2]
    large = [r for r in rows if r.cell.batch_size == 256]
    assert {r.status for r in small} == {"settled"} and all(r.steps_run < 3000 for r in small)
    assert {r.status for r in large} == {"reached"} and all(r.steps_run > r.steps_to_target for r in large)


def test_a_half_done_folder_resumes_without_rerunning_or_doubling_cells(folder, tmp_path):
    """Cells are stored per run, bundles are formed from the cells still to do: a sweep stopped after one batch size
    finishes the others, and every cell equals the uninterrupted sweep's."""
    assert sweep.main([*GRID, "--out", str(tmp_path), "--workers", "1", "--batch-sizes", "2"]) == 0
    assert sweep.main([*GRID, "--out", str(tmp_path), "--workers", "1", "--batch-sizes", "2,16"]) == 0
    with read_store(tmp_path) as store, read_store(folder) as reference:
        rows = [(r.cell, r.status, r.steps_to_target, r.steps_run) for r in store.runs()]
        expected = [(r.cell, r.status, r.steps_to_target, r.steps_run) for r in reference.runs()
                    if r.cell.batch_size in (2, 16)]
    assert sorted(rows) == sorted(expected)


def test_report_sets_the_floor_beside_the_exact_floor_and_predicts_b_star_from_it(folder):
    path = report.write_report(folder, n_resamples=50)
    text = path.read_text()
    assert "median floor F(b)" in text and "exact F(b)" in text
    assert "b*_floor (from floors alone)" in text
    assert "settled on a noise floor above the target" in text
    assert (folder / "floor_sgd_x1.png").stat().st_size > 10_000
    with (folder / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    by_b = {int(r["batch_size"]): r for r in rows}
    for b in (16, 64, 256):  # the linearised theory holds where the noise ball is small
        assert float(by_b[b]["floor_median"]) == pytest.approx(float(by_b[b]["floor_exact"]), rel=0.3)
    b_star_floor = float(rows[0]["b_star_floor"])
    assert math.isfinite(b_star_floor) and 2 < b_star_floor < 64


# The same grid with a tighter target beside the fixture's: the runs stop by 0.01, and K at 0.05 is read from them.
TARGETS_GRID = [*GRID[:GRID.index("--target-fid")], *GRID[GRID.index("--target-fid") + 2:], "--targets", "0.05,0.01"]


@pytest.fixture(scope="module")
def targets_folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lqgan-targets")
    assert sweep.main([*TARGETS_GRID, "--out", str(out), "--workers", "2"]) == 0
    return out


def outcomes(group: report.GroupAnalysis) -> dict[Cell, tuple[str, int | None]]:
    return {r.cell: (r.status, r.steps_to_target) for r in group.rows}


def test_the_looser_target_of_a_two_target_sweep_gives_the_k_of_a_one_target_sweep_at_it(folder, targets_folder):
    """The independent truth: the fixture, a sweep trained to 0.05 alone. Every run's outcome at 0.05, read from
    the history of a run trained on to 0.01, is the one-target run's (status and K), and so is the group's b*."""
    with read_store(folder) as store:
        (alone,) = report.analyse_store(store, 50)
    with read_store(targets_folder) as store:
        assert store.targets() == [0.05, 0.01]
        loose, tight = report.analyse_store(store, 50)
        histories = {r.cell: [(p.step, p.fid) for p in store.history(r.id)] for r in store.runs()}
    assert (loose.target_fid, tight.target_fid) == (0.05, 0.01)
    assert outcomes(loose) == outcomes(alone)
    assert sum(k is not None for _, k in outcomes(loose).values()) > sum(k is not None for _, k in
                                                                         outcomes(tight).values())
    assert (loose.b_star, loose.fit.b_star, loose.boot.b_star) == (alone.b_star, alone.fit.b_star, alone.boot.b_star)
    # at the tightest target the stored outcome is the stopper's, and reading the history gives the same K
    assert all(steps_to(histories[c], 0.01) == k for c, (_, k) in outcomes(tight).items())
    assert tight.b_star is None or tight.b_star >= loose.b_star  # b* grows as the target tightens


def test_a_batched_run_of_a_two_target_sweep_equals_train_at_the_tightest(targets_folder):
    config = get_preset("lqgan").with_(batch_size=16, target_fid=0.01, max_steps=3000)
    alone = train(config, 2)
    with read_store(targets_folder) as store:
        (row,) = [r for r in store.runs() if r.cell == Cell(16, 2, 1.0, "sgd")]
        stored = [p.fid for p in store.history(row.id)]
    assert (row.status, row.steps_to_target, row.steps_run) == (alone.status, alone.steps_to_target, alone.steps_run)
    assert stored == pytest.approx([p.fid for p in alone.history], rel=1e-4, abs=1e-9)


def test_the_report_has_a_section_and_summary_rows_per_target(targets_folder):
    text = report.write_report(targets_folder, n_resamples=50).read_text()
    assert "## The critical batch size against the target" in text
    for t in ("0.05", "0.01"):
        assert f"## FID ≤ {t}: sgd, α_D = 0.05, α_G = 0.0125 (×1)" in text
        assert (targets_folder / f"k_n_sgd_x1_fid{t}.png").is_file()
    assert text.count("| b*_measured (argmin median SFO) |") == 2
    assert text.count("| b*_floor (from floors alone) |") + text.count("| b*_floor | — |") == 2
    assert text.count("b*_theory (sgd)") == 2
    with (targets_folder / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["target_fid"], r["batch_size"]) for r in rows] == [(t, b) for t in ("0.05", "0.01")
                                                                    for b in ("2", "16", "64", "256")]


def test_a_one_target_folder_resumes_and_refuses_a_target_list(folder, capsys):
    """The fixture's folder is written as every folder before --targets was: it resumes as it is, --targets with its
    one target is the same, and a list is refused in one line."""
    for argv in (GRID, TARGETS_GRID[:-1] + ["0.05"]):
        assert sweep.main([*argv, "--out", str(folder), "--workers", "1"]) == 0
        assert "0 new runs" in capsys.readouterr().out
    assert sweep.main([*TARGETS_GRID[:-1] + ["0.1,0.05"], "--out", str(folder), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a sweep for the one target 0.05, not 0.1,0.05" in err, err
