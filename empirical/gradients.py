"""Numerical estimators of the TTUR theory's constants from real gradients: noise, smoothness, distances.

Generic interface (GAN losses: empirical/objectives.py). A *player* is an `nn.Module` whose parameters are the
player's; a *loss* is `loss(forward, batch) -> scalar`, the **mean** loss over `batch`, where `forward(*inputs)` runs
the player with the parameters being measured and `batch` is a tensor or a tuple of tensors sharing a leading batch
dimension. The per-sample loss of sample i is the same function on the batch of one `batch[i:i+1]`, so one loss
serves mini-batch gradients, per-sample gradients and Hessians. Intended samples: for D, (real x_i, fake_i) with the
fakes made beforehand by the frozen G (or (x_i, z_i) with G applied inside the loss); for G, z_i with D frozen inside
the loss. Per-sample gradients need samples that do not interact: BatchNorm in train mode is refused, in the player
and in any frozen module passed as `frozen`. Losses must be `torch.func`-compatible (no `torch.autograd.grad` inside,
no in-loss random draws: put WGAN-GP's mixing weights in the batch and take the input gradient with `torch.func.grad`).
Per-sample statistics come from module hooks (empirical/sample_norms.py) where every parametrised module is a
Linear, Conv2d, LayerNorm or GroupNorm and the loss has no derivative inside, and from vmap(grad) otherwise.

Every tensor made here lives on the parameters' device. Per-sample sums of squares within one parameter tensor run in
the parameters' dtype (centred first, so without cancellation); all further accumulation is in float64.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

Batch = Tensor | tuple[Tensor, ...]
Forward = Callable[..., Tensor]
Loss = Callable[[Forward, Batch], Tensor]
Params = dict[str, Tensor]
Objective = Callable[[Params], Tensor]


# ---------------------------------------------------------------------------------------------------------------
# Batches and modules


def _map(batch: Batch, fn: Callable[[Tensor], Tensor]) -> Batch:
    """Apply `fn` to the tensor, or to each tensor of the tuple."""
    return fn(batch) if isinstance(batch, Tensor) else tuple(fn(t) for t in batch)


def batch_size(batch: Batch) -> int:
    """Leading dimension shared by the batch's tensors."""
    sizes = {len(t) for t in ((batch,) if isinstance(batch, Tensor) else batch)}
    if len(sizes) != 1:
        raise ValueError(f"batch tensors must share their leading dimension, got sizes {sorted(sizes)}")
    return sizes.pop()


def require_independent_samples(*modules: nn.Module) -> None:
    """Refuse BatchNorm in train mode: it couples the samples of a batch, so per-sample gradients are undefined."""
    for module in modules:
        for name, sub in module.named_modules():
            if isinstance(sub, nn.modules.batchnorm._BatchNorm) and sub.training:
                where = f"{type(module).__name__}.{name}" if name else type(module).__name__
                raise ValueError(
                    f"per-sample gradients are undefined with BatchNorm in train mode ({where}); "
                    "use eval mode, or a model with norm='layer' or 'none'"
                )


def _state(module: nn.Module, dtype: torch.dtype | None = None) -> tuple[Params, Params]:
    """Detached parameters and cloned buffers (train-mode BatchNorm updates its buffers in place: not the module's)."""
    params = {k: p.detach().to(dtype or p.dtype) for k, p in module.named_parameters()}
    buffers = {
        k: b.detach().to(dtype) if dtype is not None and b.is_floating_point() else b.detach().clone()
        for k, b in module.named_buffers()
    }
    return params, buffers


class BoundForward:
    """The module's forward with the given parameters and buffers; `params` stays readable for losses that
    penalise the parameters themselves (wgan-l2's ½‖θ_D‖²)."""

    def __init__(self, module: nn.Module, params: Params, buffers: Params) -> None:
        self.module, self.params, self.buffers = module, params, buffers

    def __call__(self, *inputs: Tensor) -> Tensor:
        return functional_call(self.module, (self.params, self.buffers), inputs)


