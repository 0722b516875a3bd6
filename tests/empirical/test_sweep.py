"""Sweeps: results independent of the worker count, resume after kill -9, concurrent sweeps, bad input."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from empirical import sweep
from empirical.store import DB_NAME, read_store

# A sweep small enough for the test suite: 6 cells of at most 60 steps; b = 64 reaches FID 200, b = 8 does not.
GRID = ["--preset", "ring8", "--batch-sizes", "8,64", "--seeds", "0,1,2", "--max-steps", "60", "--eval-every", "10",
        "--n-eval", "500", "--n-reference", "2000", "--width", "32", "--target-fid", "200", "--no-progress"]


def table(folder: Path) -> list[tuple]:
    """Everything deterministic about a sweep: each run's key, outcome and FID history (not wall times)."""
    with read_store(folder) as store:
        return [(r.cell, r.status, r.steps_to_target, r.steps_run, r.best_fid, r.final_fid,
                 tuple(p.fid for p in store.history(r.id))) for r in store.runs()]


def cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "empirical.sweep", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, list[tuple]]:
    folder = tmp_path_factory.mktemp("reference")
    assert sweep.main([*GRID, "--out", str(folder), "--workers", "2"]) == 0
    return folder, table(folder)


def test_the_reference_sweep_has_every_cell_once_with_both_outcomes(reference):
    _, rows = reference
    assert sorted((r[0].batch_size, r[0].seed) for r in rows) == [(8, 0), (8, 1), (8, 2), (64, 0), (64, 1), (64, 2)]
    assert {r[1] for r in rows} == {"reached", "not_reached"}


def test_worker_count_does_not_change_results(reference, tmp_path):
    folder, rows = reference
    assert sweep.main([*GRID, "--out", str(tmp_path), "--workers", "1"]) == 0
    assert table(tmp_path) == rows


def test_running_again_skips_finished_cells(reference, capsys):
    folder, rows = reference
    assert sweep.main([*GRID, "--out", str(folder), "--workers", "1"]) == 0
    assert "0 new runs" in capsys.readouterr().out
    assert table(folder) == rows


def test_a_killed_sweep_resumes_without_losing_or_duplicating_runs(reference, tmp_path):
    _, rows = reference
    process = cli(*GRID, "--out", str(tmp_path), "--workers", "1")
    db = tmp_path / DB_NAME
    deadline = time.monotonic() + 120
    finished = 0
    while finished == 0 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
        if db.exists():
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
                    finished = connection.execute("SELECT count(*) FROM runs").fetchone()[0]
            except sqlite3.OperationalError:
                pass  # the tables are being created
    assert process.poll() is None, "the sweep ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)  # the sweep and its worker, mid-run
    process.wait()
    interrupted = table(tmp_path)
    assert 1 <= len(interrupted) < len(rows)
    assert set(interrupted) <= set(rows)  # what was saved is whole and correct
    assert sweep.main([*GRID, "--out", str(tmp_path), "--workers", "1"]) == 0
    assert table(tmp_path) == rows


def test_two_sweeps_on_one_folder_do_not_corrupt_it(reference, tmp_path):
    _, rows = reference
    processes = [cli(*GRID, "--out", str(tmp_path), "--workers", "1") for _ in range(2)]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    assert table(tmp_path) == rows


def test_a_diverged_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    # SGD at α × 1e7 = 1e4 overflows to NaN within the first evaluation interval; at α × 1 it trains.
    args = [*GRID[:2], "--batch-sizes", "8", "--seeds", "0", "--max-steps", "20", "--eval-every", "10",
            "--n-eval", "500", "--n-reference", "2000", "--optimizers", "sgd", "--lr-d", "1e-3", "--lr-g", "1e-3",
            "--lr-scale", "1,1e7", "--no-progress", "--out", str(tmp_path), "--workers", "1"]
    assert sweep.main(args) == 0
    statuses = {r[0].lr_scale: r[1] for r in table(tmp_path)}
    assert statuses[1e7] == "diverged"
    assert statuses[1.0] in ("reached", "not_reached")


@pytest.mark.parametrize("bad, message", [
    (["--batch-sizes", "4,x"], "--batch-sizes must be a comma-separated list"),
    (["--batch-sizes", "0,4"], "--batch-sizes must be positive"),
    (["--lr-scale", ""], "--lr-scale is empty"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--optimizers", "lion"], "optimizer must be one of"),
    (["--preset", "nope"], "unknown preset"),
    (["--max-steps", "-3"], "max_steps must be a positive integer"),
    (["--learning-rate", "1"], "unrecognized arguments"),
    (["--device", "cuda:999"], "device 'cuda:999'"),  # no machine has it: no GPU, or too few
    (["--device", "tpu9"], "unknown device 'tpu9'"),
])
def test_bad_flags_give_one_line_and_write_nothing(tmp_path, capsys, bad, message):
    assert_refused_in_one_line(bad, message, tmp_path / "out", capsys)


def assert_refused_in_one_line(argv: list[str], message: str, out: Path, capsys) -> None:
    """sweep.main(argv) exits with status 2, prints one line containing `message`, and creates nothing at `out`."""
    try:
        status = sweep.main(["--out", str(out), *argv])
    except SystemExit as exit_:  # argparse's own errors exit directly
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2
    assert message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_a_corrupt_database_gives_one_line_and_is_left_untouched(tmp_path, capsys):
    (tmp_path / DB_NAME).write_bytes(b"\x00garbage" * 500)
    assert sweep.main([*GRID, "--out", str(tmp_path), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "not a readable sweep database" in err and err.count("\n") == 1
    assert (tmp_path / DB_NAME).read_bytes() == b"\x00garbage" * 500
    assert {p.name for p in tmp_path.iterdir()} <= {DB_NAME, f"{DB_NAME}.lock"}  # no journal, no WAL



def test_progress_bar_and_csv_export_on_a_finished_folder(reference, capsys):
    folder, rows = reference
    args = [a for a in GRID if a != "--no-progress"]
    assert sweep.main([*args, "--out", str(folder), "--workers", "1", "--export-csv"]) == 0
    captured = capsys.readouterr()
    assert "6/6" in captured.err  # the bar counts the finished cells as done
    lines = (folder / "runs.csv").read_text().splitlines()
    assert len(lines) == 1 + len(rows)
    assert "history.csv" in captured.out and (folder / "history.csv").is_file()
