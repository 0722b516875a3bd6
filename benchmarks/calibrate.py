"""Check a preset against the calibration bar of the engine issue and print its table (docs/benchmarks.md).

    python benchmarks/calibrate.py --preset ring8 [--batch-sizes 4,8,...,512] [--seeds 0,1,2] [--workers 2]

The bar: over the batch grid, the median steps-to-target over the seeds falls by at least 4x between the smallest
and the largest b whose runs all reach the target; eval_every is at most 5% of the median K at every b; and the
target is at least 3x the real-vs-real FID at the same n_eval.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import torch

from empirical.evaluation import real_vs_real_fid
from empirical.presets import get_preset
from empirical.train import train


def _run(args: tuple[str, int, int, dict]) -> tuple[int, int, str, int | None, float]:
    torch.set_num_threads(1)
    preset, b, seed, overrides = args
    result = train(get_preset(preset).with_(batch_size=b, device="cpu", **overrides), seed)
    return b, seed, result.status, result.steps_to_target, result.wall_seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", required=True)
    parser.add_argument("--batch-sizes", default="4,8,16,32,64,128,256,512")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], help="override a config field, e.g. --set lr_d=1e-3")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        overrides[key] = type(getattr(get_preset(args.preset), key))(value)
    config = get_preset(args.preset).with_(**overrides)
    batch_sizes = [int(x) for x in args.batch_sizes.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    start = time.perf_counter()
    jobs = [(args.preset, b, s, overrides) for b in sorted(batch_sizes, reverse=True) for s in seeds]
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(_run, jobs))
    wall = time.perf_counter() - start
    floors = [real_vs_real_fid(config, seed=s) for s in seeds]

    print(f"preset {args.preset}: target FID {config.target_fid} at n = {config.n_eval}, "
          f"eval every {config.eval_every}")
    print(f"lr_d {config.lr_d}, lr_g {config.lr_g}, max_steps {config.max_steps}, seeds {seeds}\n")
    print("| b | median K | min–max K | reached | eval_every / median K | median SFO |")
    print("|---:|---:|---:|---:|---:|---:|")
    medians = {}
    for b in batch_sizes:
        ks = [k for bb, _, status, k, _ in results if bb == b and status == "reached"]
        n_runs = sum(1 for r in results if r[0] == b)
        if ks:
            median = statistics.median(ks)
            if len(ks) == n_runs:
                medians[b] = median
            share = f"{100 * config.eval_every / median:.1f}%"
            print(f"| {b} | {median:g} | {min(ks)}–{max(ks)} | {len(ks)}/{n_runs} | {share} | {median * b:g} |")
        else:
            print(f"| {b} | — | — | 0/{n_runs} | — | — |")
    floor = max(floors)
    print(f"\nreal-vs-real FID at n = {config.n_eval}: " + ", ".join(f"{f:.3f}" for f in floors))
    print(f"target / worst real-vs-real: {config.target_fid / floor:.1f}x (bar: >= 3x)")
    if len(medians) >= 2:
        lo, hi = min(medians), max(medians)
        print(f"median K falls {medians[lo] / medians[hi]:.2f}x from b = {lo} to b = {hi} (bar: >= 4x)")
    worst = max((config.eval_every / m for m in medians.values()), default=float("nan"))
    print(f"largest eval_every / median K: {100 * worst:.1f}% (bar: <= 5%)")
    print(f"wall time: {wall:.0f} s for {len(jobs)} runs with {args.workers} workers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
