"""Render an :class:`~theory.analysis.Analysis` as a text table, a JSON object or LaTeX closed forms."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import sympy as sp

from theory import exact, template
from theory.analysis import Analysis
from theory.bounds import bounds_for
from theory.constants import PLAYER_NAMES, PLAYERS
from theory.families import BoundFamily

JOINT_RULE = ("joint: K(b) = max(K_D(b), K_G(b)); b* = b*_D if K_D(b*_D) >= K_G(b*_D), "
              "else b*_G if K_G(b*_G) >= K_D(b*_G), else the crossing K_D = K_G")
CASES = {
    "D": "the discriminator binds at its own optimum (b* = b*_D)",
    "G": "the generator binds at its own optimum (b* = b*_G)",
    "crossing": "neither binds alone: b* is where K_D(b) = K_G(b)",
}


def generic_forms(family: BoundFamily, style: str = "text") -> dict[str, str]:
    """A_P, B_P, C_P of the family for a generic player P (opponent Q), as text or LaTeX."""
    loc, names = {}, {}
    for name in family.constants:
        spec = family.spec(name)
        for tag in ("P", "Q"):
            sym = sp.Symbol(spec.display_for(tag))
            loc[f"{name}_{tag}"] = sym
            names[sym] = spec.latex_for(tag)
    out = {}
    for w in "ABC":
        expr = sp.parse_expr(getattr(family, w), local_dict=loc)
        if style == "latex":
            out[w] = sp.latex(expr, symbol_names=names)
        else:
            out[w] = sp.sstr(expr).replace("**", "^").replace("*", "·")
    return out


def _target_lines(a: Analysis) -> list[str]:
    """The target: "ε = ... (ε² = ...)   [source]", or one such line per player when their targets differ."""
    def one(name: str, cv) -> str:
        eps2 = exact.fmt(exact.rational(cv.value) ** 2)
        return f"{name} = {cv.value:g} ({name}² = {eps2})   [{cv.source}]"

    if not a.per_player_epsilon:
        return [f"target: {one('ε', a.epsilon)}"]
    return [f"{'target:' if i == 0 else '':<8}{one(f'ε_{p}', a.epsilon_players[p])}" for i, p in enumerate(PLAYERS)]


def _per_player_forms(text: str, a: Analysis) -> str:
    """A template form with ε² read as the player's own ε_P² when the players' targets differ."""
    return text.replace("ε²", "ε_P²") if a.per_player_epsilon else text


def _num(x: float) -> str:
    return "—" if not math.isfinite(x) else f"{x:.5g}"


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


# K = K∞·b/(b − c) ≈ K∞(1 + c/b) for b ≫ c is McCandlish's S_min(1 + B_noise/B) with c in B_noise's role, and the
# template's b* = 2c: so the noise scale's analogue of b* is 2·B_noise (B_simple standing in for B_noise).
NOISE_SCALE = ("noise-scale prediction b* ≈ 2·B_simple (McCandlish's B_simple = tr Σ / ‖G‖², measured, in the "
               "role of the template's c; b* = 2c)")


def to_text(a: Analysis, show_proofs: bool = False, noise_scale: Mapping[str, float] | None = None,
            noise_scale_preconditioned: Mapping[str, float] | None = None) -> str:
    """The human-readable report: constants with their sources, closed forms, results and the b-table, and the
    measured noise scales when given (B_simple, and beside it 2·B_noise,H, the noise scale in an Adam-type
    optimizer's metric, for the players that have one)."""
    f = a.family
    lines = [
        f"family '{f.name}': {f.summary}",
        f"bound:  V_P(K, b) <= A_P/K + B_P/b + C_P  for P in {{D, G}}, with V_P = {f.measure}",
        *_target_lines(a),
        "",
        "constants",
    ]
    width = max(len(k) for k in a.constants)
    for key, cv in a.constants.items():
        lines.append(f"  {key:<{width}}  {cv.value:<12.7g} {cv.source}")
    lines += ["", "closed forms (derived and checked by sympy; derivation in docs/theory.md)"]
    if a.per_player_epsilon:
        lines.append("  each player P has its own target: V_P <= ε_P²")
    lines += [f"  {_per_player_forms(text, a)}" for text, _ in template.readable_forms().values()]
    lines += [f"  {w}_P = {expr}" for w, expr in generic_forms(f).items()]
    lines += [f"  {JOINT_RULE}", ""]

    P = a.players
    rows = [
        ("A", [P["D"].A, P["G"].A, math.nan]),
        ("B", [P["D"].B, P["G"].B, math.nan]),
        ("C (floor)", [P["D"].C, P["G"].C, math.nan]),
        ("b*", [P["D"].b_star, P["G"].b_star, a.joint.b_star]),
        ("b* integer", [P["D"].b_star_integer, P["G"].b_star_integer, a.joint_b_star_integer]),
        ("K(∞)", [P["D"].K_inf, P["G"].K_inf, a.K_inf_joint]),
        ("K(b*)", [P["D"].K_at_b_star, P["G"].K_at_b_star, a.joint.K]),
        ("N(b*)", [P["D"].N_at_b_star, P["G"].N_at_b_star, a.joint.N]),
    ]
    lines.append(f"  {'':<10}{'D':>14}{'G':>14}{'joint':>14}")
    for name, vals in rows:
        cells = "".join(f"{'' if math.isnan(v) else _num(v):>14}" for v in vals)
        lines.append(f"  {name:<10}{cells}")
    lines.append(f"  critical batch size b* = {a.joint.b_star:.5g}: {CASES[a.joint.case]}")
    if noise_scale:
        pre = noise_scale_preconditioned or {}
        lines.append(f"  {NOISE_SCALE}: " + ", ".join(
            f"{p} {2 * noise_scale[p]:.5g} (B_simple {noise_scale[p]:.5g}"
            + (f"; in the optimizer's metric 2·B_noise,H {2 * pre[p]:.5g})" if p in pre else ")")
            for p in PLAYERS if p in noise_scale))
    lines.append("")

    lines.append(f"  {'b':>8}{'K_D':>14}{'K_G':>14}{'K':>14}{'N = b·K':>14}")
    for i, bi in enumerate(a.batch_sizes):
        cells = "".join(f"{_num(a.K[k][i]):>14}" for k in ("D", "G", "joint"))
        lines.append(f"  {bi:>8g}{cells}{_num(a.N['joint'][i]):>14}")
    lines.append(f"  — : b <= c_P, where the bound certifies {'ε_P' if a.per_player_epsilon else 'ε'} at no number of "
                 "steps")
    lines.append("")
    facts = template.template_facts()
    fam = bounds_for(f).facts
    ok = sum(x.holds for x in facts) + sum(x.holds for x in fam)
    lines.append(f"sympy proofs: {ok}/{len(facts) + len(fam)} facts hold "
                 f"({len(facts)} for the template, {len(fam)} for family '{f.name}')"
                 + ("" if show_proofs else "; --proofs lists them"))
    if show_proofs:
        for x in facts + fam:
            lines.append(f"  [{'ok' if x.holds else 'FAILED'}] {x.name}: {x.statement}   ({x.expr} is {x.sign})")
    return "\n".join(lines)


def to_json(a: Analysis, noise_scale: Mapping[str, float] | None = None,
            noise_scale_preconditioned: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The JSON contract: b_star, K_inf, the table, plus everything needed to reproduce them; ``noise_scale``
    holds the measured McCandlish B_simple per player ({} when none was given), ``noise_scale_preconditioned``
    B_noise,H = tr(HΣ)/GᵀHG in an Adam-type optimizer's metric ({} when none). ``epsilon`` is the one ε (the
    common one, or the larger of the players'); ``epsilon_players`` each player's own target ε_P."""
    P = a.players
    forms = generic_forms(a.family)
    targets = a.epsilon_players or {p: a.epsilon for p in PLAYERS}
    return {
        "family": a.family.name,
        "epsilon": {"value": a.epsilon.value, "source": a.epsilon.source},
        "epsilon_players": {p: {"value": cv.value, "source": cv.source} for p, cv in targets.items()},
        "constants": {k: {"value": v.value, "source": v.source} for k, v in a.constants.items()},
        "b_star": {"D": P["D"].b_star, "G": P["G"].b_star, "joint": a.joint.b_star},
        "b_star_integer": {"D": P["D"].b_star_integer, "G": P["G"].b_star_integer, "joint": a.joint_b_star_integer},
        "b_star_case": a.joint.case,
        "K_inf": {"D": P["D"].K_inf, "G": P["G"].K_inf, "joint": a.K_inf_joint},
        "K_at_b_star": {"D": P["D"].K_at_b_star, "G": P["G"].K_at_b_star, "joint": a.joint.K},
        "N_at_b_star": {"D": P["D"].N_at_b_star, "G": P["G"].N_at_b_star, "joint": a.joint.N},
        "A": {p: P[p].A for p in PLAYERS},
        "B": {p: P[p].B for p in PLAYERS},
        "C": {p: P[p].C for p in PLAYERS},
        "domain_edge": {p: P[p].c for p in PLAYERS},
        "min_epsilon": math.sqrt(max(P[p].C for p in PLAYERS)),  # the smallest common ε the bound certifies
        "min_epsilon_players": {p: math.sqrt(P[p].C) for p in PLAYERS},
        "noise_scale": {p: float(noise_scale[p]) for p in PLAYERS if p in (noise_scale or {})},
        "noise_scale_preconditioned": {p: float(noise_scale_preconditioned[p]) for p in PLAYERS
                                       if p in (noise_scale_preconditioned or {})},
        "closed_forms": {
            "template": {k: str(e) for k, (_, e) in template.readable_forms().items()},
            "family": forms,
        },
        "table": [
            {"b": float(b), "K_D": _finite(a.K["D"][i]), "K_G": _finite(a.K["G"][i]),
             "K": _finite(a.K["joint"][i]), "N": _finite(a.N["joint"][i])}
            for i, b in enumerate(np.asarray(a.batch_sizes))
        ],
    }


def to_latex(a: Analysis) -> str:
    """The closed forms as LaTeX: the template, the family's A, B, C, and b*_P in the family's constants (with
    ε_P for ε when the players' targets differ)."""
    f = a.family
    fb = bounds_for(f)
    names = {}
    for name in f.constants:
        spec = f.spec(name)
        for p in PLAYERS:
            names[spec.symbol(p)] = spec.latex_for(p)
    split = a.per_player_epsilon
    sym = {template.A: "A_P", template.B: "B_P", template.C: "C_P",
           template.epsilon: r"\varepsilon_P" if split else r"\varepsilon"}
    out = [f"% family '{f.name}': {f.summary}", r"\begin{align*}"]
    labels = {"K": "K_P(b)", "N": "N_P(b)", "c": "c_P", "b_star": "b^*_P", "K_inf": r"K_P(\infty)",
              "N_star": "N_P(b^*_P)"}
    for key, (_, expr) in template.readable_forms().items():
        out.append(f"{labels[key]} &= {sp.latex(expr, symbol_names=sym)} \\\\")
    for w, tex in generic_forms(f, style="latex").items():
        out.append(f"{w}_P &= {tex} \\\\")
    for p in PLAYERS:
        names[template.epsilon] = rf"\varepsilon_{p}" if split else r"\varepsilon"
        out.append(f"b^*_{p} &= {sp.latex(sp.simplify(fb.players[p].b_star), symbol_names=names)} "
                   f"\\quad\\text{{({PLAYER_NAMES[p]})}} \\\\")
    out[-1] = out[-1].rstrip(" \\")
    out.append(r"\end{align*}")
    return "\n".join(out)
