"""Per-player optimizers for TTUR GAN training, built by name.

The discriminator and the generator each get their own optimizer with their own learning rate (α_D, α_G).
``make_optimizer(name, params, lr)`` builds one of :data:`OPTIMIZERS`:

==================  ==============================================================================================
``adam``            ``torch.optim.Adam``, betas (0.5, 0.999), eps 1e-8 (the GAN scripts of Sato & Iiduka).
``amsgrad``         :class:`AMSGrad`, betas (0.5, 0.999), eps 1e-8: Adam with a running max of the bias-corrected v̂,
                    so the preconditioner never decreases (the Adam-type bound families assume that; torch's
                    ``Adam(amsgrad=True)`` takes the max before the bias correction and does not have it).
``rmsprop``         ``torch.optim.RMSprop`` with torch's defaults (alpha 0.99, eps 1e-8, no momentum, not centered).
``adabelief``       :class:`AdaBelief` (Zhuang et al. 2020), betas (0.5, 0.999), eps 1e-12, no rectification.
``sgd``             SGD-A: ``torch.optim.SGD``, momentum 0 unless given.
``nsgda``           :class:`NormalizedSGD`: θ ← θ − α·g/(‖g‖ + ε), ‖g‖ over all tensors of the param group.
``nsgda-tensor``    :class:`NormalizedSGD` per tensor: θ_i ← θ_i − α·g_i/(‖g_i‖ + ε).
``graft``           :class:`AdamGraftSGD`: Adam's per-tensor step length, the raw gradient's direction.
==================  ==============================================================================================

:func:`second_moment_bounds` reads the diagonal preconditioner (the theory's h_min, h_max) off an adaptive optimizer.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable

import torch

from empirical.errors import EmpiricalInputError

OPTIMIZERS: tuple[str, ...] = ("adam", "amsgrad", "rmsprop", "adabelief", "sgd", "nsgda", "nsgda-tensor", "graft")

GAN_BETAS: tuple[float, float] = (0.5, 0.999)
# Optimizers whose update of a parameter tensor is elementwise (no norm over the tensor): a tensor that stacks the
# parameters of several runs along a leading axis gets each run's own update (batched seeds, lqgan_batched.py).
ELEMENTWISE: tuple[str, ...] = ("sgd", "adam", "amsgrad", "rmsprop", "adabelief")  # amsgrad: its max is per element
NORM_EPS = 1e-8  # ε added to the gradient norms of nsgda / nsgda-tensor / graft

# Default eps per optimizer; a name missing here takes no eps at all.
_DEFAULT_EPS = {"adam": 1e-8, "amsgrad": 1e-8, "rmsprop": 1e-8, "adabelief": 1e-12, "nsgda": NORM_EPS,
                "nsgda-tensor": NORM_EPS, "graft": 1e-8}
_USES_BETAS = ("adam", "amsgrad", "adabelief", "graft")

Closure = Callable[[], torch.Tensor] | None  # returns the loss, like the closures torch.optim takes


def _evaluate(closure: Closure) -> torch.Tensor | None:
    """Re-evaluate the loss like torch's optimizers do: the closure runs with grad enabled."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def _norm_denominator(norm: torch.Tensor, eps: float) -> torch.Tensor:
    """‖g‖ + ε, kept away from 0 so that a zero gradient gives a zero step (not 0/0) even when ε = 0."""
    return (norm + eps).clamp_min(torch.finfo(norm.dtype).tiny)


def _moment_state(state: dict, p: torch.Tensor, second: str) -> dict:
    """Adam-style per-parameter state (step, exp_avg and a second moment named `second`), with the step advanced."""
    if not state:
        state["step"] = 0
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state[second] = torch.zeros_like(p, memory_format=torch.preserve_format)
    state["step"] += 1
    return state


