"""One TTUR training run as a pure function of (config, seed): FID on a schedule of steps, stop at the target.

    python -m empirical.train --preset ring8 --batch-size 64 --seed 0

One iteration is n_critic discriminator steps then one generator step, each on b samples (the protocol of the
official TTUR scripts); its SFO cost is counted as b per iteration, as in the paper (N = K·b). K, the steps-to-target,
is the first evaluated step whose FID, on n_eval samples, is at or below the target. Evaluations fall every
eval_every steps, or, with eval_growth g > 0, at multiples of eval_every at least (1 + g)× the previous evaluation's
step (see :func:`next_evaluation`), so K is known to a relative error of at most g + eval_every/K at a cost of
about log(K)/g evaluations instead of K/eval_every. A run whose losses or parameters become NaN/inf stops and is
returned as `diverged`; train() never raises for it.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from empirical import benchmarks
from empirical.cli import OneLineParser, add_config_flags, config_overrides
from empirical.config import TrainConfig
from empirical.datasets import load_data
from empirical.errors import EmpiricalInputError
from empirical.evaluation import make_evaluator
from empirical.gradients import halves_gradient
from empirical.losses import discriminator_loss, generator_loss
from empirical.mixtures import get_mixture, mode_coverage
from empirical.models import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator, dcgan_init
from empirical.objectives import Game
from empirical.optimizers import make_optimizer
from empirical.presets import PRESETS, get_preset
from empirical.stopping import DIVERGED, NOT_REACHED, REACHED, SETTLED, Stopper  # noqa: F401 (the statuses, re-exported)


@dataclass(frozen=True)
class EvalPoint:
    """The state of a run at one evaluation; losses are means over the steps since the previous evaluation."""

    step: int
    fid: float
    loss_d: float
    loss_g: float
    grad_norm_d: float  # ‖∇L_D‖ at the last D step before the evaluation
    grad_norm_g: float
    balance_ratio: float  # reference.md §5, measured at the last iteration before the evaluation
    seconds: float  # wall time since the start of training (not part of the deterministic result)
    modes: int | None = None  # mixtures: modes captured and share of high-quality samples (reference.md §7)
    high_quality: float | None = None
    # config.measure_batch > 0: the theory's measures at this evaluation's parameters θ, per player P (see
    # Measurer): grad_sq = unbiased ‖∇_P L_P(θ)‖² of the full (expected) gradient, vi_gap = ⟨θ_P − θ_ref,P, ∇_P L_P(θ)⟩
    # (None without a reference point). None when not measured.
    grad_sq_d: float | None = None
    grad_sq_g: float | None = None
    vi_gap_d: float | None = None
    vi_gap_g: float | None = None


@dataclass
class RunResult:
    """What a run returns: its status, steps-to-target K (None unless reached), SFO = K·b, and its history."""

    config: TrainConfig
    seed: int
    status: str
    steps_to_target: int | None
    steps_run: int
    diverged_at: int | None
    device: str
    wall_seconds: float
    history: list[EvalPoint] = field(default_factory=list)

    @property
    def sfo(self) -> int | None:
        return None if self.steps_to_target is None else self.steps_to_target * self.config.batch_size

    def to_dict(self) -> dict:
        return {**asdict(self), "config": self.config.to_dict(), "sfo": self.sfo}


@dataclass(frozen=True)
class Checkpoint:
    """The live training state at one evaluation, handed to `train(observe=...)` (read it; do not change it)."""

    step: int
    point: EvalPoint
    generator: nn.Module
    discriminator: nn.Module
    opt_d: torch.optim.Optimizer
    opt_g: torch.optim.Optimizer


def resolve_device(name: str) -> torch.device:
    """"auto" is CUDA when there is a GPU, else CPU; nothing else assumes a GPU. A device this machine lacks is a
    one-line EmpiricalInputError, not torch's traceback at the first tensor."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise EmpiricalInputError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EmpiricalInputError(f"device {name!r} asked for, but this torch ({torch.__version__}) sees no CUDA GPU; "
                                  "use --device auto or cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise EmpiricalInputError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA GPU(s) seen")
    return device


