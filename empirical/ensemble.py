"""Seed ensembles: R runs of one MLP config that differ only in the seed, trained as one vectorised model.

A sweep's cells at one batch size are small independent runs; on a CPU each spends most of its training time on
per-operation overhead, so R of them stacked along a leading run axis cost about one. Each run's modules are built
exactly as train() builds them for its seed (empirical.train.build_models under torch.manual_seed(seed)), their
parameters stacked to shape (R, ...); a Linear layer becomes one torch.baddbmm over the runs. Every run's gradient
comes from one backward of the sum of the runs' losses (the runs share no parameter, so each slice's gradient is its
own run's), and one optimizer over the stacked tensors is R optimizers for the elementwise ones
(empirical.optimizers.ELEMENTWISE: Adam, AMSGrad, RMSProp, AdaBelief, SGD; their state has the parameter's shape).

Each run keeps train()'s random streams in train()'s order (its own generator seeded by its seed: real batch, z,
then the gradient penalty's t; the evaluation z from seed + 1_000_003), train()'s evaluation schedule, its own
Stopper, and train()'s divergence check (losses or parameters NaN/inf at an evaluation). A run that stops (target,
settled, max_steps) or diverges leaves the ensemble at once: its slices are removed from the parameters and the
optimizer state, so it costs nothing more and a NaN in it touches no other run. Its result is frozen; wall_seconds is
the time from the ensemble's start to that run's stop.

A run here is bitwise train(config, seed) on one CPU thread, whatever the ensemble's size and whichever runs share
it (tests/empirical/test_ensemble.py checks it with 8 runs at ring8's width; benchmarks/ensemble_speed.py counts
differing runs over a whole sweep). Two things make it so. The batched GEMMs (baddbmm) compute each run's slice as
the single run's addmm does (D's one-unit output layer excepted: addmm takes a gemv path there, so it runs through
F.linear per run). Elementwise transcendental functions (softplus in the BCE losses) do not: ATen runs them with
SIMD code over whole vectors and with scalar code over a tensor's last few elements, whose results differ in the
last bit, so they are evaluated run by run on (b,) tensors laid out as train()'s. So the sweep's store does not
depend on --ensemble, and a resumed sweep may regroup seeds freely. With several threads neither train() nor this
is bitwise reproducible across thread counts.

Supported: model mlp on ring8, grid25 and gauss-mlp, loss bce or wgan-gp, ELEMENTWISE optimizers, fp32, no
torch.compile, no measure_batch; :func:`unsupported` says why a config is not.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from empirical.config import TrainConfig
from empirical.datasets import load_data
from empirical.evaluation import FIDEvaluator, make_evaluator
from empirical.mixtures import get_mixture, mode_coverage
from empirical.optimizers import ELEMENTWISE, make_optimizer
from empirical.stopping import Stopper
from empirical.train import EvalPoint, RunResult, build_models, next_evaluation, resolve_device

DATA = ("ring8", "grid25", "gauss-mlp")
LOSSES = ("bce", "wgan-gp")
EVAL_SEED_OFFSET = 1_000_003  # train()'s evaluation generator: seed + this
FID_CHUNK = 4096  # FIDEvaluator runs the generator on chunks of this many rows

# observe(seed, step, generator_parameters, discriminator_parameters) at every evaluation of a live run, the
# parameters as views of that run's slices, by the single module's names (tests write NaN into one to make it diverge)
Observer = Callable[[int, int, dict[str, torch.Tensor], dict[str, torch.Tensor]], None]


def unsupported(config: TrainConfig) -> str | None:
    """Why `config` cannot be trained as an ensemble (one line), or None when it can."""
    checks = [
        (config.model == "mlp" and config.data in DATA, f"model mlp on {', '.join(DATA)}"),
        (config.loss in LOSSES, f"loss {' or '.join(LOSSES)}"),
        (config.optimizer in ELEMENTWISE, f"an elementwise optimizer ({', '.join(ELEMENTWISE)})"),
        (config.precision == "fp32" and config.compile == "none", "fp32 without torch.compile"),
        (config.measure_batch == 0, "measure_batch 0"),
    ]
    missing = [need for ok, need in checks if not ok]
    if not missing:
        return None
    return (f"seed ensembles need {'; '.join(missing)} (got model {config.model!r}, data {config.data!r}, loss "
            f"{config.loss!r}, optimizer {config.optimizer!r}, precision {config.precision!r}, compile "
            f"{config.compile!r}, measure_batch {config.measure_batch})")


class StackedMLP(nn.Module):
    """R copies of one nn.Sequential MLP (Linear layers and elementwise activations, as empirical.models' MLPs) with
    each Linear's weight and bias stacked along a leading run axis: input (R, n, in) → output (R, n, out)."""

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        super().__init__()
        template = modules[0]
        self.layers: list[nn.Module | int] = []  # an activation module, or the index of a Linear's parameters
        self.names: list[str] = []  # the single module's parameter names, in self.params order
        self.params = nn.ParameterList()
        for index, layer in enumerate(template.net):
            if isinstance(layer, nn.Linear):
                self.layers.append(len(self.params) // 2)
                for kind in ("weight", "bias"):
                    self.names.append(f"net.{index}.{kind}")
                    self.params.append(nn.Parameter(torch.stack(
                        [getattr(m.net[index], kind).detach() for m in modules])))
            elif isinstance(layer, (nn.ReLU, nn.LeakyReLU)):
                self.layers.append(layer)
            else:
                raise ValueError(f"a stacked MLP takes Linear, ReLU and LeakyReLU layers, not {type(layer).__name__}")
        # MLPDiscriminator's forward drops the last axis (one logit per sample); MLPGenerator's returns points
        self.squeeze = type(template).__name__ == "MLPDiscriminator"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            if isinstance(layer, int):
                weight, bias = self.params[2 * layer], self.params[2 * layer + 1]
                if weight.shape[1] == 1:  # one output unit: addmm takes a gemv path whose sums baddbmm's differ from
                    x = torch.stack([F.linear(*args) for args in zip(x, weight, bias, strict=True)])
                else:  # the single run's addmm to round-off (bitwise up to 3 runs on one CPU thread)
                    x = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
            else:
                x = layer(x)
        return x.squeeze(-1) if self.squeeze else x

    @torch.no_grad()
    def sample(self, x: torch.Tensor, r: int, chunk: int | None = None) -> torch.Tensor:
        """Run r's output on x (n, in): its slices through F.linear, bitwise what the single module gives on the
        same chunks of `chunk` rows (a GEMM's rows can depend on its row count)."""
        if chunk is not None and len(x) > chunk:
            return torch.cat([self.sample(part, r) for part in x.split(chunk)])
        for layer in self.layers:
            if isinstance(layer, int):
                x = F.linear(x, self.params[2 * layer][r], self.params[2 * layer + 1][r])
            else:
                x = layer(x)
        return x.squeeze(-1) if self.squeeze else x

    def run(self, r: int) -> dict[str, torch.Tensor]:
        """Run r's parameters under the single module's names (views: writing them writes the ensemble)."""
        return {name: p.data[r] for name, p in zip(self.names, self.params, strict=True)}

    def run_norms(self) -> list[float]:
        """‖∇θ_r‖ per run from the stacked gradients, summed as empirical.train's _grad_norm sums one run's."""
        return [float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad[r]) for p in self.params])))
                for r in range(len(self.params[0]))]

    def finite_runs(self) -> torch.Tensor:
        """Per run: are all its parameters finite."""
        return torch.stack([torch.isfinite(p).flatten(1).all(1) for p in self.params]).all(0)


