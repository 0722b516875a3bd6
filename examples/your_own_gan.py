"""Your own GAN, end to end: a GAN written the way you would write it, its gradient noise measured in its own loop,
then swept over batch sizes with the toolkit, then the report that sets the theory beside the measurement.

    python examples/your_own_gan.py [--out runs/your-own-gan] [--quick]

Nothing here comes from the toolkit's models, losses or FID: the data (a ring of 8 Gaussians), the two MLPs, the
BCE losses, TTUR Adam and the 2-D Fréchet distance are written out below. The toolkit is used at three places only:
`NoiseMonitor` in the loop (step 1), `python -m empirical.sweep --entry` on `train` (step 2) and
`python -m empirical.report` (step 3). docs/your-own-gan.md walks through it. About half a minute on 2 CPU
cores.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import linalg
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # so that the sweep's workers import this file as the module `your_own_gan`

# ---------------------------------------------------------------------------------------------------------------
# The user's GAN


def ring(n: int, generator: torch.Generator) -> torch.Tensor:
    """n points of a ring of 8 Gaussians (radius 2, sd 0.05)."""
    angle = torch.randint(0, 8, (n,), generator=generator) * (2 * math.pi / 8)
    centres = torch.stack([2 * torch.cos(angle), 2 * torch.sin(angle)], 1)
    return centres + 0.05 * torch.randn(n, 2, generator=generator)


def mlp(inputs: int, outputs: int, width: int = 64) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, outputs))


def frechet_distance(fake: np.ndarray, real_mean: np.ndarray, real_cov: np.ndarray) -> float:
    """FID on the raw 2-D points: ‖μ_f − μ_r‖² + tr(Σ_f + Σ_r − 2(Σ_f Σ_r)^½)."""
    mean, cov = fake.mean(0), np.cov(fake, rowvar=False)
    root = linalg.sqrtm(cov @ real_cov).real
    return float(((mean - real_mean) ** 2).sum() + np.trace(cov + real_cov - 2 * root))


def losses(d: nn.Module, g: nn.Module):
    """The non-saturating BCE losses as mean-loss callables of a batch (what the monitor needs)."""
    def loss_d(real: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(-d(real)).mean() + nn.functional.softplus(d(g(z).detach())).mean()

    def loss_g(z: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(-d(g(z))).mean()

    return loss_d, loss_g


def build(seed: int, lr_d: float = 1e-3, lr_g: float = 2.5e-4):
    """G, D and their TTUR Adam optimizers (α_D = 4·α_G), seeded."""
    torch.manual_seed(seed)
    g, d = mlp(2, 2), mlp(2, 1)
    return (g, d, torch.optim.Adam(d.parameters(), lr=lr_d, betas=(0.5, 0.999)),
            torch.optim.Adam(g.parameters(), lr=lr_g, betas=(0.5, 0.999)))


def training(g, d, opt_d, opt_g, batch_size: int, seed: int, eval_every: int = 25, monitor=None):
    """The loop: one D and one G step per iteration, yielding (step, FID) every eval_every steps, forever (the caller
    stops). `monitor`: an empirical.monitor.NoiseMonitor called right after each backward."""
    data = torch.Generator().manual_seed(seed)
    real_points = ring(10_000, torch.Generator().manual_seed(12345)).double().numpy()
    real_mean, real_cov = real_points.mean(0), np.cov(real_points, rowvar=False)
    eval_z = torch.randn(2000, 2, generator=torch.Generator().manual_seed(seed + 1))
    loss_d, loss_g = losses(d, g)
    for step in itertools.count(0):
        if step % eval_every == 0:
            with torch.no_grad():
                yield step, frechet_distance(g(eval_z).double().numpy(), real_mean, real_cov)
        real, z = ring(batch_size, data), torch.randn(batch_size, 2, generator=data)
        opt_d.zero_grad()
        loss_d(real, z).backward()
        if monitor is not None:
            monitor.observe(step, "D", loss_d, real, z, reuse_grad=True)
        opt_d.step()
        z = torch.randn(batch_size, 2, generator=data)
        opt_g.zero_grad()
        loss_g(z).backward()
        if monitor is not None:
            monitor.observe(step, "G", loss_g, z, reuse_grad=True)
        opt_g.step()


def train(batch_size: int, seed: int, lr_d: float = 1e-3, lr_g: float = 2.5e-4):
    """What `--entry your_own_gan:train` sweeps: one run, yielding (step, FID); the sweep decides when to stop."""
    yield from training(*build(seed, lr_d, lr_g), batch_size, seed)


# ---------------------------------------------------------------------------------------------------------------
# The three steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/your-own-gan")
    parser.add_argument("--quick", action="store_true", help="fewer steps, batch sizes and seeds (the test's)")
    args = parser.parse_args(argv)
    from empirical import report, sweep
    from empirical.monitor import NoiseMonitor
    from empirical.store import read_store

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps, batch_sizes, seeds = (300, "16,64", "0") if args.quick else (1500, "8,16,32,64,128,256", "0,1,2")
    target = 0.1

    # 1. The noise, measured in your own loop at one batch size, written as a constants file. The monitor changes
    # nothing in training: this run is bit for bit the sweep's b = 64, seed 0 run.
    torch.set_num_threads(1)
    g, d, opt_d, opt_g = build(seed=0)
    monitor = NoiseMonitor(d, g, optimizers={"D": opt_d, "G": opt_g}, every=10)
    for step, fid in training(g, d, opt_d, opt_g, batch_size=64, seed=0, monitor=monitor):
        if step % 250 == 0:
            monitor.report_fid(step, fid)
        if step >= steps:
            break
    constants = out / "constants.json"
    monitor.write(constants)
    predictions = monitor.predictions()
    print(f"1. monitor: {len(monitor.measurements)} measurements; B_simple D {monitor.noise_scale('D').value:.3g}, "
          f"G {monitor.noise_scale('G').value:.3g}; 2·B_simple (joint) = {predictions['2·B_simple']['joint']:.3g}; "
          f"wrote {constants}")

    # 2. The sweep of your `train` over batch sizes and seeds, stopped at the target by the toolkit.
    folder = out / "sweep"
    status = sweep.main(["--entry", "your_own_gan:train", "--out", str(folder), "--batch-sizes", batch_sizes,
                         "--seeds", seeds, "--target-fid", str(target), "--max-steps", str(steps), "--no-progress"])
    if status != 0:
        return status
    with read_store(folder) as store:
        reached = sum(r.status == "reached" for r in store.runs())
        total = len(store.runs())
    print(f"2. sweep: {reached} of {total} runs reached FID <= {target}")

    # 3. The report: K(b), SFO, b* measured, with restarts, fitted, and the noise-scale prediction from step 1.
    status = report.main([str(folder), "--constants", str(constants)])
    print(f"3. report: {folder / 'report.md'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
