"""What the empirical CLIs share: an argument parser whose errors are one line, and one flag per config field."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from typing import NoReturn

from empirical.config import TrainConfig


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag prints one line (no usage block) and exits with status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_config_flags(parser: argparse.ArgumentParser, exclude: tuple[str, ...] = ()) -> None:
    """One flag per TrainConfig field (--lr-d, --eval-every, ...), None unless given; listed in the epilog."""
    names = []
    for f in fields(TrainConfig):
        if f.name in exclude:
            continue
        kind = {"int": int, "float": float}.get(str(f.type).replace(" | None", ""), str)
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(flag, dest=f.name, type=kind, default=None, help=argparse.SUPPRESS)
        names.append(flag)
    parser.epilog = "Config flags (defaults from the preset): " + " ".join(names)


def config_overrides(args: argparse.Namespace) -> dict:
    """The config fields given on the command line."""
    return {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}


def fail(prog: str, message: object, status: int = 2) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return status
