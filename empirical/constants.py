"""The TTUR theory's constants, estimated from the gradients of a real training run, as a file theory.critical reads.

    python -m empirical.constants --preset ring8 --out constants.json
    python -m theory.critical --constants constants.json --family sgd

One reference run of the preset (its batch size and learning rates, `--seed`) is trained to its FID target, and a
copy of both players is kept at every evaluation. The estimates are then taken on those copies, on fresh batches
drawn from their own generator, so measuring never changes the run:

- along the run, at every evaluation from step 0 to the first one at the target: the full gradient ‖∇_P L_P‖ (two
  independent half batches, whose inner product is unbiased for ‖G‖²), the opponent's gradient of each loss
  (cross_lip), tr Σ from the difference of the halves, the distance travelled (dist), the optimizer's
  preconditioner (h_min, h_max) and the loss (gap); for an optimizer that steps α·h⊙m with an elementwise
  h = 1/(√v̂ + eps) (adam, amsgrad, rmsprop, adabelief), also tr(HΣ) and GᵀHG in its metric H = diag(h), h read
  off its state at that evaluation, from the same two halves (nothing more is drawn);
- at three checkpoints, the start, midway and the first evaluation at the target: the per-sample gradient variance
  σ² = tr Σ and ‖G‖² (exact per-sample gradients, from layer hooks or torch.func; McCandlish's two-batch
  estimator when BatchNorm in train mode couples the samples), B_simple = tr Σ / ‖G‖², and L = the largest
  |eigenvalue| of each player's Hessian (power iteration), each over `repeats` independent batches, whose range
  is the interval written to the file.

Which value goes into the file: the theory's constants are bounds assumed to hold at every iterate, so each is the
worst over the checkpoints (the largest σ², L, G, M, dist and h_max; the smallest h_min). The noise scale is a local
quantity that grows as training proceeds and swings between evaluations; the file's `noise_scale` is B_simple
averaged over the second half of the run (mean tr Σ / mean ‖G‖² from midway to the target), and for those
optimizers each player's entry holds "preconditioned": B_noise,H = mean tr(HΣ) / mean GᵀHG over the same window,
the noise scale of the steps Adam actually takes (an SGD-type optimizer's metric is the identity, its B_noise,H is
B_simple, and it gets no such entry). ε, the target the run reached in each family's own measure, is written per
family and per player (ε_P² = P's measure averaged over the evaluations up to the target; "value" = the larger,
for readers that take one ε): the ε that makes theory.critical's b* a prediction for *this* run's FID target. The
VI gap of the Adam-type families is taken at a reference point θ_ref that does not depend on the run
(empirical/reference_point.py). docs/constants.md explains each choice.

`--seeds 0,1,2` (instead of `--seed`) trains one reference run per seed and estimates each as above, all at the one
θ_ref, then writes one file: each bound the largest over the seeds (h_min the smallest), the noise scale the mean
over the seeds and ε_P² the mean of the seeds' mean measures; every interval spans the seeds' values and their own
intervals, so it covers the spread between trajectories, not only between batches. One seed writes the one-seed file.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from empirical.cli import OneLineParser, add_config_flags, config_overrides, fail
from empirical.config import TrainConfig
from empirical.datasets import load_data
from empirical.errors import EmpiricalInputError
from empirical.gradients import (
    batch_gradient,
    halves_gradient,
    parameter_distance_inf,
    per_sample_gradient_stats,
    player_objective,
    ratio_of_means,
    squared_norm,
    top_hessian_eigenvalue,
    two_batch_noise_estimate,
)
from empirical.objectives import Game, has_train_mode_batchnorm
from empirical.optimizers import GAN_BETAS, second_moment_bounds, step_denominator
from empirical.presets import PRESETS, get_preset
from empirical.sample_norms import HooksUnsupported
from empirical.train import DIVERGED, REACHED, Checkpoint, RunResult, resolve_device, train
from theory.errors import TheoryInputError

PLAYERS = ("D", "G")
CHECKPOINTS = ("start", "mid", "first-target")
# β1 per optimizer; no momentum otherwise
_BETA1 = {"adam": GAN_BETAS[0], "amsgrad": GAN_BETAS[0], "adabelief": GAN_BETAS[0], "graft": GAN_BETAS[0]}
# β2 of the Adam-type optimizers (their second-moment average v_k = β2·v_{k−1} + (1 − β2)·g_k²): betas[1], and
# RMSprop's alpha (torch's default, which empirical.optimizers keeps); the other optimizers have no such average
_BETA2 = {"adam": GAN_BETAS[1], "amsgrad": GAN_BETAS[1], "adabelief": GAN_BETAS[1], "rmsprop": 0.99}
# The optimizers whose step is α·h⊙m with an elementwise h = 1/(√v̂ + eps): the noise scale in their metric
# (B_noise,H) is measured for them. Not graft (Adam's step length, the raw gradient's direction) nor the SGD-type
# ones, whose metric is the identity, so that their B_noise,H is B_simple itself.
PRECONDITIONED = ("adam", "amsgrad", "rmsprop", "adabelief")


@dataclass(frozen=True)
class EstimateSettings:
    """How much work each estimate gets (defaults: ring8 in about a minute on 2 cores)."""

    samples: int = 256  # per noise estimate: per-sample gradients, or the big batch of the two-batch estimator
    repeats: int = 5  # independent batches per checkpoint (the intervals)
    hessian_samples: int = 1024  # the batch whose loss Hessian the power iteration probes
    hessian_repeats: int = 3
    power_iters: int = 200
    power_tol: float = 1e-3
    big_batch: int = 4096  # along the run: split in two halves for unbiased ‖G‖²
    quantile: float = 0.95  # grad_bound and cross_lip: this quantile over the evaluations
    float64: bool = False  # Hessians in float64
    chunk_size: int = 64  # per-sample gradients per vmap call (memory ∝ chunk_size × parameters)


@dataclass
class Snapshot:
    """Copies of both players at one evaluation, and the optimizers' preconditioner range then; `denominators`:
    per player of a PRECONDITIONED optimizer, its √v̂ + eps of every parameter (flat, module.parameters() order)."""

    step: int
    fid: float
    generator: nn.Module
    discriminator: nn.Module
    h_bounds: dict[str, tuple[float, float] | None]
    denominators: dict[str, Tensor] = field(default_factory=dict)


def record_run(config: TrainConfig, seed: int, progress=None) -> tuple[RunResult, list[Snapshot]]:
    """Train the reference run and keep a copy of the players at every evaluation.

    It trains on one CPU thread, as the sweep's workers do: the thread count changes the order of floating-point
    reductions and hence the trajectory, so this makes the reference run the sweep's own (b, seed) run, same K.
    """
    snapshots: list[Snapshot] = []

    def observe(cp: Checkpoint) -> None:
        denominators = {}
        if config.optimizer in PRECONDITIONED:
            for p, opt, module in (("D", cp.opt_d, cp.discriminator), ("G", cp.opt_g, cp.generator)):
                h = step_denominator(opt, module)
                if h is not None:
                    denominators[p] = h
        snapshots.append(Snapshot(cp.step, cp.point.fid, copy.deepcopy(cp.generator), copy.deepcopy(cp.discriminator),
                                  {"D": second_moment_bounds(cp.opt_d), "G": second_moment_bounds(cp.opt_g)},
                                  denominators))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train(config, seed, progress=progress, observe=observe)
    finally:
        torch.set_num_threads(threads)
    return result, snapshots


# ---------------------------------------------------------------------------------------------------------------
# Estimates at one set of parameters


@dataclass(frozen=True)
class Repeated:
    """Repeated estimates of one quantity on independent batches: the mean is the value, the range the interval."""

    values: tuple[float, ...]
    method: str

    @property
    def value(self) -> float:
        return math.fsum(self.values) / len(self.values)

    @property
    def interval(self) -> tuple[float, float]:
        return min(self.values), max(self.values)


def _flat(grads: dict[str, Tensor]) -> Tensor:
    return torch.cat([g.reshape(-1).to(torch.float64) for g in grads.values()])


def _uses_two_batch(game: Game, player: str) -> bool:
    frozen = [game.discriminator] if player == "G" else []
    return any(has_train_mode_batchnorm(m) for m in [game.module(player), *frozen])


def noise(game: Game, player: str, s: EstimateSettings, rng: torch.Generator) -> tuple[Repeated, Repeated]:
    """(tr Σ, ‖G‖²) of `player`'s gradient, each repeated on `s.repeats` independent batches."""
    module, loss = game.module(player), game.loss(player)
    traces, norms = [], []
    if _uses_two_batch(game, player):
        small = max(2, s.samples // 8)
        method = (f"McCandlish two-batch estimator, b = {small} and {s.samples} (BatchNorm in train mode couples "
                  "the samples, so per-sample gradients are undefined)")
        for _ in range(s.repeats):
            sq_small = squared_norm(batch_gradient(module, loss, game.batch(player, small, rng)).values())
            sq_big = squared_norm(batch_gradient(module, loss, game.batch(player, s.samples, rng)).values())
            trace, norm_sq = two_batch_noise_estimate(sq_small, sq_big, small, s.samples)
            traces.append(trace)
            norms.append(norm_sq)
    else:
        frozen = [game.discriminator] if player == "G" else []
        how = "hooks"  # exact per-sample norms from layer hooks where they apply, else torch.func vmap(grad)
        for _ in range(s.repeats):
            batch = game.batch(player, s.samples, rng)
            try:
                stats = per_sample_gradient_stats(module, loss, batch, s.chunk_size, frozen, method=how)
            except HooksUnsupported:
                how = "vmap"
                stats = per_sample_gradient_stats(module, loss, batch, s.chunk_size, frozen, method=how)
            traces.append(stats.trace_sigma)
            norms.append(stats.grad_norm_sq)
        tool = "layer hooks, empirical/sample_norms.py" if how == "hooks" else "torch.func vmap(grad)"
        method = f"exact per-sample gradients ({tool}) over {s.samples} samples"
    return Repeated(tuple(traces), method), Repeated(tuple(norms), method)


def smoothness(game: Game, player: str, s: EstimateSettings, rng: torch.Generator) -> Repeated:
    """|largest-magnitude eigenvalue| of ∇²L_P in θ_P, by power iteration on `s.hessian_repeats` batches."""
    dtype = torch.float64 if s.float64 else None
    if s.float64:
        game = Game(game.config, copy.deepcopy(game.generator).double(), copy.deepcopy(game.discriminator).double(),
                    game.data)
    values, unconverged = [], 0
    for _ in range(s.hessian_repeats):
        batch = game.batch(player, s.hessian_samples, rng)
        params, objective = player_objective(game.module(player), game.loss(player), batch, dtype)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            values.append(abs(top_hessian_eigenvalue(objective, params, s.power_iters, s.power_tol, dtype, rng)))
        unconverged += any(issubclass(w.category, RuntimeWarning) for w in caught)
    method = (f"power iteration on Hessian-vector products, {s.hessian_samples} samples, "
              f"{'float64' if s.float64 else 'float32'}, tol {s.power_tol:g}")
    if unconverged:
        method += f"; {unconverged} of {s.hessian_repeats} stopped at {s.power_iters} iterations unconverged"
    return Repeated(tuple(values), method)


@dataclass(frozen=True)
class AlongRun:
    """Cheap measurements at one evaluation, per player, from one big batch in two independent halves."""

    step: int
    grad_norm_sq: dict[str, float]  # unbiased: ⟨g_A, g_B⟩
    trace_sigma: dict[str, float]  # unbiased: h·‖g_A − g_B‖²/2 for two independent means of h samples
    grad: dict[str, Tensor]  # (g_A + g_B)/2, flattened float64, for the variational-inequality gap
    cross_norm: dict[str, float]  # ‖∇_{θ_Q} L_P‖, from the unbiased ⟨a_A, a_B⟩
    loss: dict[str, float]
    theta: dict[str, Tensor]  # flattened parameters
    # in the optimizer's metric H = diag(1/(√v̂ + eps)), for the players of a PRECONDITIONED optimizer (after its
    # first step): unbiased tr(HΣ) = half·Σ h_i (g_A,i − g_B,i)²/2 and GᵀHG = Σ h_i g_A,i g_B,i, same halves
    weighted_trace: dict[str, float] = field(default_factory=dict)
    weighted_norm_sq: dict[str, float] = field(default_factory=dict)


def along_run(game: Game, step: int, s: EstimateSettings, rng: torch.Generator,
              denominators: Mapping[str, Tensor] | None = None) -> AlongRun:
    """The cheap measurements at one evaluation; `denominators` (player -> the optimizer's √v̂ + eps then, see
    :func:`step_denominator`) adds the weighted terms from the same two halves, drawing nothing more."""
    half = s.big_batch // 2
    weighted_trace, weighted_norm = {}, {}
    norm_sq, trace, grads, cross, losses, theta = {}, {}, {}, {}, {}, {}
    for p in PLAYERS:
        module, loss = game.module(p), game.loss(p)
        batch_a, batch_b = game.batch(p, half, rng), game.batch(p, half, rng)
        halves = halves_gradient(module, loss, batch_a, batch_b)
        trace[p], norm_sq[p], grads[p] = halves.trace_sigma, halves.norm_sq, halves.mean
        if denominators is not None and p in denominators:
            weighted_trace[p], weighted_norm[p] = halves.weighted(1.0 / denominators[p].to(torch.float64))
        opponent, cross_loss = game.opponent(p), game.cross_loss(p)
        c_a = _flat(batch_gradient(opponent, cross_loss, game.cross_batch(p, half, rng)))
        c_b = _flat(batch_gradient(opponent, cross_loss, game.cross_batch(p, half, rng)))
        cross[p] = math.sqrt(max(0.0, float(c_a @ c_b)))
        with torch.no_grad():  # the loss of batch A (torch.func.grad inside WGAN-GP ignores the outer no_grad)
            losses[p] = float(loss(module, batch_a))
        theta[p] = torch.cat([x.detach().reshape(-1).to(torch.float64) for x in module.parameters()])
    return AlongRun(step, norm_sq, trace, grads, cross, losses, theta, weighted_trace, weighted_norm)


# ---------------------------------------------------------------------------------------------------------------
# The whole estimation


@dataclass(frozen=True)
class Epsilon:
    """The ε one family's measure reached on the run, per player, and how it was computed."""

    players: dict[str, float]  # "D" / "G" -> ε_P
    method: str

    @property
    def value(self) -> float:
        """The single ε of readers that take one: the larger player's (a target both players reached)."""
        return max(self.players.values())

    def entry(self) -> dict:
        """The constants file's epsilon entry (theory.schema)."""
        return {"value": self.value, "players": dict(self.players), "method": self.method}


def _family_measures() -> dict[str, str]:
    """Registered bound family -> the measure its ε² is in: "gradient" (‖∇_P L_P‖², the sgd families) or
    "vi_gap" (the variational-inequality gap, the Adam-type families); families with another measure are left
    out. Read from theory.families, so a new family of either measure gets its ε without a change here."""
    from theory.families import FAMILIES

    kinds = {FAMILIES["sgd"].measure: "gradient", FAMILIES["adam"].measure: "vi_gap"}
    return {name: kinds[f.measure] for name, f in FAMILIES.items() if f.measure in kinds}


@dataclass
class Estimate:
    """Everything measured on one run; `document()` turns it into the constants file's sections."""

    config: TrainConfig
    seed: int
    result: RunResult
    settings: EstimateSettings
    checkpoint_steps: dict[str, int]
    sigma2: dict[tuple[str, str], Repeated] = field(default_factory=dict)  # (checkpoint, player)
    grad_norm_sq: dict[tuple[str, str], Repeated] = field(default_factory=dict)
    smooth: dict[tuple[str, str], Repeated] = field(default_factory=dict)
    run: list[AlongRun] = field(default_factory=list)
    h_bounds: list[dict[str, tuple[float, float] | None]] = field(default_factory=list)
    dim: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    # θ_ref of the VI gap ({"D", "G"} -> flat float64, module.parameters() order) and how it was made
    reference: dict[str, Tensor] | None = None
    reference_method: str = ""

    def noise_scale(self, checkpoint: str, player: str) -> tuple[float, tuple[float, float] | None] | None:
        """B_simple = mean tr Σ / mean ‖G‖² (ratio of means, as McCandlish); range of per-batch ratios; None if
        ‖G‖² is not resolved (its mean is not positive: noise swamps the signal at this many samples)."""
        trace, norm = self.sigma2[checkpoint, player], self.grad_norm_sq[checkpoint, player]
        if not norm.value > 0:
            return None
        value = trace.value / norm.value
        ratios = [t / n for t, n in zip(trace.values, norm.values, strict=True) if n > 0]
        return value, (min(*ratios, value), max(*ratios, value)) if ratios else None

    def measures(self) -> dict[str, dict[str, float]]:
        """Each family measure's mean over the evaluations up to the target, per player: "gradient" = the unbiased
        ‖∇_P L_P(θ_k)‖², "vi_gap" = ⟨θ_k,P − θ_ref,P, ∇_P L_P(θ_k)⟩ with θ_ref = `self.reference` (absent without
        one)."""
        out = {"gradient": {p: statistics.fmean(a.grad_norm_sq[p] for a in self.run) for p in PLAYERS}}
        if self.reference is not None:
            out["vi_gap"] = {p: statistics.fmean(float((a.theta[p] - self.reference[p]) @ a.grad[p])
                                                 for a in self.run) for p in PLAYERS}
        return out

    def epsilon(self) -> dict[str, Epsilon]:
        """The ε each family's measure reached, per player: ε_P² = P's measure averaged over the evaluations up to
        the target (the bound asks each player P to reach its own ε_P²; taking the larger player's for both, as
        this module once did, asks the other for a target it had already passed). A family whose measure is not
        taken here, or whose mean is not positive for a player (no ε_P has ε_P² = it), gets none:
        :meth:`epsilon_skipped` says why."""
        return self._epsilon()[0]

    def epsilon_skipped(self) -> dict[str, str]:
        """family -> why the file has no ε for it (see :meth:`epsilon`)."""
        return self._epsilon()[1]

    def measure_texts(self) -> dict[str, str]:
        """measure -> how its mean over the run is taken, for the ε entries' method text."""
        n = len(self.run)
        return {
            "gradient": f"mean over {n} evaluations up to the target of the unbiased ‖∇_P L_P(θ_k)‖² "
                        f"({self.settings.big_batch} samples in two halves)",
            "vi_gap": f"mean over {n} evaluations up to the target of the VI gap ⟨θ_k − θ_ref, ∇_P L_P(θ_k)⟩, "
                      f"θ_ref {self.reference_method}",
        }

    def _epsilon(self) -> tuple[dict[str, Epsilon], dict[str, str]]:
        means, described = self.measures(), self.measure_texts()
        out: dict[str, Epsilon] = {}
        skipped: dict[str, str] = {}
        for family, measure in _family_measures().items():
            if measure not in means:
                skipped[family] = "no reference point θ_ref for the VI gap"
                continue
            sq = means[measure]
            if not all(sq[p] > 0 for p in PLAYERS):
                skipped[family] = (f"the mean {measure} is not positive for a player "
                                   f"(D {sq['D']:.4g}, G {sq['G']:.4g}): no ε_P with ε_P² = it")
                continue
            text = (f"ε_P² = {described[measure]}: D {sq['D']:.4g}, G {sq['G']:.4g}; value = the larger ε_P "
                    "(for readers that take one ε)")
            out[family] = Epsilon({p: math.sqrt(sq[p]) for p in PLAYERS}, text)
        return out, skipped

    def constants(self) -> dict[str, dict]:
        """The constants section: every value with its interval, method and number of estimates."""
        c = self.config
        out: dict[str, dict] = {}
        beta1 = _BETA1.get(c.optimizer, 0.0)
        for p in PLAYERS:
            out[f"alpha_{p}"] = {"value": c.lr_d if p == "D" else c.lr_g, "method": "optimizer setting"}
            out[f"beta1_{p}"] = {"value": beta1, "method": f"optimizer setting ({c.optimizer})"}
            if c.optimizer in _BETA2:
                out[f"beta2_{p}"] = {"value": _BETA2[c.optimizer], "method": "optimizer setting"}
            out[f"dim_{p}"] = {"value": self.dim[p], "method": "parameter count"}
            for name, table in (("sigma2", self.sigma2), ("smoothness", self.smooth)):
                where = max(CHECKPOINTS, key=lambda k, t=table: t[k, p].value)
                r = table[where, p]
                out[f"{name}_{p}"] = {"value": r.value, "interval": list(r.interval), "n": len(r.values),
                                      "method": f"{r.method}; the largest over the checkpoints: at {where} "
                                                f"(step {self.checkpoint_steps[where]})"}
            q, n = self.settings.quantile, len(self.run)
            norms = torch.tensor([math.sqrt(max(0.0, a.grad_norm_sq[p])) for a in self.run], dtype=torch.float64)
            out[f"grad_bound_{p}"] = {
                "value": float(torch.quantile(norms, q)), "interval": [float(norms.min()), float(norms.max())], "n": n,
                "method": f"{q:g}-quantile over {n} evaluations up to the target of the unbiased ‖∇_P L_P‖ "
                          f"({self.settings.big_batch} samples in two halves); interval: min and max"}
            cross = torch.tensor([a.cross_norm[p] for a in self.run], dtype=torch.float64)
            if float(cross.max()) > 0:
                out[f"cross_lip_{p}"] = {
                    "value": float(torch.quantile(cross, q)), "interval": [float(cross.min()), float(cross.max())],
                    "n": n, "method": f"{q:g}-quantile over {n} evaluations of the unbiased ‖∇ of L_{p} in the "
                                      "opponent's parameters‖"}
            # (A3) bounds |θ_k,i − θ_i| for the VI gap's reference point θ: measured from θ_ref where there is one
            origin, name = ((self.reference[p], f"θ_ref ({self.reference_method})") if self.reference is not None
                            else (self.run[0].theta[p], "θ_0"))
            dists = [parameter_distance_inf([a.theta[p]], [origin]) for a in self.run]
            if max(dists) > 0:
                out[f"dist_{p}"] = {"value": max(dists), "n": n,
                                    "method": f"max over {n} evaluations up to the target of ‖θ_k − {name}‖_∞"}
            bounds = [h[p] for h in self.h_bounds if h[p] is not None]
            if bounds:
                out[f"h_min_{p}"] = {"value": min(lo for lo, _ in bounds), "n": len(bounds),
                                     "method": "min over the evaluations of the optimizer's √v̂ + eps, every entry"}
                out[f"h_max_{p}"] = {"value": max(hi for _, hi in bounds), "n": len(bounds),
                                     "method": "max over the evaluations of the optimizer's √v̂ + eps, every entry"}
            losses = [a.loss[p] for a in self.run]
            if c.loss == "bce":  # both BCE losses are >= 0
                gap, how = losses[0], "L_P(θ_0) − 0 (BCE losses are bounded below by 0)"
            else:  # WGAN losses have no lower bound: use the lowest seen
                gap, how = losses[0] - min(losses), "L_P(θ_0) − the lowest L_P over the evaluations (WGAN: no bound)"
            if gap > 0:
                out[f"gap_{p}"] = {"value": gap, "n": n, "method": how}
        return out

    def checkpoint_table(self) -> dict[str, dict]:
        """Per-checkpoint values, for the file's provenance and for docs."""
        table = {}
        for k in CHECKPOINTS:
            row: dict[str, float | int | None] = {"step": self.checkpoint_steps[k]}
            for p in PLAYERS:
                row[f"sigma2_{p}"] = self.sigma2[k, p].value
                row[f"grad_norm_sq_{p}"] = self.grad_norm_sq[k, p].value
                b = self.noise_scale(k, p)
                row[f"noise_scale_{p}"] = None if b is None else b[0]
                row[f"smoothness_{p}"] = self.smooth[k, p].value
            table[k] = row
        return table

    def window(self) -> list[AlongRun]:
        """The evaluations of the run's second half, from the midway checkpoint to the first at the target."""
        return [a for a in self.run if a.step >= self.checkpoint_steps["mid"]]

    def window_noise_scale(self, player: str, n_boot: int = 2000, preconditioned: bool = False
                           ) -> tuple[float, tuple[float, float]] | None:
        """B_simple = mean tr Σ / mean ‖G‖² over the second half of the run, with a 90% bootstrap interval over
        its evaluations; None when either mean is not positive. `preconditioned`: B_noise,H = mean tr(HΣ) / mean
        GᵀHG in the optimizer's metric H instead, over the window's evaluations that have it (all but one before
        the first step); None also when none has it (an SGD-type optimizer).

        One checkpoint's ‖G‖² swings several-fold between evaluations (the players chase each other), so
        B_simple at a single evaluation varied 6× across seeds on ring8; McCandlish average both terms over a
        window of training for the same reason."""
        if preconditioned:
            window = [a for a in self.window() if player in a.weighted_norm_sq]
            if not window:
                return None
            trace = np.array([a.weighted_trace[player] for a in window])
            norm = np.array([a.weighted_norm_sq[player] for a in window])
        else:
            trace = np.array([a.trace_sigma[player] for a in self.window()])
            norm = np.array([a.grad_norm_sq[player] for a in self.window()])
        return ratio_of_means(trace, norm, self.seed, n_boot)

    def noise_scales(self) -> dict[str, dict]:
        """The noise_scale section: per player B_simple over the second half of the run, and inside it, for a
        PRECONDITIONED optimizer, "preconditioned": B_noise,H, the same in the metric Adam steps in."""
        out = {}
        w = self.window()
        for p in PLAYERS:
            b = self.window_noise_scale(p)
            if b is not None:
                out[p] = {"value": b[0], "interval": list(b[1]), "n": len(w),
                          "method": f"B_simple = mean tr Σ / mean ‖G‖² over the {len(w)} evaluations from step "
                                    f"{w[0].step} (midway) to {w[-1].step} (the target), each from two independent "
                                    f"halves of {self.settings.big_batch} samples; 90% bootstrap interval over the "
                                    "evaluations"}
                h = self.window_noise_scale(p, preconditioned=True)
                if h is not None:
                    have = [a.step for a in w if p in a.weighted_norm_sq]
                    out[p]["preconditioned"] = {
                        "value": h[0], "interval": list(h[1]), "n": len(have),
                        "method": f"B_noise,H = mean tr(HΣ) / mean GᵀHG over the {len(have)} evaluations from step "
                                  f"{have[0]} to {have[-1]}, H = diag(1/(√v̂ + eps)) the {self.config.optimizer} "
                                  "preconditioner of each evaluation (its state after the last step), from the same "
                                  "two halves as B_simple; 90% bootstrap interval over the evaluations"}
        return out

    def source(self) -> dict:
        r = self.result
        return {
            "preset_config": self.config.to_dict(), "seed": self.seed, "status": r.status,
            "steps_to_target": r.steps_to_target, "steps_run": r.steps_run, "device": r.device,
            "checkpoints": self.checkpoint_table(), "settings": self.settings.__dict__,
            "estimation_seconds": round(self.seconds, 1), "torch": torch.__version__,
            "reference_point": self.reference_method, "epsilon_skipped": self.epsilon_skipped(),
            "rule": "bounds (sigma2, smoothness, grad_bound, cross_lip, dist, h_max) are the largest over the run's "
                    "checkpoints, h_min the smallest; noise_scale over the second half of the run (midway to target)",
        }


def _pick_checkpoints(snapshots: Sequence[Snapshot]) -> dict[str, int]:
    """Indices of the start, the evaluation nearest half-way, and the last kept (the first at the target)."""
    last = len(snapshots) - 1
    half = snapshots[last].step / 2
    mid = min(range(last + 1), key=lambda i: abs(snapshots[i].step - half))
    return {"start": 0, "mid": mid, "first-target": last}


def estimate(config: TrainConfig, seed: int = 0, settings: EstimateSettings | None = None,
             show_progress: bool = False, reference: Mapping[str, Tensor] | None = None) -> Estimate:
    """Train the reference run of `config`, then estimate every constant (module docstring). `reference`: θ_ref
    of the VI gap ({"D", "G"} -> flat parameters), else empirical.reference_point's for `config`."""
    s = settings or EstimateSettings()
    check_settings(s)
    bar = tqdm(total=config.max_steps, desc="reference run", unit="step", disable=not show_progress)
    # The reference run stops at its target (config.floor would run it on to its noise floor): the constants
    # describe the way to the target, and up to it the trajectory is the sweep's own cell's.
    result, snapshots = record_run(config.with_(floor=False), seed, progress=lambda step, _: bar.update(step - bar.n))
    bar.close()
    if result.status == DIVERGED or not snapshots:
        raise EmpiricalInputError(f"the reference run diverged at step {result.diverged_at}; no constants to measure "
                                  "(lower --lr-d/--lr-g or pick another --seed)")
    start = time.perf_counter()
    device = resolve_device(config.device)
    data = load_data(config, device)
    rng = torch.Generator(device=device).manual_seed(seed + 7_919)  # the estimates' own randomness
    picks = _pick_checkpoints(snapshots)
    steps = {k: snapshots[i].step for k, i in picks.items()}
    est = Estimate(config, seed, result, s, steps, h_bounds=[x.h_bounds for x in snapshots])
    games = [Game(config, x.generator, x.discriminator, data) for x in snapshots]
    est.dim = {p: sum(q.numel() for q in games[0].module(p).parameters()) for p in PLAYERS}
    work = len(games) + len(picks) * 2
    with tqdm(total=work, desc="estimating constants", unit="task", disable=not show_progress) as bar:
        for snapshot, game in zip(snapshots, games, strict=True):
            est.run.append(along_run(game, snapshot.step, s, rng, snapshot.denominators))
            bar.update()
        for k, i in picks.items():
            for p in PLAYERS:
                est.sigma2[k, p], est.grad_norm_sq[k, p] = noise(games[i], p, s, rng)
                est.smooth[k, p] = smoothness(games[i], p, s, rng)
                bar.update()
    est.reference, est.reference_method = _reference(config, est.dim, reference)
    est.seconds = time.perf_counter() - start
    return est


def _reference(config: TrainConfig, dim: dict[str, int], given: Mapping[str, Tensor] | None
               ) -> tuple[dict[str, Tensor], str]:
    """θ_ref of the VI gap and how it was made: `given`, else empirical.reference_point's (the exact equilibrium
    where the benchmark has one, else the end of an independent, longer run). Not the run's own parameters at the
    target: those depend on the run's minibatches, and the last terms of the mean gap would vanish by construction."""
    if given is not None:
        ref, how = given, "given by the caller"
    else:
        from empirical.reference_point import REFERENCE_SEED, is_exact, reference_point

        ref = reference_point(config)
        how = ("= the exact equilibrium θ* (empirical/reference_point.py)" if is_exact(config) else
               f"= the final parameters of an independent run of {config.max_steps} steps, seed {REFERENCE_SEED} "
               "(empirical/reference_point.py)")
    out = {}
    for p in PLAYERS:
        if p not in ref:
            raise EmpiricalInputError(f"the reference point has no parameters for {p}")
        out[p] = torch.as_tensor(ref[p]).detach().to(torch.float64).cpu().reshape(-1)
        if out[p].numel() != dim[p]:
            raise EmpiricalInputError(f"the reference point has {out[p].numel()} parameters for {p}, the model "
                                      f"{dim[p]}: it was made for another config")
    return out, how


def check_settings(s: EstimateSettings) -> None:
    for name in ("samples", "repeats", "hessian_samples", "hessian_repeats", "power_iters", "big_batch", "chunk_size"):
        value = getattr(s, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise EmpiricalInputError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")
    if s.samples < 16:
        raise EmpiricalInputError(f"samples must be at least 16 (the two-batch estimator uses samples/8), "
                                  f"got {s.samples}")
    if s.big_batch < 4:
        raise EmpiricalInputError(f"big-batch must be at least 4 (two halves), got {s.big_batch}")
    if not 0.0 <= s.quantile <= 1.0:
        raise EmpiricalInputError(f"quantile must be in [0, 1], got {s.quantile}")
    if not s.power_tol > 0:
        raise EmpiricalInputError(f"power-tol must be positive, got {s.power_tol}")


def write(est: Estimate, path: str | Path, preset: str) -> None:
    """The constants file (schema ttur-constants/1), validated and written atomically by theory.schema."""
    from theory.schema import write_constants

    epsilon = {family: e.entry() for family, e in est.epsilon().items()}
    write_constants(path, est.constants(), {"preset": preset, **est.source()},
                    epsilon=epsilon, noise_scale=est.noise_scales())


# ---------------------------------------------------------------------------------------------------------------
# Several seeds: one reference run and estimate per seed, combined into one file

# How the combined file takes each constant from the seeds' values: the bounds the theory assumes at every iterate
# the largest (as over one run's checkpoints), h_min the smallest; gap_P (Δ, the initial gap) is a bound too and
# takes the largest; the optimizer's settings and the parameter counts are the same for every seed
_LARGEST = ("sigma2", "smoothness", "grad_bound", "cross_lip", "dist", "h_max", "gap")
_SMALLEST = ("h_min",)


def parse_seeds(text: str) -> list[int]:
    """`--seeds 0,1,2` -> [0, 1, 2]; empty, non-integer or repeated seeds are a one-line error (a repeated seed
    would count the same trajectory twice)."""
    items = [x.strip() for x in text.split(",")]
    if not text.strip() or not all(items):
        raise EmpiricalInputError(f"--seeds must be a comma-separated list of integers such as 0,1,2, got {text!r}")
    seeds = []
    for item in items:
        try:
            seeds.append(int(item))
        except ValueError:
            raise EmpiricalInputError(f"--seeds: {item!r} is not an integer (give e.g. 0,1,2)") from None
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise EmpiricalInputError(f"--seeds: seed {repeated[0]} is given twice (each seed is one trajectory)")
    return seeds


def estimate_seeds(config: TrainConfig, seeds: Sequence[int], settings: EstimateSettings | None = None,
                   show_progress: bool = False, reference: Mapping[str, Tensor] | None = None) -> list[Estimate]:
    """:func:`estimate` once per seed: each seed's own reference run and estimates, all at one θ_ref (the VI gap's
    reference point does not depend on the seed, so it is made, or trained, once: by the first seed's call)."""
    if not seeds or len(set(seeds)) != len(seeds):
        raise EmpiricalInputError(f"need distinct seeds to estimate, got {list(seeds)}")
    out: list[Estimate] = []
    for seed in seeds:
        est = estimate(config, seed, settings, show_progress, reference if not out else out[0].reference)
        if out:
            est.reference_method = out[0].reference_method
        out.append(est)
    return out


def _seed_list(seeds: Sequence[int]) -> str:
    return ", ".join(str(s) for s in seeds)


def _span(entries: Sequence[Mapping]) -> list[float]:
    """The interval spanning every entry's value and its own interval: [min of lows, max of highs]."""
    lows = [e["value"] for e in entries] + [e["interval"][0] for e in entries if "interval" in e]
    highs = [e["value"] for e in entries] + [e["interval"][1] for e in entries if "interval" in e]
    return [min(lows), max(highs)]


def combined_constants(ests: Sequence[Estimate]) -> dict[str, dict]:
    """The constants section over seeds: each bound the largest (h_min the smallest) of the seeds' values, its
    interval spanning the seeds' values and their own intervals, `n` the seeds' estimates together."""
    seeds = [e.seed for e in ests]
    per_seed = [e.constants() for e in ests]
    out: dict[str, dict] = {}
    for key in dict.fromkeys(k for c in per_seed for k in c):
        have = [(s, c[key]) for s, c in zip(seeds, per_seed, strict=True) if key in c]
        entries = [e for _, e in have]
        name = key.rsplit("_", 1)[0]
        if name not in _LARGEST + _SMALLEST:  # a setting or a count: the same config gives the same for every seed
            if any(e != entries[0] for e in entries):
                raise EmpiricalInputError(f"{key} differs between the seeds' runs: {[e['value'] for e in entries]}")
            out[key] = entries[0]
            continue
        largest = name in _LARGEST
        best_seed, best = (max if largest else min)(have, key=lambda x: x[1]["value"])
        values = "; ".join(f"seed {s}: {e['value']:.4g}" for s, e in have)
        missing = [s for s in seeds if s not in {t for t, _ in have}]
        absent = f" (seed{'s' * (len(missing) > 1)} {_seed_list(missing)}: none measured)" if missing else ""
        over = _seed_list([s for s, _ in have])
        out[key] = {"value": best["value"], "interval": _span(entries), "n": sum(e.get("n", 1) for e in entries),
                    "method": f"the {'largest' if largest else 'smallest'} over seeds {over}{absent} of each seed's "
                              f"value ({values}), here seed {best_seed}'s: {best['method']}; the combined "
                              "interval: the seeds' values and their own intervals (min of lows, max of highs)"}
    return out


def combined_epsilon(ests: Sequence[Estimate]) -> tuple[dict[str, dict], dict[str, str]]:
    """The epsilon section over seeds, and the families left out with why: ε_P² = the mean over seeds of each
    seed's mean measure (one seed's rule, ε_P² = P's measure averaged over its evaluations, with every seed's run
    weighted alike); interval: the seeds' own ε values (the larger player's) with the combined one."""
    seeds = _seed_list([e.seed for e in ests])
    measures = [e.measures() for e in ests]
    per_seed = [e.epsilon() for e in ests]
    out: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    for family, measure in _family_measures().items():
        if any(measure not in m for m in measures):
            skipped[family] = "no reference point θ_ref for the VI gap"
            continue
        sq = {p: statistics.fmean(m[measure][p] for m in measures) for p in PLAYERS}
        if not all(sq[p] > 0 for p in PLAYERS):
            skipped[family] = (f"the mean {measure} over seeds {seeds} is not positive for a player "
                               f"(D {sq['D']:.4g}, G {sq['G']:.4g}): no ε_P with ε_P² = it")
            continue
        players = {p: math.sqrt(sq[p]) for p in PLAYERS}
        value = max(players.values())
        own = [e[family].value for e in per_seed if family in e]
        each = "; ".join(f"seed {e.seed}: D {m[measure]['D']:.4g}, G {m[measure]['G']:.4g}"
                         for e, m in zip(ests, measures, strict=True))
        out[family] = {
            "value": value, "interval": [min(*own, value), max(*own, value)], "n": sum(len(e.run) for e in ests),
            "players": players,
            "method": f"ε_P² = the mean over seeds {seeds} of each seed's {ests[0].measure_texts()[measure]}: "
                      f"D {sq['D']:.4g}, G {sq['G']:.4g} (per seed: {each}); value = the larger ε_P (for readers "
                      "that take one ε); interval: the seeds' own values with this one"}
    return out, skipped


def combined_noise_scales(ests: Sequence[Estimate]) -> dict[str, dict]:
    """The noise_scale section over seeds: per player the mean of the seeds' B_simple (a local quantity, not a
    bound), its interval spanning the seeds' values and their bootstrap intervals; inside it, the same of the
    seeds' B_noise,H ("preconditioned") where they have one."""
    per_seed = [(e.seed, e.noise_scales()) for e in ests]
    out = {}
    for p in PLAYERS:
        have = [(s, d[p]) for s, d in per_seed if p in d]
        if not have:
            continue
        entries = [e for _, e in have]
        values = "; ".join(f"seed {s}: {e['value']:.4g}" for s, e in have)
        out[p] = {"value": statistics.fmean(e["value"] for e in entries), "interval": _span(entries),
                  "n": sum(e["n"] for e in entries),
                  "method": f"the mean over seeds {_seed_list([s for s, _ in have])} of each seed's B_simple "
                            f"({values}), each = mean tr Σ / mean ‖G‖² over its evaluations from midway to the "
                            f"target, from two independent halves of {ests[0].settings.big_batch} samples; interval: "
                            "every seed's value and its 90% bootstrap interval over its evaluations (min of lows, "
                            "max of highs)"}
        pre = [(s, e["preconditioned"]) for s, e in have if "preconditioned" in e]
        if pre:
            values = "; ".join(f"seed {s}: {e['value']:.4g}" for s, e in pre)
            entries = [e for _, e in pre]
            out[p]["preconditioned"] = {
                "value": statistics.fmean(e["value"] for e in entries), "interval": _span(entries),
                "n": sum(e["n"] for e in entries),
                "method": f"the mean over seeds {_seed_list([s for s, _ in pre])} of each seed's B_noise,H ({values}), "
                          "each = mean tr(HΣ) / mean GᵀHG in its optimizer's metric H = diag(1/(√v̂ + eps)) over its "
                          "evaluations from midway to the target; interval: every seed's value and its 90% "
                          "bootstrap interval (min of lows, max of highs)"}
    return out


def combined_source(ests: Sequence[Estimate], skipped: Mapping[str, str]) -> dict:
    """The source section over seeds: the shared config and settings, each seed's K and checkpoint table."""
    first = ests[0]
    runs = [{"seed": e.seed, "status": e.result.status, "steps_to_target": e.result.steps_to_target,
             "steps_run": e.result.steps_run, "checkpoints": e.checkpoint_table(),
             "estimation_seconds": round(e.seconds, 1)} for e in ests]
    return {
        "preset_config": first.config.to_dict(), "seeds": [e.seed for e in ests], "runs": runs,
        "device": first.result.device, "settings": first.settings.__dict__,
        "estimation_seconds": round(sum(e.seconds for e in ests), 1), "torch": torch.__version__,
        "reference_point": first.reference_method, "epsilon_skipped": dict(skipped),
        "rule": f"one reference run per seed ({_seed_list([e.seed for e in ests])}), each estimated as a one-seed "
                "file is; then bounds (sigma2, smoothness, grad_bound, cross_lip, dist, h_max, gap) are the "
                "largest over the seeds, h_min the smallest; noise_scale the mean over the seeds, epsilon_P² the "
                "mean over the seeds of each seed's mean measure; intervals span the seeds' values and their own "
                "intervals",
    }


def write_seeds(ests: Sequence[Estimate], path: str | Path, preset: str) -> None:
    """One constants file from one estimate per seed; with one seed exactly :func:`write`'s file."""
    from theory.schema import write_constants

    if len(ests) == 1:
        write(ests[0], path, preset)
        return
    if any(e.config != ests[0].config or e.settings != ests[0].settings for e in ests):
        raise EmpiricalInputError("the seeds' estimates have different configs or settings: no one file holds them")
    epsilon, skipped = combined_epsilon(ests)
    write_constants(path, combined_constants(ests), {"preset": preset, **combined_source(ests, skipped)},
                    epsilon=epsilon, noise_scale=combined_noise_scales(ests))


# ---------------------------------------------------------------------------------------------------------------
# CLI


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m empirical.constants",
        description="Train a preset's reference run and estimate the TTUR theory's constants from its gradients; "
                    "write them as a constants file for python -m theory.critical --constants FILE.",
    )
    parser.add_argument("--preset", default="ring8", help=f"one of {', '.join(PRESETS)} (default ring8)")
    parser.add_argument("--out", default="constants.json", help="the constants file to write (default constants.json)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the reference run and of the estimates (default 0)")
    parser.add_argument("--seeds", default=None,
                        help="several seeds, e.g. 0,1,2 (instead of --seed): one reference run and estimate per "
                             "seed, combined into one file whose intervals span the seeds' trajectories")
    d = EstimateSettings()
    parser.add_argument("--samples", type=int, default=d.samples, help="samples per noise estimate")
    parser.add_argument("--repeats", type=int, default=d.repeats, help="independent batches per checkpoint")
    parser.add_argument("--hessian-samples", type=int, default=d.hessian_samples)
    parser.add_argument("--big-batch", type=int, default=d.big_batch, help="samples per along-the-run gradient")
    parser.add_argument("--quantile", type=float, default=d.quantile, help="quantile for grad_bound and cross_lip")
    parser.add_argument("--float64", action="store_true", help="Hessian power iteration in float64")
    parser.add_argument("--no-progress", action="store_true")
    add_config_flags(parser)
    return parser


def _summary(est: Estimate, out: str) -> list[str]:
    r = est.result
    reached = (f"reached FID <= {est.config.target_fid:g} at step {r.steps_to_target}" if r.status == REACHED
               else f"did NOT reach the target in {r.steps_run} steps: constants measured up to the last step")
    lines = [f"reference run (b = {est.config.batch_size}, seed {est.seed}) {reached}; "
             f"estimates took {est.seconds:.1f} s",
             f"{'checkpoint':<13}{'step':>6}" + "".join(f"{h:>12}" for h in (
                 "σ²_D", "σ²_G", "‖G_D‖²", "‖G_G‖²", "B_simple_D", "B_simple_G", "L_D", "L_G"))]
    for k, row in est.checkpoint_table().items():
        cells = [row[f"{n}_{p}"] for n in ("sigma2", "grad_norm_sq", "noise_scale", "smoothness") for p in PLAYERS]
        lines.append(f"{k:<13}{row['step']:>6}" + "".join(f"{'—':>12}" if v is None else f"{v:>12.4g}" for v in cells))
    for family, e in est.epsilon().items():
        lines.append(f"ε ({family}): D {e.players['D']:.4g}, G {e.players['G']:.4g}")
    lines += _noise_lines(est.noise_scales(), "second half of the run")
    lines.append(f"wrote {out}; next: python -m theory.critical --constants {out} --family sgd-frozen")
    return lines


def _noise_lines(noise: Mapping[str, Mapping], where: str, simple: bool = True) -> list[str]:
    """B_simple (unless not `simple`) and, where measured, B_noise,H per player, with their intervals (one line;
    none if empty)."""
    def cell(e: Mapping) -> str:
        return f"{e['value']:.4g} [{e['interval'][0]:.4g}, {e['interval'][1]:.4g}]"
    cells = [f"B_simple_{p} {cell(noise[p])}" for p in PLAYERS if p in noise and simple]
    cells += [f"B_noise,H_{p} {cell(noise[p]['preconditioned'])}" for p in PLAYERS
              if "preconditioned" in noise.get(p, {})]
    return [f"noise scale ({where}): " + ", ".join(cells)] if cells else []


def _summary_seeds(ests: Sequence[Estimate], out: str) -> list[str]:
    """Each seed's summary, then the combined file's main values."""
    if len(ests) == 1:
        return _summary(ests[0], out)
    lines = [line for est in ests for line in _summary(est, out)[:-1]]
    values = combined_constants(ests)
    noise = combined_noise_scales(ests)
    cells = [f"{label} {values[key]['value']:.4g} [{values[key]['interval'][0]:.4g}, {values[key]['interval'][1]:.4g}]"
             for label, key in (("σ²_D", "sigma2_D"), ("σ²_G", "sigma2_G"), ("L_D", "smoothness_D"),
                                ("L_G", "smoothness_G")) if key in values]
    cells += [f"B_simple_{p} {noise[p]['value']:.4g} [{noise[p]['interval'][0]:.4g}, {noise[p]['interval'][1]:.4g}]"
              for p in PLAYERS if p in noise]
    lines.append(f"over seeds {_seed_list([e.seed for e in ests])}: " + ", ".join(cells))
    lines += _noise_lines(noise, "the mean over the seeds", simple=False)
    for family, e in combined_epsilon(ests)[0].items():
        lines.append(f"ε ({family}, over the seeds): D {e['players']['D']:.4g}, G {e['players']['G']:.4g}")
    lines.append(f"wrote {out}; next: python -m theory.critical --constants {out} --family sgd-frozen")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = get_preset(args.preset).with_(**config_overrides(args))
        settings = EstimateSettings(samples=args.samples, repeats=args.repeats, hessian_samples=args.hessian_samples,
                                    big_batch=args.big_batch, quantile=args.quantile, float64=args.float64)
        check_settings(settings)
        if args.seeds is not None and args.seed is not None:
            raise EmpiricalInputError("--seed and --seeds exclude each other: give one seed or a list")
        seeds = parse_seeds(args.seeds) if args.seeds is not None else [0 if args.seed is None else args.seed]
        out = Path(args.out)
        if out.is_dir() or not out.parent.is_dir():
            raise EmpiricalInputError(f"--out {out}: need a file path in an existing folder")
        ests = estimate_seeds(config, seeds, settings, show_progress=not args.no_progress)
        write_seeds(ests, out, args.preset)
    except EmpiricalInputError as error:
        return fail("python -m empirical.constants", error)
    except OSError as error:
        return fail("python -m empirical.constants", f"cannot write {args.out}: {error.strerror or error}")
    except TheoryInputError as error:  # an estimate the schema refuses (e.g. not finite): nothing is written
        return fail("python -m empirical.constants", f"the estimates do not make a valid constants file: {error}")
    print("\n".join(_summary_seeds(ests, args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
