"""Exact evaluation of the closed forms, and the one place where a result is rounded to float64.

The constants may each lie anywhere in float64 (α = 1e-300, Δ = 1e308, ε = 1e300), and evaluating
A = 2Δ/α or b* = 2B/(ε² − C) in float64 overflows, underflows or divides by a rounded-away ε² in an
intermediate step even when the result itself fits. So every closed form is evaluated on the exact values of
its float64 inputs (sympy rationals, and algebraic numbers where a family takes a square root), and only the
result is rounded. A result outside float64's normal range [2.2e-308, 1.8e308] is refused with a one-line
:class:`TheoryInputError` that names it and its exact value; nothing is clipped to the range.

>>> x = evaluate(sp.Symbol("a") / sp.Symbol("b"), {sp.Symbol("a"): 1e308, sp.Symbol("b"): 1e-300})
>>> fmt(x)
'1e+608'
>>> fits(x), rounded(x)
(False, None)
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping

import mpmath
import sympy as sp
from sympy.core.evalf import PrecisionExhausted

from theory.errors import TheoryInputError

FLOAT64_MAX = sys.float_info.max
FLOAT64_MIN = sys.float_info.min  # the smallest normal float64: below it a value keeps fewer than 53 bits
DIGITS = 30  # significant digits of every evaluation: far more than float64's 17
MAX_DIGITS = 2000  # working precision sympy may climb to when ε² − C cancels
ROUNDING = 2.0**-50  # relative difference (8 ulps) below which holds() counts the two sides of a condition equal


def rational(x: float) -> sp.Rational:
    """The exact value of a float64 (every finite float is a dyadic rational)."""
    return sp.Rational(float(x))


def substitute(expr: sp.Expr, values: Mapping[sp.Symbol, float | sp.Expr]) -> sp.Expr:
    """``expr`` with each symbol replaced by an exact number: a float by its exact rational value, a sympy
    number as it is. Built unevaluated (``sp.evaluate(False)``): :func:`number` evaluates it, and sympy's own
    simplification would only cost time, and in sympy 1.14 can raise ValueError while pulling square factors
    out of the square root of a large rational (sympy issue #28621: sqrt(Rational(1e4)**2 + Rational(5e-324)))."""
    exact = {s: v if isinstance(v, sp.Basic) else rational(v) for s, v in values.items()}
    with sp.evaluate(False):
        return expr.xreplace(exact)


def evaluate(expr: sp.Expr, values: Mapping[sp.Symbol, float]) -> sp.Expr:
    """``expr`` on the exact values of the floats in ``values``: an exact number, never rounded."""
    return substitute(expr, values)


def number(x: sp.Expr) -> sp.Float:
    """``x`` to :data:`DIGITS` significant digits with an unbounded exponent; one line of error if it cancels
    beyond :data:`MAX_DIGITS` digits and sympy cannot prove it zero."""
    x = sp.sympify(x)
    if x.is_Number:  # a rational or float: no cancellation to resolve
        return sp.Float(x, DIGITS)
    try:
        return sp.Float(x.evalf(DIGITS, maxn=MAX_DIGITS, strict=True))
    except PrecisionExhausted:
        if is_exactly_zero(x):
            return sp.Float(0)
        raise TheoryInputError(f"cannot resolve {x} to {DIGITS} digits: it cancels beyond {MAX_DIGITS} "
                               "digits (a target ε² within rounding of a floor C?)") from None


def is_exactly_zero(x: sp.Expr) -> bool:
    """Whether sympy's exact arithmetic reduces ``x`` to 0 (e.g. 4 − sqrt(16)); False when it cannot tell."""
    try:
        return bool(x.doit().is_zero)
    except ValueError:  # sympy#28621, see substitute(): no proof either way
        return False


def sign(x: sp.Expr) -> int:
    """The exact sign of a real number: -1, 0 or 1."""
    v = number(x)
    return 0 if v.is_zero else (1 if v > 0 else -1)


def holds(rel: sp.Rel, values: Mapping[sp.Symbol, float]) -> bool:
    """Whether the relation ``rel`` (<=, <, >=, >, ==, !=) between the floats in ``values`` holds up to their
    rounding: its two sides are compared exactly, but sides within :data:`ROUNDING` (relative) count as equal,
    since a decimal input is not exactly its float (α = 0.1 and L = 10 give α·L = 1 + 5.6e-17, and mean 1)."""
    lhs, rhs = number(substitute(rel.lhs, values)), number(substitute(rel.rhs, values))
    d, tol = lhs - rhs, ROUNDING * max(abs(lhs), abs(rhs))
    return {"<=": d <= tol, "<": d < tol, ">=": d >= -tol, ">": d > -tol, "==": abs(d) <= tol,
            "!=": abs(d) > tol}[rel.rel_op]


def fits(x: sp.Expr) -> bool:
    """Whether float64 holds ``x`` to full precision: zero, or magnitude in [FLOAT64_MIN, FLOAT64_MAX]."""
    v = number(x)
    return bool(v.is_zero) or FLOAT64_MIN <= abs(v) <= FLOAT64_MAX


def fmt(x: sp.Expr | float, digits: int = 6) -> str:
    """``x`` like Python's ``f"{x:.6g}"``, also beyond float64's range (1e+600 stays 1e+600, not inf)."""
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    v = number(x)
    if fits(v):
        return f"{float(v):.{digits}g}"
    text = mpmath.nstr(mpmath.mpf(v._mpf_), digits)  # d.ddddde±XXX, always with an exponent here
    mantissa, _, exponent = text.partition("e")
    return f"{mantissa.removesuffix('.0')}e{exponent}"


def rounded(x: sp.Expr) -> float | None:
    """``x`` rounded to float64, or None when float64 cannot hold it (see :func:`fits`)."""
    v = number(x)
    if not fits(v):
        return None
    out = float(v)
    return out if math.isfinite(out) else None  # within half an ulp above FLOAT64_MAX rounds to inf


def out_of_range(x: sp.Expr, what: str, why: str) -> TheoryInputError:
    """The one-line error for a result float64 cannot hold: ``what`` (e.g. "A_D = 2·Δ_D/α_D"), its exact value,
    over- or underflow, then ``why`` (the inputs it came from)."""
    v = number(x)
    size = "overflows float64 (max 1.8e+308)" if abs(v) > 1 else "underflows float64 (min normal 2.2e-308)"
    return TheoryInputError(f"{what} = {fmt(v)} {size}: {why}")
