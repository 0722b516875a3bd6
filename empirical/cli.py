"""What the empirical CLIs share: an argument parser whose errors are one line, and one flag per config field."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import fields
from typing import NoReturn

from empirical.config import TrainConfig


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag prints one line (no usage block) and exits with status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


_NONE = object()  # what an optional field's flag parses "none" to: reset the field to None


def _boolean(text: str) -> bool:
    """A boolean field's flag: true/false (also yes/no, on/off, 1/0)."""
    words = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
    if text.strip().lower() not in words:
        raise ValueError(f"expected true or false, got {text!r}")
    return words[text.strip().lower()]


_boolean.__name__ = "bool"


def _flag_type(annotation: str) -> Callable[[str], object]:
    """The parser of a field's flag; a field that may be None also takes the word "none" (e.g. --data-limit none)."""
    kind = {"int": int, "float": float, "bool": _boolean}.get(annotation.replace(" | None", ""), str)
    if not annotation.endswith("| None"):
        return kind

    def parse(text: str) -> object:
        return _NONE if text.strip().lower() == "none" else kind(text)

    parse.__name__ = kind.__name__  # argparse names it in "invalid int value: ..."
    return parse


ENTRY_FIELDS = ("entry", "entry_params")  # set by the sweep's own --entry and --set flags (empirical/entry.py)


def add_config_flags(parser: argparse.ArgumentParser, exclude: tuple[str, ...] = ()) -> None:
    """One flag per TrainConfig field (--lr-d, --eval-every, ...), None unless given; listed in the epilog. The
    user-entry fields get none: only the sweep runs a user's function, with its own flags."""
    names = []
    for f in fields(TrainConfig):
        if f.name in exclude or f.name in ENTRY_FIELDS:
            continue
        flag = "--" + f.name.replace("_", "-")
        # A boolean field's flag alone means true (--g-fresh-z); it also takes a value (--floor false).
        bare = {"nargs": "?", "const": True} if str(f.type) == "bool" else {}
        parser.add_argument(flag, dest=f.name, type=_flag_type(str(f.type)), default=None, help=argparse.SUPPRESS,
                            **bare)
        names.append(flag)
    parser.epilog = (
        "Config flags (defaults from the preset): " + " ".join(names) + ". A field that may be unset takes "
        "'none' (--data-limit none); a true/false field's flag alone means true (--g-fresh-z). --lr-d or --lr-g "
        "without --lr-table drops the preset's learning-rate table: explicit rates win, for every optimizer."
    )


def config_overrides(args: argparse.Namespace) -> dict:
    """The config fields given on the command line. Explicit --lr-d/--lr-g without --lr-table also set lr_table to
    None, so the given rates are used instead of a preset's per-optimizer table (which would refuse them)."""
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    if {"lr_d", "lr_g"} & given.keys() and "lr_table" not in given:
        given["lr_table"] = None
    return {name: None if value is _NONE else value for name, value in given.items()}


def fail(prog: str, message: object, status: int = 2) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return status
