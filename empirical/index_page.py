"""The index page of a sweep with several groups: the laws of b* first, then one row per group with a link to it.

A folder swept at several targets, learning-rate scales or optimizers has a long report.md (one section per
group); several folders, one per data noise scale, have one report each. index.md is the page a person opens
first: the scaling-law figure and exponents (empirical/scaling.py), then every group's critical batch size in one
table, each row linking to the group's section of its folder's report.md. Pure text from analyses (no files read).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from empirical.report import GroupAnalysis


def anchor(g: GroupAnalysis) -> str:
    """The HTML id of a group's section in report.md (what index.md links to)."""
    text = f"g-{g.optimizer}-x{g.lr_scale:g}-fid{g.target_fid:g}-s{g.data_scale:g}"
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text)


@dataclass(frozen=True)
class Entry:
    """One group of the index: the folder its report lies in (relative to the index) and its analysis."""

    report: str  # path of the report.md that holds the group's section, relative to index.md
    group: GroupAnalysis


def _interval(i) -> str:
    return "—" if i is None else f"[{i.low:.3g}, {i.high:.3g}]"


def _value(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g}"


def group_rows(entries: Sequence[Entry], links: bool = True) -> list[str]:
    """The groups' table: where each sits (target, optimizer, α, data scale), how many runs reached, its b*;
    `links`: a last column linking each to its section of its report."""
    several_scales = len({e.group.data_scale for e in entries}) > 1
    head = "| target | optimizer | α_D, α_G |" + (" data scale s |" if several_scales else "") + \
        " runs reached | b*_measured | 90% interval | b*_fit = 2c | 90% interval | b*_floor | 90% interval |" + \
        (" |" if links else "")
    rule = "|---:|---|---|" + ("---:|" if several_scales else "") + "---:|" * 7 + ("---|" if links else "")
    lines = [head, rule]
    for e in sorted(entries, key=lambda e: (e.group.optimizer, e.group.data_scale, e.group.lr_scale,
                                            -e.group.target_fid)):
        g = e.group
        reached = sum(r.status == "reached" for r in g.rows)
        floor = g.floor and g.floor.prediction
        floor_iv = g.floor and g.floor.boot and g.floor.boot.b_star
        lines.append(
            f"| {g.target_fid:g} | {g.optimizer} | {g.lr_d:g}, {g.lr_g:g} |"
            + (f" {g.data_scale:g} |" if several_scales else "")
            + f" {reached}/{len(g.rows)} | {'—' if g.b_star is None else g.b_star} | {_interval(g.boot.b_star)} | "
            f"{_value(g.fit and g.fit.b_star)} | {_interval(g.boot.b_star_fit) if g.fit else '—'} | "
            f"{_value(floor and floor.b_star)} | {_interval(floor_iv) if floor else '—'} |"
            + (f" [details]({e.report}#{anchor(g)}) |" if links else ""))
    return lines


def render_index(title: str, intro: str, laws: Sequence[str], entries: Sequence[Entry]) -> str:
    """index.md: the title and what was swept, the laws section (figure and exponents), then the groups."""
    lines = [f"# {title}", "", intro, "", *laws, "## The groups", "",
             "Every group's critical batch size; **details** opens its section of the report (K and SFO per batch "
             "size, the fit, the floor, the theory's rows). A b* of — means no batch size had every seed reach "
             "that target (the grid lies below the pole there).", "", *group_rows(entries), ""]
    return "\n".join(lines)
