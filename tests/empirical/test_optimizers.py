"""empirical.optimizers: each hand-written optimizer against an independent numpy float64 reference formula."""

import io
import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from empirical.errors import EmpiricalInputError
from empirical.optimizers import (
    ELEMENTWISE,
    OPTIMIZERS,
    AdaBelief,
    AdamGraftSGD,
    AMSGrad,
    NormalizedSGD,
    make_optimizer,
    second_moment_bounds,
    step_denominator,
)

SHAPES = [(3, 2), (4,)]
B1, B2 = 0.5, 0.999


def make_params(dtype=torch.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [torch.nn.Parameter(torch.tensor(rng.normal(size=s), dtype=dtype)) for s in SHAPES]


def grad_sequence(steps, seed=1, scales=(1.0, 1.0)):
    """Fixed per-step gradients, one array per tensor of SHAPES (scales make the tensors' norms differ)."""
    rng = np.random.default_rng(seed)
    return [[scale * rng.normal(size=s) for s, scale in zip(SHAPES, scales, strict=True)] for _ in range(steps)]


def apply(opt, params, grads):
    """Set the gradients by hand and take one step."""
    for p, g in zip(params, grads, strict=True):
        p.grad = torch.tensor(g, dtype=p.dtype)
    opt.step()


def numpy_of(params):
    return [p.detach().numpy().astype(np.float64) for p in params]


# ----------------------------------------------------------------------------------- reference formulas (numpy f64)


class AdaBeliefReference:
    """AdaBelief for one tensor, paper's Algorithm 1 without rectification: eps inside s and again outside the √."""

    def __init__(self, theta, lr, b1=B1, b2=B2, eps=1e-12):
        self.theta, self.m, self.s, self.t = np.array(theta, dtype=np.float64), 0.0, 0.0, 0
        self.lr, self.b1, self.b2, self.eps = lr, b1, b2, eps

    def update(self, g):
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.s = self.b2 * self.s + (1 - self.b2) * (g - self.m) ** 2 + self.eps
        m_hat, s_hat = self.m / (1 - self.b1**self.t), self.s / (1 - self.b2**self.t)
        self.theta = self.theta - self.lr * m_hat / (np.sqrt(s_hat) + self.eps)
        return self.theta


class AdamReference:
    """Adam's moments for one tensor."""

    def __init__(self, b1=B1, b2=B2, eps=1e-8):
        self.m, self.v, self.t = 0.0, 0.0, 0
        self.b1, self.b2, self.eps = b1, b2, eps

    def update(self, g):
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * g**2

    def h(self):
        """Adam's preconditioner diagonal √v̂ + eps."""
        return np.sqrt(self.v / (1 - self.b2**self.t)) + self.eps

    def direction(self):
        """A = m̂ / (√v̂ + eps)."""
        return self.m / (1 - self.b1**self.t) / self.h()


class AMSGradReference:
    """AMSGrad for one tensor, hand-written: Adam's moments, v̂_t = max(v̂_{t-1}, v_t/(1 − β2^t)), h = √v̂ + eps."""

    def __init__(self, theta, lr, b1=B1, b2=B2, eps=1e-8):
        self.theta, self.m, self.v, self.vmax, self.t = np.array(theta, dtype=np.float64), 0.0, 0.0, 0.0, 0
        self.lr, self.b1, self.b2, self.eps = lr, b1, b2, eps

    def update(self, g):
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * g**2
        self.vmax = np.maximum(self.vmax, self.v / (1 - self.b2**self.t))
        self.theta = self.theta - self.lr * self.m / (1 - self.b1**self.t) / self.h()
        return self.theta

    def h(self):
        return np.sqrt(self.vmax) + self.eps


# ------------------------------------------------------------------------------------------------------- AdaBelief


def test_adabelief_matches_reference_float64():
    params, grads = make_params(), grad_sequence(6)
    refs = [AdaBeliefReference(t, lr=0.01) for t in numpy_of(params)]
    opt = make_optimizer("adabelief", params, lr=0.01)
    for gs in grads:
        apply(opt, params, gs)
        for p, ref, g in zip(params, refs, gs, strict=True):
            np.testing.assert_allclose(p.detach().numpy(), ref.update(g), rtol=1e-12, atol=0)
            np.testing.assert_allclose(opt.state[p]["exp_avg"].numpy(), ref.m, rtol=1e-12)
            np.testing.assert_allclose(opt.state[p]["exp_avg_var"].numpy(), ref.s, rtol=1e-12)


def test_adabelief_eps_accumulates_in_state():
    # One step with g = c: m = (1-β1)c, residual β1·c, so s_1 = (1-β2)·β1²·c² + eps (eps stored, as in the reference).
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = AdaBelief([p], lr=0.1, eps=1e-3)
    p.grad = torch.tensor([2.0], dtype=torch.float64)
    opt.step()
    s1 = (1 - B2) * B1**2 * 4.0 + 1e-3
    assert opt.state[p]["exp_avg_var"].item() == pytest.approx(s1, rel=1e-14)
    expected = -0.1 * 2.0 / (math.sqrt(s1 / (1 - B2)) + 1e-3)  # m̂_1 = g
    assert p.item() == pytest.approx(expected, rel=1e-14)


def test_adabelief_linear_regression_float32_with_closure():
    # Least squares: torch float32 with autograd in a closure vs numpy float64 with the analytic gradient
    # ∇w = 2/n·Xᵀr, ∇b = 2/n·Σr, r = Xw + b − y, each evaluated at the reference's own iterates.
    rng = np.random.default_rng(3)
    x, y, w0 = rng.normal(size=(16, 3)), rng.normal(size=16), rng.normal(size=3)
    w = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float32))
    b = torch.nn.Parameter(torch.zeros((), dtype=torch.float32))
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    opt = make_optimizer("adabelief", [w, b], lr=0.05)

    def closure():
        opt.zero_grad()
        loss = ((xt @ w + b - yt) ** 2).mean()
        loss.backward()
        return loss

    ref_w, ref_b = AdaBeliefReference(w0, lr=0.05), AdaBeliefReference(0.0, lr=0.05)
    losses = []
    for _ in range(8):
        r = x @ ref_w.theta + ref_b.theta - y
        ref_w.update(2 / len(y) * x.T @ r)
        ref_b.update(2 / len(y) * r.sum())
        losses.append(opt.step(closure).item())
        np.testing.assert_allclose(w.detach().numpy(), ref_w.theta, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b.item(), ref_b.theta, rtol=1e-5, atol=1e-6)
    assert losses[-1] < losses[0]


