"""The derivation steps of the `amsgrad-l1` family that are not template algebra, as sympy-checked facts.

The template facts (:func:`theory.template.template_facts`) cover what follows from V <= A/K + B/b + C. How a
family gets its A, B, C is a separate argument (docs/theory.md); for `amsgrad-l1` its algebraic steps are stated
here as :class:`theory.template.Fact` objects and proved by sympy, so the CLI's ``--proofs`` and the tests can
check them like the template's. The one step that is an inequality over whole sequences (AMSGrad's quadratic term,
Step 5′) is checked numerically against a brute-force simulation in tests/theory/test_lemmas.py.
"""

from __future__ import annotations

import sympy as sp

from theory.template import Fact

# Symbols with the domains of the family's constants (β's as u/(1+u), u >= 0, exactly as theory.bounds does).
G = sp.Symbol("G", positive=True)  # full-gradient bound
s = sp.Symbol("s", nonnegative=True)  # σ²/b
sigma2 = sp.Symbol("sigma2", positive=True)
alpha, dim, eps = (sp.Symbol(n, positive=True) for n in ("alpha", "d", "epsilon"))
u1, u2 = sp.Symbol("u1", nonnegative=True), sp.Symbol("u2", nonnegative=True)
beta1, beta2 = u1 / (1 + u1), u2 / (1 + u2)
b = sp.Symbol("b", positive=True)

# The family's B and C (theory/families.py AMSGRAD_L1), for one player.
_ROOT = sp.sqrt((1 - beta1) * (1 - beta2))
B_L1 = (1 + beta1) * alpha * sp.sqrt(dim) * sigma2 / (4 * G * _ROOT)
C_L1 = (1 + beta1) * alpha * sp.sqrt(dim) * G / (2 * _ROOT)


def amsgrad_l1_facts() -> tuple[Fact, ...]:
    """Steps 5′–6′ of docs/theory.md §3a: each reduced to the sign of one expression."""
    tangent = G + s / (2 * G)
    # What Steps 1-4 leave per step, divided by (1 − β1): (1 + β1)/(2(1 − β1))·α·sqrt((1 − β1)/(1 − β2))·E||g||_1,
    # with E||g||_1 <= sqrt(d)·(G + σ²/(2·G·b)).
    chain = ((1 + beta1) / (2 * (1 - beta1)) * alpha * sp.sqrt((1 - beta1) / (1 - beta2))
             * sp.sqrt(dim) * (G + sigma2 / (2 * G * b)))
    b_star = 2 * B_L1 / (eps**2 - C_L1)
    return (
        Fact("tangent_upper_bound", "(G + s/(2G))² − (G² + s) = s²/(4G²) >= 0, and G + s/(2G) > 0: so "
             "sqrt(G² + σ²/b) <= G + σ²/(2·G·b), the tangent of the concave root at G²",
             sp.expand(tangent**2 - (G**2 + s)), "nonnegative"),
        Fact("tangent_positive", "G + s/(2G) > 0", tangent, "positive"),
        Fact("chain_is_B_over_b_plus_C", "the per-step bound after Steps 1-5′ equals B/b + C exactly",
             sp.simplify(chain - (B_L1 / b + C_L1)), "zero"),
        Fact("l1_factor_positive", "sqrt((1 − β1)/(1 − β2)) > 0 on the domain", sp.sqrt((1 - beta1) / (1 - beta2)),
             "positive"),
        Fact("b_star_is_noise_scale_times_floor_ratio", "b* = 2B/(ε² − C) = (σ²/G²)·C/(ε² − C): the simple noise "
             "scale times the floor's share of the margin",
             sp.simplify(b_star - sigma2 / G**2 * C_L1 / (eps**2 - C_L1)), "zero"),
    )
