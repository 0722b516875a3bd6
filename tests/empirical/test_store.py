"""The sweep store: one transaction per run, no duplicates, refusal of foreign configs and corrupt files."""

import csv
import gzip
import json
import math
import shutil
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import replace

import pytest

from empirical.config import TrainConfig, config_from_dict
from empirical.errors import EmpiricalInputError
from empirical.published import RESULTS
from empirical.store import DB_NAME, MEASURE_COLUMNS, Cell, open_store, read_store
from empirical.train import EvalPoint, RunResult

BASE = TrainConfig(max_steps=100, eval_every=10, target_fid=5.0)


def result(cell: Cell, status="reached", k=40) -> RunResult:
    history = [EvalPoint(0, 200.0, math.nan, math.nan, math.nan, math.nan, math.nan, 0.0, 0, 0.0)]
    history += [EvalPoint(s, 200.0 / s, 0.7, 0.7, 1.0, 2.0, 0.5, 0.01 * s, 8, 0.9) for s in range(10, k + 1, 10)]
    return RunResult(cell.config(BASE), cell.seed, status, k if status == "reached" else None, k, None, "cpu", 1.5,
                     history)


def test_runs_and_history_round_trip(tmp_path):
    cell = Cell(16, 3, 0.5, "adam")
    with open_store(tmp_path, BASE, "ring8") as store:
        assert store.add(cell, result(cell))
    with read_store(tmp_path) as store:
        (row,) = store.runs()
        assert row.cell == cell
        assert (row.status, row.steps_to_target, row.sfo, row.steps_run) == ("reached", 40, 640, 40)
        assert (row.lr_d, row.lr_g) == (BASE.lr_d * 0.5, BASE.lr_g * 0.5)
        assert row.best_fid == 5.0 and row.final_fid == 5.0
        history = store.history(row.id)
        assert history[1:] == result(cell).history[1:]
        assert math.isnan(history[0].loss_d) and history[0].fid == 200.0  # NaN survives SQLite's NULL
        assert store.base_config() == BASE
        assert store.meta("preset") == "ring8"


def test_a_cell_is_stored_once(tmp_path):
    cell = Cell(8, 0)
    with open_store(tmp_path, BASE, "ring8") as store:
        assert store.add(cell, result(cell, k=30))
        assert not store.add(cell, result(cell, k=50))  # a second sweep finishing the same cell
        assert store.finished() == {cell}
        (row,) = store.runs()
        assert row.steps_to_target == 30
        assert len(store.history(row.id)) == 4


def test_not_reached_and_diverged_are_rows(tmp_path):
    with open_store(tmp_path, BASE, "ring8") as store:
        store.add(Cell(4, 0), result(Cell(4, 0), "not_reached", 100))
        store.add(Cell(4, 1), result(Cell(4, 1), "diverged", 20))
        rows = store.runs()
    assert [(r.status, r.steps_to_target, r.sfo) for r in rows] == [("not_reached", None, None),
                                                                      ("diverged", None, None)]


def test_another_config_in_the_same_folder_is_refused(tmp_path):
    open_store(tmp_path, BASE, "ring8").close()
    with pytest.raises(EmpiricalInputError, match=r"another config \(target_fid 5.0 -> 6.0\)"):
        open_store(tmp_path, BASE.with_(target_fid=6.0), "ring8")
    # the grid's own axes (batch size, optimizer) may differ
    open_store(tmp_path, BASE.with_(batch_size=512, optimizer="rmsprop"), "ring8").close()


NEW_FIELDS = ("data_limit", "lr_table", "eval_growth", "measure_batch", "g_fresh_z")  # added after folders existed


def test_a_folder_written_before_new_config_fields_still_opens(tmp_path):
    open_store(tmp_path, BASE, "ring8").close()
    old = {k: v for k, v in BASE.to_dict().items() if k not in NEW_FIELDS}
    with sqlite3.connect(tmp_path / DB_NAME) as db:  # as an older version wrote it
        db.execute("UPDATE meta SET value = ? WHERE key = 'base_config'", (json.dumps(old, sort_keys=True),))
    with open_store(tmp_path, BASE, "ring8") as store:  # the same settings: accepted, missing keys at defaults
        assert store.base_config() == BASE
    with read_store(tmp_path) as store:
        assert store.base_config() == BASE
    with pytest.raises(EmpiricalInputError, match=r"another config \(eval_growth 0.0 -> 0.1\)"):
        open_store(tmp_path, BASE.with_(eval_growth=0.1), "ring8")


def test_a_stored_config_with_a_field_this_version_lacks_is_one_line():
    with pytest.raises(EmpiricalInputError, match="unknown field.* colour: it was written by another version"):
        config_from_dict({**BASE.to_dict(), "colour": "red"})


