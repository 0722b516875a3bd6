"""Many seeds of one lqgan config trained as one computation: parameters with a leading run axis.

The LQ modules broadcast over a leading axis (empirical/benchmarks/lqgan.py), so R runs are one generator and one
discriminator whose parameters have shape (R, ...). Each run's gradient touches only its own slice, and SGD, Adam,
RMSProp and AdaBelief act elementwise, so each run follows its own trajectory. The gradients are taken in closed
form (D is linear in its parameters; G's per-sample gradient is −(w + 2Vx)·(1, zᵀ)); tests check them, through
the trajectories, against autograd in train(). Every run keeps its own random stream, drawn in the order train()
draws it (real batch, then z), its own evaluations and its own stop (empirical/stopping.py): a run trained here
equals train(config, seed) up to float round-off (tests/empirical/test_lqgan.py measures the difference). A run
that has stopped keeps stepping with the others (its result is frozen), so the cost is that of the longest run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
from torch import nn

from empirical.benchmarks import get_benchmark
from empirical.benchmarks.lqgan import (
    LQDiscriminator,
    LQGenerator,
    build_models,
    config_target,
    exact_fid,
    exact_gradients,
    load_data,
)
from empirical.config import TrainConfig
from empirical.optimizers import ELEMENTWISE, make_optimizer
from empirical.stopping import Stopper
from empirical.train import EvalPoint, RunResult, next_evaluation, resolve_device


def _stacked(modules: Sequence[nn.Module], template: nn.Module) -> nn.Module:
    """`template` with each parameter replaced by the stack of the modules' parameters (a leading run axis)."""
    for name, _ in list(template.named_parameters()):
        setattr(template, name, nn.Parameter(torch.stack([getattr(m, name).detach() for m in modules])))
    return template


def _run_norms(module: nn.Module) -> torch.Tensor:
    """‖∇θ_r‖ per run r from the stacked gradients."""
    squares = sum(p.grad.flatten(1).square().sum(1) for p in module.parameters())
    return squares.sqrt()


def _half_square(module: nn.Module) -> torch.Tensor:
    """½‖θ_r‖² per run."""
    return 0.5 * sum(p.flatten(1).square().sum(1) for p in module.parameters())


def _discriminator_gradient(d: LQDiscriminator, fake: torch.Tensor, real: torch.Tensor, penalty: float) -> None:
    """Set d's .grad to ∇L_D per run in closed form: D is linear in (w, v), ∂D(x)/∂w = x and ∂D(x)/∂v = Sᵀvec(xxᵀ)
    (V = S·v), so ∇_w = mean x_f − mean x_r + λw, ∇_v = Sᵀvec(M_f − M_r) + λv with M the batch second moments.
    (Autograd gives the same numbers; by hand it is about twice as fast at these sizes.)"""
    n = fake.shape[-2]
    moments = (fake.transpose(-1, -2) @ fake - real.transpose(-1, -2) @ real) / n
    d.w.grad = fake.mean(-2) - real.mean(-2) + penalty * d.w
    d.v.grad = moments.flatten(-2) @ d.scatter + penalty * d.v


def _generator_gradient(g: LQGenerator, d: LQDiscriminator, fake: torch.Tensor, z: torch.Tensor) -> None:
    """Set g's .grad to ∇L_G = −∇ mean D(μ_g + Az) per run: with u = ∂D/∂x = w + 2Vx, ∇_μ = −mean u and
    ∂/∂A_ij = −mean u_i z_j, restricted to A's lower triangle (vec(A) = E·a)."""
    u = d.w.unsqueeze(-2) + 2 * fake @ d.matrix()
    g.mu.grad = -u.mean(-2)
    g.a.grad = -((u.transpose(-1, -2) @ z) / z.shape[-2]).flatten(-2) @ g.scatter


def _measures(config: TrainConfig, g: LQGenerator, d: LQDiscriminator,
              reference: dict[str, torch.Tensor]) -> list[dict[str, float]]:
    """Per run, EvalPoint's grad_sq_* and vi_gap_* from the exact gradient of the expected losses (train()'s
    Measurer with lqgan's exact_gradient hook, on every run's slice at once)."""
    grads = exact_gradients(g, d, config_target(config), config.gp_weight)
    out: list[dict[str, float]] = [{} for _ in range(g.mu.shape[0])]
    for p, module in (("D", d), ("G", g)):
        theta = torch.cat([q.detach().flatten(1).double() for q in module.parameters()], -1)
        grad_sq = grads[p].square().sum(-1)
        gap = ((theta - reference[p].to(theta.device)) * grads[p]).sum(-1)
        for r, point in enumerate(out):
            point[f"grad_sq_{p.lower()}"], point[f"vi_gap_{p.lower()}"] = float(grad_sq[r]), float(gap[r])
    return out