def _bind(module: nn.Module, params: Params, buffers: Params) -> Forward:
    """The module's forward with the given parameters and buffers."""
    return BoundForward(module, params, buffers)


def player_objective(
    module: nn.Module, loss: Loss, batch: Batch, dtype: torch.dtype | None = None
) -> tuple[Params, Objective]:
    """(θ, f) with f(θ) = loss of `module` at parameters θ on `batch`: the function `top_hessian_eigenvalue` takes.

    `dtype` casts the player's parameters, buffers and the batch's floating tensors; modules the loss captures
    (a frozen opponent) must already be in that dtype.
    """
    params, buffers = _state(module, dtype)
    if dtype is not None:
        batch = _map(batch, lambda t: t.to(dtype) if t.is_floating_point() else t)
    return params, lambda theta: loss(_bind(module, theta, buffers), batch)


# ---------------------------------------------------------------------------------------------------------------
# Gradients and their noise


def squared_norm(tensors: Iterable[Tensor]) -> float:
    """Σ‖t‖² over the tensors, accumulated in float64."""
    return float(sum(t.detach().to(torch.float64).square().sum() for t in tensors))


def batch_gradient(module: nn.Module, loss: Loss, batch: Batch) -> Params:
    """Gradient of the mean loss over `batch` (ordinary autograd; BatchNorm allowed, its buffers left untouched)."""
    params, objective = player_objective(module, loss, batch)
    params = {k: p.requires_grad_(True) for k, p in params.items()}
    with torch.enable_grad():
        grads = torch.autograd.grad(objective(params), list(params.values()), materialize_grads=True)
    return dict(zip(params, grads, strict=True))


@dataclass(frozen=True)
class GradientStats:
    """Per-sample gradient statistics of one batch of n samples (all in float64).

    trace_sigma: tr Σ̂ = Σ_i ‖g_i − ḡ‖² / (n − 1), unbiased for the trace of the per-sample gradient covariance.
    mean_grad_norm_sq: ‖ḡ‖², biased upward for ‖G‖² by tr Σ / n.
    grad_norm_sq: ‖ḡ‖² − tr Σ̂ / n, unbiased for ‖G‖² (can be negative when noise dominates).
    norms: ‖g_i‖ per sample, on the parameters' device.
    """

    n: int
    trace_sigma: float
    mean_grad_norm_sq: float
    grad_norm_sq: float
    norms: Tensor


