"""CLI: the step bound K(b), the SFO complexity N(b) and the critical batch size b* of a TTUR run.

    python -m theory.critical --alpha-d 2e-4 --alpha-g 5e-5
    python -m theory.critical --family sgd --preset grid25 --json
    python -m theory.critical --constants constants.json --plot kb.png

Every constant has a flag (``--<name>-d``, ``--<name>-g``). The values not given come from ``--constants FILE``
if one is given (which must then be complete), else from the constants measured on ``--preset`` (default
ring8: theory/measured/ring8.json, written by ``python -m empirical.constants``), and only a constant that file
lacks from the family's documented default; the output says which for each. The bound asks each player P to
reach its own ε_P²: ``--epsilon-d`` / ``--epsilon-g`` set one player's, ``--epsilon`` both; a player without
either takes the ε the measured run (of the file, or of the preset) reached for the family (per player when the
file has per-player values), else the family's default. Bad input: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from theory.analysis import DEFAULT_BATCH_SIZES, ConstantValue, analyse, resolve_constants, resolve_epsilons
from theory.bounds import bounds_for
from theory.constants import CATALOGUE, PLAYER_NAMES, PLAYERS, ConstantSpec, flag_name
from theory.errors import TheoryInputError, UnreachableTarget
from theory.families import DEFAULT_FAMILY, FAMILIES, get_family
from theory.measured import DEFAULT_PRESET, load_measured, measured_presets

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (no usage dump) with exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise TheoryInputError(f"{message} (see --help)")


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _batch_sizes(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch sizes must be comma-separated numbers, got {text!r}") from None


def _constant_specs() -> dict[str, ConstantSpec]:
    specs = dict(CATALOGUE)
    for family in FAMILIES.values():
        for name in family.constants:
            specs.setdefault(name, family.spec(name))
    return specs


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m theory.critical",
        description="Step bound K(b), SFO complexity N(b) = b·K(b) and critical batch size b* = argmin N "
        "for the discriminator, the generator and jointly, from a bound family's closed forms.",
    )
    p.add_argument("--family", default=DEFAULT_FAMILY,
                   help=f"bound family: {', '.join(sorted(FAMILIES))} (default {DEFAULT_FAMILY})")
    p.add_argument("--epsilon", type=_float, default=None,
                   help="target of both players: each stationarity measure V_P must reach ε² (default: the ε "
                   "the measured run of --constants or --preset reached for the family, per player where its "
                   "file says, else the family's)")
    for player in PLAYERS:
        p.add_argument(f"--epsilon-{player.lower()}", dest=f"epsilon_{player}", type=_float, default=None,
                       metavar=f"EPSILON_{player}",
                       help=f"target of the {PLAYER_NAMES[player]} alone: V_{player} must reach ε_{player}² "
                       "(overrides --epsilon for it)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--preset", metavar="NAME", default=None, choices=measured_presets(),
                        help="take the constants not given as flags, and ε, from those measured on this preset, "
                        f"theory/measured/NAME.json ({', '.join(measured_presets())}; default {DEFAULT_PRESET})")
    source.add_argument("--constants", metavar="FILE", default=None,
                        help="JSON constants file (docs/constants-schema.md), instead of a preset's; must hold "
                        "every constant the family needs that no flag gives")
    p.add_argument("--batch-sizes", type=_batch_sizes, default=None, metavar="B1,B2,...",
                   help="batch sizes for the table (default: powers of two 1..4096)")
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print a JSON object instead of the table")
    out.add_argument("--latex", action="store_true", help="print the closed forms as LaTeX")
    out.add_argument("--plot", metavar="FILE.png", default=None, help="write K(b) and N(b), log-log, b* marked")
    out.add_argument("--proofs", action="store_true", help="list every sympy-checked fact")
    consts = p.add_argument_group("constants (per player: -d discriminator, -g generator)")
    for name, spec in sorted(_constant_specs().items()):
        for player in PLAYERS:
            key = f"{name}_{player}"
            text = f"{spec.meaning} [{spec.unit}]" if player == "D" else "the same, for the generator"
            consts.add_argument(flag_name(key), dest=key, type=_float, default=argparse.SUPPRESS, help=text)
    return p


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    family = get_family(args.family)
    needed = set(bounds_for(family).keys())
    keys = {f"{name}_{p}" for name in _constant_specs() for p in PLAYERS}
    flags = {k: v for k, v in vars(args).items() if k in keys}
    foreign = sorted(set(flags) - needed)
    if foreign:
        raise TheoryInputError(f"{flag_name(foreign[0])} is not a constant of family {family.name!r} "
                               f"(it uses: {', '.join(family.constants)})")
    player_flags = {p: v for p in PLAYERS if (v := getattr(args, f"epsilon_{p}")) is not None}
    if args.constants is not None:
        from theory.schema import load_constants

        file = load_constants(args.constants)
        constants = resolve_constants(family, flags, file.values, args.constants)
        epsilon = resolve_epsilons(family, args.epsilon, file.epsilon_players, args.constants,
                                   player_flags=player_flags)
    else:
        preset = args.preset or DEFAULT_PRESET
        file = load_measured(preset)
        where = f"theory/measured/{preset}.json"
        constants = resolve_constants(family, flags, defaults=file.values,
                                      defaults_label=f"measured on preset {preset} ({where})")
        epsilon = resolve_epsilons(family, args.epsilon, defaults=file.epsilon_players,
                                   defaults_label=f"the ε the {preset} reference run reached ({where})",
                                   player_flags=player_flags)
    batch_sizes = DEFAULT_BATCH_SIZES if args.batch_sizes is None else args.batch_sizes
    try:
        analysis = analyse(family, constants, epsilon, batch_sizes)
    except UnreachableTarget as exc:
        raise UnreachableTarget(f"{exc}; {_epsilon_sources(epsilon)}", exc.min_epsilon) from None
    noise_scale, preconditioned = file.noise_scale, file.noise_scale_preconditioned

    from theory import render

    if args.plot:
        from theory.plot import plot_analysis

        try:
            plot_analysis(analysis, args.plot)
        except (OSError, ValueError) as exc:
            raise TheoryInputError(f"cannot write plot {args.plot}: {exc}") from None
    if args.json:
        print(json.dumps(render.to_json(analysis, noise_scale, preconditioned), indent=2, allow_nan=False))
    elif args.latex:
        print(render.to_latex(analysis))
    else:
        print(render.to_text(analysis, show_proofs=args.proofs, noise_scale=noise_scale,
                             noise_scale_preconditioned=preconditioned))
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0


def _epsilon_sources(epsilon: dict[str, ConstantValue]) -> str:
    """Where the targets came from, for an error: "ε is from S", or per player when they differ."""
    if epsilon["D"].source == epsilon["G"].source:
        return f"ε is from {epsilon['D'].source}"
    return ", ".join(f"ε_{p} is from {epsilon[p].source}" for p in PLAYERS)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(argv)
    except TheoryInputError as exc:
        print(f"theory.critical: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