def test_adabelief_factory_defaults():
    opt = make_optimizer("adabelief", make_params(), lr=2e-4)
    assert isinstance(opt, AdaBelief)
    group = opt.param_groups[0]
    assert (group["lr"], group["betas"], group["eps"], group["weight_decay"]) == (2e-4, (0.5, 0.999), 1e-12, 0.0)


def test_adabelief_weight_decay_is_decoupled():
    p = torch.nn.Parameter(torch.full((2,), 3.0, dtype=torch.float64))
    opt = AdaBelief([p], lr=0.1, weight_decay=0.5)
    p.grad = torch.zeros(2, dtype=torch.float64)  # m = 0, so only the decay moves θ
    opt.step()
    np.testing.assert_allclose(p.detach().numpy(), 3.0 * (1 - 0.1 * 0.5), rtol=1e-15)


# --------------------------------------------------------------------------------------------------------- AMSGrad


def test_amsgrad_matches_reference_and_its_h_never_decreases():
    # Gradient scales that fall 10⁴× over the run: Adam's v̂ falls with them, AMSGrad's max must hold.
    steps = 40
    decay = np.logspace(0, -4, steps)
    grads = [[g * d for g in gs] for gs, d in zip(grad_sequence(steps, scales=(0.1, 3.0)), decay, strict=True)]
    params = make_params()
    refs = [AMSGradReference(t, lr=0.01) for t in numpy_of(params)]
    opt = make_optimizer("amsgrad", params, lr=0.01)
    assert isinstance(opt, AMSGrad) and "amsgrad" in ELEMENTWISE
    assert second_moment_bounds(opt) is None  # before the first step
    previous = None
    for gs in grads:
        apply(opt, params, gs)
        for p, ref, g in zip(params, refs, gs, strict=True):
            np.testing.assert_allclose(p.detach().numpy(), ref.update(g), rtol=1e-12, atol=1e-15)
        h = np.concatenate([ref.h().ravel() for ref in refs])
        assert second_moment_bounds(opt) == pytest.approx((h.min(), h.max()), rel=1e-12)
        if previous is not None:
            assert np.all(h >= previous)  # per coordinate, every step
        previous = h
    assert previous.min() > 1e-3  # held at the early large gradients, not at the last ones (~1e-5)


