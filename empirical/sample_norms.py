"""Per-sample squared gradient norms ‖g_i‖² from module hooks: one forward and one backward over the whole batch.

Same interface as empirical/gradients.py: `loss(forward, batch)` is the **mean** over the n samples of `batch` of
per-sample losses ℓ_i, each depending on sample i only. Forward hooks on the player's parametrised modules record
every call's input and its output's gradient edge; one backward to those edges gives ∂L/∂output of every call. Row i
of a call belongs to sample i, so g_i = n · (the gradient through row i of every call). A sample can pass through a
module several times (the critic loss calls D on real_i and on fake_i): its gradient is the sum over the calls, and
its squared norm has cross-call terms. With u_{c,t} a call c's input at position t (the unfolded patch of a
convolution, one row of a Linear's [..., in] input) and δ_{c,t} the output gradient there,

    Linear, Conv2d weight:   g_i = n · Σ_c Σ_t δ_{c,i,t} u_{c,i,t}ᵀ    (all calls' positions concatenated into one t)
    bias:                     g_i = n · Σ_c Σ_t δ_{c,i,t}
    LayerNorm, GroupNorm:     g_i = n · Σ_c Σ (δ ⊙ x̂, δ) over the non-affine dimensions (x̂: the normalised input)

Each Linear or Conv2d weight takes the cheaper of two exact routes (`_ghost`):
  - materialised: g_i for a chunk of samples at a time (memory chunk × out × K), by im2col and a batched matmul, or
    for a large Conv2d by one weight-gradient convolution per sample over its calls (faster on CPU); the chunk means
    give ḡ and the centred Σ‖g_i − ḡ‖² without cancellation, as in empirical/gradients.py;
  - ghost norm (as in Opacus' ghost clipping, Li et al. 2022): ‖g_i‖² = ⟨UᵢᵀUᵢ, ΔᵢᵀΔᵢ⟩ with T×T Gram matrices over
    the concatenated positions, so the cross-call terms are in; ḡ comes from the same backward (the layer's ordinary
    weight gradient) and Σ‖g_i − ḡ‖² = Σ‖g_i‖² − n‖ḡ‖², exact up to a rounding of ε·Σ‖g_i‖² (harmless unless the
    per-sample gradients are nearly all equal, far from a GAN's regime).
Biases and norm layers are always materialised. The forward and the backward run once over the whole batch and keep
every call's output gradient: memory like an ordinary batch gradient's, plus the chunk's temporaries. On the 64 px
DCGAN critic the whole costs about 1.3 to 1.6 batch gradients, vmap(grad) 6 to 8 (benchmarks/gradient_costs.py).

Supported: nn.Linear, nn.Conv2d (groups = 1, any stride, padding, dilation or padding mode), nn.LayerNorm and
nn.GroupNorm, each called on a batch whose leading dimension is the n samples. Refused with `HooksUnsupported` (a
ValueError): a module with parameters of another type, a parameter shared between modules or used outside its own
module's forward, a call on another number of rows, and a loss that differentiates inside (WGAN-GP's gradient
penalty): hooks see one backward, those losses need vmap(grad). Train-mode BatchNorm is refused as for vmap.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.graph import GradientEdge, get_gradient_edge
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from empirical.gradients import Batch, Loss, Params, _bind, _state, batch_size, require_independent_samples

SUPPORTED = (nn.Linear, nn.Conv2d, nn.LayerNorm, nn.GroupNorm)


class HooksUnsupported(ValueError):
    """The module or the loss is outside what per-sample norms from hooks handle exactly (use vmap(grad))."""


@dataclass(frozen=True)
class SampleNormMoments:
    """Per-sample gradient moments of one batch of n samples, all float64.

    norms_sq: ‖g_i‖² per sample, on the parameters' device.
    sum_sq_dev: Σ_i ‖g_i − ḡ‖² (so tr Σ̂ = sum_sq_dev / (n − 1)).
    mean_sq: ‖ḡ‖², ḡ the gradient of the mean loss.
    """

    n: int
    norms_sq: Tensor
    sum_sq_dev: float
    mean_sq: float


def per_sample_grad_norms_sq(
    module: nn.Module, loss: Loss, batch: Batch, chunk_size: int = 16, frozen: Sequence[nn.Module] = ()
) -> Tensor:
    """‖g_i‖² (float64, shape [n]) of each sample's loss gradient in `module`'s parameters, from hooks, no vmap.

    `chunk_size` samples at a time go through the per-sample products (memory ∝ chunk_size × the largest
    materialised layer); the forward and backward run once over the whole batch, like an ordinary batch gradient.
    """
    return sample_norm_moments(module, loss, batch, chunk_size, frozen).norms_sq


def check_supported(module: nn.Module) -> dict[nn.Module, dict[str, str]]:
    """{layer: {parameter attribute: name in module.named_parameters()}}; HooksUnsupported for anything else."""
    layers: dict[nn.Module, dict[str, str]] = {}
    owner_of: dict[int, str] = {}
    for prefix, sub in module.named_modules():
        own = dict(sub.named_parameters(recurse=False))
        if not own:
            continue
        where = f"{type(module).__name__}.{prefix}" if prefix else type(module).__name__
        if type(sub) not in SUPPORTED:
            raise HooksUnsupported(
                f"per-sample norms from hooks do not support {type(sub).__name__} with parameters ({where}); "
                "supported: Linear, Conv2d (groups=1), LayerNorm, GroupNorm"
            )
        if isinstance(sub, nn.Conv2d) and sub.groups != 1:
            raise HooksUnsupported(f"per-sample norms from hooks need Conv2d with groups=1, got {sub.groups} ({where})")
        if set(own) - {"weight", "bias"}:
            raise HooksUnsupported(f"unexpected parameters {sorted(set(own) - {'weight', 'bias'})} in {where}")
        for attr, p in own.items():
            if id(p) in owner_of:
                raise HooksUnsupported(f"parameter shared by {owner_of[id(p)]} and {where}.{attr}: not supported")
            owner_of[id(p)] = f"{where}.{attr}"
        layers[sub] = {attr: f"{prefix}.{attr}" if prefix else attr for attr in own}
    return layers


# ---------------------------------------------------------------------------------------------------------------
# Recording the calls


@dataclass
class _Call:
    input: Tensor  # detached (autograd saved the layer's input too: its version check catches later in-place edits)
    edge: GradientEdge
    out_shape: torch.Size
    grad: Tensor | None = None


@dataclass
class _Recorder:
    """Forward hooks that record each call of each layer; a guard against parameters used outside their layer."""

    layers: dict[nn.Module, dict[str, str]]
    params: Params
    n: int
    calls: dict[nn.Module, list[_Call]] = field(default_factory=dict)
    active: list[nn.Module] = field(default_factory=list)
    in_loss: bool = False
    differentiated_inside: bool = False

    @contextmanager
    def recording(self) -> Iterator[None]:
        handles = []
        for layer in self.layers:
            handles.append(layer.register_forward_pre_hook(self._enter))
            handles.append(layer.register_forward_hook(self._exit, prepend=True))  # the raw output, before user hooks
        owners = {id(self.params[name]): layer for layer, names in self.layers.items() for name in names.values()}
        self.in_loss = True
        try:
            with _ParameterGuard(owners, self.active):
                yield
        finally:
            self.in_loss = False
            for handle in handles:
                handle.remove()

    def _enter(self, layer: nn.Module, args: tuple) -> None:
        self.active.append(layer)

    def _exit(self, layer: nn.Module, args: tuple, output: object) -> None:
        self.active.pop()
        where = type(layer).__name__
        if not isinstance(output, Tensor) or len(args) != 1 or not isinstance(args[0], Tensor):
            raise HooksUnsupported(f"{where} called without one positional input tensor: its call cannot be recorded")
        x = args[0]
        if any(torch._C._functorch.is_functorch_wrapped_tensor(t) for t in (x, output)):
            raise HooksUnsupported(_INSIDE)
        if not output.requires_grad:
            return  # under no_grad: no gradient flows through this call
        min_dim = {nn.Linear: 2, nn.Conv2d: 4, nn.GroupNorm: 2}.get(type(layer))
        if isinstance(layer, nn.LayerNorm):
            min_dim = len(layer.normalized_shape) + 1
        if x.dim() < min_dim or (isinstance(layer, nn.Conv2d) and x.dim() != 4) or len(x) != self.n:
            raise HooksUnsupported(
                f"{where} called on an input of shape {tuple(x.shape)}: per-sample norms from hooks need every call's "
                f"leading dimension to be the batch's {self.n} samples"
            )
        output.register_hook(self._seen)
        self.calls.setdefault(layer, []).append(_Call(x.detach(), get_gradient_edge(output), output.shape))

    def _seen(self, grad: Tensor) -> None:
        if self.in_loss:
            self.differentiated_inside = True


_INSIDE = (
    "the loss differentiates inside (e.g. WGAN-GP's gradient penalty): per-sample norms from hooks see one "
    "backward only; use per_sample_gradient_stats' vmap(grad)"
)

# Tensor attributes that read metadata only: touching a parameter this way is not a use of its value.
_METADATA = {"shape", "dtype", "device", "requires_grad", "is_leaf", "ndim", "layout", "is_cuda", "size", "dim",
             "numel", "data_ptr", "__len__"}


class _ParameterGuard(TorchFunctionMode):
    """Refuse an operation on a player's parameter outside its own layer's forward (tied weights, a penalty on θ)."""

    def __init__(self, owners: dict[int, nn.Module], active: list[nn.Module]) -> None:
        super().__init__()
        self.owners, self.active = owners, active

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name == "__get__":  # a property: Tensor.shape.__get__ and the like
            name = getattr(getattr(func, "__self__", None), "__name__", "")
        if name not in _METADATA:
            for leaf in tree_leaves((args, kwargs)):
                owner = self.owners.get(id(leaf)) if isinstance(leaf, Tensor) else None
                if owner is not None and (not self.active or self.active[-1] is not owner):
                    raise HooksUnsupported(
                        f"the loss uses a parameter of {type(owner).__name__} outside that layer's forward "
                        f"({getattr(func, '__name__', func)}): per-sample norms from hooks would miss that use"
                    )
        return func(*args, **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Per-sample moments


class _Moments:
    """ḡ, ‖g_i‖² and Σ‖g_i − ḡ‖² of per-sample rows fed in chunks (centred per chunk, Chan's update in float64)."""

    def __init__(self, n: int, device: torch.device) -> None:
        self.norms_sq = torch.zeros(n, dtype=torch.float64, device=device)
        self.sum_sq_dev = 0.0
        self.mean_sq = 0.0
        self._means: dict[str, tuple[int, Tensor]] = {}

    def add_rows(self, key: str, start: int, rows: Tensor) -> None:
        """Rows start.. of parameter `key`'s per-sample gradients (shape [size, numel]); chunks in order."""
        size = len(rows)
        center = rows.mean(0)
        deviation = rows - center
        dev_sq = torch.linalg.vecdot(deviation, deviation).to(torch.float64)
        self.norms_sq[start : start + size] += dev_sq + 2 * (deviation @ center).to(torch.float64) + _sq(center)
        count, mean = self._means.get(key, (0, torch.zeros_like(center, dtype=torch.float64)))
        delta = center.to(torch.float64) - mean
        self.sum_sq_dev += float(dev_sq.sum()) + _sq(delta) * count * size / (count + size)
        self._means[key] = (count + size, mean + delta * (size / (count + size)))

    def add_ghost(self, start: int, norms_sq: Tensor) -> None:
        """‖g_i‖² of rows start.. of a ghost-normed parameter (its mean comes through `add_mean`)."""
        self.norms_sq[start : start + len(norms_sq)] += norms_sq.to(torch.float64)
        self.sum_sq_dev += float(norms_sq.to(torch.float64).sum())

    def add_mean(self, mean: Tensor, n: int) -> None:
        """ḡ of a ghost-normed parameter: Σ‖g_i − ḡ‖² = Σ‖g_i‖² − n‖ḡ‖²."""
        sq = _sq(mean)
        self.sum_sq_dev -= n * sq
        self.mean_sq += sq

    def finish(self) -> None:
        self.mean_sq += sum(_sq(mean) for _, mean in self._means.values())
        self._means.clear()


def _sq(t: Tensor) -> float:
    return float(t.detach().to(torch.float64).square().sum())


def _padded(layer: nn.Conv2d, x: Tensor) -> tuple[Tensor, tuple[int, int] | int]:
    """(input, padding) for an unpadded convolution of the layer's: padded here where the layer pads otherwise."""
    if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
        mode = "constant" if layer.padding_mode == "zeros" else layer.padding_mode
        return F.pad(x, layer._reversed_padding_repeated_twice, mode=mode), 0
    return x, layer.padding


def _patches(layer: nn.Conv2d, x: Tensor) -> Tensor:
    """The convolution's input patches [b, C·kh·kw, L] (im2col), padded as the layer's forward pads."""
    x, padding = _padded(layer, x)
    return F.unfold(x, layer.kernel_size, layer.dilation, padding, layer.stride)


def _conv_sample_grads(layer: nn.Conv2d, calls: list[_Call], start: int, stop: int) -> Tensor:
    """Per-sample weight-gradient shares [b, out, C, kh, kw] of samples start..stop, summed over the calls.

    One weight-gradient convolution per sample, over that sample's calls stacked as a batch: measured faster on CPU
    than im2col and a batched matmul (and than vmap's grouped convolutions).
    """
    grads = torch.empty((stop - start, *layer.weight.shape), dtype=calls[0].grad.dtype, device=calls[0].grad.device)
    same = len({c.input.shape for c in calls}) == 1
    for i in range(start, stop):
        if same:  # one sample's calls as a batch: the weight gradient sums over them
            pairs = [(torch.stack([c.input[i] for c in calls]), torch.stack([c.grad[i] for c in calls]))]
        else:
            pairs = [(c.input[i : i + 1], c.grad[i : i + 1]) for c in calls]
        total = 0
        for x, grad in pairs:
            x, padding = _padded(layer, x)
            total = total + torch.nn.grad.conv2d_weight(x, layer.weight.shape, grad, layer.stride, padding,
                                                        layer.dilation)
        grads[i - start] = total
    return grads


def _columns(layer: nn.Module, x: Tensor, grad: Tensor) -> tuple[Tensor, Tensor]:
    """(inputs u [b, K, T], output gradients δ [b, out, T]) of one call of a Linear or Conv2d, positions last."""
    b = len(x)
    if isinstance(layer, nn.Conv2d):
        return _patches(layer, x), grad.reshape(b, layer.out_channels, -1)
    return x.reshape(b, -1, layer.in_features).mT, grad.reshape(b, -1, layer.out_features).mT


def _positions(layer: nn.Module, calls: list[_Call]) -> int:
    """T: the positions of one sample over all calls (output pixels of a convolution, rows of a Linear)."""
    if isinstance(layer, nn.Conv2d):
        return sum(math.prod(c.out_shape[2:]) for c in calls)
    return sum(math.prod(c.out_shape[1:-1]) for c in calls)


def _ghost(layer: nn.Linear | nn.Conv2d, calls: list[_Call]) -> bool:
    """Ghost norm where its T²·(K + out) Gram products cost less than the materialised out·K·T per sample.

    The ghost route also needs ḡ, which the backward computes in one large, fast product; the materialised route
    writes and reads chunk × out × K per chunk. Ghost norms thus win even at equal arithmetic, hence the margin 2.
    """
    t = _positions(layer, calls)
    k = layer.weight[0].numel()
    out = len(layer.weight)
    return t * t * (k + out) <= 2 * t * k * out


# Elements of the largest per-chunk temporary (patches, per-sample gradients or Gram matrices): small enough for the
# products to run in cache-friendly pieces (measured faster on CPU than large chunks), large enough to batch them.
_CHUNK_ELEMENTS = 1 << 21


# Per-sample multiply-adds above which a materialised Conv2d weight takes one weight-gradient convolution per sample
# (fast kernels, but a Python call per sample) rather than im2col and a batched matmul.
_CONV_LOOP_MACS = 1 << 22


def _chunk(chunk_size: int, per_sample: int) -> int:
    """Samples per chunk: at most `chunk_size`, fewer when one sample's temporaries are large."""
    return max(1, min(chunk_size, _CHUNK_ELEMENTS // max(per_sample, 1)))


def _linear_like(layer: nn.Module, names: dict[str, str], calls: list[_Call], ghost: bool, moments: _Moments,
                 chunk_size: int) -> None:
    n, t, k, out = len(calls[0].grad), _positions(layer, calls), layer.weight[0].numel(), len(layer.weight)
    conv_grads = isinstance(layer, nn.Conv2d) and not ghost and t * k * out >= _CONV_LOOP_MACS
    chunk = _chunk(chunk_size, out * k if conv_grads else max(t * k, t * t if ghost else out * k))
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        if conv_grads:
            moments.add_rows(names["weight"], start, _conv_sample_grads(layer, calls, start, stop).flatten(1))
            if "bias" in names:
                moments.add_rows(names["bias"], start, sum(c.grad[start:stop].flatten(2).sum(2) for c in calls))
            continue
        pieces = [_columns(layer, c.input[start:stop], c.grad[start:stop]) for c in calls]
        if ghost:
            # ‖Σ_c δ_c u_cᵀ‖² = Σ_{c,c'} ⟨u_cᵀu_c', δ_cᵀδ_c'⟩: the cross-call pairs once each, counted twice.
            norms_sq = 0
            for i, (u, delta) in enumerate(pieces):
                for j, (v, epsilon) in enumerate(pieces[i:], i):
                    gram_u, gram_delta = u.mT @ v, delta.mT @ epsilon
                    pair = torch.linalg.vecdot(gram_u.flatten(1), gram_delta.flatten(1))
                    norms_sq = norms_sq + (pair if i == j else 2 * pair)
            moments.add_ghost(start, norms_sq)
        else:
            grads = None  # Σ_c δ_c u_cᵀ, [b, out, K]
            for u, delta in pieces:
                grads = delta @ u.mT if grads is None else torch.baddbmm(grads, delta, u.mT)
            moments.add_rows(names["weight"], start, grads.flatten(1))
        if "bias" in names:
            moments.add_rows(names["bias"], start, sum(delta.sum(2) for _, delta in pieces))


def _norm_layer(layer: nn.Module, names: dict[str, str], calls: list[_Call], moments: _Moments, chunk: int) -> None:
    n = len(calls[0].grad)
    for start in range(0, n, chunk):
        weight, bias = 0, 0
        for c in calls:
            x, grad = c.input[start : start + chunk], c.grad[start : start + chunk]
            b = len(x)
            if isinstance(layer, nn.LayerNorm):
                normalised = F.layer_norm(x, layer.normalized_shape, eps=layer.eps)
                shape = (b, -1, math.prod(layer.normalized_shape))
                axis = 1
            else:
                normalised = F.group_norm(x, layer.num_groups, eps=layer.eps)
                shape, axis = (b, layer.num_channels, -1), 2
            if "weight" in names:
                weight = weight + (grad * normalised).reshape(shape).sum(axis)
            if "bias" in names:
                bias = bias + grad.reshape(shape).sum(axis)
        if "weight" in names:
            moments.add_rows(names["weight"], start, weight)
        if "bias" in names:
            moments.add_rows(names["bias"], start, bias)


def sample_norm_moments(
    module: nn.Module, loss: Loss, batch: Batch, chunk_size: int = 16, frozen: Sequence[nn.Module] = ()
) -> SampleNormMoments:
    """‖g_i‖², Σ‖g_i − ḡ‖² and ‖ḡ‖² of `module`'s per-sample gradients from hooks (module docstring)."""
    require_independent_samples(module, *frozen)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    layers = check_supported(module)
    n = batch_size(batch)
    params, buffers = _state(module)
    params = {k: p.requires_grad_(True) for k, p in params.items()}
    device = next(iter(params.values())).device if params else torch.device("cpu")
    recorder = _Recorder(layers, params, n)
    with torch.enable_grad(), recorder.recording():
        value = loss(_bind(module, params, buffers), batch)
    if recorder.differentiated_inside:
        raise HooksUnsupported(_INSIDE)
    if not isinstance(value, Tensor) or value.numel() != 1:
        raise ValueError("the loss must return a scalar (the mean over the batch)")
    moments = _Moments(n, device)
    calls = recorder.calls
    if calls and value.requires_grad:
        recorded = [c for layer_calls in calls.values() for c in layer_calls]
        # Ghost-normed layers take ḡ from this backward: their ordinary weight gradient, one large product.
        ghosts = [layer for layer, layer_calls in calls.items()
                  if isinstance(layer, (nn.Linear, nn.Conv2d)) and _ghost(layer, layer_calls)]
        weights = [params[layers[layer]["weight"]] for layer in ghosts]
        grads = torch.autograd.grad(value, [c.edge for c in recorded] + weights, allow_unused=True)
        for c, g in zip(recorded, grads, strict=False):
            c.grad = g
        for g in grads[len(recorded) :]:
            if g is not None:
                moments.add_mean(g / n, n)  # in units of one row's share, like the materialised rows
        for layer, layer_calls in calls.items():
            live = [c for c in layer_calls if c.grad is not None]
            if not live:
                continue
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                _linear_like(layer, layers[layer], live, layer in ghosts, moments, chunk_size)
            else:
                _norm_layer(layer, layers[layer], live, moments, chunk_size)
    moments.finish()
    scale = float(n) ** 2  # g_i = n · (row i's share of ∂L), L the mean loss, and ḡ = n · (mean share)
    # Clamps: a ghost-normed Σ‖g_i − ḡ‖² can round below zero when all g_i are (nearly) equal.
    return SampleNormMoments(n, (moments.norms_sq * scale).clamp_min(0), max(moments.sum_sq_dev * scale, 0.0),
                             moments.mean_sq * scale)
