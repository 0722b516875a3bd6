"""The noise monitor's cost in a user's own loop: wall time of a plain training loop with the monitor against the same
loop without it.

    python benchmarks/monitor_overhead.py [--steps 300] [--batch-size 64] [--width 128] [--repeats 3]

Baseline: a plain PyTorch GAN loop as a user writes it (MLP D and G of three hidden layers, BCE, Adam on both, one D
and one G step per iteration, fresh data and z from the global RNG), one thread. Against it the same loop calling
`NoiseMonitor.observe` for both players every N steps, N = 1 and N = 10, with two halves computed by the monitor
(the default) and with `reuse_grad=True` (one half, the other from the loop's own gradient). Each variant runs
--repeats times, interleaved, and the fastest is kept. The issue's goal: ≤ 1.3× at N = 1, so ≤ 1.03× at N = 10.
Its last line is `overhead at N = 10 (reuse_grad): X.XXx`.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch import nn

from empirical.monitor import NoiseMonitor


def mlp(inputs: int, width: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, width), nn.ReLU(), nn.Linear(width, outputs))


def loop(steps: int, batch: int, width: int, every: int | None, reuse: bool) -> float:
    """Seconds for `steps` iterations of the user's loop; `every` None: no monitor."""
    torch.manual_seed(0)
    g, d = mlp(2, width, 2), mlp(2, width, 1)
    opt_d, opt_g = torch.optim.Adam(d.parameters(), 1e-3), torch.optim.Adam(g.parameters(), 2.5e-4)
    monitor = None if every is None else NoiseMonitor(d, g, {"D": opt_d, "G": opt_g}, every=every)

    def loss_d(real: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(-d(real)).mean() + nn.functional.softplus(d(g(z).detach())).mean()

    def loss_g(z: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(-d(g(z))).mean()

    start = time.perf_counter()
    for step in range(steps):
        real, z = torch.randn(batch, 2) * 0.1 + 1.0, torch.randn(batch, 2)
        opt_d.zero_grad()
        loss_d(real, z).backward()
        if monitor is not None:
            monitor.observe(step, "D", loss_d, real, z, reuse_grad=reuse)
        opt_d.step()
        z = torch.randn(batch, 2)
        opt_g.zero_grad()
        loss_g(z).backward()
        if monitor is not None:
            monitor.observe(step, "G", loss_g, z, reuse_grad=reuse)
        opt_g.step()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    variants = {"no monitor": (None, False)}
    for every in (1, 10):
        for reuse in (False, True):
            variants[f"N = {every} ({'reuse_grad' if reuse else 'two halves'})"] = (every, reuse)
    best = {name: float("inf") for name in variants}
    loop(20, args.batch_size, args.width, None, False)  # warm-up
    for _ in range(args.repeats):
        for name, (every, reuse) in variants.items():
            best[name] = min(best[name], loop(args.steps, args.batch_size, args.width, every, reuse))
    base = best.pop("no monitor")
    print(f"plain loop: {base / args.steps * 1e3:.2f} ms per step (b = {args.batch_size}, width {args.width})")
    for name, seconds in best.items():
        print(f"{name}: {seconds / args.steps * 1e3:.2f} ms per step, {seconds / base:.2f}x the plain loop")
    print(f"overhead at N = 10 (reuse_grad): {best['N = 10 (reuse_grad)'] / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
