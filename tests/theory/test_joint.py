"""The joint critical batch size: the three-case rule equals brute-force minimisation of b·max(K_D, K_G)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theory.joint import Hyperbola, crossing, joint_optimum


def brute_force(d: Hyperbola, g: Hyperbola) -> tuple[float, float]:
    lo = max(d.c, g.c)
    b = lo * (1 + np.geomspace(1e-6, 1e6, 400_001))
    N = b * np.maximum(d.K(b), g.K(b))
    i = int(np.argmin(N))
    return float(b[i]), float(N[i])


@pytest.mark.parametrize(
    "d, g, case",
    [
        (Hyperbola(K_inf=100.0, c=50.0), Hyperbola(K_inf=10.0, c=5.0), "D"),  # D dominates everywhere
        (Hyperbola(K_inf=10.0, c=5.0), Hyperbola(K_inf=100.0, c=50.0), "G"),
        # D has the larger domain edge, G the larger K∞: they cross between the two b*.
        (Hyperbola(K_inf=12_291.0, c=100.0), Hyperbola(K_inf=28_613.0, c=20.0), "crossing"),
    ],
)
def test_each_case_of_the_rule(d, g, case):
    opt = joint_optimum(d, g)
    assert opt.case == case
    b_bf, N_bf = brute_force(d, g)
    assert opt.N <= N_bf * (1 + 1e-12)
    assert opt.b_star == pytest.approx(b_bf, rel=1e-3)
    if case == "crossing":
        assert d.K(opt.b_star) == pytest.approx(g.K(opt.b_star), rel=1e-12)


log_uniform = st.floats(-3, 5).map(lambda x: 10.0**x)


@settings()  # example counts come from the profile in tests/conftest.py
@given(kd=log_uniform, cd=log_uniform, kg=log_uniform, cg=log_uniform)
def test_rule_is_the_exact_minimiser(kd, cd, kg, cg):
    d, g = Hyperbola(kd, cd), Hyperbola(kg, cg)
    opt = joint_optimum(d, g)
    # one of the three candidates
    candidates = [d.b_star, g.b_star] + ([crossing(d, g)] if crossing(d, g) is not None else [])
    assert any(opt.b_star == pytest.approx(x, rel=1e-12) for x in candidates)
    # and no batch size does better: brute force over the domain, plus the candidates themselves
    _, N_bf = brute_force(d, g)
    assert opt.N <= N_bf * (1 + 1e-9)
    for x in candidates:
        if x > max(cd, cg):
            assert opt.N <= x * float(max(d.K(x), g.K(x))) * (1 + 1e-12)
    # joint K is at least each player's, up to K's round-off near its pole (condition number b/(b − c))
    for h in (d, g):
        cond = opt.b_star / (opt.b_star - h.c) if opt.b_star > h.c else 1.0
        assert opt.K >= float(h.K(opt.b_star)) * (1 - 1e-13 * cond)


# --- each player with its own target ε_P ------------------------------------------------------------------
# Player P's bound asks V_P <= ε_P², so K_P(b) = A_P·b/((ε_P² − C_P)·b − B_P). The tests below work from those
# constants directly (not from Hyperbola), so the rule is checked against the template, not against itself.

def K_from_constants(A: float, B: float, C: float, eps2: float, b: np.ndarray) -> np.ndarray:
    m = eps2 - C
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > B / m, A * b / (m * b - B), np.inf)


def crossing_in_constants(A_D, B_D, C_D, eps2_D, A_G, B_G, C_G, eps2_G):
    """The documented crossing b× = (A_D·B_G − A_G·B_D)/(A_D·(ε_G² − C_G) − A_G·(ε_D² − C_D))."""
    return (A_D * B_G - A_G * B_D) / (A_D * (eps2_G - C_G) - A_G * (eps2_D - C_D))


def test_the_per_player_crossing_formula_is_sympys_solution():
    import sympy as sp

    A_D, B_D, A_G, B_G, e_D, e_G = sp.symbols("A_D B_D A_G B_G epsilon_D epsilon_G", positive=True)
    C_D, C_G = sp.symbols("C_D C_G", nonnegative=True)
    b = sp.Symbol("b")
    K_D = A_D * b / ((e_D**2 - C_D) * b - B_D)
    K_G = A_G * b / ((e_G**2 - C_G) * b - B_G)
    roots = [r for r in sp.solve(sp.numer(sp.together(K_D - K_G)), b) if r != 0]
    assert len(roots) == 1
    formula = crossing_in_constants(A_D, B_D, C_D, e_D**2, A_G, B_G, C_G, e_G**2)
    assert sp.simplify(roots[0] - formula) == 0


def joint_from_constants(D: tuple, G: tuple):
    """(Hyperbola of D, Hyperbola of G) for (A, B, C, ε²) each: K∞ = A/(ε² − C), c = B/(ε² − C)."""
    return tuple(Hyperbola(A / (e2 - C), B / (e2 - C)) for A, B, C, e2 in (D, G))


def brute_force_constants(D: tuple, G: tuple) -> tuple[float, float]:
    lo = max(B / (e2 - C) for _, B, C, e2 in (D, G))
    b = lo * (1 + np.geomspace(1e-6, 1e6, 400_001))
    N = b * np.maximum(K_from_constants(*D, b), K_from_constants(*G, b))
    i = int(np.argmin(N))
    return float(b[i]), float(N[i])


@pytest.mark.parametrize(
    "D, G, case",
    [
        # lqgan's sgd-frozen A, B (C = 0) at its common ε² = 1.35887: they cross (b* = 1.64); at the ε_D² = 0.3531
        # D's measure actually reached, D's curve lies higher and binds at its own optimum, b* = b*_D = 2B_D/ε_D².
        ((27.622, 1.6378, 0.0, 1.35887), (101.47, 0.064523, 0.0, 1.35887), "crossing"),
        ((27.622, 1.6378, 0.0, 0.3531), (101.47, 0.064523, 0.0, 1.35887), "D"),
        # floors and different targets: G's far tighter target makes it bind
        ((5.0, 2.0, 0.5, 1.0), (3.0, 1.0, 0.2, 0.25), "G"),
    ],
)
def test_each_case_with_per_player_targets(D, G, case):
    d, g = joint_from_constants(D, G)
    opt = joint_optimum(d, g)
    assert opt.case == case
    b_bf, N_bf = brute_force_constants(D, G)
    assert opt.N <= N_bf * (1 + 1e-12)
    assert opt.b_star == pytest.approx(b_bf, rel=1e-3)
    expected = {"D": 2 * D[1] / (D[3] - D[2]), "G": 2 * G[1] / (G[3] - G[2]),
                "crossing": crossing_in_constants(*D, *G)}[case]
    assert opt.b_star == pytest.approx(expected, rel=1e-12)


unit = st.floats(0.0, 0.99)


@settings()  # example counts come from the profile in tests/conftest.py
@given(A=st.tuples(log_uniform, log_uniform), B=st.tuples(log_uniform, log_uniform),
       eps2=st.tuples(log_uniform, log_uniform), floor=st.tuples(unit, unit))
def test_rule_is_the_exact_minimiser_with_per_player_targets(A, B, eps2, floor):
    """ε_D² and ε_G² drawn independently (C_P a fraction of ε_P² below it): the rule's N(b*) is the brute-force
    minimum of b·max(K_D, K_G) over 400,001 batch sizes, and a crossing is the documented b×."""
    D = (A[0], B[0], floor[0] * eps2[0], eps2[0])
    G = (A[1], B[1], floor[1] * eps2[1], eps2[1])
    d, g = joint_from_constants(D, G)
    opt = joint_optimum(d, g)
    _, N_bf = brute_force_constants(D, G)
    assert opt.N <= N_bf * (1 + 1e-9)
    if opt.case == "crossing":
        assert opt.b_star == pytest.approx(crossing_in_constants(*D, *G), rel=1e-9)
    else:
        P = D if opt.case == "D" else G
        assert opt.b_star == pytest.approx(2 * P[1] / (P[3] - P[2]), rel=1e-12)