@torch.no_grad()
def train_many(config: TrainConfig, seeds: Sequence[int]) -> list[RunResult]:
    """train(config, seed) for every seed, as one batched computation (one result per seed, in order)."""
    if config.optimizer not in ELEMENTWISE:
        raise ValueError(f"batched training needs an elementwise optimizer ({', '.join(ELEMENTWISE)}), "
                         f"not {config.optimizer!r}")
    device = resolve_device(config.device)
    start = time.perf_counter()
    data = load_data(config, device)
    singles = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            singles.append(build_models(config))
    dim = config.z_dim
    g = _stacked([s[0] for s in singles], LQGenerator(dim)).to(device)
    d = _stacked([s[1] for s in singles], LQDiscriminator(dim)).to(device)
    opt_d = make_optimizer(config.optimizer, d.parameters(), config.lr_d)
    opt_g = make_optimizer(config.optimizer, g.parameters(), config.lr_g)
    rngs = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
    runs = len(seeds)
    b = config.batch_size

    histories: list[list[EvalPoint]] = [[] for _ in seeds]
    stoppers = [Stopper(config) for _ in seeds]
    status: list[str | None] = [None] * runs
    stopped_at = [0] * runs
    sum_d = torch.zeros(runs, device=device)
    sum_g = torch.zeros(runs, device=device)
    count = 0

    def fids() -> list[float]:
        with torch.no_grad():
            a = g.matrix().double().cpu().numpy()
            mu = g.mu.double().cpu().numpy()
        return [exact_fid(mu[r], a[r] @ a[r].T, dim, config.data_scale) for r in range(runs)]

    reference = get_benchmark(config.data).exact_reference(config) if config.measure_batch > 0 else None

    def measures() -> list[dict[str, float]]:
        return [{} for _ in seeds] if reference is None else _measures(config, g, d, reference)

    for r, (fid, measured) in enumerate(zip(fids(), measures(), strict=True)):
        histories[r].append(EvalPoint(0, fid, math.nan, math.nan, math.nan, math.nan, math.nan, 0.0, **measured))
        stoppers[r].start(fid)

    next_eval = next_evaluation(0, config.eval_every, config.eval_growth)
    step = 0
    for step in range(1, config.max_steps + 1):
        for _ in range(config.n_critic):
            real = torch.stack([data.sample(b, rng) for rng in rngs])
            z = torch.stack([torch.randn(b, dim, generator=rng, device=device) for rng in rngs])
            fake = g(z)
            # Each run's L_D = mean D(fake) − mean D(real) + λ·½‖θ_D‖², logged per run.
            loss_d_runs = d(fake).mean(-1) - d(real).mean(-1) + config.gp_weight * _half_square(d)
            _discriminator_gradient(d, fake, real, config.gp_weight)
            opt_d.step()
        if config.g_fresh_z:  # G's own z, drawn after D's batches as train() draws it
            z = torch.stack([torch.randn(b, dim, generator=rng, device=device) for rng in rngs])
            fake = g(z)
        at_eval = step == next_eval or step == config.max_steps
        if at_eval:
            grad_norm_d = _run_norms(d)
        d_fake = d(fake)  # D after its step, on the fakes of G before its step (train()'s order)
        loss_g_runs = -d_fake.mean(-1)
        _generator_gradient(g, d, fake, z)
        opt_g.step()
        sum_d += loss_d_runs.detach()
        sum_g += loss_g_runs.detach()
        count += 1
        if not at_eval:
            continue
        next_eval = next_evaluation(step, config.eval_every, config.eval_growth)
        _evaluate(config, step, g, d, real, z, d_fake.detach(), sum_d / count, sum_g / count, grad_norm_d,
                  fids(), measures(), time.perf_counter() - start, histories, stoppers, status, stopped_at)
        sum_d.zero_()
        sum_g.zero_()
        count = 0
        if all(s is not None for s in status):
            break
    wall = time.perf_counter() - start
    results = []
    for r, seed in enumerate(seeds):
        final = status[r] or stoppers[r].final_status()
        results.append(RunResult(
            config=config, seed=seed, status=final,
            steps_to_target=stoppers[r].reached_at,
            steps_run=stopped_at[r] if status[r] is not None else step,
            diverged_at=stoppers[r].diverged_at, device=str(device), wall_seconds=wall,
            history=histories[r],
        ))
    return results


def _evaluate(config: TrainConfig, step: int, g: LQGenerator, d: LQDiscriminator, real: torch.Tensor,
              z: torch.Tensor, d_fake: torch.Tensor, loss_d: torch.Tensor, loss_g: torch.Tensor,
              grad_norm_d: torch.Tensor, fid_values: list[float], measured: list[dict[str, float]], seconds: float,
              histories: list[list[EvalPoint]],
              stoppers: list[Stopper], status: list[str | None], stopped_at: list[int]) -> None:
    """Record an evaluation for every run still going, and stop the runs whose stopper says so."""
    grad_norm_g = _run_norms(g)
    with torch.no_grad():
        # Balance ratio per run (wgan: D's raw output), as train.balance_ratio: D after its update, G around its.
        before = d_fake.mean(-1)
        after = d(g(z)).mean(-1)
        gap = d(real).mean(-1) - before
        finite = [all(bool(torch.isfinite(p[r]).all()) for p in (*g.parameters(), *d.parameters()))
                  for r in range(len(histories))]
    for r, history in enumerate(histories):
        if status[r] is not None:
            continue
        if not (math.isfinite(float(loss_d[r])) and math.isfinite(float(loss_g[r])) and finite[r]):
            status[r], stopped_at[r] = stoppers[r].diverge(step), step
            continue
        ratio = float((after[r] - before[r]) / gap[r]) if float(gap[r]) != 0.0 else float("nan")
        history.append(EvalPoint(step, fid_values[r], float(loss_d[r]), float(loss_g[r]), float(grad_norm_d[r]),
                                 float(grad_norm_g[r]), ratio, seconds, **measured[r]))
        verdict = stoppers[r].update(step, fid_values[r])
        if verdict is not None:
            status[r], stopped_at[r] = verdict, step

