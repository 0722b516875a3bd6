"""Hypothesis property tests over wide ranges of constants, for the shipped families.

Each test states a mathematical fact of the bound K_P(b) = A_P b/((ε² − C_P) b − B_P) and checks it on the
lambdified numpy path that the CLI uses.
"""

import numpy as np
import pytest
import sympy as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from theory.analysis import ConstantValue, analyse
from theory.bounds import bounds_for
from theory.families import FAMILIES

SETTINGS = settings()  # example counts come from the profile in tests/conftest.py


def log_uniform(lo: float, hi: float):
    return st.floats(np.log10(lo), np.log10(hi)).map(lambda x: float(10.0**x))


@st.composite
def sgd_constants(draw, coupling=True):
    v = {}
    for p in "DG":
        v[f"smoothness_{p}"] = draw(log_uniform(1e-2, 1e4))
        v[f"alpha_{p}"] = draw(log_uniform(1e-4, 1.0)) / v[f"smoothness_{p}"]  # valid: α <= 1/L
        v[f"sigma2_{p}"] = draw(log_uniform(1e-4, 1e6))
        v[f"gap_{p}"] = draw(log_uniform(1e-3, 1e3))
        v[f"cross_lip_{p}"] = draw(st.just(0.0) | log_uniform(1e-8, 1e1)) if coupling else 0.0
        v[f"grad_bound_{p}"] = draw(st.just(0.0) | log_uniform(1e-4, 1e3))
    return v


@st.composite
def adam_constants(draw, floor=True):
    v = {}
    for p in "DG":
        v[f"alpha_{p}"] = draw(log_uniform(1e-6, 1e-1))
        v[f"beta1_{p}"] = draw(st.just(0.0) | st.floats(1e-3, 0.99))
        v[f"sigma2_{p}"] = draw(log_uniform(1e-4, 1e6))
        v[f"grad_bound_{p}"] = draw(st.just(0.0) | log_uniform(1e-4, 1e3)) if floor else 0.0
        v[f"dist_{p}"] = draw(log_uniform(1e-4, 1.0))
        v[f"dim_{p}"] = draw(log_uniform(10, 1e9))
        v[f"h_min_{p}"] = draw(log_uniform(1e-8, 1.0))
        v[f"h_max_{p}"] = v[f"h_min_{p}"] * (1 + draw(log_uniform(1e-3, 1e4)))
    return v


def floors(family, v):
    fb = bounds_for(family)
    args = [v[k] for k in fb.keys()] + [1.0]
    return {p: float(fb.numeric[p]["C"](*args)) for p in "DG"}


@st.composite
def cases(draw, family_name=None, coupling=True):
    """A family, constants inside their domains, and a reachable ε with ε² >= 1.5·max C (well conditioned)."""
    name = family_name or draw(st.sampled_from(["sgd", "adam", "adam-cs"]))
    v = draw(sgd_constants(coupling) if name == "sgd" else adam_constants(coupling))
    fam = FAMILIES[name]
    c_max = max(floors(fam, v).values())
    if c_max > 0:
        eps2 = c_max * (1.5 + draw(log_uniform(1e-3, 1e3)))
    else:
        eps2 = draw(log_uniform(1e-6, 1e4))
    # constants span 4 to 15 decades each; results stay far from float64's overflow (analyse refuses those)
    return name, v, float(np.sqrt(eps2))


def run(family, v, eps, batch_sizes=(1, 2, 4, 8)):
    consts = {k: ConstantValue(k, x, "test") for k, x in v.items()}
    return analyse(family, consts, ConstantValue("epsilon", eps, "test"), batch_sizes)


def K_numpy(family, v, eps, p, b):
    fb = bounds_for(family)
    return fb.numeric[p]["K"](np.asarray(b, dtype=np.float64), *[v[k] for k in fb.keys()], eps)


# three points b = c·(1 + x) in the domain, each at least 1e-4 (relative) above the previous
domain_points = st.tuples(log_uniform(1e-3, 1e3), log_uniform(1e-4, 1e2), log_uniform(1e-4, 1e2)).map(
    lambda t: [t[0], t[0] * (1 + t[1]), t[0] * (1 + t[1]) * (1 + t[2])]
)


@SETTINGS
@given(case=cases(), xs=domain_points, p=st.sampled_from("DG"))
def test_K_decreasing_and_convex_on_the_domain(case, xs, p):
    family, v, eps = FAMILIES[case[0]], case[1], case[2]
    c = run(family, v, eps).players[p].c
    b = c * (1 + np.array(xs))
    K = K_numpy(family, v, eps, p, b)
    assert np.all(K > 0)
    assert K[0] > K[1] > K[2]
    mid = K_numpy(family, v, eps, p, (b[0] + b[2]) / 2)
    assert mid <= (K[0] + K[2]) / 2 * (1 + 1e-12)


@SETTINGS
@given(case=cases(), xs=domain_points, p=st.sampled_from("DG"))
def test_N_convex_on_the_domain(case, xs, p):
    family, v, eps = FAMILIES[case[0]], case[1], case[2]
    c = run(family, v, eps).players[p].c
    b = c * (1 + np.array(xs))
    N = b * K_numpy(family, v, eps, p, b)
    b_mid = (b[0] + b[2]) / 2
    N_mid = b_mid * K_numpy(family, v, eps, p, b_mid)
    assert N_mid <= (N[0] + N[2]) / 2 * (1 + 1e-12)


