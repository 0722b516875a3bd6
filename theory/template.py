"""The algebra of the bound template ``V(K, b) <= A/K + B/b + C``, derived and proven with sympy.

Every family (see :mod:`theory.families`) is an instance of this template with its own A, B, C, so the
derivation is done once, on symbols A > 0, B > 0, C >= 0 and ε > 0, and each fact below is checked by
sympy's assumption system rather than asserted. A family inherits all of them as soon as its A, B are
positive and C nonnegative under its constants' domains (checked in :mod:`theory.bounds`).

>>> t = derive()
>>> sp.simplify(t.K - A*b / ((epsilon**2 - C)*b - B))
0
>>> sp.simplify(t.b_star - 2*B / (epsilon**2 - C))
0
>>> all(f.holds for f in template_facts())
True
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import sympy as sp

# Template symbols: A (initial-distance term), B (variance term), C (floor), epsilon (target), b, K.
A = sp.Symbol("A", positive=True)
B = sp.Symbol("B", positive=True)
C = sp.Symbol("C", nonnegative=True)
epsilon = sp.Symbol("epsilon", positive=True)
b = sp.Symbol("b", positive=True)
K = sp.Symbol("K", positive=True)

# Proof symbols: the margin δ = ε² − C > 0 (the target is reachable) and t = b − c > 0 (b in the domain).
delta = sp.Symbol("delta", positive=True)
t = sp.Symbol("t", positive=True)
s = sp.Symbol("s", nonnegative=True)

BOUND = A / K + B / b + C


@dataclass(frozen=True)
class Template:
    """Closed forms of the template, as functions of A, B, C, ε and b."""

    K: sp.Expr  # steps needed at batch size b: the least real K with A/K + B/b + C <= ε²
    N: sp.Expr  # SFO complexity N(b) = b·K(b)
    b_star: sp.Expr  # critical batch size, argmin of N over the domain
    K_inf: sp.Expr  # lim K(b) as b -> ∞
    c: sp.Expr  # domain edge: K(b) is finite only for b > c = B/(ε² − C)
    N_star: sp.Expr  # N(b*)


@lru_cache(maxsize=1)
def derive() -> Template:
    """Solve the template for K(b), form N(b), and find b* from dN/db = 0 (sympy does every step)."""
    k, bb = sp.symbols("k bb")  # unconstrained copies so that solve() filters nothing by sign
    (K_b,) = sp.solve(sp.Eq(BOUND.subs({K: k, b: bb}), epsilon**2), k)
    K_b = K_b.subs(bb, b)
    N_b = sp.simplify(b * K_b)
    c = sp.solve(sp.denom(sp.together(K_b)), b)[0]  # the pole of K(b)
    roots = sp.solve(sp.diff(N_b.subs(b, bb), bb), bb)
    in_domain = [r for r in roots if _is_positive(_on_domain(r - c.subs(b, bb)))]
    if len(in_domain) != 1:
        raise AssertionError(f"expected one stationary point of N in the domain, got {roots}")
    b_star = sp.factor(in_domain[0])
    K_inf = sp.limit(K_b, b, sp.oo)
    return Template(K=K_b, N=N_b, b_star=b_star, K_inf=K_inf, c=c, N_star=sp.factor(N_b.subs(b, b_star)))


def _on_domain(expr: sp.Expr) -> sp.Expr:
    """Rewrite ``expr`` for a reachable target and a batch size in the domain.

    ε² = C + δ with δ > 0, and b = B/δ + t with t > 0, so that sympy's sign assumptions on δ and t
    encode exactly "ε² > C and b > B/(ε² − C)".
    """
    expr = expr.subs(epsilon, sp.sqrt(C + delta))
    return sp.simplify(expr.subs(b, B / delta + t))


def _is_positive(expr: sp.Expr) -> bool:
    return _sign(expr, "positive")


def _sign(expr: sp.Expr, sign: str) -> bool:
    """True when sympy proves ``expr`` has ``sign``; tries a few normal forms, never guesses."""
    forms = (expr, sp.factor(expr), sp.simplify(expr), sp.together(sp.expand(expr)))
    for f in forms:
        if sign == "zero" and f == 0:
            return True
        value = {"positive": f.is_positive, "negative": f.is_negative,
                 "nonnegative": f.is_nonnegative, "zero": f.is_zero}[sign]
        if value is True:
            return True
    return False


@dataclass(frozen=True)
class Fact:
    """A statement reduced to the sign of one expression, with sympy's verdict."""

    name: str
    statement: str
    expr: sp.Expr
    sign: str  # "positive", "negative", "nonnegative" or "zero"

    @cached_property
    def holds(self) -> bool:
        """sympy's verdict, computed once per fact (a fact's expression never changes; each costs ~30 ms)."""
        return _sign(self.expr, self.sign)


