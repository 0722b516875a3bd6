"""Sweeps: results independent of the worker count, resume after kill -9, concurrent sweeps, bad input."""

import math
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


# ---------------------------------------------------------------------------------------------------------------
# The CLI with a stand-in executor (no training): which cells it runs and stores, and what it says about them.


def _fake_outcome(base, cell, status: str) -> sweep.Outcome:
    from empirical.train import EvalPoint, RunResult

    if status == "error":
        return sweep.Outcome(cell, None, "RuntimeError: boom")
    nan = math.nan
    points = [EvalPoint(step=s, fid=f, loss_d=nan, loss_g=nan, grad_norm_d=nan, grad_norm_g=nan, balance_ratio=nan,
                        seconds=0.0) for s, f in ((0, 300.0), (10, 150.0))]
    k = 10 if status == "reached" else None
    return sweep.Outcome(cell, RunResult(cell.config(base), cell.seed, status, k, 10,
                                         10 if status == "diverged" else None, "cpu", 0.0, points))


@pytest.fixture
def fake_runs(monkeypatch):
    """sweep.execute replaced: records the cells it is given; statuses[(b, seed)] picks each outcome (default
    reached)."""
    given: list = []
    statuses: dict = {}

    def execute(base, cells, workers, *args, **kwargs):
        given.extend(cells)
        for cell in cells:
            yield _fake_outcome(base, cell, statuses.get((cell.batch_size, cell.seed), "reached"))

    monkeypatch.setattr(sweep, "execute", execute)
    return given, statuses


def test_a_custom_batch_size_list_gives_exactly_those_cells(tmp_path, capsys, fake_runs):
    given, _ = fake_runs
    out = tmp_path / "out"
    assert sweep.main(["--out", str(out), "--batch-sizes", "24, 3,5,24", "--seeds", "1,0", "--no-progress"]) == 0
    expected = [(3, 0), (3, 1), (5, 0), (5, 1), (24, 0), (24, 1)]  # duplicates once; smallest b first
    assert [(c.batch_size, c.seed) for c in given] == expected
    assert sorted((r[0].batch_size, r[0].seed) for r in table(out)) == expected
    assert capsys.readouterr().out.startswith(f"{out}: 6 new runs, 6 of 6 cells done in ")


@pytest.mark.parametrize("bad, message", [
    ("-4,8", "--batch-sizes must be positive, got [-4, 8]"),
    ("4.5", "--batch-sizes must be a comma-separated list, got '4.5'"),
    ("4;8", "--batch-sizes must be a comma-separated list, got '4;8'"),
    (",", "--batch-sizes is empty"),
    ("", "--batch-sizes is empty"),
])
def test_invalid_batch_size_lists_give_one_line(tmp_path, capsys, fake_runs, bad, message):
    assert_refused_in_one_line([f"--batch-sizes={bad}", "--no-progress"], message, tmp_path / "out", capsys)
    assert fake_runs[0] == []


def test_the_cli_states_failed_diverged_and_unreached_runs_with_their_counts(tmp_path, capsys, fake_runs):
    _, statuses = fake_runs
    statuses.update({(8, 1): "diverged", (16, 0): "not_reached", (16, 1): "error"})
    out = tmp_path / "out"
    args = ["--out", str(out), "--batch-sizes", "8,16", "--seeds", "0,1", "--workers", "1"]
    assert sweep.main(args) == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.replace("\r", "\n").splitlines() if line.startswith(sweep.PROG)]
    assert errors == [f"{sweep.PROG}: run failed, sweep goes on: b=16 seed=1: error: RuntimeError: boom",
                      f"{sweep.PROG}: error: 1 runs failed (see above); run the same command to retry them"]
    # The progress bar names each run's outcome as it finishes.
    for note in ("b=8 seed=0: K=10", "b=8 seed=1: diverged", "b=16 seed=0: not_reached"):
        assert f"last {note}" in captured.err
    assert captured.out.startswith(f"{out}: 3 new runs, 3 of 4 cells done in ")
    assert sorted((r[0].batch_size, r[0].seed, r[1]) for r in table(out)) == [
        (8, 0, "reached"), (8, 1, "diverged"), (16, 0, "not_reached")]
    # A rerun retries only the failed cell: failing again it is still the one failure, then it succeeds.
    statuses.pop((8, 1)), statuses.pop((16, 0))
    assert sweep.main([*args, "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{out}: 0 new runs, 3 of 4 cells done in ")
    assert captured.err.endswith(f"{sweep.PROG}: error: 1 runs failed (see above); run the same command to retry "
                                 "them\n")
    statuses.clear()
    assert sweep.main([*args, "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith(f"{out}: 1 new runs, 4 of 4 cells done in ")


@pytest.mark.parametrize("bad, message", [
    ("", "--targets is empty"),
    (",", "--targets is empty"),
    ("4,x", "--targets must be a comma-separated list, got '4,x'"),
    ("4,-1", "--targets must be positive, got [4.0, -1.0]"),
    ("4,0", "--targets must be positive"),
    ("nan", "--targets must be positive"),
    ("inf,2", "--targets must be finite, got [inf, 2.0]"),
])
def test_invalid_target_lists_give_one_line(tmp_path, capsys, fake_runs, bad, message):
    assert_refused_in_one_line([f"--targets={bad}", "--no-progress"], message, tmp_path / "out", capsys)
    assert fake_runs[0] == []


def test_targets_and_target_fid_together_give_one_line(tmp_path, capsys, fake_runs):
    assert_refused_in_one_line(["--targets", "4,2", "--target-fid", "2", "--no-progress"],
                               "give --targets or --target-fid, not both", tmp_path / "out", capsys)


def test_a_folder_of_several_targets_resumes_with_those_only(tmp_path, capsys, fake_runs):
    """The runs stop by the tightest target (the folder's target_fid); the list is the folder's, in any order, and
    another list, or the one-target form, is refused in one line before any run."""
    given, _ = fake_runs
    out = tmp_path / "out"
    args = ["--out", str(out), "--batch-sizes", "4,8", "--seeds", "0", "--no-progress"]
    assert sweep.main([*args, "--targets", "2,8,4,8"]) == 0
    with read_store(out) as store:
        assert store.targets() == [8.0, 4.0, 2.0] and store.base_config().target_fid == 2.0
    with sqlite3.connect(out / DB_NAME) as db:  # every run trained to the tightest target
        assert db.execute("SELECT DISTINCT target_fid FROM runs").fetchall() == [(2.0,)]
    capsys.readouterr()
    assert sweep.main([*args, "--targets", "4,8,2", "--batch-sizes", "4,8,16"]) == 0  # order free: resumes
    assert len(given) == 3
    for other in (["--targets", "8,2"], ["--target-fid", "2"], ["--targets", "8,4,2,1"]):
        capsys.readouterr()
        assert sweep.main([*args, *other]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error:" in err, err
    assert len(given) == 3