def build_models(config: TrainConfig, channels: int) -> tuple[nn.Module, nn.Module]:
    """Generator and discriminator for the config, initialised from the current torch RNG."""
    if benchmarks.is_registered(config.data):
        return benchmarks.get_benchmark(config.data).build_models(config)
    if config.model == "mlp":
        return (
            MLPGenerator(config.z_dim, config.width, config.depth),
            MLPDiscriminator(2, config.width, config.depth),
        )
    g = DCGANGenerator(config.image_size, config.width, config.z_dim, channels)
    d = DCGANDiscriminator(config.image_size, config.width, channels, config.d_norm)
    dcgan_init(g)
    dcgan_init(d)
    return g, d


def training_modules(config: TrainConfig, g: nn.Module, d: nn.Module) -> tuple[nn.Module, nn.Module]:
    """The generator and discriminator the training steps call: torch.compile'd per config.compile, sharing the
    eager modules' parameters (evaluation, the balance ratio and the gradient penalty use the eager ones)."""
    if config.compile == "none":
        return g, d
    return torch.compile(g, mode=config.compile), torch.compile(d, mode=config.compile)


def next_evaluation(previous: int, eval_every: int, eval_growth: float = 0.0) -> int:
    """The step of the evaluation after the one at `previous`: the first multiple of eval_every above `previous`
    that is at least (1 + eval_growth)·previous (eval_growth 0: previous + eval_every, a fixed interval)."""
    # The 1e-9 (in units of eval_every) absorbs float round-off, e.g. 100 × 1.1 / 10 = 11.000000000000002.
    grown = math.ceil(previous * (1.0 + eval_growth) / eval_every - 1e-9)
    return eval_every * max(previous // eval_every + 1, grown)


def evaluation_steps(config: TrainConfig) -> list[int]:
    """Every step a run of this config evaluates at if it never stops early: 0, the schedule, and max_steps."""
    steps = [0]
    while steps[-1] < config.max_steps:
        steps.append(min(next_evaluation(steps[-1], config.eval_every, config.eval_growth), config.max_steps))
    return steps


def _grad_norm(module: nn.Module) -> torch.Tensor:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def _finite_parameters(*modules: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for m in modules for p in m.parameters())


@torch.no_grad()
def balance_ratio(
    config: TrainConfig,
    d: nn.Module,
    g_after: nn.Module,
    real: torch.Tensor,
    z: torch.Tensor,
    d_fake_before: torch.Tensor,
) -> float:
    """BR = E[D(G_after(z)) − D(G_before(z))] / (E[D(x)] − E[D(G_before(z))]), D after its update (Wang et al.).

    D's output is the probability σ(logit) for BCE (as in the paper) and the critic value for WGAN-GP.
    """
    score = torch.sigmoid if config.loss == "bce" else (lambda t: t)
    before = score(d_fake_before).mean()
    after = score(d(g_after(z))).mean()
    gap = score(d(real)).mean() - before
    return float((after - before) / gap) if float(gap) != 0.0 else float("nan")


PLAYERS = ("D", "G")
MEASURE_SEED_OFFSET = 2_000_029  # the measuring generator's seed is the run's seed + this (evaluation: + 1_000_003)


def flat_parameters(module: nn.Module) -> torch.Tensor:
    """A player's parameters as one flat float64 vector, in module.parameters() order (as its gradients)."""
    return torch.cat([p.detach().reshape(-1).to(torch.float64) for p in module.parameters()])


class Measurer:
    """The TTUR theory's own measures at an evaluation (config.measure_batch > 0), taken without changing the run.

    Sampled (any model): each player's loss gradient on two independent halves of measure_batch fresh samples
    (empirical.gradients.halves_gradient, as empirical.constants measures along its reference run), on copies of the
    players (train-mode BatchNorm would otherwise move their running statistics), the samples drawn from a generator
    of its own seeded by the run's seed: grad_sq = ⟨g_A, g_B⟩ is unbiased for ‖∇_P L_P‖², vi_gap = ⟨θ_P − θ_ref,P,
    (g_A + g_B)/2⟩ for the VI gap. Exact (a benchmark with exact_gradient, lqgan): the same two from the gradient of
    the expected loss, no sampling. θ_ref: the one given, else the benchmark's exact equilibrium, else none (vi_gap
    None); empirical/reference_point.py makes one that does not depend on the run's minibatches.
    """

    def __init__(self, config: TrainConfig, data: object, device: torch.device, seed: int,
                 reference: Mapping[str, torch.Tensor] | None = None) -> None:
        self.config, self.data = config, data
        unit = benchmarks.get_benchmark(config.data) if benchmarks.is_registered(config.data) else None
        self.exact = unit.exact_gradient if unit is not None else None
        if reference is None and unit is not None and unit.exact_reference is not None:
            reference = unit.exact_reference(config)
        self.reference = None if reference is None else {
            p: torch.as_tensor(reference[p]).to(device=device, dtype=torch.float64).reshape(-1) for p in PLAYERS}
        self.rng = torch.Generator(device=device).manual_seed(seed + MEASURE_SEED_OFFSET)

    def gradients(self, g: nn.Module, d: nn.Module) -> dict[str, tuple[float, torch.Tensor]]:
        """Per player: (the unbiased ‖∇L_P‖², the unbiased gradient to take the VI gap with)."""
        if self.exact is not None:
            return {p: (float(grad @ grad), grad) for p, grad in self.exact(self.config, g, d).items()}
        game = Game(self.config, copy.deepcopy(g), copy.deepcopy(d), self.data)
        half = self.config.measure_batch // 2
        out = {}
        for p in PLAYERS:
            batch_a, batch_b = game.batch(p, half, self.rng), game.batch(p, half, self.rng)
            halves = halves_gradient(game.module(p), game.loss(p), batch_a, batch_b)
            out[p] = (halves.norm_sq, halves.mean)
        return out

    def __call__(self, g: nn.Module, d: nn.Module) -> dict[str, float | None]:
        """EvalPoint's grad_sq_d, grad_sq_g, vi_gap_d, vi_gap_g at the players' current parameters."""
        out: dict[str, float | None] = {}
        for p, (grad_sq, grad) in self.gradients(g, d).items():
            out[f"grad_sq_{p.lower()}"] = grad_sq
            out[f"vi_gap_{p.lower()}"] = None
            if self.reference is not None:
                theta = flat_parameters(d if p == "D" else g)
                if theta.shape != self.reference[p].shape:
                    raise EmpiricalInputError(f"the reference point has {self.reference[p].numel()} parameters for "
                                              f"{p}, the model {theta.numel()}: it was made for another config")
                out[f"vi_gap_{p.lower()}"] = float((theta - self.reference[p]) @ grad)
        return out


def train(
    config: TrainConfig,
    seed: int,
    *,
    progress: Callable[[int, EvalPoint | None], None] | None = None,
    observe: Callable[[Checkpoint], None] | None = None,
    reference: Mapping[str, torch.Tensor] | None = None,
) -> RunResult:
    """Train until the FID target is met (status "reached"), max_steps pass, or the run diverges.

    Deterministic: the model initialisation, the training minibatches and noise, and the evaluation noise come from
    three generators seeded by `seed`, so the trajectory does not depend on the evaluation schedule (eval_every,
    eval_growth) or n_eval, and the same config, seed and device give the same K. `progress(step, point)` is called
    after every step (point at evaluations); `observe(checkpoint)` at every evaluation, step 0 included, with the
    models and optimizers (empirical.constants measures gradients there; it must draw its own randomness so that the
    trajectory stays the same). With config.measure_batch > 0 each evaluation also records the theory's measures
    (:class:`Measurer`; `reference`: θ_ref of the VI gap, {"D": ..., "G": ...} flat, see empirical/reference_point.py),
    from a fourth generator, so the trajectory is the same with and without.
    """
    device = resolve_device(config.device)
    start = time.perf_counter()
    data = load_data(config, device)
    evaluate = make_evaluator(config, device, seed=seed + 1_000_003)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        g, d = build_models(config, channels=data.shape[0] if len(data.shape) == 3 else 1)
    g, d = g.to(device), d.to(device)
    opt_d = make_optimizer(config.optimizer, d.parameters(), config.lr_d)
    opt_g = make_optimizer(config.optimizer, g.parameters(), config.lr_g)
    rng = torch.Generator(device=device).manual_seed(seed)
    mixture = get_mixture(config.data) if config.data in ("ring8", "grid25") else None
    measure = Measurer(config, data, device, seed, reference) if config.measure_batch > 0 else None

    b = config.batch_size
    history: list[EvalPoint] = []
    sum_d = torch.zeros((), device=device)
    sum_g = torch.zeros((), device=device)
    count = 0
    status, step = None, 0
    stopper = Stopper(config)
    next_eval = next_evaluation(0, config.eval_every, config.eval_growth)
    g_step, d_step = training_modules(config, g, d)
    # bf16 autocast covers the forward passes of the training steps only; backward runs outside it, as
    # torch.autocast recommends, and the parameters, optimizer states and gradients stay fp32.
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16")

    def evaluation(
        step: int, real: torch.Tensor | None, z: torch.Tensor | None, d_fake: torch.Tensor | None
    ) -> EvalPoint:
        fid = evaluate(g)
        modes = quality = None
        if mixture is not None:
            with torch.no_grad():
                coverage = mode_coverage(g(evaluate.z), mixture)
            modes, quality = coverage.modes_captured, coverage.high_quality
        measured = {} if measure is None else measure(g, d)
        if real is None:  # the evaluation before the first step
            return EvalPoint(0, fid, math.nan, math.nan, math.nan, math.nan, math.nan, 0.0, modes, quality, **measured)
        return EvalPoint(
            step=step,
            fid=fid,
            loss_d=float(sum_d) / count,
            loss_g=float(sum_g) / count,
            grad_norm_d=float(grad_norm_d),
            grad_norm_g=float(_grad_norm(g)),
            balance_ratio=balance_ratio(config, d, g, real, z, d_fake),
            seconds=time.perf_counter() - start,
            modes=modes,
            high_quality=quality,
            **measured,
        )

    def record(point: EvalPoint) -> None:
        history.append(point)
        if observe is not None:
            observe(Checkpoint(point.step, point, g, d, opt_d, opt_g))

    first = evaluation(0, None, None, None)
    record(first)
    stopper.start(first.fid)
    for step in range(1, config.max_steps + 1):
        for critic_step in range(config.n_critic):
            real = data.sample(b, rng)
            z = torch.randn(b, config.z_dim, generator=rng, device=device)
            # The last critic step's fake keeps its graph: the G step reuses it (one G forward per iteration,
            # as in the DCGAN example the official scripts build on), unless config.g_fresh_z.
            with autocast:
                with torch.set_grad_enabled(critic_step == config.n_critic - 1 and not config.g_fresh_z):
                    fake = g_step(z)
                loss_d, _, _ = discriminator_loss(config.loss, d_step, real, fake.detach(), rng, config.gp_weight, d)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        at_eval = step == next_eval or step == config.max_steps
        if at_eval:
            grad_norm_d = _grad_norm(d)
        if config.g_fresh_z:  # G's own z: its gradient is then unbiased given D's new parameters
            z = torch.randn(b, config.z_dim, generator=rng, device=device)
            with autocast:
                fake = g_step(z)
        with autocast:
            d_fake = d_step(fake)
            loss_g = generator_loss(config.loss, d_fake)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        sum_d += loss_d.detach()
        sum_g += loss_g.detach()
        count += 1
        point = None
        if at_eval:
            if not (math.isfinite(float(sum_d)) and math.isfinite(float(sum_g)) and _finite_parameters(g, d)):
                status = stopper.diverge(step)
                break
            point = evaluation(step, real, z, d_fake.detach().float())
            record(point)
            next_eval = next_evaluation(step, config.eval_every, config.eval_growth)
            sum_d.zero_()
            sum_g.zero_()
            count = 0
            status = stopper.update(step, point.fid)
            if status is not None:
                break
        if progress is not None:
            progress(step, point)
    return RunResult(
        config=config,
        seed=seed,
        status=status or stopper.final_status(),
        steps_to_target=stopper.reached_at,
        steps_run=step,
        diverged_at=stopper.diverged_at,
        device=str(device),
        wall_seconds=time.perf_counter() - start,
        history=history,
    )


# ---------------------------------------------------------------------------------------------------------------
# CLI: python -m empirical.train --preset ring8 --batch-size 64 --seed 0


def _parser() -> argparse.ArgumentParser:
    """One flag per config field (--lr-d, --eval-every, ...), defaults taken from the chosen preset."""
    parser = OneLineParser(
        prog="python -m empirical.train",
        description="Train one TTUR GAN to a target FID and print K (steps-to-target).",
    )
    parser.add_argument("--preset", default="ring8", help=f"one of {', '.join(PRESETS)} (default ring8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="FILE", help="also write the full result (history included) as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_flags(parser)
    return parser


def _curve_lines(result: RunResult, rows: int = 12) -> list[str]:
    """The FID curve as a short table (every k-th evaluation, always the last)."""
    points = result.history
    keep = points[:: max(1, len(points) // rows)]
    if keep[-1] is not points[-1]:
        keep.append(points[-1])
    header = f"{'step':>8} {'FID':>10} {'loss_D':>8} {'loss_G':>8} {'BR':>8}"
    lines = [header + ("  modes" if points[0].modes is not None else "")]
    for p in keep:
        line = f"{p.step:>8} {p.fid:>10.3f} {p.loss_d:>8.3f} {p.loss_g:>8.3f} {p.balance_ratio:>8.3f}"
        lines.append(line + (f"  {p.modes}" if p.modes is not None else ""))
    return lines


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = get_preset(args.preset).with_(**config_overrides(args))
        bar = None if args.no_progress else tqdm(total=config.max_steps, desc=f"b={config.batch_size}", unit="step")

        def progress(step: int, point: EvalPoint | None) -> None:
            bar.update(step - bar.n)
            if point is not None:
                bar.set_postfix(fid=f"{point.fid:.3g}")

        result = train(config, args.seed, progress=None if bar is None else progress)
        if bar is not None:
            bar.close()
    except EmpiricalInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    target = f"FID <= {config.target_fid:g} at n = {config.n_eval} ({config.features} features)"
    if result.status == REACHED:
        print(f"K = {result.steps_to_target} steps to {target}; SFO = K*b = {result.sfo}")
    elif result.status == SETTLED:
        # the stopper's window: evaluations in (t/2, t] by step, not the second half of the evaluations by count
        # (with a growing schedule those cover more than half the steps)
        last = result.history[-1].step
        floor = min(p.fid for p in result.history if p.step > last / 2)
        print(f"settled above the target at step {result.steps_run} (FID no lower than {floor:.3g} over steps "
              f"{last // 2}..{last}): {target} is below this batch size's noise floor")
    elif result.status == DIVERGED:
        print(f"diverged (NaN/inf) at step {result.diverged_at}; target was {target}")
    else:
        print(f"not reached in {result.steps_run} steps: {target}; best FID {min(p.fid for p in result.history):.3f}")
    print("\n".join(_curve_lines(result)))
    print(f"{result.wall_seconds:.1f} s on {result.device}")
    if args.json:
        try:
            write_json(result, args.json)
        except OSError as error:
            print(f"error: cannot write {args.json}: {error.strerror or error}", file=sys.stderr)
            return 2
    return 0


def write_json(result: RunResult, path: str) -> None:
    """The result as JSON, written atomically (NaN becomes null)."""
    text = json.dumps(result.to_dict(), indent=1, default=str).replace("NaN", "null")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, target)


if __name__ == "__main__":
    sys.exit(main())
