"""Seed ensembles on ring8: empirical.ensemble.train_many(config, seeds) against train(config, seed) per seed.

    python benchmarks/ensemble_speed.py [--preset ring8] [--batch-sizes 4,8,...,512] [--seeds 8] [--max-steps 300]
                                        [--profile-steps 100]

Baseline: one train() per seed, in this process, one thread, the way a sweep worker runs a cell (--ensemble off).
The ensemble trains the same seeds of each batch size as one vectorised model (--ensemble auto). Both train the
preset's config with max_steps cut to --max-steps, so runs stop at the preset's target or at the cap. The script
checks the results are the same (status, K and steps run per run; it prints the largest relative FID difference)
and prints the ratio of wall times per batch size and overall, then where the time goes (training alone per run-step,
one run's evaluation); its last line is `speed-up: X.XXx`. A setup pass
(the FID reference statistics and the feature network, cached per process) runs first and is not timed.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from empirical.ensemble import train_many
from empirical.presets import get_preset
from empirical.train import train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="ring8")
    parser.add_argument("--batch-sizes", default="4,8,16,32,64,128,256,512")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--profile-steps", type=int, default=100, help="steps of the where-the-time-goes runs")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    base = get_preset(args.preset).with_(max_steps=args.max_steps, device="cpu")
    train(base.with_(max_steps=1), 0)  # setup, untimed: reference statistics, feature network
    total_single = total_many = 0.0
    mismatches = 0
    batch_sizes = [int(x) for x in args.batch_sizes.split(",")]
    for b in batch_sizes:
        config = base.with_(batch_size=b)
        start = time.perf_counter()
        singles = [train(config, seed) for seed in seeds]
        single = time.perf_counter() - start
        start = time.perf_counter()
        many = train_many(config, seeds)
        batched = time.perf_counter() - start
        worst = 0.0
        for a, s in zip(many, singles, strict=True):
            same = (a.status, a.steps_to_target, a.steps_run) == (s.status, s.steps_to_target, s.steps_run)
            mismatches += not same
            worst = max([worst, *(abs(x.fid - y.fid) / abs(y.fid) for x, y in zip(a.history, s.history, strict=False))])
        reached = sum(s.status == "reached" for s in singles)
        total_single, total_many = total_single + single, total_many + batched
        print(f"b = {b:4d}: {len(seeds)} runs (reached {reached}, steps {sum(s.steps_run for s in singles)}): "
              f"one train() each {single:6.2f} s, ensemble {batched:6.2f} s, ratio {single / batched:5.2f}x; "
              f"max rel FID diff {worst:.1e}")
    print(f"runs with another status, K or stop than alone: {mismatches} of {len(seeds) * len(batch_sizes)}")
    print(f"total: one train() each {total_single:.1f} s, ensembles {total_many:.1f} s")
    _where_the_time_goes(base, batch_sizes, seeds, args.profile_steps)
    print(f"speed-up: {total_single / total_many:.2f}x")
    return 0


def _where_the_time_goes(base, batch_sizes: list[int], seeds: list[int], steps: int) -> None:
    """What bounds the speed-up: training alone (evaluations only at the first and last step, a target no run
    meets) per run-step, one train() each against the ensemble; and one run's evaluation (FID of the preset's
    n_eval samples), from a run evaluated every eval_every steps minus the same run evaluated at its ends."""
    quiet = base.with_(max_steps=steps, eval_every=steps, eval_growth=0.0, target_fid=1e-12, floor=False)
    for b in batch_sizes:
        config = quiet.with_(batch_size=b)
        start = time.perf_counter()
        for seed in seeds:
            train(config, seed)
        single = (time.perf_counter() - start) / (steps * len(seeds)) * 1e3
        start = time.perf_counter()
        train_many(config, seeds)
        many = (time.perf_counter() - start) / (steps * len(seeds)) * 1e3
        print(f"training only, b = {b:4d}: one train() each {single:5.2f} ms per run-step, ensemble {many:5.2f} ms, "
              f"ratio {single / many:5.2f}x")
    config = quiet.with_(batch_size=batch_sizes[0])
    start = time.perf_counter()
    train(config, seeds[0])
    ends = time.perf_counter() - start
    start = time.perf_counter()
    often = train(config.with_(eval_every=base.eval_every), seeds[0])
    evaluations = len(often.history) - 2
    per_eval = (time.perf_counter() - start - ends) / evaluations * 1e3
    print(f"evaluation: {per_eval:.2f} ms per run and evaluation (FID on {base.n_eval} samples), "
          f"{per_eval / base.eval_every:.2f} ms per run-step at eval_every {base.eval_every}")


if __name__ == "__main__":
    sys.exit(main())