class AdaBelief(torch.optim.Optimizer):
    r"""AdaBelief (Zhuang et al., NeurIPS 2020), without rectification, AMSGrad or (by default) weight decay.

    Written here because torch has no AdaBelief and the ``adabelief-pytorch`` package is unmaintained (it pins old
    torch and prints banners on construction). The update is the one of ``adabelief_pytorch`` 0.2.x with
    ``rectify=False, amsgrad=False``; per parameter tensor, with gradient g and step t = 1, 2, ...::

        m_t = β1·m_{t-1} + (1 − β1)·g
        s_t = β2·s_{t-1} + (1 − β2)·(g − m_t)² + eps      # eps is added *into the stored state*, every step
        θ  ← θ − lr · (m_t / (1 − β1^t)) / (√(s_t / (1 − β2^t)) + eps)

    so eps enters twice: inside the square root (accumulated in s, as the reference's in-place
    ``exp_avg_var.add_(eps)`` does) and added to the root. ``weight_decay`` is decoupled as in the reference's
    default (``weight_decouple=True``): θ ← θ·(1 − lr·weight_decay) before the step.

    The defaults are the official GAN settings: betas (0.5, 0.999), eps 1e-12.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter] | Iterable[dict], lr: float = 2e-4,
                 betas: tuple[float, float] = GAN_BETAS, eps: float = 1e-12, weight_decay: float = 0.0) -> None:
        _check_hyper(lr=lr, betas=betas, eps=eps)
        if not weight_decay >= 0.0:
            raise ValueError(f"invalid weight_decay: {weight_decay}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Closure = None) -> torch.Tensor | None:  # type: ignore[override]
        """One AdaBelief step on every parameter with a gradient; returns the closure's loss if one is given."""
        loss = _evaluate(closure)
        for group in self.param_groups:
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = _moment_state(self.state[p], p, "exp_avg_var")
                t = state["step"]
                m, s = state["exp_avg"], state["exp_avg_var"]
                if group["weight_decay"]:
                    p.mul_(1.0 - lr * group["weight_decay"])
                m.mul_(beta1).add_(grad, alpha=1.0 - beta1)
                residual = grad - m  # the "belief" residual uses the *updated* mean m_t
                s.mul_(beta2).addcmul_(residual, residual, value=1.0 - beta2).add_(eps)
                denom = (s.sqrt() / math.sqrt(1.0 - beta2**t)).add_(eps)  # √ŝ_t + eps
                p.addcdiv_(m, denom, value=-lr / (1.0 - beta1**t))
        return loss


