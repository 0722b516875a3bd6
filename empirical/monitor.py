"""A gradient-noise monitor for any GAN training loop: B_simple, B_noise,H and the constants file, without our loop.

Attach it to your D and G (and, if you have them, their optimizers), and call it from your own loop with the batch
you already have and a callable that computes the player's mean loss on any part of that batch:

    monitor = NoiseMonitor(discriminator=D, generator=G, optimizers={"D": opt_d, "G": opt_g}, every=10)
    for step in range(steps):
        ...                                      # your D step: loss_d(real, z), backward, opt_d.step()
        monitor.observe(step, "D", loss_d, real, z)
        ...                                      # your G step
        monitor.observe(step, "G", loss_g, z)
        if step % 500 == 0:
            monitor.report_fid(step, your_fid())
    monitor.write("constants.json")              # then: python -m theory.critical --constants constants.json

Every `every` steps, `observe` splits the batch's tensors in two halves along dim 0 and takes the player's mean
gradient on each, g_A and g_B. From them (empirical.gradients.split_batch_noise_estimate) ⟨g_A, g_B⟩ is unbiased
for ‖G‖² and half·‖g_A − g_B‖²/2 for tr Σ, the per-sample gradient covariance: McCandlish's two terms from one batch.
With an Adam-type optimizer the same halves weighted by its preconditioner H = diag(1/(√v̂ + eps)) give tr(HΣ) and
GᵀHG (the noise scale of the steps Adam takes). B_simple = mean tr Σ / mean ‖G‖² over a window of measurements
(the second half of the measured steps by default: one measurement of ‖G‖² swings several-fold between steps), with
a bootstrap interval over them, as empirical/constants.py does for the presets.

Cost: two half-batch gradients per player and measurement, about one extra gradient of the batch. With
`reuse_grad=True`, called right after your backward of the same mean loss on the whole batch (before zero_grad),
the monitor takes g = p.grad as the whole batch's mean gradient and computes only g_A; g_B = 2g − g_A, at half the
cost (benchmarks/monitor_overhead.py measures both). A measurement changes nothing in your training: it does not
touch .grad, restores torch's random state (your loss may draw z, dropout or WGAN-GP's mixing weights) and the
modules' buffers (BatchNorm running statistics), and leaves the modes (train/eval) as they were. With BatchNorm in
train mode a half batch is normalised by its own statistics, so the halves estimate the noise of a b/2 batch's
normalisation; the estimates stay unbiased for the half-batch model's ‖G‖² and tr Σ. Under DDP,
`observe_two_batches` takes instead the squared norms of one worker's gradient and of the all-reduced one, which the
loop already has (McCandlish's two-batch estimator, no extra gradient). docs/your-own-gan.md walks through it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from empirical.gradients import (
    ratio_of_means,
    split_batch_noise_estimate,
    two_batch_noise_estimate,
    weighted_split_batch_noise_estimate,
)
from empirical.optimizers import step_denominator
from theory.schema import write_constants

PLAYERS = ("D", "G")
SOURCE = "measured in the user's training loop (empirical.monitor.NoiseMonitor)"


@dataclass(frozen=True)
class Measurement:
    """One player's noise at one step, from two halves of `half` samples; weighted_*: in the optimizer's metric H
    (None without an Adam-type optimizer, or before its first step)."""

    step: int
    player: str
    half: int  # samples per half (two-batch measurements: the smaller batch)
    trace_sigma: float  # unbiased tr Σ
    grad_norm_sq: float  # unbiased ‖G‖² (may be negative when the noise dominates)
    grad_norm: float  # ‖(g_A + g_B)/2‖, the batch's own gradient norm
    weighted_trace: float | None = None  # unbiased tr(HΣ)
    weighted_norm_sq: float | None = None  # unbiased GᵀHG


@dataclass(frozen=True)
class NoiseScale:
    """A ratio of window means with its 90% bootstrap interval over the window's measurements."""

    value: float
    low: float
    high: float
    n: int
    first_step: int
    last_step: int


