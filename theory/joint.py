"""The joint critical batch size when D and G share one batch size: K(b) = max(K_D(b), K_G(b)).

Every template bound is a hyperbola K_P(b) = K∞_P·b/(b − c_P) with b*_P = 2c_P (fact ``K_hyperbolic_form``).
N(b) = b·K(b) = max(N_D, N_G) is the maximum of two strictly convex functions on b > max(c_D, c_G), and
it tends to +∞ at both ends, so it has exactly one minimiser b̂. At b̂ either one player alone is active,
and then b̂ is that player's own minimiser b*_P, or both are, and then b̂ is where K_D = K_G; since
1/K_P is affine in 1/b (fact ``inverse_K_affine_in_inverse_b``) there is at most one such crossing.
Hence the rule implemented below (docs/theory.md, "Joint critical batch size"):

1. if D binds at its own optimum, K_D(b*_D) >= K_G(b*_D), the joint b* is b*_D;
2. else if G binds at its own optimum, K_G(b*_G) >= K_D(b*_G), it is b*_G;
3. else it is the crossing b× = (K∞_D·c_G − K∞_G·c_D)/(K∞_D − K∞_G).

Each player may have its own target ε_P (the bound asks V_P <= ε_P²): then K∞_P = A_P/(ε_P² − C_P) and
c_P = B_P/(ε_P² − C_P), each curve is still such a hyperbola, and nothing above changes; in the constants the
crossing reads b× = (A_D·B_G − A_G·B_D)/(A_D·(ε_G² − C_G) − A_G·(ε_D² − C_D)) (tests/theory/test_joint.py
derives it with sympy and checks the rule against brute force with ε_D ≠ ε_G).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Hyperbola:
    """A player's step bound K(b) = K_inf·b/(b − c) for b > c (no finite bound for b <= c)."""

    K_inf: float
    c: float

    @property
    def b_star(self) -> float:
        return 2.0 * self.c

    def K(self, b: np.ndarray | float) -> np.ndarray:
        """K(b), inf for b <= c; as K_inf·(b/(b − c)), so K_inf·b cannot overflow when K(b) itself fits."""
        b = np.asarray(b, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return np.where(b > self.c, self.K_inf * (b / (b - self.c)), np.inf)


@dataclass(frozen=True)
class JointOptimum:
    b_star: float
    case: str  # "D" (D binds at b*_D), "G" (G binds at b*_G) or "crossing" (K_D = K_G at b*)
    K: float  # K(b*) = max(K_D, K_G) at b*
    N: float  # N(b*) = b*·K(b*)


def crossing(d: Hyperbola, g: Hyperbola) -> float | None:
    """The batch size b > max(c_D, c_G) where K_D(b) = K_G(b), or None if the curves do not cross there.

    Solved as an offset from the larger pole c1: with b = c1 + t, K∞1·(c1 + t − c2) = K∞2·t gives
    t = K∞1·(c1 − c2)/(K∞2 − K∞1), which keeps its relative accuracy even when the crossing lies within
    round-off of the pole (the direct formula (K∞_D·c_G − K∞_G·c_D)/(K∞_D − K∞_G) cancels there).
    """
    (k1, c1), (k2, c2) = sorted(((d.K_inf, d.c), (g.K_inf, g.c)), key=lambda kc: -kc[1])
    if not (c1 > c2 and k2 > k1):
        return None  # the curve with the larger pole stays above the other on the whole domain
    t = (c1 - c2) * (k1 / (k2 - k1))  # grouped so that k1·(c1 − c2) cannot overflow when t fits
    b = c1 + t
    return float(b if b > c1 else np.nextafter(c1, np.inf))  # t below one ulp of c1


def joint_optimum(d: Hyperbola, g: Hyperbola) -> JointOptimum:
    """argmin over b of b·max(K_D(b), K_G(b)), exactly, by the three-case rule of the module docstring."""
    def result(b: float, case: str, K: float) -> JointOptimum:
        return JointOptimum(b_star=float(b), case=case, K=K, N=float(b) * K)

    if d.K(d.b_star) >= g.K(d.b_star):
        return result(d.b_star, "D", float(d.K(d.b_star)))
    if g.K(g.b_star) >= d.K(g.b_star):
        return result(g.b_star, "G", float(g.K(g.b_star)))
    b = crossing(d, g)
    if b is None:  # impossible by the argument in the module docstring
        raise ArithmeticError(f"no joint optimum found for {d} and {g}")
    # K_D = K_G at the crossing; evaluate the curve whose pole is further from b (better conditioned).
    far = d if d.c < g.c else g
    return result(b, "crossing", float(far.K(b)))