def test_cells_of_a_table_config_take_the_tables_rates_per_optimizer():
    base = TrainConfig(lr_d=3e-4, lr_g=1e-4, lr_table="paper-wgangp")
    rmsprop = Cell(8, 0, 0.5, "rmsprop").config(base)
    assert (rmsprop.lr_d, rmsprop.lr_g, rmsprop.lr_table) == (0.5e-4, 1.5e-4, None)
    assert (Cell(8, 0).config(base).lr_d, Cell(8, 0).config(base).lr_g) == (3e-4, 1e-4)
    with pytest.raises(EmpiricalInputError, match="no rates for optimizer 'sgd'"):
        Cell(8, 0, 1.0, "sgd").config(base)


def test_a_corrupt_database_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / DB_NAME
    garbage = b"this is not an SQLite database\n" * 200
    path.write_bytes(garbage)
    with pytest.raises(EmpiricalInputError, match="not a readable sweep database"):
        open_store(tmp_path, BASE, "ring8")
    with pytest.raises(EmpiricalInputError, match="not a readable sweep database"):
        read_store(tmp_path)
    assert path.read_bytes() == garbage
    assert {p.name for p in tmp_path.iterdir()} <= {DB_NAME, f"{DB_NAME}.lock"}  # no journal, no WAL


def test_sweeps_started_together_all_open_the_same_store(tmp_path):
    # Regression: two sweeps creating one folder's database at once used to fail with "database is locked"
    # or see a half-made file. Threads race as well as processes do (each opens its own connection).
    def open_and_close(folder):
        open_store(folder, BASE, "ring8").close()

    for i in range(5):
        folder = tmp_path / str(i)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(open_and_close, [folder] * 8))  # re-raises the first failure
        store = read_store(folder)
        assert store.base_config() == BASE
        store.close()


def test_a_foreign_sqlite_file_is_refused(tmp_path):
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        db.execute("CREATE TABLE something (x)")
    with pytest.raises(EmpiricalInputError, match="not a sweep database"):
        open_store(tmp_path, BASE, "ring8")


def test_reading_a_folder_without_a_sweep_is_an_error(tmp_path):
    with pytest.raises(EmpiricalInputError, match="holds no sweep"):
        read_store(tmp_path)


def test_csv_export_is_tidy(tmp_path):
    with open_store(tmp_path, BASE, "ring8") as store:
        for cell in (Cell(8, 0), Cell(16, 0)):
            store.add(cell, result(cell))
        runs_csv, history_csv = store.export_csv(tmp_path)
    lines = runs_csv.read_text().splitlines()
    assert lines[0].startswith("id,batch_size,seed,lr_scale,optimizer,status,steps_to_target,sfo")
    assert len(lines) == 3
    history = history_csv.read_text().splitlines()
    assert history[0].startswith("batch_size,seed,lr_scale,optimizer,run_id,step,fid")
    assert len(history) == 1 + 2 * 5


def _downgrade_to_the_old_check(path) -> None:
    """Rebuild the runs table with the CHECK of folders made before 'settled' existed (rows and history kept)."""
    from empirical import store as store_module

    start = store_module._TABLES.index("CREATE TABLE IF NOT EXISTS runs")
    end = store_module._TABLES.index("CREATE TABLE IF NOT EXISTS history")
    old = store_module._TABLES[start:end].replace("'settled', ", "").replace("IF NOT EXISTS runs", "runs_old")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA foreign_keys = OFF")
    db.executescript(f"BEGIN; {old}; INSERT INTO runs_old SELECT * FROM runs; DROP TABLE runs; "
                     "ALTER TABLE runs_old RENAME TO runs; COMMIT;")
    assert "'settled'" not in db.execute("SELECT sql FROM sqlite_master WHERE name = 'runs'").fetchone()[0]
    db.close()


def test_a_folder_made_before_settled_existed_takes_it_and_keeps_its_runs(tmp_path):
    """Opening an old folder rebuilds its runs table with today's CHECK, keeping every run and its history."""
    old_run = result(Cell(8, 1), "not_reached", 100)
    with open_store(tmp_path, BASE, "ring8") as store:
        store.add(Cell(8, 1), old_run)
    _downgrade_to_the_old_check(tmp_path / DB_NAME)
    with open_store(tmp_path, BASE, "ring8") as store:
        assert store.add(Cell(4, 0), result(Cell(4, 0), "settled", 60))
        rows = {r.cell: r for r in store.runs()}
        assert rows[Cell(4, 0)].status == "settled"
        assert rows[Cell(8, 1)].status == "not_reached"
        assert store.history(rows[Cell(8, 1)].id)[1:] == old_run.history[1:]


MEASURED = {"grad_sq_d": 0.25, "grad_sq_g": 1.5e-3, "vi_gap_d": -0.125, "vi_gap_g": 2.0}


def measured_result(cell: Cell) -> RunResult:
    run = result(cell)
    return RunResult(run.config, run.seed, run.status, run.steps_to_target, run.steps_run, None, "cpu", 1.5,
                     [replace(p, **MEASURED) for p in run.history])


