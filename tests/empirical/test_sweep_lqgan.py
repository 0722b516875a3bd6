"""A sweep of the lqgan control game: seeds trained together, the noise floor measured, the report's floor rows."""

import csv
import math
from pathlib import Path

import pytest

from empirical import report, sweep
from empirical.presets import get_preset
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