@lru_cache(maxsize=1)
def template_facts() -> tuple[Fact, ...]:
    """The properties of K, N and b* that the critical-batch-size argument needs, as sympy-checked facts."""
    T = derive()
    dK = sp.diff(T.K, b)
    d2K = sp.diff(T.K, b, 2)
    d2N = sp.diff(T.N, b, 2)
    gap = T.N - T.N.subs(b, T.b_star)
    return (
        Fact("K_solves_bound", "V(K(b), b) = ε² exactly at K = K(b)",
             sp.simplify(BOUND.subs(K, T.K) - epsilon**2), "zero"),
        Fact("bound_decreasing_in_K", "∂V/∂K = −A/K² < 0, so V <= ε² holds iff K >= K(b)",
             sp.diff(BOUND, K), "negative"),
        Fact("unreachable_below_floor", "if ε² <= C (C = ε² + s, s >= 0) then V − ε² > 0 for every K, b",
             BOUND.subs(C, epsilon**2 + s) - epsilon**2, "positive"),
        Fact("K_positive", "K(b) > 0 on the domain b > c", _on_domain(T.K), "positive"),
        Fact("K_decreasing", "dK/db < 0 on the domain", _on_domain(dK), "negative"),
        Fact("K_convex", "d²K/db² > 0 on the domain", _on_domain(d2K), "positive"),
        Fact("N_convex", "d²N/db² > 0 on the domain", _on_domain(d2N), "positive"),
        Fact("b_star_in_domain", "b* − c > 0", _on_domain(T.b_star - T.c), "positive"),
        Fact("b_star_stationary", "dN/db = 0 at b*",
             sp.simplify(sp.diff(T.N, b).subs(b, T.b_star)), "zero"),
        Fact("N_gap_identity", "N(b) − N(b*) = A (b − b*)² / ((ε² − C)(b − c))",
             sp.simplify(gap - A * (b - T.b_star) ** 2 / ((epsilon**2 - C) * (b - T.c))), "zero"),
        Fact("b_star_unique_minimiser", "A (b − b*)² / ((ε² − C)(b − c)) >= 0, zero only at b = b*",
             _on_domain(A * (b - T.b_star) ** 2 / ((epsilon**2 - C) * (b - T.c))), "nonnegative"),
        Fact("K_at_b_star_is_twice_K_inf", "K(b*) − 2 K(∞) = 0",
             sp.simplify(T.K.subs(b, T.b_star) - 2 * T.K_inf), "zero"),
        Fact("K_hyperbolic_form", "K(b) = K(∞)·b/(b − c) (McCandlish's form, c in the role of B_noise)",
             sp.simplify(T.K - T.K_inf * b / (b - T.c)), "zero"),
        Fact("inverse_K_affine_in_inverse_b",
             "1/K(b) = 1/K(∞) − (c/K(∞))·(1/b): affine in 1/b, so K_D and K_G cross at most once",
             sp.simplify(1 / T.K - (1 / T.K_inf - (T.c / T.K_inf) / b)), "zero"),
    )


@lru_cache(maxsize=1)
def crossing() -> sp.Expr:
    """The batch size where K_D(b) = K_G(b), solved by sympy; the equation is linear in b."""
    sub = {
        p: {A: sp.Symbol(f"A_{p}", positive=True), B: sp.Symbol(f"B_{p}", positive=True),
            C: sp.Symbol(f"C_{p}", nonnegative=True)}
        for p in ("D", "G")
    }
    bb = sp.Symbol("bb")
    T = derive()
    eq = sp.numer(sp.together(T.K.subs(sub["D"]) - T.K.subs(sub["G"]))).subs(b, bb)
    roots = [r for r in sp.solve(eq, bb) if r != 0]
    if len(roots) != 1:
        raise AssertionError(f"expected one nonzero crossing, got {roots}")
    return sp.factor(roots[0])


# Readable forms for output, each paired with a sympy-parsable twin that readable_forms() checks against
# the derivation, so what is printed is what sympy derived.
_READABLE = {
    "K": ("K_P(b) = A_P·b / ((ε² − C_P)·b − B_P)", "A*b/((epsilon**2 - C)*b - B)"),
    "N": ("N_P(b) = b·K_P(b) = A_P·b² / ((ε² − C_P)·b − B_P)", "A*b**2/((epsilon**2 - C)*b - B)"),
    "c": ("domain b > c_P = B_P / (ε² − C_P); needs ε² > C_P", "B/(epsilon**2 - C)"),
    "b_star": ("b*_P = argmin N_P = 2·B_P / (ε² − C_P) = 2·c_P", "2*B/(epsilon**2 - C)"),
    "K_inf": ("K_P(∞) = A_P / (ε² − C_P);  K_P(b*) = 2·K_P(∞)", "A/(epsilon**2 - C)"),
    "N_star": ("N_P(b*) = 4·A_P·B_P / (ε² − C_P)²", "4*A*B/(epsilon**2 - C)**2"),
}


@lru_cache(maxsize=1)
def readable_forms() -> dict[str, tuple[str, sp.Expr]]:
    """name -> (readable text, sympy expression), after checking each text's twin equals the derivation."""
    T = derive()
    names = {"A": A, "B": B, "C": C, "b": b, "epsilon": epsilon}
    out = {}
    for key, (text, twin) in _READABLE.items():
        expr = sp.parse_expr(twin, local_dict=names)
        if sp.simplify(expr - getattr(T, key)) != 0:
            raise AssertionError(f"readable form of {key} does not match the derivation")
        out[key] = (text, expr)
    return out
