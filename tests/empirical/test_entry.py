"""Sweeps of a user's own training function (--entry, empirical/entry.py): each run's K is its curve's first
crossing, --set reaches the function, resume and kill -9 hold as for a preset, bad entries are one-line errors and
a function that fails loses only its own run."""

import os
import signal
import sqlite3
import time

import pytest

from empirical import report, sweep
from empirical.store import DB_NAME, read_store
from tests.empirical.test_sweep import cli, table
from tests.empirical.user_entry import first_crossing

ENTRY = "tests.empirical.user_entry:train"
GRID = ["--entry", ENTRY, "--batch-sizes", "4,16,64", "--seeds", "0,1", "--target-fid", "0.3", "--max-steps", "300",
        "--no-progress", "--workers", "1"]


def test_each_run_stops_at_its_curves_first_crossing_and_the_report_reads_it(tmp_path):
    assert sweep.main([*GRID, "--out", str(tmp_path)]) == 0
    with read_store(tmp_path) as store:
        runs = {(r.cell.batch_size, r.cell.seed): r for r in store.runs()}
        assert store.base_config().entry == ENTRY
        history = [p.step for p in store.history(runs[64, 0].id)]
    assert len(runs) == 6
    for (b, seed), r in runs.items():
        k = first_crossing(b, seed, 0.3, 300)
        assert r.steps_to_target == k and r.status == ("reached" if k is not None else "not_reached")
    assert runs[4, 0].steps_to_target is None and runs[4, 0].steps_run == 300  # floor 0.5 > 0.3: never; max_steps
    assert history == list(range(0, runs[64, 0].steps_to_target + 1, 10))  # stopped at the crossing
    text = report.write_report(tmp_path, n_resamples=20).read_text()
    assert f"evaluated where the user's function `{ENTRY}` yields its FID" in text
    assert "| b*_measured (argmin median SFO) | 16 |" in text


def test_set_passes_keyword_arguments_and_is_part_of_the_folders_config(tmp_path, capsys):
    assert sweep.main([*GRID, "--out", str(tmp_path), "--set", "floor_scale=0.25", "--batch-sizes", "4"]) == 0
    with read_store(tmp_path) as store:
        (run,) = [r for r in store.runs() if r.cell.seed == 0]
        assert store.base_config().entry_params == '{"floor_scale": 0.25}'
    assert run.steps_to_target == first_crossing(4, 0, 0.3, 300, floor_scale=0.25) is not None  # floor 0.125
    capsys.readouterr()
    assert sweep.main([*GRID, "--out", str(tmp_path), "--set", "floor_scale=0.5", "--batch-sizes", "4"]) == 2
    assert "another config" in capsys.readouterr().err  # other parameters: another folder


def test_a_killed_entry_sweep_resumes_without_losing_or_duplicating_runs(tmp_path):
    whole = tmp_path / "whole"
    assert sweep.main([*GRID, "--out", str(whole)]) == 0
    rows = table(whole)
    slow = tmp_path / "slow"
    process = cli(*GRID, "--out", str(slow), "--set", "delay=0.004")
    deadline, finished = time.monotonic() + 120, 0
    while finished == 0 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
        try:
            with sqlite3.connect(f"file:{slow / DB_NAME}?mode=ro", uri=True) as connection:
                finished = connection.execute("SELECT count(*) FROM runs").fetchone()[0]
        except sqlite3.OperationalError:
            pass  # not created yet
    assert process.poll() is None, "the sweep ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    interrupted = table(slow)
    assert 1 <= len(interrupted) < len(rows)
    assert set(interrupted) <= set(rows)
    assert sweep.main([*GRID, "--out", str(slow), "--set", "delay=0.004"]) == 0
    assert table(slow) == rows  # the delay changes nothing the store keeps


@pytest.mark.parametrize(("argv", "words"), [
    (["--entry", "no_such_module_x:train"], "--entry no_such_module_x:train: cannot import no_such_module_x"),
    (["--entry", "tests.empirical.user_entry:nope"], "has no function 'nope'"),
    (["--entry", "train"], "--entry must be module:function"),
    (["--entry", ENTRY, "--set", "unknown=1"], "cannot be called as train(batch_size=..., seed=..., unknown=...)"),
    (["--entry", ENTRY, "--set", "seed=3"], "--set seed: the sweep sets seed itself"),
    (["--entry", ENTRY, "--set", "x"], "--set takes key=value"),
    (["--entry", ENTRY, "--lr-scale", "1,2"], "--entry sweeps batch sizes and seeds"),
    (["--set", "a=1"], "--set gives parameters of an --entry function"),
    (["--entry", ENTRY, "--measure-batch", "64"], "an --entry function's noise is measured in its loop"),
])
def test_bad_entries_are_one_line_errors_and_write_nothing(tmp_path, capsys, argv, words):
    assert sweep.main([*argv, "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and words in err, err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(("function", "words"), [
    ("failing", "RuntimeError: out of memory at b = 16"),
    ("backwards", "steps must increase, got 5 after 10"),
])
def test_a_function_that_fails_loses_its_own_run_only(tmp_path, capsys, function, words):
    argv = ["--entry", f"tests.empirical.user_entry:{function}", "--batch-sizes", "4,16,64", "--seeds", "0",
            "--target-fid", "0.5", "--max-steps", "100", "--no-progress", "--workers", "1", "--out", str(tmp_path)]
    assert sweep.main(argv) == 1
    assert words in capsys.readouterr().err
    assert sorted(r[0].batch_size for r in table(tmp_path)) == [4, 64]  # stored; b = 16 is not, and reruns later


def test_an_entry_folder_of_a_benchmark_preset_gets_no_exact_floor_of_the_benchmark(tmp_path):
    """--preset lqgan only supplies the stopping settings here: the runs are the user's, so the report sets no
    closed-form lqgan floor beside them."""
    assert sweep.main([*GRID, "--preset", "lqgan", "--floor", "true", "--batch-sizes", "16,64", "--out",
                       str(tmp_path)]) == 0
    text = report.write_report(tmp_path, n_resamples=20).read_text()
    assert "exact F(b)" not in text and "| b | runs reached |" in text


def test_a_function_that_returns_no_history_is_reported(tmp_path, capsys):
    argv = ["--entry", "tests.empirical.user_entry:not_a_history", "--batch-sizes", "4", "--seeds", "0",
            "--no-progress", "--workers", "1", "--out", str(tmp_path)]
    assert sweep.main(argv) == 1
    assert "must yield (step, fid) pairs or return a list of them, got int" in capsys.readouterr().err
