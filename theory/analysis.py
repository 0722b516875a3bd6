"""Numbers from a family's closed forms: per-player and joint b*, K(∞), and K(b), N(b) on a batch grid.

Pure functions: constants in, an :class:`Analysis` out. The CLI (:mod:`theory.critical`) and, later, the
empirical report call :func:`analyse`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from theory.bounds import FamilyBounds, bounds_for
from theory.constants import PLAYER_NAMES, PLAYERS, flag_name
from theory.errors import TheoryInputError, UnreachableTarget
from theory.families import BoundFamily
from theory.joint import Hyperbola, JointOptimum, joint_optimum

DEFAULT_BATCH_SIZES = tuple(2**k for k in range(0, 13))  # 1 .. 4096


@dataclass(frozen=True)
class ConstantValue:
    key: str
    value: float
    source: str  # "flag --alpha-d", "file constants.json", or "default: <where it comes from>"


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
    return K, {k: b * v for k, v in K.items()}


def best_integer(b_star: float, N) -> int:
    """argmin of a convex N over the integers: ⌊b*⌋ or ⌈b*⌉ (⌈b*⌉ >= b* = 2c is always in the domain)."""
    lo, hi = math.floor(b_star), math.ceil(b_star)
    return lo if lo >= 1 and N(lo) <= N(hi) else hi


@dataclass(frozen=True)
class Analysis:
    family: BoundFamily
    epsilon: ConstantValue
    constants: dict[str, ConstantValue]
    players: dict[str, PlayerResult]
    joint: JointOptimum
    batch_sizes: np.ndarray
    K: dict[str, np.ndarray]  # "D", "G", "joint": K(b) on batch_sizes (inf where no finite bound)
    N: dict[str, np.ndarray]

    joint_b_star_integer: int

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
    """Raise a one-line error when the constants violate a condition the family's bound was derived under."""
    for p in PLAYERS:
        for rel, reason in fb.players[p].validity:
            subs = {s: values[s.name] for s in rel.free_symbols}
            if not bool(rel.subs(subs)):
                lhs = float(rel.lhs.subs(subs))
                raise TheoryInputError(f"family {fb.family.name!r} is not valid for {PLAYER_NAMES[p]}: needs "
                                       f"{rel} ({reason}), got {rel.lhs} = {lhs:g}")


def analyse(
    family: BoundFamily,
    constants: Mapping[str, ConstantValue],
    epsilon: ConstantValue,
    batch_sizes: Sequence[float] = DEFAULT_BATCH_SIZES,
) -> Analysis:
    """Evaluate the family's bounds for the given constants and target ε."""
    fb = bounds_for(family)
    missing = [k for k in fb.keys() if k not in constants]
    if missing:
        raise TheoryInputError(f"family {family.name!r} needs {', '.join(missing)}")
    values = {}
    for key in fb.keys():
        name, _, p = key.rpartition("_")
        values[key] = family.spec(name).check(p, constants[key].value)
    eps = epsilon.value
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise TheoryInputError(f"epsilon must be a positive finite number, got {eps!r}")
    check_validity(fb, values)
    bs = check_batch_sizes(batch_sizes)

    args = [values[k] for k in fb.keys()] + [eps]
    floors = {p: float(fb.numeric[p]["C"](*args)) for p in PLAYERS}
    for p, C in floors.items():
        if not math.isfinite(C):
            raise TheoryInputError(f"the constants overflow float64 for the {PLAYER_NAMES[p]} (C = {C:g})")
    worst = max(PLAYERS, key=floors.get)
    if eps**2 <= floors[worst]:
        min_eps = math.sqrt(max(floors.values()))
        raise UnreachableTarget(
            f"target unreachable: ε² = {eps**2:.6g} <= C_{worst} = {floors[worst]:.6g}, the "
            f"{PLAYER_NAMES[worst]}'s floor for family {family.name!r}; the bound can only certify "
            f"ε > {min_eps:.6g}",
            min_epsilon=min_eps,
        )

    players = {}
    for p in PLAYERS:
        f = fb.numeric[p]
        A, B, K_inf, c, b_star = (float(f[w](*args)) for w in ("A", "B", "K_inf", "c", "b_star"))
        K_star = float(f["K"](b_star, *args))
        if not all(map(math.isfinite, (A, B, c, b_star, K_inf, b_star * K_star))):
            raise TheoryInputError(f"the constants overflow float64 for the {PLAYER_NAMES[p]} "
                                   f"(A = {A:g}, B = {B:g}, ε² − C = {eps**2 - floors[p]:g})")
        h = Hyperbola(K_inf, c)
        players[p] = PlayerResult(
            player=p, A=A, B=B, C=floors[p], c=c, b_star=b_star,
            b_star_integer=best_integer(b_star, lambda x, h=h: x * h.K(x)), K_inf=K_inf, K_at_b_star=K_star,
            N_at_b_star=b_star * K_star,
        )
    joint = joint_optimum(players["D"].hyperbola, players["G"].hyperbola)
    K, N = curves(players, bs)
    joint_int = best_integer(joint.b_star, lambda x: float(curves(players, x)[1]["joint"]))
    return Analysis(family=family, epsilon=epsilon, constants=dict(constants), players=players, joint=joint,
                    batch_sizes=bs, K=K, N=N, joint_b_star_integer=joint_int)


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


def resolve_epsilon(
    family: BoundFamily,
    flag: float | None = None,
    file_epsilon: Mapping[str, float] | None = None,
    file_label: str = "",
    defaults: Mapping[str, float] | None = None,
    defaults_label: str = "",
) -> ConstantValue:
    """The target ε, with the same layering as :func:`resolve_constants`: the flag, then the ε a constants file
    says the measured run reached for the family (``file_epsilon``: family -> ε), then the ``defaults`` layer's
    (only when no file is given), then the family's default."""
    if flag is not None:
        return ConstantValue("epsilon", flag, "flag --epsilon")
    if file_epsilon is not None:
        if family.name in file_epsilon:
            return ConstantValue("epsilon", file_epsilon[family.name],
                                 f"file {file_label} (the ε the measured run reached)")
    elif defaults is not None and family.name in defaults:
        return ConstantValue("epsilon", defaults[family.name], defaults_label)
    return ConstantValue("epsilon", family.epsilon.value, f"default: {family.epsilon.source}")
