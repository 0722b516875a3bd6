"""A family's concrete bounds: its A_P, B_P, C_P substituted into the template, proven, and lambdified.

The template facts (:func:`theory.template.template_facts`) hold for every A > 0, B > 0, C >= 0, so a
family inherits them once sympy proves those three signs from the family's constant domains; the
proofs are :attr:`FamilyBounds.facts`. The closed forms are lambdified to numpy for arrays of b.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from theory import template
from theory.constants import PLAYERS, other
from theory.errors import TheoryInputError
from theory.template import Fact

if TYPE_CHECKING:
    from theory.families import BoundFamily


@dataclass(frozen=True)
class PlayerBound:
    """Player P's closed forms in the family's constants and ε."""

    player: str
    A: sp.Expr
    B: sp.Expr
    C: sp.Expr
    K: sp.Expr  # K_P(b)
    N: sp.Expr  # N_P(b) = b·K_P(b)
    b_star: sp.Expr
    K_inf: sp.Expr
    c: sp.Expr  # domain edge B_P/(ε² − C_P)
    validity: tuple[tuple[sp.Rel, str], ...]


@dataclass(frozen=True)
class FamilyBounds:
    family: BoundFamily
    args: tuple[sp.Symbol, ...]  # argument order of the lambdified functions (after b, where b is one)
    players: dict[str, PlayerBound]
    facts: tuple[Fact, ...]
    numeric: dict[str, dict[str, Callable]]  # player -> name -> numpy function

    def keys(self) -> tuple[str, ...]:
        """The per-player constant names this family needs, in argument order (ε excluded)."""
        return tuple(s.name for s in self.args if s is not template.epsilon)


def _locals(family: BoundFamily, player: str) -> dict[str, sp.Symbol]:
    loc = {}
    for name in family.constants:
        spec = family.spec(name)
        loc[f"{name}_P"] = spec.symbol(player)
        loc[f"{name}_Q"] = spec.symbol(other(player))
    return loc


def _parse(text: str, family: BoundFamily, player: str, what: str) -> sp.Basic:
    loc = _locals(family, player)
    try:
        expr = sp.parse_expr(text, local_dict=loc)
    except Exception as exc:  # sympy raises many types for bad syntax
        raise TheoryInputError(f"family {family.name!r}: cannot parse {what} = {text!r} ({exc})") from None
    unknown = expr.free_symbols - set(loc.values())
    if unknown:
        names = ", ".join(sorted(map(str, unknown)))
        raise TheoryInputError(f"family {family.name!r}: {what} uses unknown names {names} "
                               f"(known: {', '.join(sorted(loc))})")
    return expr


def _proof_substitution(family: BoundFamily) -> dict[sp.Symbol, sp.Expr]:
    sub = {}
    for name in family.constants:
        for p in PLAYERS:
            sub.update(family.spec(name).proof_substitution(p))
    return sub


def check_family(family: BoundFamily) -> None:
    """Raise a one-line error unless the family parses and sympy proves A, B > 0 and C >= 0."""
    bounds_for(family)


_CACHE: dict[str, tuple[BoundFamily, FamilyBounds]] = {}


def bounds_for(family: BoundFamily) -> FamilyBounds:
    """The family's proven, lambdified bounds (built once per family object)."""
    cached = _CACHE.get(family.name)
    if cached is None or cached[0] is not family:
        cached = (family, _build(family))
        _CACHE[family.name] = cached
    return cached[1]


def _build(family: BoundFamily) -> FamilyBounds:
    for key, default in family.defaults.items():
        name, _, player = key.rpartition("_")
        if name not in family.constants or player not in PLAYERS:
            raise TheoryInputError(f"family {family.name!r}: default for unknown constant {key!r}")
        family.spec(name).check(player, default.value)
    if not (family.epsilon.value > 0 and np.isfinite(family.epsilon.value)):
        raise TheoryInputError(f"family {family.name!r}: default epsilon must be positive and finite")

    T = template.derive()
    sub = _proof_substitution(family)
    players, facts = {}, []
    for p in PLAYERS:
        A, B, C = (_parse(getattr(family, w), family, p, f"{w}") for w in "ABC")
        for what, expr, sign in (("A", A, "positive"), ("B", B, "positive"), ("C", C, "nonnegative")):
            fact = Fact(f"{what}_{p}_{sign}", f"{what}_{p} is {sign} for all constants in their domains",
                        sp.simplify(expr.subs(sub)), sign)
            if not fact.holds:
                raise TheoryInputError(f"family {family.name!r}: sympy cannot prove {what}_{p} = {expr} is "
                                       f"{sign}, so the template's facts would not apply")
            facts.append(fact)
        validity = tuple((_parse(v.condition, family, p, "validity condition"), v.reason)
                         for v in family.validity)
        on = {template.A: A, template.B: B, template.C: C}
        players[p] = PlayerBound(
            player=p, A=A, B=B, C=C, K=T.K.subs(on), N=T.N.subs(on), b_star=T.b_star.subs(on),
            K_inf=T.K_inf.subs(on), c=T.c.subs(on), validity=validity,
        )

    for fact in family.lemmas() if family.lemmas is not None else ():
        if not fact.holds:
            raise TheoryInputError(f"family {family.name!r}: sympy cannot prove its derivation step {fact.name} "
                                   f"({fact.statement})")
        facts.append(fact)

    args = tuple(family.spec(n).symbol(p) for p in PLAYERS for n in family.constants) + (template.epsilon,)
    numeric = {}
    for p, pb in players.items():
        numeric[p] = {
            "K": sp.lambdify((template.b, *args), pb.K, modules="numpy"),
            **{w: sp.lambdify(args, getattr(pb, w), modules="numpy")
               for w in ("A", "B", "C", "b_star", "K_inf", "c")},
        }
    return FamilyBounds(family=family, args=args, players=players, facts=tuple(facts), numeric=numeric)
