"""Numbers from a family's closed forms: per-player and joint b*, K(∞), and K(b), N(b) on a batch grid.

Pure functions: constants in, an :class:`Analysis` out. The CLI (:mod:`theory.critical`) and, later, the
empirical report call :func:`analyse`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import sympy as sp

from theory import exact, template
from theory.bounds import FamilyBounds, bounds_for
from theory.constants import PLAYER_NAMES, PLAYERS, flag_name, other
from theory.errors import TheoryInputError, UnreachableTarget
from theory.families import BoundFamily
from theory.joint import Hyperbola, JointOptimum, joint_optimum

DEFAULT_BATCH_SIZES = tuple(2**k for k in range(0, 13))  # 1 .. 4096


@dataclass(frozen=True)
class ConstantValue:
    key: str
    value: float
    source: str  # "flag --alpha-d", "file constants.json", or "default: <where it comes from>"


# The target: one ε for both players, or each player's own ε_P ({"D": ..., "G": ...}). The bound asks each
# player P for V_P <= ε_P², so a run whose players reached different values is matched by per-player targets.
Epsilon = ConstantValue | Mapping[str, ConstantValue]


def epsilon_players(epsilon: Epsilon) -> dict[str, ConstantValue]:
    """Each player's target: ``epsilon`` itself for both when it is one ConstantValue; else its "D" and "G"."""
    if isinstance(epsilon, ConstantValue):
        return {p: epsilon for p in PLAYERS}
    if not (isinstance(epsilon, Mapping) and set(epsilon) == set(PLAYERS)
            and all(isinstance(epsilon[p], ConstantValue) for p in PLAYERS)):
        raise TheoryInputError(f"epsilon must be a ConstantValue or {{'D': ..., 'G': ...}} of them, got {epsilon!r}")
    return {p: epsilon[p] for p in PLAYERS}


def common_epsilon(players: Mapping[str, ConstantValue]) -> ConstantValue:
    """One ε for callers that show one: the common ε when both players have the same value and source, else
    the larger of ε_D and ε_G (what a constants file's single "value" usually holds), under its own source."""
    d, g = players["D"], players["G"]
    if d.value == g.value and d.source == g.source:
        return d
    return max((d, g), key=lambda cv: cv.value)


@dataclass(frozen=True)
class PlayerResult:
    player: str
    A: float
    B: float
    C: float
    c: float  # domain edge: the bound is finite only for b > c
    b_star: float
    b_star_integer: int  # the best integer batch size (N is convex: ⌊b*⌋ or ⌈b*⌉)
    K_inf: float
    K_at_b_star: float
    N_at_b_star: float

    @property
    def hyperbola(self) -> Hyperbola:
        return Hyperbola(self.K_inf, self.c)


