"""Seed ensembles: the seeds of one batch size trained together against one train(config, seed) per seed.

    python benchmarks/ensemble_speed.py [--preset ring8] [--batch-sizes 4,8,...,512] [--seeds 8] [--max-steps 300]
                                        [--profile-steps 100] [--also lqgan,digits]

Baseline: one train() per seed, in this process, one thread, the way a sweep worker runs a cell (--ensemble off).
Against it, the trainer the sweep's --ensemble auto gives the preset (empirical.sweep._batched_trainer): a seed
ensemble for the MLP presets (empirical/ensemble.py), the control game's own batched trainer for lqgan. Both train
the preset's config with max_steps cut to --max-steps, so runs stop at the preset's target or at the cap. The script
counts the runs whose status, K or stop differ from their run alone, and those whose FID history differs in any
bit, prints the ratio of wall times per batch size and overall, then, for --preset, where the time goes: training
alone per run-step, and one run's evaluation split into the generator's forward pass on n_eval samples (with its
GFLOP/s) and the rest (FID statistics, modes).
--also repeats the comparison for other presets (their first and last batch size), or says why the sweep trains
them one run per cell. Its last line is `speed-up: X.XXx`, --preset's overall ratio. A setup pass (the FID
reference statistics and the feature network, cached per process) runs first and is not timed.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch import nn

from empirical.config import TrainConfig
from empirical.ensemble import FID_CHUNK, unsupported
from empirical.evaluation import make_evaluator
from empirical.presets import default_batch_sizes, get_preset
from empirical.sweep import _batched_trainer
from empirical.train import build_models, train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="ring8")
    parser.add_argument("--batch-sizes", default="4,8,16,32,64,128,256,512")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--profile-steps", type=int, default=100, help="steps of the where-the-time-goes runs")
    parser.add_argument("--also", default="lqgan,digits", help="other presets, comma-separated ('' for none)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    base = _base(args.preset, args.max_steps)
    speed_up = _compare(args.preset, base, [int(x) for x in args.batch_sizes.split(",")], seeds)
    _where_the_time_goes(base, [int(x) for x in args.batch_sizes.split(",")], seeds, args.profile_steps)
    for name in filter(None, args.also.split(",")):
        other = _base(name, args.max_steps)
        if _batched_trainer(other, "auto") is None:
            print(f"{name}: one run per cell, not batched: {unsupported(other)}")
            continue
        grid = default_batch_sizes(name)
        _compare(name, other, [grid[0], grid[-1]], seeds)
    print(f"speed-up: {speed_up:.2f}x")
    return 0


def _base(preset: str, max_steps: int) -> TrainConfig:
    base = get_preset(preset).with_(max_steps=max_steps, device="cpu")
    train(base.with_(max_steps=1), 0)  # setup, untimed: reference statistics, feature network
    return base


def _compare(name: str, base: TrainConfig, batch_sizes: list[int], seeds: list[int]) -> float:
    """Wall time of one train() per seed against the batched trainer per batch size; prints and returns the ratio
    of the totals. A run whose status, K, stop or any FID differs from its run alone is counted."""
    total_single = total_many = 0.0
    differing = other_outcome = 0
    for b in batch_sizes:
        config = base.with_(batch_size=b)
        trainer = _batched_trainer(config, "auto")
        start = time.perf_counter()
        singles = [train(config, seed) for seed in seeds]
        single = time.perf_counter() - start
        start = time.perf_counter()
        many = trainer(config, seeds)
        batched = time.perf_counter() - start
        worst = 0.0
        for a, s in zip(many, singles, strict=True):
            same = (a.status, a.steps_to_target, a.steps_run) == (s.status, s.steps_to_target, s.steps_run)
            fids = [(x.fid, y.fid) for x, y in zip(a.history, s.history, strict=False)]
            other_outcome += not same
            differing += not (same and len(a.history) == len(s.history) and all(x == y for x, y in fids))
            worst = max([worst, *(abs(x - y) / abs(y) for x, y in fids)])
        reached = sum(s.status == "reached" for s in singles)
        total_single, total_many = total_single + single, total_many + batched
        print(f"{name} b = {b:4d}: {len(seeds)} runs (reached {reached}, steps {sum(s.steps_run for s in singles)}): "
              f"one train() each {single:6.2f} s, together {batched:6.2f} s, ratio {single / batched:5.2f}x; "
              f"max rel FID diff {worst:.1e}")
    n = len(seeds) * len(batch_sizes)
    print(f"{name}: runs with another status, K or stop than alone: {other_outcome} of {n}; runs whose FID history "
          f"differs in any bit: {differing} of {n}")
    print(f"{name} total: one train() each {total_single:.1f} s, together {total_many:.1f} s, "
          f"ratio {total_single / total_many:.2f}x")
    return total_single / total_many


def _where_the_time_goes(base: TrainConfig, batch_sizes: list[int], seeds: list[int], steps: int) -> None:
    """What bounds the speed-up: training alone (evaluations only at the first and last step, a target no run
    meets) per run-step, one train() each against the ensemble; one run's evaluation (FID of the preset's n_eval
    samples), from a run evaluated every eval_every steps minus the same run evaluated at its ends; and of that, the
    generator's forward pass on the n_eval evaluation samples, which no ensemble can share (each run has its own
    generator and its own evaluation z)."""
    quiet = base.with_(max_steps=steps, eval_every=steps, eval_growth=0.0, target_fid=1e-12, floor=False)
    trainer = _batched_trainer(quiet, "auto")
    for b in batch_sizes:
        config = quiet.with_(batch_size=b)
        start = time.perf_counter()
        for seed in seeds:
            train(config, seed)
        single = (time.perf_counter() - start) / (steps * len(seeds)) * 1e3
        start = time.perf_counter()
        trainer(config, seeds)
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
    forward, gflops = _generator_forward(config)
    print(f"evaluation: {per_eval:.2f} ms per run and evaluation (FID on {base.n_eval} samples), "
          f"{per_eval / base.eval_every:.2f} ms per run-step at eval_every {base.eval_every}; of it the generator's "
          f"forward pass {forward:.2f} ms ({gflops:.0f} GFLOP/s), the rest {per_eval - forward:.2f} ms")


def _generator_forward(config: TrainConfig, repeats: int = 20) -> tuple[float, float]:
    """ms per forward pass of one run's generator on its n_eval evaluation samples (in the evaluator's chunks), and
    the GFLOP/s of its Linear layers' multiply-adds."""
    torch.manual_seed(0)
    generator, _ = build_models(config, channels=1)
    z = make_evaluator(config, torch.device("cpu"), seed=1).z
    with torch.no_grad():
        generator(z[:FID_CHUNK])  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            for part in z.split(FID_CHUNK):
                generator(part)
        seconds = (time.perf_counter() - start) / repeats
    flops = 2 * len(z) * sum(m.in_features * m.out_features for m in generator.modules() if isinstance(m, nn.Linear))
    return seconds * 1e3, flops / seconds / 1e9


if __name__ == "__main__":
    sys.exit(main())