class AMSGrad(torch.optim.Optimizer):
    r"""AMSGrad (Reddi et al., ICLR 2018) with Adam's bias corrections, the max taken *after* the correction.

    Per parameter tensor, with gradient g and step t = 1, 2, ...::

        m_t = β1·m_{t-1} + (1 − β1)·g,            v_t = β2·v_{t-1} + (1 − β2)·g²
        v̂_t = max(v̂_{t-1}, v_t / (1 − β2^t))      # elementwise, v̂_0 = 0
        θ  ← θ − lr · (m_t / (1 − β1^t)) / (√v̂_t + eps)

    so the preconditioner h_t = √v̂_t + eps is non-decreasing in t in every coordinate: the monotone H_n that the
    Adam-type bounds assume (reference.md §1). This is the algorithm of torch's Adam documentation and of optax's
    ``scale_by_amsgrad``; torch's ``Adam(amsgrad=True)`` code instead keeps max(v) of the *uncorrected* v and divides
    by √(1 − β2^t) afterwards (pytorch/pytorch#142323), so its h falls by up to 1/√(1 − β2) ≈ 32× while the max
    stands still (g = 1 then 10⁻³ repeated: h = 1 → 0.034 over 2000 steps), and plain Adam's h falls with every
    small gradient. The first step equals Adam's (v̂_1 = g²). Defaults: betas (0.5, 0.999), eps 1e-8, as ``adam``.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter] | Iterable[dict], lr: float = 2e-4,
                 betas: tuple[float, float] = GAN_BETAS, eps: float = 1e-8) -> None:
        _check_hyper(lr=lr, betas=betas, eps=eps)
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps})

    @torch.no_grad()
    def step(self, closure: Closure = None) -> torch.Tensor | None:  # type: ignore[override]
        """One AMSGrad step on every parameter with a gradient; returns the closure's loss if one is given."""
        loss = _evaluate(closure)
        for group in self.param_groups:
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = _moment_state(self.state[p], p, "exp_avg_sq")
                if "max_exp_avg_sq_hat" not in state:
                    state["max_exp_avg_sq_hat"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                t = state["step"]
                m, v, vmax = state["exp_avg"], state["exp_avg_sq"], state["max_exp_avg_sq_hat"]
                m.mul_(beta1).add_(grad, alpha=1.0 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                torch.maximum(vmax, v / (1.0 - beta2**t), out=vmax)
                p.addcdiv_(m, vmax.sqrt().add_(eps), value=-lr / (1.0 - beta1**t))
        return loss


class NormalizedSGD(torch.optim.Optimizer):
    """Normalised SGD(A): a step of length lr along −g.

    ``per_tensor=False`` (``nsgda``): θ ← θ − lr·g/(‖g‖ + eps) with ‖g‖ the L2 norm over all tensors of the param
    group that have a gradient (the whole player when it has one group). ``per_tensor=True`` (``nsgda-tensor``):
    each tensor θ_i ← θ_i − lr·g_i/(‖g_i‖ + eps). Tensors whose grad is None are left out of the norm and not moved.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter] | Iterable[dict], lr: float, eps: float = NORM_EPS,
                 per_tensor: bool = False) -> None:
        _check_hyper(lr=lr, eps=eps)
        super().__init__(params, {"lr": lr, "eps": eps, "per_tensor": per_tensor})

    @torch.no_grad()
    def step(self, closure: Closure = None) -> torch.Tensor | None:  # type: ignore[override]
        """One normalised step; returns the closure's loss if one is given."""
        loss = _evaluate(closure)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            norms = [torch.linalg.vector_norm(p.grad) for p in params]
            if not group["per_tensor"]:
                # ‖g‖ over the group = the L2 norm of the per-tensor norms.
                norms = [torch.linalg.vector_norm(torch.stack(norms))] * len(params)
            for p, norm in zip(params, norms, strict=True):
                p.add_(p.grad / _norm_denominator(norm, group["eps"]), alpha=-group["lr"])
        return loss


class AdamGraftSGD(torch.optim.Optimizer):
    """Grafting (Agarwal et al. 2020; Jelassi et al. 2022): Adam's per-tensor step length, SGD's direction.

    Keeps Adam's own state (m, v, bias corrected) and, per parameter tensor::

        A = m̂ / (√v̂ + eps)                      # Adam's step direction, m̂ = m/(1 − β1^t), v̂ = v/(1 − β2^t)
        θ ← θ − lr · ‖A‖ · g / (‖g‖ + norm_eps)

    so the step has (up to norm_eps) the norm of Adam's step lr·‖A‖ and the direction of −g. A tensor with a
    zero gradient does not move (its Adam state still advances). Tensors whose grad is None are skipped.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter] | Iterable[dict], lr: float,
                 betas: tuple[float, float] = GAN_BETAS, eps: float = 1e-8, norm_eps: float = NORM_EPS) -> None:
        _check_hyper(lr=lr, betas=betas, eps=eps)
        _check_hyper(eps=norm_eps)
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "norm_eps": norm_eps})

    @torch.no_grad()
    def step(self, closure: Closure = None) -> torch.Tensor | None:  # type: ignore[override]
        """One grafted step on every parameter with a gradient; returns the closure's loss if one is given."""
        loss = _evaluate(closure)
        for group in self.param_groups:
            (beta1, beta2), eps = group["betas"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = _moment_state(self.state[p], p, "exp_avg_sq")
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(grad, alpha=1.0 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                adam_dir = (m / (1.0 - beta1**t)) / ((v / (1.0 - beta2**t)).sqrt() + eps)
                scale = torch.linalg.vector_norm(adam_dir) / _norm_denominator(
                    torch.linalg.vector_norm(grad), group["norm_eps"])
                p.add_(grad * scale, alpha=-group["lr"])
        return loss


def _check_hyper(*, lr: float | None = None, betas: tuple[float, float] | None = None,
                 eps: float | None = None) -> None:
    """ValueError (torch's convention for optimizer arguments) on an unusable hyper-parameter."""
    if lr is not None and not (isinstance(lr, numbers.Real) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"invalid learning rate {lr!r}: must be a finite number > 0")
    if betas is not None and not (len(betas) == 2 and all(0.0 <= b < 1.0 for b in betas)):
        raise ValueError(f"invalid betas {betas!r}: need two numbers in [0, 1)")
    if eps is not None and not (math.isfinite(eps) and eps >= 0.0):
        raise ValueError(f"invalid eps {eps!r}: must be a finite number >= 0")


def make_optimizer(name: str, params: Iterable[torch.nn.Parameter], lr: float, *,
                   betas: tuple[float, float] | None = None, eps: float | None = None,
                   momentum: float = 0.0) -> torch.optim.Optimizer:
    """The optimizer ``name`` (one of :data:`OPTIMIZERS`) for one player's ``params`` with learning rate ``lr``.

    ``betas`` (default (0.5, 0.999)) applies to adam, amsgrad, adabelief and graft (for graft: its internal Adam).
    ``eps`` overrides the optimizer's own: Adam's / AMSGrad's / RMSprop's eps (1e-8), AdaBelief's (1e-12), the norm ε of
    nsgda / nsgda-tensor (1e-8), Adam's eps inside graft (1e-8; graft's norm ε stays 1e-8). ``momentum`` applies
    to sgd only. Passing ``betas``, ``eps`` or a nonzero ``momentum`` to an optimizer that has no such
    hyper-parameter is an error rather than silently ignored.

    Raises EmpiricalInputError on an unknown name, on lr <= 0 or non-finite, on a bad or unused hyper-parameter,
    or on an empty parameter list.
    """
    if name not in OPTIMIZERS:
        raise EmpiricalInputError(f"unknown optimizer {name!r}; valid names: {', '.join(OPTIMIZERS)}")
    if betas is not None and name not in _USES_BETAS:
        raise EmpiricalInputError(f"optimizer {name!r} takes no betas (only {', '.join(_USES_BETAS)} do)")
    if eps is not None and name not in _DEFAULT_EPS:
        raise EmpiricalInputError(f"optimizer {name!r} takes no eps")
    if momentum != 0.0 and name != "sgd":
        raise EmpiricalInputError(f"optimizer {name!r} takes no momentum (only sgd does)")
    if not (isinstance(momentum, numbers.Real) and 0.0 <= momentum < 1.0):
        raise EmpiricalInputError(f"invalid momentum {momentum!r}: must be in [0, 1)")
    params = list(params)
    if not params:
        raise EmpiricalInputError(f"optimizer {name!r} got an empty parameter list")
    betas = GAN_BETAS if betas is None else tuple(betas)
    eps = _DEFAULT_EPS.get(name) if eps is None else eps
    try:
        _check_hyper(lr=lr, betas=betas, eps=eps)
        if name == "adam":
            return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)
        if name == "amsgrad":
            return AMSGrad(params, lr=lr, betas=betas, eps=eps)
        if name == "rmsprop":
            return torch.optim.RMSprop(params, lr=lr, eps=eps)
        if name == "adabelief":
            return AdaBelief(params, lr=lr, betas=betas, eps=eps)
        if name == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=momentum)
        if name == "graft":
            return AdamGraftSGD(params, lr=lr, betas=betas, eps=eps)
        return NormalizedSGD(params, lr=lr, eps=eps, per_tensor=name == "nsgda-tensor")
    except (ValueError, TypeError) as exc:  # torch's and _check_hyper's argument errors, as the project's input error
        raise EmpiricalInputError(f"optimizer {name!r}: {exc}") from exc


def _preconditioner(opt: torch.optim.Optimizer, group: dict, state: dict) -> torch.Tensor | None:
    """The diagonal h of the step θ ← θ − lr·h⁻¹·(momentum) for one parameter's state, None if it has none."""
    if isinstance(opt, torch.optim.RMSprop):
        if "square_avg" not in state:
            return None
        v = state["square_avg"]
        if group["centered"]:  # torch's centered RMSprop divides by √(v − ḡ²)
            v = v - state["grad_avg"] ** 2
        return v.sqrt() + group["eps"]
    if isinstance(opt, AMSGrad):  # its state holds the max of the already bias-corrected v̂
        return state["max_exp_avg_sq_hat"].sqrt() + group["eps"] if "max_exp_avg_sq_hat" in state else None
    if isinstance(opt, torch.optim.Adam | torch.optim.AdamW | AdamGraftSGD):
        key = "exp_avg_sq"
    elif isinstance(opt, AdaBelief):
        key = "exp_avg_var"
    else:
        return None
    if key not in state:
        return None
    v = state["max_exp_avg_sq"] if group.get("amsgrad") else state[key]
    bias_correction2 = 1.0 - group["betas"][1] ** float(state["step"])  # torch's Adam keeps step as a tensor
    return (v / bias_correction2).sqrt() + group["eps"]


def second_moment_bounds(opt: torch.optim.Optimizer) -> tuple[float, float] | None:
    """(h_min, h_max): min and max over every element of every parameter of the preconditioner diagonal.

    The diagonal h is what the most recent step divided the (bias-corrected) first moment by, read from the
    optimizer's state as it is now (i.e. after the last step; it is not the same as what the next step will use):

    * ``adam`` (torch.optim.Adam) and ``graft``: h = √v̂ + eps, v̂ = v/(1 − β2^t) (a torch Adam built with
      amsgrad=True: v the running max of the uncorrected v, as its step uses it, √(max v/(1 − β2^t)) + eps);
    * ``amsgrad`` (:class:`AMSGrad`): h = √v̂ + eps, v̂ the running max of v/(1 − β2^t); non-decreasing in t;
    * ``adabelief``: h = √ŝ + eps, ŝ = s/(1 − β2^t), s including the eps it accumulates (see :class:`AdaBelief`);
    * ``rmsprop``: h = √v + eps, no bias correction (centered: √(v − ḡ²) + eps).

    For graft the actual step is rescaled to the gradient's direction, so h is only Adam's would-be preconditioner.
    Parameters that never had a gradient (no state) are skipped. Returns None for optimizers without such a
    diagonal (sgd, nsgda, nsgda-tensor, anything else) and before the first step.
    """
    lo: torch.Tensor | None = None
    hi: torch.Tensor | None = None
    for group in opt.param_groups:
        for p in group["params"]:
            h = _preconditioner(opt, group, opt.state.get(p, {}))
            if h is None or h.numel() == 0:
                continue
            lo = h.min() if lo is None else torch.minimum(lo, h.min())
            hi = h.max() if hi is None else torch.maximum(hi, h.max())
    if lo is None or hi is None:
        return None
    return float(lo), float(hi)


def step_denominator(opt: torch.optim.Optimizer, module: torch.nn.Module) -> torch.Tensor | None:
    """The diagonal the optimizer's last step divided its (bias-corrected) first moment by, √v̂ + eps, for every
    parameter of `module` (flat, module.parameters() order, a copy): read from its state as second_moment_bounds
    reads h_min and h_max (Adam and RMSprop: v̂ with the bias correction each applies; AMSGrad: its running max of
    the corrected v̂; AdaBelief: its s). A parameter that never had a gradient has no state and gets +inf (weight
    1/inf = 0: the optimizer never moves it); None before the first step or for an optimizer without such a
    diagonal."""
    groups = {id(q): g for g in opt.param_groups for q in g["params"]}
    parts: list[torch.Tensor | None] = []
    for q in module.parameters():
        if id(q) not in groups:
            raise ValueError(f"a parameter of {type(module).__name__} is not in the optimizer it was given with")
        h = _preconditioner(opt, groups[id(q)], opt.state.get(q, {}))
        parts.append(None if h is None else h.detach().reshape(-1).cpu())
    if all(x is None for x in parts):
        return None
    dtype = next(x.dtype for x in parts if x is not None)  # the state's own (float32 for float32 parameters)
    return torch.cat([torch.full((q.numel(),), math.inf, dtype=dtype) if x is None else x.to(dtype)
                      for q, x in zip(module.parameters(), parts, strict=True)])