def _keep(module: StackedMLP, optimizer: torch.optim.Optimizer, keep: torch.Tensor) -> None:
    """Drop every run not in `keep` (indices) from the stacked parameters and the optimizer's per-element state.

    New Parameters, not a new .data: autograd caches a leaf's shape (its AccumulateGrad node), so a leaf whose
    .data changed shape fails in the next backward."""
    (group,) = optimizer.param_groups
    for i, old in enumerate(module.params):
        new = nn.Parameter(old.detach()[keep])
        state = optimizer.state.pop(old, {})
        optimizer.state[new] = {key: value[keep] if isinstance(value, torch.Tensor) and value.shape == old.shape
                                else value for key, value in state.items()}
        group["params"][next(j for j, q in enumerate(group["params"]) if q is old)] = new
        module.params[i] = new


def _losses(config: TrainConfig, d: StackedMLP, real: torch.Tensor, fake: torch.Tensor,
            t: torch.Tensor | None) -> torch.Tensor:
    """Each run's L_D (shape (R,)) as empirical.losses.discriminator_loss computes it for one run."""
    d_real, d_fake = d(real), d(fake)
    if config.loss == "bce":
        return torch.stack([_softplus_mean(-x) + _softplus_mean(y) for x, y in zip(d_real, d_fake, strict=True)])
    mixed = (t * real + (1 - t) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(d(mixed).sum(), mixed, create_graph=True)
    penalty = ((grad.norm(dim=-1) - 1) ** 2).mean(-1)
    return d_fake.mean(-1) - d_real.mean(-1) + config.gp_weight * penalty


def _generator_losses(config: TrainConfig, d_fake: torch.Tensor) -> torch.Tensor:
    if config.loss == "bce":
        return torch.stack([_softplus_mean(-x) for x in d_fake])
    return -d_fake.mean(-1)


def _softplus_mean(x: torch.Tensor) -> torch.Tensor:
    """softplus(x).mean() of one run's (b,) logits, run by run: ATen evaluates exp/log1p with SIMD code on whole
    vectors and with scalar code on a tensor's last few elements, whose results differ in the last bit; one (R, b)
    tensor would put a run's logits in other lanes than train()'s (b,) tensor does, and Adam amplifies that."""
    return F.softplus(x).mean()


def _score(evaluator: object, samples: torch.Tensor) -> float:
    """FID of one run's n_eval samples, as its evaluator (FIDEvaluator or gauss-mlp's SampleFID) scores them."""
    if isinstance(evaluator, FIDEvaluator):
        if not torch.isfinite(samples).all():
            return float("nan")
        return evaluator.reference.distance_to_features(evaluator.extractor(samples))
    points = samples.double().cpu().numpy()
    if not np.isfinite(points).all():
        return float("nan")
    return evaluator.reference.distance_to_features(points)


def train_many(config: TrainConfig, seeds: Sequence[int], *, observe: Observer | None = None,
               on_eval: Callable[[int, EvalPoint], None] | None = None) -> list[RunResult]:
    """train(config, seed) for every seed, as one vectorised ensemble (one result per seed, in order);
    `on_eval(seed, point)` at each run's every evaluation, as it is recorded (live logs)."""
    reason = unsupported(config)
    if reason is not None:
        raise ValueError(reason)
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"an ensemble needs distinct seeds, got {list(seeds)}")
    device = resolve_device(config.device)
    start = time.perf_counter()
    data = load_data(config, device)
    evaluators = [make_evaluator(config, device, seed=seed + EVAL_SEED_OFFSET) for seed in seeds]
    singles = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            singles.append(build_models(config, channels=1))
    g = StackedMLP([s[0] for s in singles]).to(device)
    d = StackedMLP([s[1] for s in singles]).to(device)
    opt_d = make_optimizer(config.optimizer, d.parameters(), config.lr_d)
    opt_g = make_optimizer(config.optimizer, g.parameters(), config.lr_g)
    rngs = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
    mixture = get_mixture(config.data) if config.data in ("ring8", "grid25") else None
    b = config.batch_size

    live = list(range(len(seeds)))  # original index of each slice still in the ensemble
    histories: list[list[EvalPoint]] = [[] for _ in seeds]
    stoppers = [Stopper(config) for _ in seeds]
    status: list[str | None] = [None] * len(seeds)
    steps_run = [0] * len(seeds)
    walls = [0.0] * len(seeds)

    def evaluations() -> list[tuple[float, int | None, float | None]]:
        """(FID, modes, high-quality share) of every live run. The generators run one by one on their slices: one
        batched pass over all runs is about 2x slower on a CPU (its (R, n_eval, width) activations leave the cache)."""
        out = []
        for slot, r in enumerate(live):
            samples = g.sample(evaluators[r].z, slot, FID_CHUNK if isinstance(evaluators[r], FIDEvaluator) else None)
            modes = quality = None
            if mixture is not None:
                coverage = mode_coverage(samples, mixture)
                modes, quality = coverage.modes_captured, coverage.high_quality
            out.append((_score(evaluators[r], samples), modes, quality))
        return out

    for slot, (fid, modes, quality) in enumerate(evaluations()):
        histories[slot].append(EvalPoint(0, fid, math.nan, math.nan, math.nan, math.nan, math.nan, 0.0, modes,
                                         quality))
        if on_eval is not None:
            on_eval(seeds[slot], histories[slot][-1])
        stoppers[slot].start(fid)
        if observe is not None:
            observe(seeds[slot], 0, g.run(slot), d.run(slot))

    sum_d = torch.zeros(len(live), device=device)
    sum_g = torch.zeros(len(live), device=device)
    count = 0
    next_eval = next_evaluation(0, config.eval_every, config.eval_growth)
    step = 0
    for step in range(1, config.max_steps + 1):
        for critic_step in range(config.n_critic):
            reals, zs, ts = [], [], []
            for r in live:  # each run's own stream, in train()'s order: real batch, z, then the penalty's t
                reals.append(data.sample(b, rngs[r]))
                zs.append(torch.randn(b, config.z_dim, generator=rngs[r], device=device))
                if config.loss == "wgan-gp":
                    ts.append(torch.rand((b, 1), generator=rngs[r], device=device))
            real, z = torch.stack(reals), torch.stack(zs)
            with torch.set_grad_enabled(critic_step == config.n_critic - 1 and not config.g_fresh_z):
                fake = g(z)
            loss_d = _losses(config, d, real, fake.detach(), torch.stack(ts) if ts else None)
            opt_d.zero_grad(set_to_none=True)
            loss_d.sum().backward()
            opt_d.step()
        at_eval = step == next_eval or step == config.max_steps
        if at_eval:
            grad_norm_d = d.run_norms()
        if config.g_fresh_z:
            z = torch.stack([torch.randn(b, config.z_dim, generator=rngs[r], device=device) for r in live])
            fake = g(z)
        d_fake = d(fake)
        loss_g = _generator_losses(config, d_fake)
        opt_g.zero_grad(set_to_none=True)
        loss_g.sum().backward()
        opt_g.step()
        sum_d += loss_d.detach()
        sum_g += loss_g.detach()
        count += 1
        if not at_eval:
            continue
        seconds = time.perf_counter() - start
        finite = (g.finite_runs() & d.finite_runs()).tolist()
        scores = evaluations()
        grad_norm_g = g.run_norms()
        ratios = _balance_ratios(config, g, d, real, z, d_fake.detach())
        for slot, r in enumerate(live):
            loss_d_mean, loss_g_mean = float(sum_d[slot]) / count, float(sum_g[slot]) / count
            if not (math.isfinite(loss_d_mean) and math.isfinite(loss_g_mean) and finite[slot]):
                status[r] = stoppers[r].diverge(step)
            else:
                fid, modes, quality = scores[slot]
                histories[r].append(EvalPoint(step, fid, loss_d_mean, loss_g_mean, float(grad_norm_d[slot]),
                                              float(grad_norm_g[slot]), ratios[slot], seconds, modes, quality))
                if on_eval is not None:
                    on_eval(seeds[r], histories[r][-1])
                if observe is not None:
                    observe(seeds[r], step, g.run(slot), d.run(slot))
                status[r] = stoppers[r].update(step, fid)
            if status[r] is not None:
                steps_run[r], walls[r] = step, time.perf_counter() - start
        next_eval = next_evaluation(step, config.eval_every, config.eval_growth)
        keep = [slot for slot, r in enumerate(live) if status[r] is None]
        if not keep:
            break
        if len(keep) < len(live):
            index = torch.tensor(keep, device=device)
            _keep(g, opt_g, index)
            _keep(d, opt_d, index)
            live = [live[slot] for slot in keep]
        sum_d = torch.zeros(len(live), device=device)
        sum_g = torch.zeros(len(live), device=device)
        count = 0
    end = time.perf_counter() - start
    return [RunResult(
        config=config, seed=seed, status=status[r] or stoppers[r].final_status(),
        steps_to_target=stoppers[r].reached_at, steps_run=steps_run[r] if status[r] is not None else step,
        diverged_at=stoppers[r].diverged_at, device=str(device),
        wall_seconds=walls[r] if status[r] is not None else end, history=histories[r],
    ) for r, seed in enumerate(seeds)]


@torch.no_grad()
def _balance_ratios(config: TrainConfig, g: StackedMLP, d: StackedMLP, real: torch.Tensor, z: torch.Tensor,
                    d_fake_before: torch.Tensor) -> list[float]:
    """empirical.train.balance_ratio per run: D after its update, G before (d_fake_before) and after its update."""
    score = torch.sigmoid if config.loss == "bce" else (lambda t: t)
    ratios = []
    for before, after, real_score in zip(d_fake_before, d(g(z)), d(real), strict=True):  # run by run: see score
        before = score(before).mean()
        gap = score(real_score).mean() - before
        ratios.append(float((score(after).mean() - before) / gap) if float(gap) != 0.0 else float("nan"))
    return ratios