def test_amsgrad_is_elementwise_runs_stacked_on_one_tensor_step_as_their_own():
    # ELEMENTWISE's promise (batched seeds on lqgan): rows of one tensor evolve as separate tensors would.
    rows = [grad_sequence(5, seed=s, scales=(1.0, 10.0 ** s)) for s in (2, 3)]
    stacked = torch.nn.Parameter(torch.zeros(2, 4, dtype=torch.float64))
    apart = [torch.nn.Parameter(torch.zeros(4, dtype=torch.float64)) for _ in rows]
    opt_stacked, opt_apart = make_optimizer("amsgrad", [stacked], lr=0.1), make_optimizer("amsgrad", apart, lr=0.1)
    for k in range(5):
        apply(opt_stacked, [stacked], [np.stack([r[k][1] for r in rows])])
        apply(opt_apart, apart, [r[k][1] for r in rows])
    torch.testing.assert_close(stacked.detach(), torch.stack([p.detach() for p in apart]), rtol=1e-15, atol=0)


def _h_sequence(opt, p, grads):
    out = []
    for g in grads:
        p.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
        out.append(second_moment_bounds(opt)[0])
    return np.array(out)


def test_amsgrad_h_is_monotone_where_torchs_adam_and_amsgrad_fall():
    """One coordinate, g = 1 then 10⁻³ repeated: Adam's h tracks the small gradients down; torch's amsgrad=True
    holds max(v) of the uncorrected v and divides by √(1 − β2^t), so its h falls too; ours stays at 1 + eps."""
    grads = [1.0] + [1e-3] * 200
    hs = {}
    for name in ("adam", "torch-amsgrad", "amsgrad"):
        p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
        opt = (torch.optim.Adam([p], lr=1e-3, betas=(B1, B2), eps=1e-8, amsgrad=True) if name == "torch-amsgrad"
               else make_optimizer(name, [p], lr=1e-3))
        hs[name] = _h_sequence(opt, p, grads)
    t = np.arange(1, len(grads) + 1)
    # closed form of Adam's: v_t = (1 − β2)·(β2^(t−1)·1 + Σ_{s=2..t} β2^(t−s)·10⁻⁶)
    v = (1 - B2) * (B2 ** (t - 1) + 1e-6 * (1 - B2 ** (t - 1)) / (1 - B2))
    np.testing.assert_allclose(hs["adam"], np.sqrt(v / (1 - B2**t)) + 1e-8, rtol=1e-12)
    assert hs["adam"][1] == pytest.approx(0.7069, abs=1e-4) and hs["adam"][-1] < 0.25
    # torch's amsgrad: max(v) = v_1 = (1 − β2) for good, h_t = √((1 − β2)/(1 − β2^t)) + eps
    np.testing.assert_allclose(hs["torch-amsgrad"], np.sqrt((1 - B2) / (1 - B2**t)) + 1e-8, rtol=1e-12)
    assert np.all(np.diff(hs["adam"]) < 0) and np.all(np.diff(hs["torch-amsgrad"]) < 0)
    np.testing.assert_allclose(hs["amsgrad"], 1.0 + 1e-8, rtol=1e-15)  # v̂ = max(g_1², ...) = 1


# ----------------------------------------------------------------------------------------------------------- nsgda


def test_nsgda_global_step_formula_and_length():
    params, (gs,) = make_params(), grad_sequence(1, scales=(1.0, 10.0))
    theta0 = numpy_of(params)
    apply(make_optimizer("nsgda", params, lr=0.3), params, gs)
    norm = math.sqrt(sum(float((g**2).sum()) for g in gs))
    deltas = [p.detach().numpy() - t for p, t in zip(params, theta0, strict=True)]
    for d, g in zip(deltas, gs, strict=True):
        np.testing.assert_allclose(d, -0.3 * g / (norm + 1e-8), rtol=1e-12, atol=1e-15)
    step_length = math.sqrt(sum(float((d**2).sum()) for d in deltas))
    assert step_length == pytest.approx(0.3, rel=1e-8)


