"""Seeds trained together on the lqgan control game: train_many(config, seeds) against train(config, seed) per seed.

    python benchmarks/lqgan_seeds.py [--preset lqgan] [--batch-sizes 4,64,1024] [--seeds 8] [--max-steps 600]

Baseline: one train() per seed, in this process, one thread, the way a sweep worker runs a cell. Both sides train
the same runs to the same stops (the floor measurement off, a target no run reaches, so every run goes to
max_steps); the script checks they agree (same K, FID within 1e-4) and prints the ratio of wall times per batch size
and overall. Its last line is `speed-up: X.XXx`.
"""

from __future__ import annotations

import argparse
import time

import torch

from empirical.benchmarks.lqgan_batched import train_many
from empirical.presets import get_preset
from empirical.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="lqgan")
    parser.add_argument("--batch-sizes", default="4,64,1024")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--max-steps", type=int, default=600)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    total_single = total_many = 0.0
    for b in (int(x) for x in args.batch_sizes.split(",")):
        config = get_preset(args.preset).with_(batch_size=b, max_steps=args.max_steps, floor=False, target_fid=1e-12)
        start = time.perf_counter()
        singles = [train(config, seed) for seed in seeds]
        single = time.perf_counter() - start
        start = time.perf_counter()
        many = train_many(config, seeds)
        batched = time.perf_counter() - start
        for a, s in zip(many, singles, strict=True):
            assert (a.status, a.steps_to_target, a.steps_run) == (s.status, s.steps_to_target, s.steps_run)
            assert all(abs(x.fid - y.fid) <= 1e-4 * abs(y.fid) + 1e-12 for x, y in zip(a.history, s.history,
                                                                                      strict=True))
        total_single, total_many = total_single + single, total_many + batched
        print(f"b = {b:5d}: {len(seeds)} runs × {args.max_steps} steps: one train() each {single:7.2f} s, "
              f"train_many {batched:6.2f} s, ratio {single / batched:5.2f}x")
    print(f"speed-up: {total_single / total_many:.2f}x")


if __name__ == "__main__":
    main()
