"""The template algebra: each sympy-checked fact holds, and the checker refuses false statements."""

import pytest
import sympy as sp

from theory import template
from theory.joint import Hyperbola, crossing
from theory.template import A, B, C, Fact, b, epsilon


@pytest.mark.parametrize("fact", template.template_facts(), ids=lambda f: f.name)
def test_template_fact_holds(fact):
    assert fact.holds, f"{fact.statement}: sympy could not show {fact.expr} is {fact.sign}"


def test_checker_refuses_false_statements():
    # The opposite signs of true facts must not be "proven": the checker does not say yes to everything.
    facts = {f.name: f for f in template.template_facts()}
    assert not Fact("x", "", facts["K_decreasing"].expr, "positive").holds
    assert not Fact("x", "", facts["N_convex"].expr, "negative").holds
    assert not Fact("x", "", template.derive().K_inf - template.derive().K.subs(b, 3), "zero").holds
    # A sign that depends on the symbols is not provable either way.
    assert not Fact("x", "", A - B, "positive").holds
    assert not Fact("x", "", A - B, "negative").holds


def test_derivation_matches_the_reference_closed_forms():
    t = template.derive()
    m = epsilon**2 - C
    assert sp.simplify(t.K - A * b / (m * b - B)) == 0
    assert sp.simplify(t.N - A * b**2 / (m * b - B)) == 0
    assert sp.simplify(t.b_star - 2 * B / m) == 0
    assert sp.simplify(t.K_inf - A / m) == 0
    assert sp.simplify(t.N_star - 4 * A * B / m**2) == 0


def test_readable_forms_are_the_derived_expressions():
    forms = template.readable_forms()
    t = template.derive()
    for key, (_text, expr) in forms.items():
        assert sp.simplify(expr - getattr(t, key)) == 0


def test_crossing_formula_of_joint_module_is_the_sympy_solution():
    # joint.crossing uses K∞ and c; sympy solved K_D = K_G in A, B, C. Both must be the same function.
    x = template.crossing()
    for aD, bD, cD, aG, bG, cG, eps in ([3.0, 2.0, 0.5, 1.0, 7.0, 0.1, 2.5], [10.0, 1.0, 0.0, 2.0, 5.0, 0.2, 1.0]):
        by_name = {"A_D": aD, "B_D": bD, "C_D": cD, "A_G": aG, "B_G": bG, "C_G": cG, "epsilon": eps}
        by_sympy = float(x.subs({s: by_name[s.name] for s in x.free_symbols}))
        d = Hyperbola(aD / (eps**2 - cD), bD / (eps**2 - cD))
        g = Hyperbola(aG / (eps**2 - cG), bG / (eps**2 - cG))
        by_formula = (d.K_inf * g.c - g.K_inf * d.c) / (d.K_inf - g.K_inf)
        assert by_sympy == pytest.approx(by_formula, rel=1e-12)
        got = crossing(d, g)
        if got is not None:
            assert d.K(got) == pytest.approx(g.K(got), rel=1e-10)