def test_nsgda_tensor_step_formula_and_length():
    params, (gs,) = make_params(), grad_sequence(1, scales=(1.0, 10.0))
    theta0 = numpy_of(params)
    apply(make_optimizer("nsgda-tensor", params, lr=0.3), params, gs)
    for p, t, g in zip(params, theta0, gs, strict=True):
        d = p.detach().numpy() - t
        np.testing.assert_allclose(d, -0.3 * g / (np.linalg.norm(g) + 1e-8), rtol=1e-12, atol=1e-15)
        assert np.linalg.norm(d) == pytest.approx(0.3, rel=1e-8)


def test_nsgda_global_and_per_tensor_differ_when_norms_differ():
    (gs,) = grad_sequence(1, scales=(1.0, 10.0))
    moved = {}
    for name in ("nsgda", "nsgda-tensor"):
        params = make_params()
        apply(make_optimizer(name, params, lr=0.3), params, gs)
        moved[name] = numpy_of(params)
    # Global: the small-gradient tensor barely moves; per tensor: every tensor moves by lr.
    assert not np.allclose(moved["nsgda"][0], moved["nsgda-tensor"][0])


def test_nsgda_skips_params_without_grad_and_zero_gradient_is_a_zero_step():
    a, b = make_params()
    a0, b0 = a.detach().clone(), b.detach().clone()
    opt = NormalizedSGD([a, b], lr=0.3, eps=0.0)
    b.grad = torch.zeros_like(b)  # a.grad is None
    opt.step()
    assert torch.equal(a, a0) and torch.equal(b, b0)  # no NaN from 0/0 even with eps = 0
    b.grad = torch.ones_like(b)
    opt.step()
    assert torch.equal(a, a0)
    assert torch.linalg.vector_norm(b - b0).item() == pytest.approx(0.3, rel=1e-12)


@given(
    g1=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=8),
    g2=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=8),
    lr=st.floats(1e-4, 10.0),
)
def test_nsgda_step_length_is_lr(g1, g2, lr):
    grads = [np.array(g1), np.array(g2)]
    norm = math.sqrt(sum(float((g**2).sum()) for g in grads))
    assume(norm > 1e-3)  # then ‖Δ‖ = lr·‖g‖/(‖g‖ + 1e-8) is lr to within 1e-5 relative
    params = [torch.nn.Parameter(torch.zeros(len(g), dtype=torch.float64)) for g in grads]
    apply(make_optimizer("nsgda", params, lr=lr), params, grads)
    step_length = math.sqrt(sum(float((p.detach() ** 2).sum()) for p in params))
    assert step_length == pytest.approx(lr, rel=1e-5)


# ----------------------------------------------------------------------------------------------------------- graft


def test_graft_has_adam_norm_and_gradient_direction():
    params, grads = make_params(), grad_sequence(6, scales=(1.0, 10.0))
    refs = [AdamReference() for _ in params]
    opt = make_optimizer("graft", params, lr=0.02)
    assert isinstance(opt, AdamGraftSGD)
    for gs in grads:
        before = numpy_of(params)
        apply(opt, params, gs)
        for p, t, g, ref in zip(params, before, gs, refs, strict=True):
            ref.update(g)
            d = p.detach().numpy() - t
            g_norm = np.linalg.norm(g)
            assert np.linalg.norm(d) == pytest.approx(0.02 * np.linalg.norm(ref.direction()), rel=1e-7)
            np.testing.assert_allclose(d / np.linalg.norm(d), -g / g_norm, rtol=1e-10, atol=1e-12)
            # and the exact formula, norm ε included
            np.testing.assert_allclose(d, -0.02 * np.linalg.norm(ref.direction()) * g / (g_norm + 1e-8), rtol=1e-10)


def test_graft_zero_gradient_tensor_does_not_move():
    a, b = make_params()
    a0 = a.detach().clone()
    opt = make_optimizer("graft", [a, b], lr=0.1)
    a.grad, b.grad = torch.ones_like(a), torch.ones_like(b)
    opt.step()
    a1 = a.detach().clone()
    assert not torch.equal(a1, a0)
    a.grad = torch.zeros_like(a)  # Adam's momentum alone would still move it; grafting onto g = 0 does not
    opt.step()
    assert torch.equal(a, a1)


# ------------------------------------------------------------------------------------------------ torch's and factory


