"""Overhead of empirical.train.train() over a bare PyTorch GAN loop on the same models, batch and optimizers.

    python benchmarks/train_overhead.py [--preset ring8] [--batch-size 64] [--steps 2000]

Baseline: the loop of the PyTorch DCGAN example (one D step on real + detached fake, one G step reusing the fake),
with nothing else. train() runs the same steps with its bookkeeping (loss sums, NaN checks, RNG streams, progress
hook) and evaluations switched off (eval_every = steps, so one FID at the end, timed separately and excluded).
Goal: overhead <= 10%. Both run in this process, interleaved, median of the repeats, one thread.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from empirical.datasets import load_data
from empirical.optimizers import make_optimizer
from empirical.presets import get_preset
from empirical.train import build_models, train


def bare_loop(config, steps: int, seed: int = 0) -> float:
    """Seconds for `steps` iterations of the textbook loop."""
    device = torch.device("cpu")
    data = load_data(config, device)
    torch.manual_seed(seed)
    g, d = build_models(config, channels=1)
    opt_d = make_optimizer(config.optimizer, d.parameters(), config.lr_d)
    opt_g = make_optimizer(config.optimizer, g.parameters(), config.lr_g)
    rng = torch.Generator().manual_seed(seed)
    b = config.batch_size
    start = time.perf_counter()
    for _ in range(steps):
        real = data.sample(b, rng)
        fake = g(torch.randn(b, config.z_dim, generator=rng))
        loss_d = F.softplus(-d(real)).mean() + F.softplus(d(fake.detach())).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = F.softplus(-d(fake)).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    return time.perf_counter() - start


def ours(config, steps: int, seed: int = 0) -> float:
    """Seconds for `steps` iterations of train(), minus its final evaluation."""
    result = train(config.with_(max_steps=steps, eval_every=steps, target_fid=1e-12, device="cpu"), seed)
    last = result.history[-1]
    return last.seconds - _eval_seconds(result)


def _eval_seconds(result) -> float:
    """Time of one evaluation: the history's step-0 evaluation happens before the clock's first step."""
    from empirical.evaluation import FIDEvaluator

    evaluator = FIDEvaluator(result.config, torch.device("cpu"), seed=0)
    g, _ = build_models(result.config, channels=1)
    start = time.perf_counter()
    evaluator(g)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="ring8")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = get_preset(args.preset).with_(batch_size=args.batch_size)
    ours(config, 50)  # warm-up: feature network, real statistics, allocator
    bare_loop(config, 50)
    bare, mine = [], []
    for _ in range(args.repeats):
        bare.append(bare_loop(config, args.steps))
        mine.append(ours(config, args.steps))
    b, m = statistics.median(bare), statistics.median(mine)
    print(f"{args.preset}, b = {args.batch_size}, {args.steps} steps, 1 thread, median of {args.repeats}")
    print(f"bare PyTorch loop: {b:.3f} s ({args.steps / b:.0f} it/s)")
    print(f"empirical.train:   {m:.3f} s ({args.steps / m:.0f} it/s), evaluations excluded")
    print(f"overhead: {100 * (m / b - 1):+.1f}% (goal <= 10%)")


if __name__ == "__main__":
    main()
