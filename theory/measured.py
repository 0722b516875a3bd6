"""Constants measured on the embedded presets, shipped with theory: theory/measured/<preset>.json.

Each file is what ``python -m empirical.constants --preset <preset> --out theory/measured/<preset>.json`` wrote
(``make constants`` regenerates all of them); theory only reads them, so it still needs no torch.
"""

from __future__ import annotations

from pathlib import Path

from theory.errors import TheoryInputError
from theory.schema import ConstantsFile, load_constants

FOLDER = Path(__file__).resolve().parent / "measured"
DEFAULT_PRESET = "ring8"


def measured_presets() -> list[str]:
    """The presets that have a shipped constants file."""
    return sorted(p.stem for p in FOLDER.glob("*.json"))


def measured_path(preset: str) -> Path:
    return FOLDER / f"{preset}.json"


def load_measured(preset: str) -> ConstantsFile:
    """The shipped constants of `preset`; a one-line error names the presets that have one."""
    path = measured_path(preset)
    if not path.is_file():
        raise TheoryInputError(f"no measured constants for preset {preset!r} (have: {', '.join(measured_presets())})")
    return load_constants(path)