def split_halves(batch: Sequence[Tensor]) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...], int]:
    """The batch's tensors cut into a first and a second half of `half` samples each along dim 0 (an odd last
    sample is left out)."""
    if not batch:
        raise ValueError("observe needs the batch: one or more tensors with the samples along dim 0")
    sizes = {len(t) for t in batch}
    if len(sizes) != 1:
        raise ValueError(f"the batch's tensors must share their first dimension, got sizes {sorted(sizes)}")
    half = sizes.pop() // 2
    if half < 1:
        raise ValueError("observe needs a batch of at least 2 samples to split in two halves")
    return tuple(t[:half] for t in batch), tuple(t[half:2 * half] for t in batch), half


class NoiseMonitor:
    """Per-player gradient noise measured every `every` steps in the user's own loop (module docstring)."""

    def __init__(self, discriminator: nn.Module, generator: nn.Module,
                 optimizers: Mapping[str, torch.optim.Optimizer] | None = None, every: int = 10, seed: int = 0
                 ) -> None:
        if every < 1:
            raise ValueError(f"every must be a positive number of steps, got {every}")
        unknown = set(optimizers or {}) - set(PLAYERS)
        if unknown:
            raise ValueError(f"optimizers are keyed by player, D or G; got {sorted(unknown)}")
        self.modules = {"D": discriminator, "G": generator}
        self._params = {p: [q for q in m.parameters() if q.requires_grad] for p, m in self.modules.items()}
        self.optimizers = dict(optimizers or {})
        self.every = every
        self.seed = seed  # of the bootstrap intervals
        self.measurements: list[Measurement] = []
        self.fids: list[tuple[int, float]] = []
        self._h_bounds: dict[str, tuple[float, float]] = {}

    def due(self, step: int) -> bool:
        """Whether `observe` at this step measures (every `every` steps, from step 0)."""
        return step % self.every == 0

    def observe(self, step: int, player: str, loss: Callable[..., Tensor], *batch: Tensor,
                reuse_grad: bool = False) -> Measurement | None:
        """Measure `player`'s gradient noise at `step` when due (else None, at no cost): `loss(*part)` must return
        the player's mean loss on any part of `batch` (its tensors sliced along dim 0). `reuse_grad`: the player's
        parameters' .grad hold the gradient of `loss(*batch)` (call right after your backward)."""
        if player not in PLAYERS:
            raise ValueError(f"player must be D or G, got {player!r}")
        if not self.due(step):
            return None
        params = self._params[player]
        first, second, half = split_halves(batch)
        with _untouched(self.modules.values()):
            grad_a = _flat_grad(loss(*first), params)
            if reuse_grad:
                if len(batch[0]) != 2 * half:  # .grad then holds a mean over one more sample than the halves
                    raise ValueError("reuse_grad needs an even batch: the odd last sample is in .grad but in neither "
                                     "half; pass batch[:-1]'s backward or leave reuse_grad off")
                missing = [i for i, p in enumerate(params) if p.grad is None]
                if missing:
                    raise ValueError(f"reuse_grad: {player}'s parameters have no .grad; call observe right after "
                                     "the backward of its loss on this batch, before zero_grad")
                whole = torch.cat([p.grad.detach().reshape(-1).to(torch.float64) for p in params])
                grad_b = 2 * whole - grad_a  # the whole batch's mean over 2·half samples is the halves' mean
            else:
                grad_b = _flat_grad(loss(*second), params)
        trace, norm_sq = split_batch_noise_estimate(grad_a, grad_b, half)
        weighted = self._weighted(player, grad_a, grad_b, half)
        m = Measurement(step, player, half, trace, norm_sq, float(((grad_a + grad_b) / 2).norm()),
                        *(weighted if weighted else (None, None)))
        self.measurements.append(m)
        return m

    def observe_two_batches(self, step: int, player: str, sq_norm_small: float, sq_norm_big: float, b_small: int,
                            b_big: int) -> Measurement | None:
        """Record a measurement from the squared norms of two mean gradients at the same parameters, of b_small and
        b_big samples: McCandlish's estimator (empirical.gradients.two_batch_noise_estimate), unbiased for tr Σ and
        ‖G‖². Under DDP they come free: one worker's gradient before the all-reduce (b_small = its batch) and the
        all-reduced one (b_big = the global batch). No Adam-metric terms. None when not due."""
        if player not in PLAYERS:
            raise ValueError(f"player must be D or G, got {player!r}")
        if not self.due(step):
            return None
        trace, norm_sq = two_batch_noise_estimate(float(sq_norm_small), float(sq_norm_big), b_small, b_big)
        m = Measurement(step, player, b_small, trace, norm_sq, math.sqrt(max(float(sq_norm_big), 0.0)))
        self.measurements.append(m)
        return m

    def _weighted(self, player: str, grad_a: Tensor, grad_b: Tensor, half: int) -> tuple[float, float] | None:
        """(tr(HΣ), GᵀHG) in the optimizer's metric (empirical.gradients.weighted_split_batch_noise_estimate), and
        the bounds of h kept (over the player's parameters that have state); None without a preconditioner."""
        opt = self.optimizers.get(player)
        if opt is None:
            return None
        h = step_denominator(opt, self.modules[player])
        if h is None:
            return None
        h = h.to(device=grad_a.device, dtype=torch.float64)
        lo, hi = float(h.min()), float(h.max())  # +inf marks a parameter without state: the bounds skip it
        if math.isinf(hi):  # (a boolean-mask copy costs more than the rest of this function: only when needed)
            hi = float(torch.where(torch.isinf(h), torch.zeros_like(h), h).max())
        if math.isfinite(lo):
            old_lo, old_hi = self._h_bounds.get(player, (lo, hi))
            self._h_bounds[player] = (min(lo, old_lo), max(hi, old_hi))
        return weighted_split_batch_noise_estimate(grad_a, grad_b, half, 1.0 / h)  # no state: h = inf, weight 0

    def report_fid(self, step: int, fid: float) -> None:
        """Record the loop's own FID at `step` (kept in the constants file's source)."""
        if not math.isfinite(fid):
            raise ValueError(f"fid must be a finite number, got {fid}")
        self.fids.append((int(step), float(fid)))

    def window(self, player: str, since: int | None = None) -> list[Measurement]:
        """`player`'s measurements from step `since` on (None: the second half of its measured steps)."""
        own = [m for m in self.measurements if m.player == player]
        if since is None and own:
            since = (own[0].step + own[-1].step) / 2
        return [m for m in own if since is None or m.step >= since]

    def noise_scale(self, player: str, preconditioned: bool = False, since: int | None = None) -> NoiseScale | None:
        """B_simple = mean tr Σ / mean ‖G‖² over the window (`preconditioned`: B_noise,H = mean tr(HΣ) / mean
        GᵀHG over its measurements that have H), with a 90% bootstrap interval; None when unresolved."""
        window = self.window(player, since)
        if preconditioned:
            window = [m for m in window if m.weighted_norm_sq is not None]
            pairs = [(m.weighted_trace, m.weighted_norm_sq) for m in window]
        else:
            pairs = [(m.trace_sigma, m.grad_norm_sq) for m in window]
        ratio = ratio_of_means([t for t, _ in pairs], [n for _, n in pairs], self.seed) if pairs else None
        if ratio is None:
            return None
        return NoiseScale(ratio[0], *ratio[1], len(window), window[0].step, window[-1].step)

    def predictions(self) -> dict[str, dict[str, float | None]]:
        """b* from the noise scale alone, as the report sets it beside the measured one: 2·B_simple and 2·B_noise,H
        per player and joint (the larger: the noisier player sets where the steps stop falling)."""
        out: dict[str, dict[str, float | None]] = {}
        for name, pre in (("2·B_simple", False), ("2·B_noise,H", True)):
            per = {p: self.noise_scale(p, preconditioned=pre) for p in PLAYERS}
            row: dict[str, float | None] = {p: None if s is None else 2 * s.value for p, s in per.items()}
            known = [v for v in row.values() if v is not None]
            row["joint"] = max(known) if known else None
            out[name] = row
        return out

    def constants(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """(constants, noise_scale, source) of the ttur-constants/1 file: what a loop can measure without extra
        work (α, σ², G bound, d, β1/β2 and h bounds of Adam-type optimizers) and the noise scales."""
        values: dict[str, Any] = {}
        noise: dict[str, Any] = {}
        for p in PLAYERS:
            window = self.window(p)
            if not window:
                continue
            values[f"dim_{p}"] = sum(q.numel() for q in self.modules[p].parameters() if q.requires_grad)
            traces = [m.trace_sigma for m in window]
            if np.mean(traces) > 0:
                values[f"sigma2_{p}"] = {"value": float(np.mean(traces)), "n": len(window),
                                         "method": f"mean of unbiased tr Σ over steps {window[0].step}–"
                                                   f"{window[-1].step}, two halves of {window[-1].half} samples"}
            values[f"grad_bound_{p}"] = {"value": max(m.grad_norm for m in window), "n": len(window),
                                         "method": "largest batch-gradient norm over the window (noise included)"}
            opt = self.optimizers.get(p)
            if opt is not None:
                group = opt.param_groups[0]
                values[f"alpha_{p}"] = float(group["lr"])
                if "betas" in group:
                    values[f"beta1_{p}"], values[f"beta2_{p}"] = (float(x) for x in group["betas"])
                if p in self._h_bounds:
                    values[f"h_min_{p}"], values[f"h_max_{p}"] = self._h_bounds[p]
            simple = self.noise_scale(p)
            if simple is not None:
                noise[p] = _entry(simple, "B_simple = mean tr Σ / mean ‖G‖²")
                pre = self.noise_scale(p, preconditioned=True)
                if pre is not None:
                    noise[p]["preconditioned"] = _entry(pre, "B_noise,H = mean tr(HΣ) / mean GᵀHG, H = diag(1/(√v̂ + "
                                                             "eps)) of the player's optimizer")
        source = {"measured": SOURCE, "every": self.every, "fid": self.fids, "torch": torch.__version__,
                  "measurements": len(self.measurements)}
        return values, noise, source

    def write(self, path: str | Path) -> None:
        """Write the constants file (`python -m theory.critical --constants PATH` reads it), validated."""
        values, noise, source = self.constants()
        if not values:
            raise ValueError("nothing measured yet: call observe at a step that is due (a multiple of every)")
        write_constants(path, values, source, noise_scale=noise or None)

    def write_history(self, path: str | Path) -> None:
        """Every measurement as JSON lines, for plots of the noise along training."""
        Path(path).write_text("".join(json.dumps(asdict(m)) + "\n" for m in self.measurements), encoding="utf-8")


def _entry(scale: NoiseScale, what: str) -> dict[str, Any]:
    return {"value": scale.value, "interval": [scale.low, scale.high], "n": scale.n,
            "method": f"{what} over steps {scale.first_step}–{scale.last_step}, {SOURCE}; 90% bootstrap interval "
                      "over the measurements"}


def _flat_grad(loss: Tensor, params: list[nn.Parameter]) -> Tensor:
    """The loss's gradient in the parameters, flat float64, through torch.autograd.grad (no .grad written)."""
    if loss.dim() != 0:
        raise ValueError(f"the loss callable must return a scalar (the mean loss over the part), got shape "
                         f"{tuple(loss.shape)}")
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([torch.zeros(p.numel(), dtype=torch.float64, device=p.device) if g is None
                      else g.detach().reshape(-1).to(torch.float64) for g, p in zip(grads, params, strict=True)])


@contextmanager
def _untouched(modules) -> Any:
    """Restore torch's random state (CPU and, when CUDA is up, every device's) and the modules' buffers."""
    buffers = [(b, b.detach().clone()) for m in modules for b in m.buffers()]
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            with torch.no_grad():
                for b, saved in buffers:
                    b.copy_(saved)
