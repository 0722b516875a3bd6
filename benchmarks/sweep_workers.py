"""Sweep throughput with --workers 2 against --workers 1 (the baseline) on the ring8 preset, in one process.

    python benchmarks/sweep_workers.py [--batch-sizes 4,...,512] [--seeds 0,1,2] [--workers 2]

Both sweeps run the same cells into fresh temporary folders; the script prints runs per second for each, their
ratio (goal: >= 1.7x on 2 cores), and checks that the two stores hold identical results.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from empirical.presets import get_preset
from empirical.store import read_store
from empirical.sweep import grid, sweep


def timed_sweep(cells: list, workers: int, folder: Path) -> float:
    start = time.perf_counter()
    added, failed = sweep(get_preset("ring8"), cells, folder, preset="ring8", workers=workers)
    assert added == len(cells) and not failed
    return time.perf_counter() - start


def outcomes(folder: Path) -> list[tuple]:
    with read_store(folder) as store:
        return [(r.cell, r.status, r.steps_to_target, r.best_fid) for r in store.runs()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="4,8,16,32,64,128,256,512")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    cells = grid([int(b) for b in args.batch_sizes.split(",")], [int(s) for s in args.seeds.split(",")])
    with tempfile.TemporaryDirectory() as tmp:
        one = timed_sweep(cells, 1, Path(tmp) / "one")
        many = timed_sweep(cells, args.workers, Path(tmp) / "many")
        same = outcomes(Path(tmp) / "one") == outcomes(Path(tmp) / "many")
    print(f"{len(cells)} ring8 runs (worker start-up included)")
    print(f"--workers 1 (baseline): {one:6.1f} s  {len(cells) / one:.2f} runs/s")
    print(f"--workers {args.workers}:            {many:6.1f} s  {len(cells) / many:.2f} runs/s")
    print(f"speed-up: {one / many:.2f}x (goal >= 1.7x on 2 cores); identical results: {same}")


if __name__ == "__main__":
    main()