@pytest.mark.parametrize(
    ("name", "cls", "expected"),
    [
        ("adam", torch.optim.Adam, {"betas": (0.5, 0.999), "eps": 1e-8, "weight_decay": 0, "amsgrad": False}),
        ("rmsprop", torch.optim.RMSprop, {"alpha": 0.99, "eps": 1e-8, "momentum": 0, "centered": False}),
        ("sgd", torch.optim.SGD, {"momentum": 0.0, "nesterov": False, "weight_decay": 0}),
    ],
)
def test_torch_optimizers_with_expected_hyperparameters(name, cls, expected):
    opt = make_optimizer(name, make_params(), lr=3e-4)
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group["lr"] == 3e-4
    assert {k: group[k] for k in expected} == expected


def test_factory_overrides():
    adam = make_optimizer("adam", make_params(), lr=1e-3, betas=(0.0, 0.9), eps=1e-6)
    assert (adam.param_groups[0]["betas"], adam.param_groups[0]["eps"]) == ((0.0, 0.9), 1e-6)
    assert make_optimizer("sgd", make_params(), lr=0.1, momentum=0.9).param_groups[0]["momentum"] == 0.9
    assert make_optimizer("nsgda", make_params(), lr=0.1, eps=1e-4).param_groups[0]["eps"] == 1e-4
    graft = make_optimizer("graft", make_params(), lr=0.1, betas=(0.9, 0.99), eps=1e-6).param_groups[0]
    assert (graft["betas"], graft["eps"], graft["norm_eps"]) == ((0.9, 0.99), 1e-6, 1e-8)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_steps_with_a_closure(name):
    params = make_params(torch.float32)
    opt = make_optimizer(name, params, lr=0.01)

    def closure():
        opt.zero_grad()
        loss = sum((p**2).sum() for p in params)
        loss.backward()
        return loss

    first = opt.step(closure).item()
    for _ in range(20):
        last = opt.step(closure).item()
    assert last < first


