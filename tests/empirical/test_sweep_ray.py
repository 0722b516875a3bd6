"""The Ray backend: the process pool's exact results (seed ensembles as tasks), a killed worker retried, resume
across backends, errors."""

import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
import ray

from empirical import sweep
from empirical.errors import EmpiricalInputError
from empirical.presets import get_preset
from empirical.ray_backend import RayOptions, check_address, execute_ray, ray_executor
from empirical.store import Cell, read_store
from tests.empirical.test_sweep import GRID, assert_refused_in_one_line, table

# GRID's sweep as a config and cells, for calling sweep() directly.
BASE = get_preset("ring8").with_(max_steps=60, eval_every=10, n_eval=500, n_reference=2000, width=32,
                                 target_fid=200.0)
CELLS = sweep.grid((8, 64), (0, 1, 2))


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for the module; execute_ray uses it and leaves it running."""
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[tuple]:
    """GRID's results from the process pool, one run per cell (the Ray tasks below train seed ensembles)."""
    folder = tmp_path_factory.mktemp("reference")
    assert sweep.main([*GRID, "--out", str(folder), "--workers", "2", "--ensemble", "off"]) == 0
    return table(folder)


@pytest.mark.parametrize("ensemble", ["auto", "off", "2"])
def test_ray_gives_the_process_pools_results(reference, ray_instance, tmp_path, ensemble):
    assert sweep.main([*GRID, "--out", str(tmp_path), "--backend", "ray", "--ensemble", ensemble]) == 0
    assert table(tmp_path) == reference


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _ours(pid: int) -> bool:
    """Whether `pid` descends from this process (our Ray instance's workers; never another user's)."""
    while pid > 1:
        pid = _parent(pid)
        if pid == os.getpid():
            return True
    return False


def _busy_workers() -> list[int]:
    """Our Ray workers executing a bundle of cells now: Ray titles a busy worker ray::<function name>."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(b"ray::run_bundle_task") \
                    and _ours(int(entry.name)):
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            pass  # the process ended meanwhile
    return found


def test_a_worker_killed_mid_run_is_retried_and_every_cell_is_stored_once(reference, ray_instance, tmp_path):
    killed: list[int] = []
    done = threading.Event()

    def kill_one() -> None:
        while not done.is_set() and not killed:
            for pid in _busy_workers()[:1]:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.005)

    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    try:
        added, failed = sweep.sweep(BASE, CELLS, tmp_path, preset="ring8", executor=ray_executor(RayOptions()))
    finally:
        done.set()
        killer.join()
    assert killed, "no worker was seen running a cell, so none was killed"
    assert (added, failed) == (len(CELLS), [])
    assert table(tmp_path) == reference  # each cell once (the key is UNIQUE), with the same numbers


def test_a_folder_half_done_by_the_process_pool_is_finished_by_ray(reference, ray_instance, tmp_path):
    first = CELLS[::2]
    assert sweep.sweep(BASE, first, tmp_path, preset="ring8", workers=1) == (len(first), [])
    ran: list[Cell] = []
    added, failed = sweep.sweep(BASE, CELLS, tmp_path, preset="ring8", executor=ray_executor(RayOptions()),
                                on_outcome=lambda outcome, new: ran.append(outcome.cell))
    assert sorted(ran) == sorted(set(CELLS) - set(first))  # the finished cells are not run again
    assert (added, failed) == (len(CELLS) - len(first), [])
    assert table(tmp_path) == reference


def test_an_exception_in_a_run_is_reported_and_the_other_cells_finish(ray_instance):
    # "lion" would be refused before the sweep starts (check_cells); given to execute_ray, the worker raises.
    good, bad = Cell(64, 0), Cell(64, 1, 1.0, "lion")
    outcomes = {o.cell: o for o in execute_ray(BASE, [bad, good], RayOptions())}
    assert outcomes[good].error is None and outcomes[good].result.status == "reached"
    assert outcomes[bad].result is None
    assert outcomes[bad].error.startswith("EmpiricalInputError: optimizer must be one of"), outcomes[bad].error


def test_a_data_path_missing_on_the_worker_is_an_error_naming_it(ray_instance, tmp_path, capsys):
    missing = tmp_path / "not-on-this-node"
    out = tmp_path / "out"
    # With --address the driver does not check the data (the path need exist only on the cluster's nodes); the
    # sweep uses the Ray instance this process already has.
    args = ["--preset", "ring8", "--data", "folder", "--data-path", str(missing), "--model", "dcgan",
            "--features", "inception", "--image-size", "8", "--width", "8", "--z-dim", "8", "--batch-sizes", "8",
            "--seeds", "0,1", "--no-progress", "--out", str(out), "--backend", "ray", "--address", "auto"]
    assert sweep.main(args) == 1
    err = capsys.readouterr().err
    failures = [line for line in err.splitlines() if "run failed, sweep goes on" in line]
    assert len(failures) == 2, err
    assert all("EmpiricalInputError: " in line and f"{missing} " in line and "does not exist" in line
               for line in failures), err
    with read_store(out) as store:
        assert store.runs() == []


def test_without_ray_the_backend_is_a_one_line_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    out = tmp_path / "out"
    assert sweep.main([*GRID, "--out", str(out), "--backend", "ray"]) == 2
    assert capsys.readouterr().err == ("python -m empirical.sweep: error: the ray backend needs Ray: "
                                       "pip install 'ttur-critical-batch[ray]'\n")
    assert not out.exists()


@pytest.mark.parametrize("bad, message", [
    (["--backend", "ray", "--ray-runtime-env", '{"working_dir": '], "--ray-runtime-env is not valid JSON"),
    (["--backend", "ray", "--ray-runtime-env", "[1]"], "--ray-runtime-env must be a JSON object"),
    (["--backend", "ray", "--ray-cpus", "0"], "--ray-cpus must be positive"),
    (["--backend", "ray", "--ray-max-retries", "-1"], "--ray-max-retries must be 0 or more"),
    (["--address", "auto"], "--address needs --backend ray"),
    (["--backend", "dask"], "invalid choice: 'dask'"),
])
def test_bad_ray_flags_give_one_line_and_write_nothing(tmp_path, capsys, bad, message):
    assert_refused_in_one_line([*GRID, *bad], message, tmp_path / "out", capsys)


def test_an_address_where_nothing_listens_is_a_one_line_error():
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(EmpiricalInputError, match=f"no Ray cluster at --address {address} "):
            check_address(address)
    with pytest.raises(EmpiricalInputError, match="--address must be auto, host:port or ray://host:port"):
        check_address("head-node")
