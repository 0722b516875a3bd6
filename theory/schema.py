"""The constants JSON file: what the numerical module writes and ``theory.critical --constants`` reads.

Format (docs/constants-schema.md)::

    {
      "schema": "ttur-constants/1",
      "constants": {
        "alpha_D": 0.0002,
        "sigma2_D": {"value": 12.3, "interval": [10.1, 14.9], "method": "per-sample", "n": 8},
        ...
      },
      "epsilon": {"sgd": {"value": 0.21, "players": {"D": 0.12, "G": 0.21}, "method": "mean ||grad||^2"}},
      "noise_scale": {"D": {"value": 40.2, "interval": [31.0, 52.7], "n": 8,
                            "preconditioned": {"value": 55.1, "interval": [41.0, 70.3], "n": 8}}, "G": 12.5},
      "source": {"preset": "ring8", "checkpoint": "first-target", "seed": 0}
    }

A constant is a number or an object with a numeric ``value`` and optional ``interval`` [lo, hi] (lo <= value
<= hi), ``method`` (how it was estimated) and ``n`` (number of repeated estimates). ``source`` is free-form
provenance. Keys are ``<name>_D`` / ``<name>_G`` with ``<name>`` a known constant; anything else is refused.
The optional ``epsilon`` (registered family -> the ε the measured run reached, in that family's units) and
``noise_scale`` (player -> McCandlish's B_simple = tr Σ / ||G||²) hold entries of the same form, each > 0.
An ``epsilon`` entry may also give each player's own ε, ``"players": {"D": ε_D, "G": ε_G}`` (both, each > 0):
the bound asks each player P to reach its own ε_P², so the ε_P the run reached per player is the target that
matches it; ``value`` is then the single ε for readers that take one (the writer's choice, usually the larger).
An entry without ``players`` means ε_D = ε_G = value (:attr:`ConstantsFile.epsilon_players` says so for every
family). A ``noise_scale`` entry in object form may also hold ``"preconditioned"``: an entry of the same form
(value > 0, no further nesting), B_noise,H = tr(HΣ) / GᵀHG, the noise scale in the metric H = diag(1/(√v̂ + eps))
an Adam-type optimizer steps in (:attr:`ConstantsFile.noise_scale_preconditioned`); SGD-type runs have none.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from theory.constants import CATALOGUE, PLAYERS
from theory.errors import TheoryInputError
from theory.families import FAMILIES

SCHEMA = "ttur-constants/1"


@dataclass(frozen=True)
class ConstantsFile:
    values: dict[str, float]
    details: dict[str, dict[str, Any]] = field(default_factory=dict)  # interval / method / n, when given
    source: dict[str, Any] = field(default_factory=dict)
    epsilon: dict[str, float] = field(default_factory=dict)  # family -> the ε the measured run reached
    epsilon_details: dict[str, dict[str, Any]] = field(default_factory=dict)  # interval / method / n / players
    noise_scale: dict[str, float] = field(default_factory=dict)  # "D" / "G" -> B_simple = tr Σ / ||G||²
    noise_scale_details: dict[str, dict[str, Any]] = field(default_factory=dict)  # with "preconditioned" if any

    @property
    def noise_scale_preconditioned(self) -> dict[str, float]:
        """"D" / "G" -> B_noise,H = tr(HΣ) / GᵀHG in the optimizer's metric, for the players whose entry has one
        (its interval / method / n: ``noise_scale_details[p]["preconditioned"]``)."""
        return {p: d["preconditioned"]["value"] for p, d in self.noise_scale_details.items()
                if "preconditioned" in d}

    @property
    def epsilon_players(self) -> dict[str, dict[str, float]]:
        """family -> {"D": ε_D, "G": ε_G}: the entry's ``players`` where given, else ε_D = ε_G = its value."""
        out = {}
        for family, value in self.epsilon.items():
            players = self.epsilon_details.get(family, {}).get("players")
            out[family] = {p: float(players[p]) for p in PLAYERS} if players else {p: value for p in PLAYERS}
        return out