def curves(players: Mapping[str, PlayerResult], b: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """K and N of D, G and joint (K = max(K_D, K_G)) at the batch sizes ``b``; inf outside a domain."""
    b = np.asarray(b, dtype=np.float64)
    K = {p: r.hyperbola.K(b) for p, r in players.items()}
    K["joint"] = np.maximum(K["D"], K["G"])
    with np.errstate(over="ignore"):  # an N beyond float64 is inf here; analyse() refuses it on the batch grid
        return K, {k: b * v for k, v in K.items()}


def best_integer(b_star: float, K: Callable[[float], float]) -> int:
    """argmin over the integers of the convex N(b) = b·K(b): ⌊b*⌋ or ⌈b*⌉ (⌈b*⌉ >= b* = 2c is always in the
    domain). Compared as (⌊b*⌋/⌈b*⌉)·K(⌊b*⌋) <= K(⌈b*⌉), so that b·K cannot overflow when N(b*) fits."""
    lo, hi = math.floor(b_star), math.ceil(b_star)
    return lo if lo >= 1 and (lo / hi) * float(K(lo)) <= float(K(hi)) else hi


@dataclass(frozen=True)
class Analysis:
    family: BoundFamily
    epsilon: ConstantValue  # one ε to show: the common one, or the larger of ε_D, ε_G (see common_epsilon)
    constants: dict[str, ConstantValue]
    players: dict[str, PlayerResult]
    joint: JointOptimum
    batch_sizes: np.ndarray
    K: dict[str, np.ndarray]  # "D", "G", "joint": K(b) on batch_sizes (inf where no finite bound)
    N: dict[str, np.ndarray]

    joint_b_star_integer: int
    epsilon_players: dict[str, ConstantValue] = field(default_factory=dict)  # "D", "G" -> that player's ε_P

    @property
    def per_player_epsilon(self) -> bool:
        """Whether the players have different targets (values or sources), so output must name ε_D and ε_G."""
        e = self.epsilon_players
        return bool(e) and (e["D"].value != e["G"].value or e["D"].source != e["G"].source)

    @property
    def K_inf_joint(self) -> float:
        return max(r.K_inf for r in self.players.values())

    def curves(self, b: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        return curves(self.players, b)


def check_batch_sizes(batch_sizes: Sequence[float]) -> np.ndarray:
    bs = np.asarray(batch_sizes, dtype=np.float64)
    if bs.ndim != 1 or bs.size == 0 or not np.all(np.isfinite(bs)) or np.any(bs <= 0):
        raise TheoryInputError(f"batch sizes must be a non-empty list of positive numbers, got {batch_sizes!r}")
    return bs


def check_validity(fb: FamilyBounds, values: Mapping[str, float]) -> None:
    """Raise a one-line error when the constants violate a condition the family's bound was derived under
    (decided on the constants' exact values up to their rounding, so α·L = 1e600 is compared as such, not as
    inf, and α = 0.1, L = 10 passes α·L <= 1)."""
    for p in PLAYERS:
        for rel, reason in fb.players[p].validity:
            subs = {s: values[s.name] for s in rel.free_symbols}
            if not exact.holds(rel, subs):
                lhs, rhs = exact.evaluate(rel.lhs, subs), exact.evaluate(rel.rhs, subs)
                digits = 6 if exact.fmt(lhs, 6) != exact.fmt(rhs, 6) else 17  # 1.000000000000001, not 1
                lhs = exact.fmt(lhs, digits)
                raise TheoryInputError(f"family {fb.family.name!r} is not valid for {PLAYER_NAMES[p]}: needs "
                                       f"{rel} ({reason}), got {rel.lhs} = {lhs}")


def player_form(family: BoundFamily, player: str, what: str) -> str:
    """The family's A, B or C for ``player`` in readable symbols, e.g. "2·Δ_D/α_D" (for error messages)."""
    loc = {}
    for name in family.constants:
        spec = family.spec(name)
        loc[f"{name}_P"] = sp.Symbol(spec.display_for(player))
        loc[f"{name}_Q"] = sp.Symbol(spec.display_for(other(player)))
    expr = sp.parse_expr(getattr(family, what), local_dict=loc)
    return sp.sstr(expr).replace("**", "^").replace("*", "·")


def _inputs(family: BoundFamily, expr: sp.Expr, values: Mapping[str, float]) -> str:
    """The constants ``expr`` depends on, with their values, e.g. "Δ_D = 1e+308, α_D = 1e-300"."""
    shown = []
    for s in sorted(expr.free_symbols, key=lambda s: s.name):
        name, _, p = s.name.rpartition("_")
        shown.append(f"{family.spec(name).display_for(p)} = {values[s.name]:g}")
    return ", ".join(shown) or "a constant"


# Per-player results beyond A, B, C, as the template's closed forms (sympy-derived) and how messages show them.
# ε_P is the player's own target (the common ε when both have one).
_DERIVED = {
    "c": ("c_{p} = B_{p}/(ε_{p}² − C_{p})", "the domain edge"),
    "b_star": ("b*_{p} = 2·B_{p}/(ε_{p}² − C_{p})", "the critical batch size"),
    "K_inf": ("K_{p}(∞) = A_{p}/(ε_{p}² − C_{p})", "the steps at b → ∞"),
    "K_star": ("K_{p}(b*) = 2·A_{p}/(ε_{p}² − C_{p})", "the steps at b*"),
    "N_star": ("N_{p}(b*) = 4·A_{p}·B_{p}/(ε_{p}² − C_{p})²", "the SFO complexity at b*"),
}


@lru_cache(maxsize=1)
def derived_forms() -> dict[str, sp.Expr]:
    """The template's c, b*, K(∞), K(b*) and N(b*) in its symbols A, B, C and ε."""
    T = template.derive()
    return {"c": T.c, "b_star": T.b_star, "K_inf": T.K_inf,
            "K_star": sp.simplify(T.K.subs(template.b, T.b_star)), "N_star": T.N_star}


@dataclass(frozen=True)
class ExactPlayer:
    """A player's A, B, C, its own ε_P and ε_P² − C as exact numbers (sympy), before any rounding to float64."""

    epsilon: sp.Rational
    A: sp.Expr
    B: sp.Expr
    C: sp.Expr
    margin: sp.Expr  # ε_P² − C_P


def exact_players(fb: FamilyBounds, values: Mapping[str, float],
                  eps: float | Mapping[str, float]) -> dict[str, ExactPlayer]:
    """A_P, B_P, C_P of both players on the exact values of the constants, and each player's margin ε_P² − C_P
    (``eps``: one ε for both, or {"D": ε_D, "G": ε_G})."""
    subs = {s: values[s.name] for s in fb.args if s is not template.epsilon}
    out = {}
    for p in PLAYERS:
        e = exact.rational(eps[p] if isinstance(eps, Mapping) else eps)
        A, B, C = (exact.evaluate(getattr(fb.players[p], w), subs) for w in "ABC")
        margin = exact.substitute(template.epsilon**2 - template.C, {template.epsilon: e, template.C: C})
        out[p] = ExactPlayer(epsilon=e, A=A, B=B, C=C, margin=margin)
    return out


def check_reachable(family: BoundFamily, ex: Mapping[str, ExactPlayer]) -> None:
    """Raise :class:`UnreachableTarget` when ε_P² <= C_P for a player (decided exactly, not on rounded floats).

    That is a statement about the bound, not about training: the measured run may well have reached this ε_P;
    the bound's floor C_P is too high to certify it at any K and b. ``min_epsilon`` is the smallest common ε the
    bound can certify, √max(C_D, C_G)."""
    below = [p for p in PLAYERS if exact.sign(ex[p].margin) <= 0]
    if not below:
        return
    floors = {p: exact.number(ex[p].C) for p in PLAYERS}
    parts = [f"ε_{p}² = {exact.fmt(ex[p].epsilon ** 2)} <= C_{p} = {exact.fmt(floors[p])}, the "
             f"{PLAYER_NAMES[p]}'s floor for family {family.name!r} (it certifies only ε_{p} > "
             f"{exact.fmt(sp.sqrt(floors[p]))})" for p in sorted(below, key=floors.get, reverse=True)]
    min_eps = sp.sqrt(max(floors.values()))
    raise UnreachableTarget(
        "not certifiable by this bound: " + "; and ".join(parts),
        min_epsilon=float(exact.number(min_eps)),  # inf when even that ε is beyond float64
    )


def player_result(family: BoundFamily, p: str, ex: ExactPlayer, values: Mapping[str, float]) -> PlayerResult:
    """Round player ``p``'s exact results to float64, refusing (one line) any that float64 cannot hold."""
    fb = bounds_for(family)
    floats = {}
    for w in "ABC":
        floats[w] = exact.rounded(getattr(ex, w))
        if floats[w] is None:
            raise exact.out_of_range(getattr(ex, w), f"{w}_{p} = {player_form(family, p, w)}",
                                     _inputs(family, getattr(fb.players[p], w), values))
    on = {template.A: ex.A, template.B: ex.B, template.C: ex.C, template.epsilon: ex.epsilon}
    for key, form in derived_forms().items():
        x = exact.substitute(form, on)
        floats[key] = exact.rounded(x)
        if floats[key] is None:
            label, meaning = _DERIVED[key]
            why = f"A_{p} = {exact.fmt(ex.A)}, B_{p} = {exact.fmt(ex.B)}, ε_{p}² − C_{p} = {exact.fmt(ex.margin)}"
            raise exact.out_of_range(x, label.format(p=p), f"{meaning}, from {why}")
    h = Hyperbola(floats["K_inf"], floats["c"])
    return PlayerResult(
        player=p, A=floats["A"], B=floats["B"], C=floats["C"], c=floats["c"], b_star=floats["b_star"],
        b_star_integer=best_integer(floats["b_star"], h.K), K_inf=floats["K_inf"],
        K_at_b_star=floats["K_star"], N_at_b_star=floats["N_star"],
    )


def check_joint(joint: JointOptimum) -> None:
    """Refuse a joint optimum whose b*, K(b*) or N(b*) float64 cannot hold (one line)."""
    for what, x in (("b*", joint.b_star), ("K(b*)", joint.K), ("N(b*) = b*·K(b*)", joint.N)):
        if not (math.isfinite(x) and x >= exact.FLOAT64_MIN):
            raise TheoryInputError(f"the joint {what} (case {joint.case}) is beyond float64's range: b* = "
                                   f"{joint.b_star:g}, K(b*) = {joint.K:g}")


def check_grid(players: Mapping[str, PlayerResult], bs: np.ndarray, K: Mapping[str, np.ndarray],
               N: Mapping[str, np.ndarray]) -> None:
    """Refuse a batch size in the domain where K(b) or N(b) = b·K(b) leaves float64's range: the table would
    otherwise show it as "—", which means b <= c."""
    inside = np.all([bs > r.c for r in players.values()], axis=0)
    for key in ("D", "G", "joint"):
        ok = bs > players[key].c if key in players else inside
        bad = ok & ~np.isfinite(K[key])
        if np.any(bad):
            b = bs[bad][0]
            raise TheoryInputError(f"batch size {b:g}: K_{key}(b) overflows float64 (K(∞) = "
                                   f"{max(r.K_inf for r in players.values()):g}); choose others with --batch-sizes")
    bad = inside & ~((N["joint"] >= exact.FLOAT64_MIN) & np.isfinite(N["joint"]))
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise TheoryInputError(f"batch size {bs[i]:g}: N(b) = b·K(b) = {bs[i]:g}·{K['joint'][i]:g} is beyond "
                               "float64's range; choose others with --batch-sizes")


def analyse(
    family: BoundFamily,
    constants: Mapping[str, ConstantValue],
    epsilon: Epsilon,
    batch_sizes: Sequence[float] = DEFAULT_BATCH_SIZES,
) -> Analysis:
    """Evaluate the family's bounds for the given constants and target: one ε for both players, or each
    player's own ({"D": ε_D, "G": ε_G}; player P's bound then asks V_P <= ε_P², and only K_P∞ and c_P change,
    so the joint rule of :mod:`theory.joint` applies unchanged).

    A, B, C and the per-player results are computed exactly from the float64 inputs (:mod:`theory.exact`) and
    then rounded, so no intermediate step over- or underflows; a result float64 cannot hold is refused in one
    line, as is a batch size whose K(b) or N(b) it cannot hold."""
    fb = bounds_for(family)
    missing = [k for k in fb.keys() if k not in constants]
    if missing:
        raise TheoryInputError(f"family {family.name!r} needs {', '.join(missing)}")
    values = {}
    for key in fb.keys():
        name, _, p = key.rpartition("_")
        values[key] = family.spec(name).check(p, constants[key].value)
    targets = epsilon_players(epsilon)
    for cv in targets.values():
        eps = cv.value
        if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and math.isfinite(eps) and eps > 0):
            raise TheoryInputError(f"{cv.key} must be a positive finite number, got {eps!r}")
    check_validity(fb, values)
    bs = check_batch_sizes(batch_sizes)

    ex = exact_players(fb, values, {p: cv.value for p, cv in targets.items()})
    check_reachable(family, ex)
    players = {p: player_result(family, p, ex[p], values) for p in PLAYERS}
    joint = joint_optimum(players["D"].hyperbola, players["G"].hyperbola)
    check_joint(joint)
    K, N = curves(players, bs)
    check_grid(players, bs, K, N)
    joint_int = best_integer(joint.b_star, lambda x: curves(players, x)[0]["joint"])
    return Analysis(family=family, epsilon=common_epsilon(targets), constants=dict(constants), players=players,
                    joint=joint, batch_sizes=bs, K=K, N=N, joint_b_star_integer=joint_int, epsilon_players=targets)


def resolve_constants(
    family: BoundFamily,
    flags: Mapping[str, float],
    file_values: Mapping[str, float] | None = None,
    file_label: str = "",
    defaults: Mapping[str, float] | None = None,
    defaults_label: str = "",
) -> dict[str, ConstantValue]:
    """Each constant the family needs, with where its value came from.

    Precedence per constant: ``flags``, then ``file_values`` (a ``--constants FILE``; sources "file <label>"),
    then ``defaults`` (e.g. the constants measured on a preset, theory/measured/<preset>.json; source
    ``defaults_label``), then the family's own documented default (source "default: ...").

    A constants file must be complete for the family (with the flags): a file is a measurement, and a
    default silently filling a gap in it would mix measured and invented numbers. So ``defaults`` are used
    only when no file is given; a constant they lack (e.g. h_min of a run whose optimizer has no
    preconditioner) falls back to the family default and is labelled as such.
    """
    out = {}
    missing = []
    for key in bounds_for(family).keys():
        if key in flags:
            out[key] = ConstantValue(key, flags[key], f"flag {flag_name(key)}")
        elif file_values is not None:
            if key in file_values:
                out[key] = ConstantValue(key, file_values[key], f"file {file_label}")
            else:
                missing.append(key)
        elif defaults is not None and key in defaults:
            out[key] = ConstantValue(key, defaults[key], defaults_label)
        else:
            d = family.defaults.get(key)
            if d is None:
                raise TheoryInputError(f"family {family.name!r} has no default for {key}; give "
                                       f"{flag_name(key)} or --constants FILE")
            out[key] = ConstantValue(key, d.value, f"default: {d.source}")
    if missing:
        raise TheoryInputError(f"constants file {file_label} is incomplete for family {family.name!r}: "
                               f"missing {', '.join(missing)}")
    return out


EpsilonEntry = float | Mapping[str, float]  # one ε, or {"D": ε_D, "G": ε_G}


def _entry_for(entry: EpsilonEntry, p: str) -> tuple[float, bool]:
    """Player ``p``'s ε from a file's entry, and whether the entry gives the players different values."""
    if isinstance(entry, Mapping):
        return entry[p], entry["D"] != entry["G"]
    return entry, False


def _per_player(label: str, p: str) -> str:
    """``label`` naming player ``p``'s own ε: "the ε the run reached" -> "the ε_D the run reached"."""
    return label.replace("the ε ", f"the ε_{p} ", 1) if "the ε " in label else f"{label} (ε_{p})"


def resolve_epsilons(
    family: BoundFamily,
    flag: float | None = None,
    file_epsilon: Mapping[str, EpsilonEntry] | None = None,
    file_label: str = "",
    defaults: Mapping[str, EpsilonEntry] | None = None,
    defaults_label: str = "",
    *,
    player_flags: Mapping[str, float] | None = None,
) -> dict[str, ConstantValue]:
    """Each player's target ε_P ("D", "G" -> ConstantValue), with the layering of :func:`resolve_constants`,
    per player: its own flag (``player_flags``, --epsilon-d / --epsilon-g), then the common flag (--epsilon),
    then the ε a constants file says the measured run reached for the family (``file_epsilon``: family -> ε,
    or -> {"D": ε_D, "G": ε_G} as :attr:`theory.schema.ConstantsFile.epsilon_players` gives it), then the
    ``defaults`` layer's (only when no file is given), then the family's default."""
    player_flags = player_flags or {}
    unknown = sorted(set(player_flags) - set(PLAYERS))
    if unknown:
        raise TheoryInputError(f"per-player ε for unknown players {', '.join(unknown)} (known: D, G)")
    out = {}
    for p in PLAYERS:
        if p in player_flags:
            out[p] = ConstantValue(f"epsilon_{p}", player_flags[p], f"flag --epsilon-{p.lower()}")
        elif flag is not None:
            out[p] = ConstantValue("epsilon", flag, "flag --epsilon")
        elif file_epsilon is not None and family.name in file_epsilon:
            value, split = _entry_for(file_epsilon[family.name], p)
            what = f"the ε_{p}" if split else "the ε"
            out[p] = ConstantValue(f"epsilon_{p}" if split else "epsilon", value,
                                   f"file {file_label} ({what} the measured run reached)")
        elif file_epsilon is None and defaults is not None and family.name in defaults:
            value, split = _entry_for(defaults[family.name], p)
            out[p] = ConstantValue(f"epsilon_{p}" if split else "epsilon", value,
                                   _per_player(defaults_label, p) if split else defaults_label)
        else:
            out[p] = ConstantValue("epsilon", family.epsilon.value, f"default: {family.epsilon.source}")
    return out


def resolve_epsilon(
    family: BoundFamily,
    flag: float | None = None,
    file_epsilon: Mapping[str, EpsilonEntry] | None = None,
    file_label: str = "",
    defaults: Mapping[str, EpsilonEntry] | None = None,
    defaults_label: str = "",
) -> ConstantValue:
    """The one target ε for both players, layered as :func:`resolve_epsilons` (kept for callers that take one
    ε; a file entry with per-player values gives its larger, as :func:`common_epsilon`). Use
    :func:`resolve_epsilons` to target each player's own ε_P."""
    return common_epsilon(resolve_epsilons(family, flag, file_epsilon, file_label, defaults, defaults_label))
