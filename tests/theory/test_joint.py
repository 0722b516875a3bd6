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