@pytest.mark.parametrize("name", ["adabelief", "graft", "nsgda", "nsgda-tensor", "adam", "amsgrad"])
def test_state_dict_round_trip_continues_identically(name):
    grads = grad_sequence(6)
    params = make_params()
    opt = make_optimizer(name, params, lr=0.01)
    for gs in grads[:3]:
        apply(opt, params, gs)
    buffer = io.BytesIO()
    torch.save({"params": [p.detach() for p in params], "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)  # weights_only: the state holds only tensors, numbers and tuples

    clones = [torch.nn.Parameter(t.clone()) for t in saved["params"]]
    resumed = make_optimizer(name, clones, lr=123.0)  # the loaded param_groups bring back lr = 0.01
    resumed.load_state_dict(saved["opt"])
    for gs in grads[3:]:
        apply(opt, params, gs)
        apply(resumed, clones, gs)
    for p, q in zip(params, clones, strict=True):
        assert torch.equal(p, q)


# ------------------------------------------------------------------------------------------- second_moment_bounds


def test_second_moment_bounds_adam_matches_direct_computation():
    params, grads = make_params(), grad_sequence(4, scales=(0.01, 10.0))
    opt = make_optimizer("adam", params, lr=1e-3)
    assert second_moment_bounds(opt) is None  # before the first step
    refs = [AdamReference() for _ in params]
    for gs in grads:
        apply(opt, params, gs)
        for ref, g in zip(refs, gs, strict=True):
            ref.update(g)
    h = np.concatenate([ref.h().ravel() for ref in refs])
    lo, hi = second_moment_bounds(opt)
    assert lo == pytest.approx(h.min(), rel=1e-12)
    assert hi == pytest.approx(h.max(), rel=1e-12)
    assert lo < 0.1 < 1 < hi  # the two tensors' gradient scales differ by 10³


def _direct_h(name, opt, p):
    state, group = opt.state[p], opt.param_groups[0]
    if name == "rmsprop":
        return state["square_avg"].sqrt() + group["eps"]
    key = "exp_avg_var" if name == "adabelief" else "exp_avg_sq"
    return (state[key] / (1 - group["betas"][1] ** float(state["step"]))).sqrt() + group["eps"]


@pytest.mark.parametrize("name", ["rmsprop", "adabelief", "graft"])
def test_second_moment_bounds_other_adaptive_optimizers(name):
    params = make_params()
    unused = torch.nn.Parameter(torch.zeros(5, dtype=torch.float64))  # never gets a gradient: skipped
    opt = make_optimizer(name, [*params, unused], lr=1e-3)
    assert second_moment_bounds(opt) is None
    for gs in grad_sequence(3, scales=(0.1, 5.0)):
        apply(opt, params, gs)
    h = torch.cat([_direct_h(name, opt, p).ravel() for p in params])
    assert second_moment_bounds(opt) == pytest.approx((h.min().item(), h.max().item()), rel=1e-12)


@pytest.mark.parametrize("name", ["sgd", "nsgda", "nsgda-tensor"])
def test_second_moment_bounds_none_without_preconditioner(name):
    params = make_params()
    opt = make_optimizer(name, params, lr=0.1)
    apply(opt, params, grad_sequence(1)[0])
    assert second_moment_bounds(opt) is None


# ---------------------------------------------------------------------------------------------------------- errors


def test_unknown_name_lists_valid_names():
    with pytest.raises(EmpiricalInputError) as err:
        make_optimizer("adamw", make_params(), lr=1e-3)
    message = str(err.value)
    assert "\n" not in message and all(name in message for name in OPTIMIZERS)


@pytest.mark.parametrize("lr", [0.0, -1e-3, math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_bad_learning_rate(name, lr):
    with pytest.raises(EmpiricalInputError, match="learning rate"):
        make_optimizer(name, make_params(), lr=lr)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("sgd", {"betas": (0.5, 0.999)}),
        ("rmsprop", {"betas": (0.5, 0.999)}),
        ("sgd", {"eps": 1e-8}),
        ("adam", {"momentum": 0.9}),
        ("sgd", {"momentum": 1.5}),
        ("adam", {"betas": (0.5, 1.0)}),
        ("amsgrad", {"momentum": 0.9}),
        ("amsgrad", {"eps": -1.0}),
        ("adabelief", {"eps": -1.0}),
    ],
)
def test_bad_or_unused_hyperparameters(name, kwargs):
    with pytest.raises(EmpiricalInputError):
        make_optimizer(name, make_params(), lr=1e-3, **kwargs)


def test_empty_parameter_list():
    with pytest.raises(EmpiricalInputError, match="empty"):
        make_optimizer("adam", [], lr=1e-3)


@pytest.mark.parametrize("name", ["adam", "amsgrad", "rmsprop", "adabelief"])
def test_step_denominator_is_what_the_step_divided_by(name):
    """step_denominator after a step = lr·m̂/(θ_before − θ_after) elementwise, read off the step the optimizer
    actually took (m̂ = exp_avg/(1 − β1^t) with momentum, the gradient itself for RMSprop): the bias correction
    as the optimizer applies it, without restating its formula. A parameter without a gradient gets +inf."""
    gen = torch.Generator().manual_seed(1)
    layer = torch.nn.Linear(5, 3).double()
    spare = torch.nn.Linear(2, 2).double()  # never in the loss: no state
    module = torch.nn.Sequential(layer, spare)
    lr = 1e-3
    opt = make_optimizer(name, module.parameters(), lr=lr)
    assert step_denominator(opt, module) is None  # before the first step
    steps = 5
    for _ in range(steps):
        before = torch.cat([q.detach().reshape(-1).clone() for q in module.parameters()])
        opt.zero_grad()
        layer(torch.randn(16, 5, generator=gen, dtype=torch.float64)).square().mean().backward()
        grads = torch.cat([(q.grad if q.grad is not None else torch.zeros_like(q)).reshape(-1)
                           for q in module.parameters()])
        opt.step()
        after = torch.cat([q.detach().reshape(-1) for q in module.parameters()])
    n = sum(q.numel() for q in layer.parameters())
    if name == "rmsprop":
        m_hat = grads[:n]
    else:
        m_hat = torch.cat([opt.state[q]["exp_avg"].reshape(-1) for q in layer.parameters()]) / (1 - 0.5**steps)
    denom = step_denominator(opt, module)
    assert denom.shape == after.shape
    assert torch.allclose(denom[:n], lr * m_hat / (before - after)[:n], rtol=1e-6)
    assert torch.all(torch.isinf(denom[n:]))
    assert step_denominator(make_optimizer("sgd", module.parameters(), lr=lr), module) is None