def known_keys() -> set[str]:
    names = set(CATALOGUE)
    for family in FAMILIES.values():
        names.update(family.constants)
    return {f"{n}_{p}" for n in names for p in PLAYERS}


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def parse_constants(doc: Any, label: str) -> ConstantsFile:
    """Validate a decoded constants document; every problem is a one-line :class:`TheoryInputError`."""
    where = f"constants file {label}"
    if not isinstance(doc, dict):
        raise TheoryInputError(f"{where}: top level must be a JSON object")
    if doc.get("schema") != SCHEMA:
        raise TheoryInputError(f"{where}: \"schema\" must be {SCHEMA!r}, got {doc.get('schema')!r}")
    consts = doc.get("constants")
    if not isinstance(consts, dict) or not consts:
        raise TheoryInputError(f"{where}: \"constants\" must be a non-empty object of name -> value")
    unknown = sorted(set(consts) - known_keys())
    if unknown:
        raise TheoryInputError(f"{where}: unknown constants {', '.join(unknown)} "
                               "(names are <constant>_D or <constant>_G, see docs/constants-schema.md)")
    values, details = _entries(consts, where)
    source = doc.get("source", {})
    if not isinstance(source, dict):
        raise TheoryInputError(f"{where}: \"source\" must be an object")
    epsilon, epsilon_details = _section(doc, "epsilon", "family", set(FAMILIES), where, players=True)
    noise, noise_details = _section(doc, "noise_scale", "player", set(PLAYERS), where, preconditioned=True)
    return ConstantsFile(values=values, details=details, source=source, epsilon=epsilon,
                         epsilon_details=epsilon_details, noise_scale=noise, noise_scale_details=noise_details)


def _entry(key: str, entry: Any, where: str, players: bool = False,
           preconditioned: bool = False) -> tuple[float, dict[str, Any]]:
    """One entry (a number, or {value, interval, method, n}, and with ``players`` also {"players": {"D": x,
    "G": y}}, with ``preconditioned`` also {"preconditioned": an entry > 0}) -> (value, the other fields, a
    preconditioned entry as {"value": v, ...its other fields}); else one-line error."""
    extra: dict[str, Any] = {}
    if isinstance(entry, dict):
        extra = {k: v for k, v in entry.items() if k != "value"}
        allowed = {"interval", "method", "n"} | ({"players"} if players else set()) | (
            {"preconditioned"} if preconditioned else set())
        bad = sorted(set(extra) - allowed)
        if bad:
            raise TheoryInputError(f"{where}: {key} has unknown fields {', '.join(bad)}")
        entry = entry.get("value")
    if not _number(entry):
        raise TheoryInputError(f"{where}: {key} must be a finite number, got {entry!r}")
    if "interval" in extra:
        iv = extra["interval"]
        if not (isinstance(iv, list) and len(iv) == 2 and all(map(_number, iv)) and iv[0] <= entry <= iv[1]):
            raise TheoryInputError(f"{where}: {key} interval must be [lo, hi] with lo <= value <= hi, got {iv!r}")
    if "n" in extra and not (isinstance(extra["n"], int) and not isinstance(extra["n"], bool) and extra["n"] >= 1):
        raise TheoryInputError(f"{where}: {key} n must be a positive integer, got {extra['n']!r}")
    if "method" in extra and not isinstance(extra["method"], str):
        raise TheoryInputError(f"{where}: {key} method must be a string")
    if "players" in extra:
        extra["players"] = _players(key, extra["players"], where)
    if "preconditioned" in extra:
        value, details = _entry(f"{key}.preconditioned", extra["preconditioned"], where)
        if not value > 0:
            raise TheoryInputError(f"{where}: {key}.preconditioned must be > 0, got {value:g}")
        extra["preconditioned"] = {"value": value, **details}
    return float(entry), extra


