"""Cost of empirical.gradients' estimators relative to one ordinary mini-batch gradient, on the DCGAN discriminator.

    python benchmarks/gradient_costs.py [--image-size 64] [--width 64] [--batch-size 64] [--repeats 3]

Baseline: one ordinary batch gradient of the BCE discriminator loss on b real + b fake images (zero_grad, forward,
loss.backward()) on the same module. Measured: (a) per_sample_gradient_variance at b (goal <= 2x), by module hooks
(empirical/sample_norms.py, what method="auto" takes here) and by vmap(grad) (the fallback), (b) one Hessian-vector
product (goal <= 2.5x): fresh (forward + create_graph backward + double backward), amortised (one more double
backward on the cached graph, what each power iteration pays) and forward-over-reverse (torch.func.jvp of
torch.func.grad, the alternative the code does not use). The discriminator uses norm="layer" (WGAN-GP's critic):
train-mode BatchNorm couples the samples, so per-sample gradients are undefined for the DCGAN default.
One process, one warm-up per measurement, median of the repeats, torch's default thread count.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch.func import grad, jvp

from empirical.gradients import per_sample_gradient_variance, player_objective
from empirical.losses import discriminator_loss
from empirical.models import DCGANDiscriminator, dcgan_init


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of `fn` over `repeats` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--chunk-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    torch.manual_seed(0)
    d = DCGANDiscriminator(args.image_size, args.width, 3, norm="layer")
    d.apply(dcgan_init)
    b, size = args.batch_size, args.image_size
    real = torch.rand(b, 3, size, size) * 2 - 1
    fake = torch.tanh(torch.randn(b, 3, size, size))
    rng = torch.Generator().manual_seed(0)

    def loss(forward, batch):
        return discriminator_loss("bce", forward, batch[0], batch[1], rng)[0]

    def baseline() -> None:
        d.zero_grad(set_to_none=True)
        loss(d, (real, fake)).backward()

    def per_sample_hooks() -> None:
        per_sample_gradient_variance(d, loss, (real, fake), chunk_size=args.chunk_size, method="hooks")

    def per_sample_vmap() -> None:
        per_sample_gradient_variance(d, loss, (real, fake), chunk_size=args.chunk_size, method="vmap")

    params, objective = player_objective(d, loss, (real, fake))
    theta = {k: p.requires_grad_(True) for k, p in params.items()}
    v = [torch.randn_like(p) for p in theta.values()]

    def gradient_graph() -> tuple[torch.Tensor, ...]:
        return torch.autograd.grad(objective(theta), list(theta.values()), create_graph=True)

    def hvp_fresh() -> None:
        torch.autograd.grad(gradient_graph(), list(theta.values()), grad_outputs=v)

    cached = gradient_graph()

    def hvp_cached() -> None:
        torch.autograd.grad(cached, list(theta.values()), grad_outputs=v, retain_graph=True)

    tangent = dict(zip(theta, v, strict=True))
    detached = {k: p.detach() for k, p in theta.items()}

    def hvp_forward_over_reverse() -> None:
        with torch.no_grad():
            jvp(grad(objective), (detached,), (tangent,))

    base = median_seconds(baseline, args.repeats)
    print(f"DCGAN discriminator {size}px width {args.width} norm=layer, b={b} (real+fake pairs), "
          f"{sum(p.numel() for p in d.parameters()):,} parameters, {torch.get_num_threads()} threads")
    print(f"baseline: one ordinary batch gradient (forward + backward)  {base * 1e3:8.1f} ms  = 1.00x")
    rows = [
        (f"(a) per-sample gradient variance (hook norms, chunk {args.chunk_size})", per_sample_hooks, "goal <= 2x"),
        (f"(a) per-sample gradient variance (vmap, chunk {args.chunk_size})", per_sample_vmap, "goal <= 2x"),
        ("(b) HVP, fresh (forward + create_graph grad + double backward)", hvp_fresh, "goal <= 2.5x"),
        ("(b) HVP, amortised on the cached gradient graph (per power step)", hvp_cached, "goal <= 2.5x"),
        ("    HVP, forward-over-reverse (func.jvp of func.grad), not used", hvp_forward_over_reverse, ""),
    ]
    for name, fn, goal in rows:
        seconds = median_seconds(fn, args.repeats)
        print(f"{name:<68} {seconds * 1e3:8.1f} ms  = {seconds / base:5.2f}x  {goal}")


if __name__ == "__main__":
    main()