def per_sample_gradient_stats(
    module: nn.Module,
    loss: Loss,
    batch: Batch,
    chunk_size: int = 16,
    frozen: Sequence[nn.Module] = (),
    method: str = "auto",
) -> GradientStats:
    """Per-sample gradient statistics, from module hooks where they apply, else by vmap(grad).

    `method="hooks"` (empirical/sample_norms.py): one forward and one backward over the whole batch, the per-sample
    squared norms from each layer's inputs and output gradients; every parametrised module must be a Linear, Conv2d
    (groups = 1), LayerNorm or GroupNorm and the loss must not differentiate inside (WGAN-GP's penalty does).
    `method="vmap"`: per-sample gradients by vmap(grad) in chunks of `chunk_size` samples (memory ∝ chunk_size ×
    #params), for any torch.func-compatible loss. `"auto"` takes the hooks and falls back to vmap where they refuse.
    Both give the same statistics up to rounding; on the 64 px DCGAN critic the hooks cost about 1.3 to 1.6 batch
    gradients, vmap 6 to 8 (benchmarks/gradient_costs.py). Only the hooks' ghost-normed layers (module docstring of
    sample_norms) take Σ‖g_i − ḡ‖² as Σ‖g_i‖² − n‖ḡ‖² instead of centring first.
    """
    require_independent_samples(module, *frozen)
    n = batch_size(batch)
    if n < 2:
        raise ValueError(f"per-sample gradient variance needs at least 2 samples, got {n}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if method not in ("auto", "hooks", "vmap"):
        raise ValueError(f"method must be auto, hooks or vmap, got {method!r}")
    if method != "vmap":
        # Imported here: empirical.sample_norms builds on this module.
        from empirical.sample_norms import HooksUnsupported, sample_norm_moments

        try:
            moments = sample_norm_moments(module, loss, batch, chunk_size, frozen)
        except HooksUnsupported:
            if method == "hooks":
                raise
        else:
            trace = moments.sum_sq_dev / (n - 1)
            return GradientStats(n, trace, moments.mean_sq, moments.mean_sq - trace / n, moments.norms_sq.sqrt())
    params, buffers = _state(module)

    def one_sample_loss(theta: Params, sample: Batch) -> Tensor:
        # vmap strips the batch dimension; put it back so the loss sees a batch of one.
        return loss(_bind(module, theta, buffers), _map(sample, lambda t: t.unsqueeze(0)))

    per_sample_grad = vmap(grad(one_sample_loss), in_dims=(None, 0))
    device = next(iter(params.values())).device
    mean = {k: torch.zeros(p.numel(), dtype=torch.float64, device=device) for k, p in params.items()}
    m2, count = 0.0, 0
    norms_sq = torch.zeros(n, dtype=torch.float64, device=device)
    # grad's own transform differentiates; the outer no_grad keeps autograd from recording frozen modules' graphs.
    with torch.no_grad():
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            grads = per_sample_grad(params, _map(batch, lambda t: t[start:stop]))  # noqa: B023 (used at once)
            size = stop - start
            for k, g in grads.items():
                flat = g.reshape(size, -1)
                center = flat.mean(0)  # the chunk mean, in the parameters' dtype (float32 sums of <= chunk_size terms)
                deviation = flat - center
                # Centred squares: no cancellation; each per-sample sum is a cascade sum in the parameters' dtype,
                # everything from there on (over tensors, samples and chunks) adds up in float64.
                dev_sq = torch.linalg.vecdot(deviation, deviation).to(torch.float64)
                norms_sq[start:stop] += dev_sq + 2 * (deviation @ center).to(torch.float64) + _sq(center)
                # Chan et al.'s pairwise update of (count, mean, M2) with this chunk's (size, center, Σ dev²).
                delta = center.to(torch.float64) - mean[k]
                m2 += float(dev_sq.sum()) + _sq(delta) * count * size / (count + size)
                mean[k] += delta * (size / (count + size))
            count += size
    trace = m2 / (n - 1)
    mean_sq = sum(_sq(m) for m in mean.values())
    return GradientStats(n, trace, mean_sq, mean_sq - trace / n, norms_sq.clamp_min(0).sqrt())


def _sq(t: Tensor) -> float:
    """‖t‖² in float64."""
    return squared_norm((t,))


def per_sample_gradient_variance(
    module: nn.Module,
    loss: Loss,
    batch: Batch,
    chunk_size: int = 16,
    frozen: Sequence[nn.Module] = (),
    method: str = "auto",
) -> float:
    """tr of the per-sample gradient covariance, (1/(n−1)) Σ_i ‖g_i − ḡ‖²: the theory's σ² for one sample."""
    return per_sample_gradient_stats(module, loss, batch, chunk_size, frozen, method).trace_sigma


def two_batch_noise_estimate(sq_norm_small: float, sq_norm_big: float, b_small: int, b_big: int) -> tuple[float, float]:
    """(tr Σ, ‖G‖²) from the squared norms of two mini-batch gradients at the same parameters (McCandlish 2018, A.1).

    E‖G_B‖² = ‖G‖² + tr Σ / B for a mean over B independent samples; two batch sizes give two linear equations,
    whose solution is unbiased. Either estimate alone is noisy (and ‖G‖²'s can be negative): average over repeats.
    """
    if not 0 < b_small < b_big:
        raise ValueError(f"need 0 < b_small < b_big, got b_small={b_small}, b_big={b_big}")
    grad_norm_sq = (b_big * sq_norm_big - b_small * sq_norm_small) / (b_big - b_small)
    trace_sigma = (sq_norm_small - sq_norm_big) / (1.0 / b_small - 1.0 / b_big)
    return trace_sigma, grad_norm_sq


def split_batch_noise_estimate(grad_a: Tensor, grad_b: Tensor, half: int) -> tuple[float, float]:
    """(tr Σ, ‖G‖²) from the mean gradients of two independent batches of `half` samples each, both unbiased.

    The two means share G and have independent noise of covariance Σ/half: E⟨g_A, g_B⟩ = ‖G‖², and
    E‖g_A − g_B‖² = 2·tr Σ/half. One batch split in two thus gives both terms of B_simple at the cost of one
    batch gradient (twice the calls), where McCandlish's estimator needs two batch sizes.
    """
    if half < 1:
        raise ValueError(f"half must be a positive sample count, got {half}")
    a, b = grad_a.detach().to(torch.float64).flatten(), grad_b.detach().to(torch.float64).flatten()
    return half * float((a - b).square().sum()) / 2, float(a @ b)


def weighted_split_batch_noise_estimate(grad_a: Tensor, grad_b: Tensor, half: int, weights: Tensor
                                        ) -> tuple[float, float]:
    """(tr(HΣ), GᵀHG) for the diagonal metric H = diag(`weights`), from the same two independent means of `half`
    samples as :func:`split_batch_noise_estimate`, both unbiased: half·Σ_i h_i (g_A,i − g_B,i)²/2 and
    Σ_i h_i g_A,i g_B,i (E(g_A,i − g_B,i)² = 2Σ_ii/half and E g_A,i g_B,i = G_i² coordinate by coordinate).

    With h = 1 both are bit for bit :func:`split_batch_noise_estimate`'s (the same reductions on the same
    numbers). Adam's metric is h = 1/(√v̂ + eps): B_noise,H = tr(HΣ)/(GᵀHG) is the noise scale of the steps Adam
    takes, where B_simple = tr Σ/‖G‖² is SGD's."""
    if half < 1:
        raise ValueError(f"half must be a positive sample count, got {half}")
    a, b = grad_a.detach().to(torch.float64).flatten(), grad_b.detach().to(torch.float64).flatten()
    w = weights.detach().to(device=a.device, dtype=torch.float64).flatten()
    if w.shape != a.shape or b.shape != a.shape:
        raise ValueError(f"weights and gradients must have one entry per parameter, got {w.numel()}, {a.numel()} "
                         f"and {b.numel()}")
    # min and max propagate NaN: two reductions check it all, without the boolean temporaries of isfinite and < 0
    # (a third of this function's time on a 33k-parameter player, which the loop monitor calls every measurement)
    if not (float(w.min()) >= 0 and math.isfinite(float(w.max()))):
        raise ValueError("weights must be finite and >= 0 (a diagonal metric)")
    return half * float((w * (a - b).square()).sum()) / 2, float((w * a) @ b)


def ratio_of_means(numerator: Sequence[float], denominator: Sequence[float], seed: int = 0, n_boot: int = 2000
                   ) -> tuple[float, tuple[float, float]] | None:
    """mean(numerator)/mean(denominator) with a 90% percentile bootstrap interval over the pairs (resampled
    together); None when either mean is not positive (noise or signal unresolved). B_simple over a window of
    measurements is mean tr Σ / mean ‖G‖² this way (McCandlish: one measurement's ‖G‖² swings several-fold)."""
    top, bottom = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    if len(top) == 0 or not (bottom.mean() > 0 and top.mean() > 0):
        return None
    idx = np.random.default_rng(seed).integers(0, len(bottom), size=(n_boot, len(bottom)))
    means = bottom[idx].mean(1)
    ratios = top[idx].mean(1)[means > 0] / means[means > 0]
    value = float(top.mean() / bottom.mean())
    lo, hi = np.quantile(ratios, [0.05, 0.95]) if len(ratios) else (value, value)
    return value, (min(float(lo), value), max(float(hi), value))


def flat_gradient(grads: Mapping[str, Tensor]) -> Tensor:
    """The gradients of a parameter dict as one flat float64 vector, in the dict's (module.parameters()) order."""
    return torch.cat([g.reshape(-1).to(torch.float64) for g in grads.values()])


@dataclass(frozen=True)
class HalvesGradient:
    """The mean gradients of one player's loss on two independent batches of `half` samples each (flat float64).

    norm_sq = ⟨g_A, g_B⟩ is unbiased for the full gradient's ‖G‖², trace_sigma = half·‖g_A − g_B‖²/2 for tr Σ
    (split_batch_noise_estimate), and mean = (g_A + g_B)/2 the gradient estimate to take inner products with
    (unbiased for G, so ⟨θ − θ_ref, mean⟩ is unbiased for the VI gap at a fixed θ_ref)."""

    grad_a: Tensor
    grad_b: Tensor
    half: int

    @property
    def norm_sq(self) -> float:
        return split_batch_noise_estimate(self.grad_a, self.grad_b, self.half)[1]

    @property
    def trace_sigma(self) -> float:
        return split_batch_noise_estimate(self.grad_a, self.grad_b, self.half)[0]

    @property
    def mean(self) -> Tensor:
        return (self.grad_a + self.grad_b) / 2

    def weighted(self, weights: Tensor) -> tuple[float, float]:
        """(tr(HΣ), GᵀHG) in the metric H = diag(weights), unbiased (weighted_split_batch_noise_estimate)."""
        return weighted_split_batch_noise_estimate(self.grad_a, self.grad_b, self.half, weights)


def halves_gradient(module: nn.Module, loss: Loss, batch_a: Batch, batch_b: Batch) -> HalvesGradient:
    """`module`'s mean-loss gradient on each of two independent, equally large batches (the training run's full
    gradient measured without bias: empirical.constants along the run, and train() with config.measure_batch)."""
    half = batch_size(batch_a)
    if batch_size(batch_b) != half:
        raise ValueError(f"the two halves must be equally large, got {half} and {batch_size(batch_b)}")
    return HalvesGradient(flat_gradient(batch_gradient(module, loss, batch_a)),
                          flat_gradient(batch_gradient(module, loss, batch_b)), half)


def averaged_noise_estimate(
    sq_norms_small: Sequence[float], sq_norms_big: Sequence[float], b_small: int, b_big: int
) -> tuple[float, float]:
    """Mean (tr Σ, ‖G‖²) over repeats; divide the two means (not mean of ratios) for B_simple, as McCandlish does."""
    if len(sq_norms_small) != len(sq_norms_big) or not sq_norms_small:
        raise ValueError("need the same positive number of small-batch and big-batch squared norms")
    # Both estimates are linear in the squared norms: the mean of the estimates is the estimate of the means.
    small = math.fsum(sq_norms_small) / len(sq_norms_small)
    big = math.fsum(sq_norms_big) / len(sq_norms_big)
    return two_batch_noise_estimate(small, big, b_small, b_big)


def noise_scale(trace_sigma: float, grad_norm_sq: float) -> float:
    """B_simple = tr Σ / ‖G‖², the batch size at which gradient noise and signal are comparable."""
    if not grad_norm_sq > 0:
        raise ValueError(f"‖G‖² estimate is {grad_norm_sq:.3g} (not positive): average more repeats")
    return trace_sigma / grad_norm_sq


# ---------------------------------------------------------------------------------------------------------------
# Curvature


def top_hessian_eigenvalue(
    objective: Objective,
    params: Mapping[str, Tensor],
    max_iters: int = 100,
    tol: float = 1e-5,
    dtype: torch.dtype | None = None,
    generator: torch.Generator | None = None,
) -> float:
    """Eigenvalue of largest *magnitude* of ∇²f at `params` by power iteration (GAN Hessians are indefinite).

    Stops when the residual ‖Hv − λv‖ ≤ tol·|λ| (then some eigenvalue lies within tol·|λ| of λ); warns if
    `max_iters` pass first (slow when the top two magnitudes are close; stuck when they are ±λ). `dtype` casts the
    parameters (the objective must accept it; `player_objective(..., dtype=)` does); the start vector is drawn with
    `generator` (on its own device), then moved to the parameters' device.
    """
    theta = {k: p.detach().to(dtype or p.dtype).requires_grad_(True) for k, p in params.items()}
    # Hessian-vector products by double backward on a gradient graph built once: each iteration is one backward
    # pass through that graph, while forward-over-reverse (torch.func.jvp of grad) redoes the forward and the first
    # backward every iteration. On CPU the cached graph measured faster per product (benchmarks/gradient_costs.py).
    with torch.enable_grad():
        grads = torch.autograd.grad(objective(theta), list(theta.values()), create_graph=True)
    # Gradient entries without a graph are constant in θ: their Hessian rows are zero.
    live = [(p, g) for p, g in zip(theta.values(), grads, strict=True) if g.requires_grad]
    if not live:
        return 0.0
    inputs, outputs = [p for p, _ in live], [g for _, g in live]
    start = _device(generator)
    v = [torch.randn(p.shape, generator=generator, dtype=p.dtype, device=start).to(p.device) for p in inputs]
    v = _normalised(v)
    eigenvalue = 0.0
    for _ in range(max_iters):
        hv = torch.autograd.grad(outputs, inputs, grad_outputs=v, retain_graph=True, materialize_grads=True)
        eigenvalue = _dot(v, hv)  # Rayleigh quotient vᵀHv with ‖v‖ = 1
        residual = math.sqrt(squared_norm(h - eigenvalue * x for h, x in zip(hv, v, strict=True)))
        if residual <= tol * abs(eigenvalue) or squared_norm(hv) == 0.0:
            return eigenvalue
        v = _normalised(hv)
    warnings.warn(f"power iteration did not converge in {max_iters} iterations", RuntimeWarning, stacklevel=2)
    return eigenvalue


def _device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> float:
    """Σ ⟨a_i, b_i⟩ in float64."""
    return float(sum((x.to(torch.float64) * y.to(torch.float64)).sum() for x, y in zip(a, b, strict=True)))


def _normalised(v: Sequence[Tensor]) -> list[Tensor]:
    """v / ‖v‖ over all tensors together."""
    norm = math.sqrt(squared_norm(v))
    return [(x / norm).detach() for x in v]


# ---------------------------------------------------------------------------------------------------------------
# Small helpers


def gradient_norm_quantile(norms: Tensor, q: float) -> float:
    """The q-quantile of gradient norms (linear interpolation): a robust stand-in for the bound G on ‖∇‖."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    return float(torch.quantile(norms.detach().to(torch.float64).flatten(), q))


def parameter_distance_inf(theta: Iterable[Tensor], theta0: Iterable[Tensor]) -> float:
    """max over all coordinates of |θ − θ₀|: the sup-norm distance behind the theory's bounded domain (Dist)."""
    theta, theta0 = list(theta), list(theta0)
    if len(theta) != len(theta0) or any(a.shape != b.shape for a, b in zip(theta, theta0, strict=True)):
        raise ValueError("parameter lists differ in length or shapes")
    gaps = (float((a.detach() - b.detach()).abs().max()) for a, b in zip(theta, theta0, strict=True) if a.numel())
    return max(gaps, default=0.0)
