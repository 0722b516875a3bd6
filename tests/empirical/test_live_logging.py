"""Live TensorBoard logs of a sweep (--tensorboard, empirical/live_logging.py): one TensorBoard run per cell whose
FID scalars are the stored history, for single runs, seed ensembles, lqgan's batches and --entry functions; a
one-line error without tensorboardX."""

import struct
import sys
from pathlib import Path

import pytest
from tensorboardX.proto import event_pb2

from empirical import sweep
from empirical.store import read_store

TINY_RING8 = ["--preset", "ring8", "--batch-sizes", "8,64", "--seeds", "0,1", "--max-steps", "30", "--eval-every",
              "10", "--n-eval", "500", "--n-reference", "2000", "--width", "16", "--target-fid", "1e-9",
              "--no-progress", "--workers", "1"]


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] from a run's event files (TFRecord: length, its CRC, the Event, the Event's CRC)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset:offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def stored_fids(folder: Path) -> dict[tuple[int, int], list[tuple[int, float]]]:
    with read_store(folder) as store:
        return {(r.cell.batch_size, r.cell.seed): [(p.step, p.fid) for p in store.history(r.id)]
                for r in store.runs()}


@pytest.mark.parametrize("ensemble", ["auto", "off"])
def test_each_cell_is_a_tensorboard_run_whose_fids_are_the_stored_history(tmp_path, ensemble):
    logs = tmp_path / "tb"
    assert sweep.main([*TINY_RING8, "--out", str(tmp_path / "sweep"), "--ensemble", ensemble,
                       "--tensorboard", str(logs)]) == 0
    assert sorted(p.name for p in logs.iterdir()) == ["b0008-seed0-adam-x1", "b0008-seed1-adam-x1",
                                                      "b0064-seed0-adam-x1", "b0064-seed1-adam-x1"]
    for (b, seed), history in stored_fids(tmp_path / "sweep").items():
        logged = scalars(logs / f"b{b:04d}-seed{seed}-adam-x1")
        assert [s for s, _ in logged["fid"]] == [s for s, _ in history] == [0, 10, 20, 30]
        assert [v for _, v in logged["fid"]] == pytest.approx([f for _, f in history], rel=1e-6)  # float32 in files
        assert {"loss/D", "loss/G", "grad_norm/D", "grad_norm/G", "balance_ratio"} <= logged.keys()
        assert [s for s, _ in logged["loss/D"]] == [10, 20, 30]  # no losses before the first step


def test_lqgan_batches_and_entry_functions_are_logged_too(tmp_path):
    lq = tmp_path / "lq"
    assert sweep.main(["--preset", "lqgan", "--batch-sizes", "8", "--seeds", "0,1", "--max-steps", "40",
                       "--no-progress", "--workers", "1", "--out", str(tmp_path / "lqs"), "--tensorboard",
                       str(lq)]) == 0
    for (b, seed), history in stored_fids(tmp_path / "lqs").items():
        logged = scalars(lq / f"b{b:04d}-seed{seed}-sgd-x1")
        assert [v for _, v in logged["fid"]] == pytest.approx([f for _, f in history], rel=1e-6)
    user = tmp_path / "user"
    assert sweep.main(["--entry", "tests.empirical.user_entry:train", "--batch-sizes", "16", "--seeds", "0",
                       "--target-fid", "0.3", "--max-steps", "300", "--no-progress", "--workers", "1", "--out",
                       str(tmp_path / "users"), "--tensorboard", str(user)]) == 0
    ((_, history),) = stored_fids(tmp_path / "users").items()
    logged = scalars(user / "b0016-seed0-adam-x1")
    assert list(logged) == ["fid"] and len(logged["fid"]) == len(history)


def test_without_tensorboardx_it_is_a_one_line_error_before_anything_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import tensorboardX now raises ImportError
    assert sweep.main([*TINY_RING8, "--out", str(tmp_path / "x"), "--tensorboard", str(tmp_path / "tb")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "pip install 'ttur-critical-batch[tensorboard]'" in err
    assert not (tmp_path / "x").exists()