def test_the_theorys_measures_round_trip_and_are_exported(tmp_path):
    cell = Cell(16, 0)
    with open_store(tmp_path, BASE.with_(measure_batch=64), "ring8") as store:
        store.add(cell, measured_result(cell))
        store.add(Cell(8, 0), result(Cell(8, 0)))  # not measured: NULL, read back as None
        rows = {r.cell: r for r in store.runs()}
        assert store.history(rows[cell].id)[1:] == measured_result(cell).history[1:]
        assert all(p.grad_sq_d is None and p.vi_gap_g is None for p in store.history(rows[Cell(8, 0)].id))
        _, history_csv = store.export_csv(tmp_path)
    with history_csv.open() as f:
        rows = [row for row in csv.DictReader(f) if row["batch_size"] == "16"]
    assert {name: float(rows[-1][name]) for name in MEASURED} == MEASURED


def _drop_measure_columns(path) -> None:
    """Make the history table a folder written before the measures existed had (rows kept)."""
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        for name in MEASURE_COLUMNS:
            db.execute(f"ALTER TABLE history DROP COLUMN {name}")


def test_a_folder_made_before_the_measures_opens_resumes_and_keeps_its_runs(tmp_path):
    """Read-only it reads None for the missing columns; a sweep adds them (nullable) and stores measured runs.
    Measuring changes no trajectory, so a folder made without it takes runs with it (a preset that now measures
    resumes its old folders); the G step's fresh z changes the runs, so it is another config."""
    old = result(Cell(8, 1))
    with open_store(tmp_path, BASE, "ring8") as store:
        store.add(Cell(8, 1), old)
    _drop_measure_columns(tmp_path / DB_NAME)
    with read_store(tmp_path) as store:
        (row,) = store.runs()
        assert store.history(row.id)[1:] == old.history[1:]
        _, history_csv = store.export_csv(tmp_path)
    assert history_csv.read_text().splitlines()[0].endswith("grad_sq_d,grad_sq_g,vi_gap_d,vi_gap_g")
    with open_store(tmp_path, BASE.with_(measure_batch=1024), "ring8") as store:
        assert store.add(Cell(16, 0), measured_result(Cell(16, 0)))
        assert store.finished() == {Cell(8, 1), Cell(16, 0)}
        rows = {r.cell: r for r in store.runs()}
        assert store.history(rows[Cell(8, 1)].id)[1:] == old.history[1:]
        assert store.history(rows[Cell(16, 0)].id)[-1].vi_gap_d == MEASURED["vi_gap_d"]
    with pytest.raises(EmpiricalInputError, match=r"another config \(g_fresh_z False -> True\)"):
        open_store(tmp_path, BASE.with_(g_fresh_z=True), "ring8")


def test_several_targets_are_kept_loosest_first_and_resume_only_with_the_same_list(tmp_path):
    with open_store(tmp_path, BASE, "ring8", [20, 5.0, 10, 20]) as store:
        assert store.targets() == [20.0, 10.0, 5.0]
    with open_store(tmp_path, BASE, "ring8", [5, 10, 20]) as store:  # the same list in another order
        assert store.meta("targets") == "[20.0, 10.0, 5.0]"
    with read_store(tmp_path) as store:
        assert store.targets() == [20.0, 10.0, 5.0]
    for other, words in (([10, 5], "for targets 20,10,5, not 10,5"), (None, "for targets 20,10,5, not 5;")):
        with pytest.raises(EmpiricalInputError, match=words):
            open_store(tmp_path, BASE, "ring8", other)


def test_a_one_target_folder_is_written_as_before_and_refuses_a_target_list(tmp_path):
    for targets in (None, [5.0]):  # --targets 5 is --target-fid 5
        with open_store(tmp_path, BASE, "ring8", targets) as store:
            assert store.targets() == [5.0]
    with closing(sqlite3.connect(tmp_path / DB_NAME)) as db:
        assert {k for (k,) in db.execute("SELECT key FROM meta")} == {"schema", "preset", "base_config"}
    with pytest.raises(EmpiricalInputError, match="for the one target 5, not 10,5; resume it with --targets 5"):
        open_store(tmp_path, BASE, "ring8", [10, 5])


@pytest.mark.parametrize("targets, message", [
    ([10, 6], "the tightest target 6 must be the config's target_fid 5"),
    ([10, -5], "targets must be positive finite numbers"),
    ([math.inf, 5], "targets must be positive finite numbers"),
    ([], "targets must be positive finite numbers, got none"),
])
def test_a_bad_target_list_is_one_line_and_writes_nothing(tmp_path, targets, message):
    with pytest.raises(EmpiricalInputError, match=message):
        open_store(tmp_path / "out", BASE, "ring8", targets)
    assert not (tmp_path / "out").exists()


def test_a_committed_one_target_store_resumes_unchanged(tmp_path):
    """A folder written before --targets existed (the demo's committed lqgan store): it opens for its own config,
    reads as one target, and opening it writes no targets entry."""
    with gzip.open(RESULTS / "lqgan.db.gz", "rb") as src, open(tmp_path / DB_NAME, "wb") as dst:
        shutil.copyfileobj(src, dst)
    with read_store(tmp_path) as store:
        base, preset, n = store.base_config(), store.meta("preset"), len(store.runs())
    with open_store(tmp_path, base, preset) as store:
        assert store.targets() == [base.target_fid] and store.meta("targets") is None
        assert len(store.finished()) == n