@SETTINGS
@given(case=cases(), xs=st.lists(log_uniform(1e-4, 1e4), min_size=1, max_size=20), p=st.sampled_from("DG"))
def test_b_star_is_the_closed_form_and_minimises_N(case, xs, p):
    family, v, eps = FAMILIES[case[0]], case[1], case[2]
    r = run(family, v, eps).players[p]
    assert r.b_star == pytest.approx(2 * r.B / (eps**2 - r.C), rel=1e-12)
    N_star = r.b_star * K_numpy(family, v, eps, p, r.b_star)
    assert N_star == pytest.approx(4 * r.A * r.B / (eps**2 - r.C) ** 2, rel=1e-10)
    b = r.c * (1 + np.array(xs))
    assert np.all(N_star <= b * K_numpy(family, v, eps, p, b) * (1 + 1e-12))


@SETTINGS
@given(case=cases(), p=st.sampled_from("DG"))
def test_K_at_b_star_is_twice_K_inf(case, p):
    family, v, eps = FAMILIES[case[0]], case[1], case[2]
    r = run(family, v, eps).players[p]
    assert r.K_at_b_star == pytest.approx(2 * r.K_inf, rel=1e-12)
    assert K_numpy(family, v, eps, p, 1e12 * r.c) == pytest.approx(r.K_inf, rel=1e-9)


@SETTINGS
@given(case=cases(), k=log_uniform(1e-3, 1.0))
def test_b_star_linear_in_alpha_and_sigma2_and_inverse_in_eps2_when_C_is_zero(case, k):
    family, v, eps = FAMILIES[case[0]], case[1], case[2]
    # C = 0: no coupling (sgd) or no full-gradient term (adam); adam-cs keeps a momentum floor.
    assume(family.name != "adam-cs")
    v = {**v, **{key: 0.0 for key in v if key.startswith(("cross_lip", "grad_bound"))}}
    assert all(c == 0 for c in floors(family, v).values())
    base = run(family, v, eps)
    for p in "DG":
        scaled_alpha = run(family, {**v, f"alpha_{p}": k * v[f"alpha_{p}"]}, eps)
        assert scaled_alpha.players[p].b_star == pytest.approx(k * base.players[p].b_star, rel=1e-12)
        scaled_sigma = run(family, {**v, f"sigma2_{p}": k * v[f"sigma2_{p}"]}, eps)
        assert scaled_sigma.players[p].b_star == pytest.approx(k * base.players[p].b_star, rel=1e-12)
    scaled_eps = run(family, v, eps / np.sqrt(k))  # ε² -> ε²/k
    for p in "DG":
        assert scaled_eps.players[p].b_star == pytest.approx(k * base.players[p].b_star, rel=1e-12)


@SETTINGS
@given(case=cases(), grid=st.lists(log_uniform(1e-2, 1e7), min_size=1, max_size=30))
def test_joint_K_is_at_least_each_players(case, grid):
    family, v, eps = FAMILIES[case[0]], case[1], case[2]
    a = run(family, v, eps, grid)
    assert np.all(a.K["joint"] >= a.K["D"]) and np.all(a.K["joint"] >= a.K["G"])
    assert np.all(a.N["joint"][np.isfinite(a.N["joint"])] >= a.joint.N * (1 - 1e-12))


@settings(max_examples=25, deadline=None)
@given(case=cases(), x=log_uniform(0.5, 1e4), p=st.sampled_from("DG"))
def test_numpy_path_equals_exact_sympy_value(case, x, p):
    """Lambdified float64 K_P(b) vs sympy's exact rational evaluation, for b >= 1.5·c_P and ε² >= 1.5·C."""
    family, v, eps = FAMILIES[case[0]], case[1], case[2]
    r = run(family, v, eps).players[p]
    b = r.c * (1 + x)
    fb = bounds_for(family)
    exact_subs = {s: sp.Rational(v[s.name]) for s in fb.args if s.name in v}
    exact_subs[next(s for s in fb.args if s.name == "epsilon")] = sp.Rational(eps)
    expr = fb.players[p].K.subs(sp.Symbol("b", positive=True), sp.Rational(b)).subs(exact_subs)
    exact = float(sp.N(expr, 40))
    assert K_numpy(family, v, eps, p, b) == pytest.approx(exact, rel=1e-12)


@SETTINGS
@given(case=cases())
def test_integer_b_star_beats_every_nearby_integer(case):
    family, v, eps = FAMILIES[case[0]], case[1], case[2]
    a = run(family, v, eps)
    for n, N in [(r.b_star_integer, lambda x, r=r: x * r.hyperbola.K(x)) for r in a.players.values()] + [
        (a.joint_b_star_integer, lambda x: x * a.curves(x)[0]["joint"])
    ]:
        ks = np.arange(max(1, n - 50), n + 51, dtype=np.float64)
        assert np.all(N(float(n)) <= N(ks) * (1 + 1e-12))