def _players(key: str, section: Any, where: str) -> dict[str, float]:
    """A per-player {"D": x, "G": y}: both players, each a positive finite number; else one-line error."""
    if not (isinstance(section, dict) and set(section) == set(PLAYERS)):
        got = sorted(section) if isinstance(section, dict) else section
        raise TheoryInputError(f"{where}: {key} players must be {{\"D\": value, \"G\": value}}, got {got!r}")
    for p in PLAYERS:
        x = section[p]
        if not (_number(x) and x > 0):
            raise TheoryInputError(f"{where}: {key} players.{p} must be a positive finite number, got {x!r}")
    return {p: float(section[p]) for p in PLAYERS}


def _entries(
    section: Mapping[str, Any], where: str, prefix: str = "", positive: bool = False, players: bool = False,
    preconditioned: bool = False,
) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """Validate every entry of a section: (key -> value, key -> interval/method/n (/players/preconditioned) where
    given)."""
    values, details = {}, {}
    for key, entry in section.items():
        value, extra = _entry(prefix + key, entry, where, players, preconditioned)
        if positive and not value > 0:
            raise TheoryInputError(f"{where}: {prefix}{key} must be > 0, got {value:g}")
        values[key] = value
        if extra:
            details[key] = extra
    return values, details


def _section(
    doc: Mapping[str, Any], name: str, what: str, known: set[str], where: str, players: bool = False,
    preconditioned: bool = False,
) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """An optional top-level section ``name`` of ``what`` -> positive entry, keys in ``known`` (entries may have
    per-player values when ``players``, a nested "preconditioned" entry when ``preconditioned``)."""
    section = doc.get(name, {})
    if not isinstance(section, dict):
        raise TheoryInputError(f"{where}: \"{name}\" must be an object of {what} -> value")
    unknown = sorted(set(section) - known)
    if unknown:
        raise TheoryInputError(f"{where}: \"{name}\" has unknown {what} {', '.join(unknown)} "
                               f"(known: {', '.join(sorted(known))})")
    return _entries(section, where, prefix=f"{name}.", positive=True, players=players,
                    preconditioned=preconditioned)


def load_constants(path: str | Path) -> ConstantsFile:
    """Read and validate a constants file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TheoryInputError(f"cannot read constants file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TheoryInputError(f"constants file {path} is not UTF-8 text") from None
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise TheoryInputError(f"constants file {path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except ValueError as exc:
        raise TheoryInputError(f"constants file {path}: {exc}") from None
    return parse_constants(doc, str(path))


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a finite number")


Entry = float | Mapping[str, Any]  # a number, or {value, interval, method, n}


def constants_document(
    values: Mapping[str, Entry],
    source: Mapping[str, Any] | None = None,
    *,
    epsilon: Mapping[str, Entry] | None = None,
    noise_scale: Mapping[str, Entry] | None = None,
) -> dict[str, Any]:
    """The JSON document for ``values`` (and the optional ``epsilon`` and ``noise_scale`` sections, written only
    when given); validated before return."""
    doc: dict[str, Any] = {"schema": SCHEMA, "constants": dict(values)}
    for name, section in (("epsilon", epsilon), ("noise_scale", noise_scale)):
        if section is not None:
            doc[name] = dict(section) if isinstance(section, Mapping) else section  # a non-object: refused below
    doc["source"] = dict(source or {})
    parse_constants(json.loads(json.dumps(doc)), "(being written)")
    return doc


def write_constants(
    path: str | Path,
    values: Mapping[str, Entry],
    source: Mapping[str, Any] | None = None,
    *,
    epsilon: Mapping[str, Entry] | None = None,
    noise_scale: Mapping[str, Entry] | None = None,
) -> None:
    """Write a validated constants file atomically (a reader never sees half a file)."""
    path = Path(path)
    doc = constants_document(values, source, epsilon=epsilon, noise_scale=noise_scale)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)
