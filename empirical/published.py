"""The tables, numbers and figures that README.md and docs/ publish: rendered by the code from committed results.

    python -m empirical.published --snapshot out   # after `make demo`: copy its sweep stores into docs/results/
    python -m empirical.published --snapshot runs/lqgan-amsgrad    # one more sweep folder, published by its name
    python -m empirical.published --write          # re-render every marked block, value and figure (make docs)
    python -m empirical.published --check          # exit 1 naming each marked place that differs (the tests)

Numbers typed by hand into prose drift from what the code gives. Here every published number lives between markers
that this module fills in, from the sweep stores kept in docs/results/ (gzipped SQLite, exactly what `make demo`
wrote), through the same analysis the report uses. Two kinds of markers, invisible when the markdown is rendered:

    <!-- begin NAME -->            a block: the table or text that BLOCK_KINDS' renderer gives for NAME = PRESET:KIND
    ...
    <!-- end NAME -->
    <!--v NAME-->1.06<!--/v-->     one value inline, from VALUES

A test renders both from the committed stores and compares with the files, and another re-trains some of the
stores' runs and compares them with the stored ones, so a published number cannot silently go stale.
"""

from __future__ import annotations

import gzip
import math
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from empirical.cli import OneLineParser, fail
from empirical.errors import EmpiricalInputError
from empirical.measured import restart_b_star

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
PAGES = ("README.md", "docs/findings.md", "docs/control-game.md", "docs/benchmarks.md", "docs/theory.md",
         "docs/constants.md")
# The demo's presets, whose stores the published numbers come from (docs/results/PRESET.db.gz).
PUBLISHED_PRESETS = ("lqgan", "gauss-mlp")
BOOTSTRAP = 1000  # the report's default: the published intervals are the report's own

_BLOCK = re.compile(r"(<!-- begin (?P<name>[\w:.-]+) -->\n)(?P<body>.*?)(<!-- end (?P=name) -->)", re.S)
_VALUE = re.compile(r"(<!--v (?P<name>[\w:.-]+)-->)(?P<body>.*?)(<!--/v-->)", re.S)
# A theory.critical output block (tests/test_readme.py checks the same): the command's current stdout.
_CLI = re.compile(r"(<!-- output of: python -m theory\.critical (?P<name>.*?) -->\n```text\n\$ [^\n]*\n)"
                  r"(?P<body>.*?)(\n```)", re.S)


@dataclass(frozen=True)
class Rendered:
    """One preset's report, rendered from its committed store."""

    preset: str
    markdown: str
    groups: list  # empirical.report.GroupAnalysis
    theory: dict  # (optimizer, lr_scale) -> list[TheoryPrediction]
    noise: object  # NoisePrediction | None
    measures: list  # the main group's empirical.theory_measure.MeasureAnalysis list


@contextmanager
def _unpacked(preset: str, results: Path) -> Iterator[Path]:
    """A scratch sweep folder holding the committed store of `preset`."""
    source = results / f"{preset}.db.gz"
    if not source.is_file():
        raise EmpiricalInputError(f"{source} is missing: run `make demo` then `python -m empirical.published "
                                  "--snapshot out`")
    with tempfile.TemporaryDirectory(prefix=f"published-{preset}-") as tmp:
        folder = Path(tmp)
        with gzip.open(source, "rb") as src, open(folder / "sweep.db", "wb") as dst:
            shutil.copyfileobj(src, dst)
        yield folder


@cache
def render(preset: str, results: Path = RESULTS) -> Rendered:
    """The report markdown of `preset`'s committed store, as `python -m empirical.report` writes it but without
    figures (the published blocks leave them out), analysed once per process."""
    from empirical import report

    with _unpacked(preset, results) as folder:
        a = report.analyse_folder(folder, n_resamples=BOOTSTRAP)
    markdown = report.render_markdown(Path(f"out/{preset}"), a.preset, a.base, a.groups, a.theory, {}, a.choice,
                                      a.noise, a.measures)
    main = a.main_group
    return Rendered(preset, markdown, a.groups, a.theory, a.noise, a.measures[(main.optimizer, main.lr_scale)])


def report_figures(preset: str, results: Path = RESULTS) -> Path:
    """A scratch folder holding the full report of `preset` (figures included), for the published figures."""
    from empirical import report

    keep = Path(tempfile.mkdtemp(prefix=f"published-{preset}-"))
    with _unpacked(preset, results) as folder:
        report.write_report(folder, n_resamples=BOOTSTRAP)
        for path in folder.iterdir():
            if path.suffix == ".png":
                shutil.copy(path, keep / path.name)
    return keep


def _table_starting(markdown: str, header: str) -> str:
    """The markdown table whose first line starts with `header`."""
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(header):
            end = i
            while end < len(lines) and lines[end].startswith("|"):
                end += 1
            return "\n".join(lines[i:end])
    raise EmpiricalInputError(f"the report has no table starting with {header!r}")


def _k_table(preset: str) -> str:
    return _table_starting(render(preset).markdown, "| b | runs reached")


def _b_star_table(preset: str) -> str:
    return _table_starting(render(preset).markdown, "| critical batch size")


def _verdict(preset: str) -> str:
    """The report's plain statements under the K table (the bullet list right after it)."""
    md = render(preset).markdown
    table = _k_table(preset)
    after = md[md.index(table) + len(table):].lstrip("\n").splitlines()
    return "\n".join(line for line in _takewhile_bullets(after))


def _takewhile_bullets(lines: Sequence[str]) -> Iterator[str]:
    for line in lines:
        if not line.startswith("- "):
            return
        yield line


def _section(preset: str, heading: str) -> str:
    """The report's sections whose headings start with `heading` (consecutive ones together, each keeping its
    heading after the first), up to the next heading of their level or above; figures left out."""
    lines = render(preset).markdown.splitlines()

    def level(line: str) -> int:
        return len(line) - len(line.lstrip("#")) if line.startswith("#") else 0

    def matches(line: str) -> bool:
        return level(line) > 0 and line.lstrip("#").strip().startswith(heading)

    start = next((i for i, line in enumerate(lines) if matches(line)), None)
    if start is None:
        raise EmpiricalInputError(f"the {preset} report has no section {heading!r}")
    depth, end = level(lines[start]), start + 1
    while end < len(lines) and not (0 < level(lines[end]) <= depth and not matches(lines[end])):
        end += 1
    body = [("#" + line if 0 < level(line) else line) for line in lines[start + 1:end]]  # one level down
    return "\n".join(line for line in body if not line.startswith("![")).strip("\n")


# A block is named PRESET:KIND; PRESET is a committed store (docs/results/PRESET.db.gz).
BLOCK_KINDS: dict[str, Callable[[str], str]] = {
    "k-table": _k_table,
    "b-star-table": _b_star_table,
    "verdict": _verdict,
    "theory-measure": lambda p: _section(p, "The theory's own measure"),
}


# ---------------------------------------------------------------------------------------------------------------
# Blocks from the shipped constants files (theory/measured/*.json): cheap, no training


def _pair(values: dict, key: str, digits: str = ".3g") -> str:
    got = [values.get(f"{key}_{p}") for p in ("D", "G")]
    return "—" if None in got else ", ".join(format(x, digits) for x in got)


def _epsilon_pair(file, families: tuple[str, ...]) -> str:
    for family in families:
        if family in file.epsilon:
            e = file.epsilon_players[family]
            return f"{e['D'] ** 2:.3g}, {e['G'] ** 2:.3g}"
    skipped = file.source.get("epsilon_skipped") or {}
    why = next((skipped[f] for f in families if f in skipped), "not measured")
    return f"none ({why})"


def constants_table() -> str:
    """docs/constants.md's table of every shipped constants file: the reference run and what it measured."""
    from theory.measured import load_measured, measured_presets

    lines = ["| preset | optimizer, b | K | σ²_D, σ²_G | L_D, L_G | B_simple D, G | ε² (squared gradient norm) D, G "
             "| ε² (VI gap) D, G | estimates took |",
             "|---|---|---:|---|---|---|---|---|---:|"]
    for preset in measured_presets():
        f = load_measured(preset)
        config = f.source["preset_config"]
        k = f.source.get("steps_to_target")
        noise = ", ".join(f"{f.noise_scale[p]:.3g}" for p in ("D", "G")) if set(f.noise_scale) == {"D", "G"} else "—"
        lines.append(f"| {preset} | {config['optimizer']}, {config['batch_size']} | {k if k is not None else '—'} | "
                     f"{_pair(f.values, 'sigma2')} | {_pair(f.values, 'smoothness')} | {noise} | "
                     f"{_epsilon_pair(f, ('sgd-frozen', 'sgd'))} | {_epsilon_pair(f, ('adam', 'amsgrad-l1'))} | "
                     f"{f.source.get('estimation_seconds', '—')} s |")
    return "\n".join(lines)


_NOT_CERTIFIABLE = re.compile(r"ε_?(?P<p>[DG])?² = (?P<e>[^ ]+) <= C_(?P<q>[DG]) = (?P<c>[^ ,]+)")


def _family_cell(preset: str, family_name: str) -> str:
    """b*_D, b*_G, **joint** of one family at the preset's own α and ε, or why there is none, in a few words."""
    from empirical.report import in_scope
    from theory.analysis import analyse, resolve_constants, resolve_epsilons
    from theory.errors import TheoryInputError
    from theory.families import get_family
    from theory.measured import load_measured

    f, family = load_measured(preset), get_family(family_name)
    optimizer = f.source["preset_config"]["optimizer"]
    if not in_scope(family_name, optimizer):
        return f"out of scope ({optimizer} runs)"
    try:
        values = resolve_constants(family, {}, f.values, "file")
        eps = resolve_epsilons(family, None, f.epsilon_players, "file")
        if any(e.source.startswith("default") for e in eps.values()):
            return "no ε (the run reached none in this measure)"
        a = analyse(family, values, eps)
    except TheoryInputError as error:
        text = str(error)
        m = _NOT_CERTIFIABLE.search(text)
        if m:
            return f"not certifiable: C_{m['q']} = {float(m['c']):.3g} > ε_{m['q']}² = {float(m['e']):.3g}"
        if "alpha_D*smoothness_D" in text or "alpha_G*smoothness_G" in text:
            worst = max(("D", "G"), key=lambda p: f.values[f"alpha_{p}"] * f.values[f"smoothness_{p}"])
            product = f.values[f"alpha_{worst}"] * f.values[f"smoothness_{worst}"]
            return f"not valid: α_{worst}·L_{worst} = {product:.3g} > 1"
        return text.split(":")[0]
    b = {p: a.players[p].b_star for p in ("D", "G")}
    return f"{b['D']:.3g}, {b['G']:.3g}, **{a.joint.b_star:.3g}**"


def predictions_table() -> str:
    """docs/constants.md's table: what each family predicts from each shipped file, at its own α and ε."""
    from theory.measured import load_measured, measured_presets

    families = ("sgd-frozen", "sgd", "adam", "amsgrad-l1")
    lines = ["| preset (optimizer) | " + " | ".join(f"`{x}` b*: D, G, joint" for x in families)
             + " | 2·B_simple D, G |", "|---|" + "---|" * len(families) + "---:|"]
    for preset in measured_presets():
        f = load_measured(preset)
        noise = (", ".join(f"{2 * f.noise_scale[p]:.3g}" for p in ("D", "G"))
                 if set(f.noise_scale) == {"D", "G"} else "—")
        cells = " | ".join(_family_cell(preset, x) for x in families)
        lines.append(f"| {preset} ({f.source['preset_config']['optimizer']}) | {cells} | {noise} |")
    return "\n".join(lines)


def _h_by_batch() -> list[dict]:
    import json

    files = sorted(RESULTS.glob("h-by-batch/*.json"),
                   key=lambda x: (x.name.rsplit("-b", 1)[0], int(x.stem.rsplit("-b", 1)[1])))
    return [json.loads(path.read_text(encoding="utf-8")) for path in files]


def _h_min(preset: str) -> float:
    """The smallest preconditioner entry of either player over the batch sizes measured for `preset`."""
    return min(d["constants"][f"h_min_{p}"]["value"] for d in _h_by_batch() if d["source"]["preset"] == preset
               for p in ("D", "G"))


def h_by_batch_table() -> str:
    """The preconditioner range h_min, h_max per player at several batch sizes (docs/results/h-by-batch/)."""
    lines = ["| preset | b | h_min,D | h_max,D | h_min,G | h_max,G |", "|---|---:|---:|---:|---:|---:|"]
    for doc in _h_by_batch():
        c, src = doc["constants"], doc["source"]
        cells = " | ".join(f"{c[f'{h}_{p}']['value']:.3g}" for p in ("D", "G") for h in ("h_min", "h_max"))
        lines.append(f"| {src['preset']} | {src['preset_config']['batch_size']} | {cells} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class FloorRow:
    preset: str
    optimizer: str
    family: str
    C: dict  # player -> the family's floor C_P
    e2: dict  # player -> ε_P² the run reached, nan when it reached none in this measure
    error: str | None = None

    @property
    def ratio(self) -> float:
        """C/ε² of the worse player: above 1 the bound cannot certify what the run did."""
        return max(self.C[p] / self.e2[p] for p in ("D", "G"))


@cache
def floor_rows() -> tuple[FloorRow, ...]:
    """Each in-scope SGD and Adam-type family's floor C_P beside the ε_P² its measure reached, per shipped file."""
    from empirical.report import in_scope
    from theory.analysis import ConstantValue, analyse, resolve_constants, resolve_epsilons
    from theory.errors import TheoryInputError
    from theory.families import get_family
    from theory.measured import load_measured, measured_presets

    rows = []
    for preset in measured_presets():
        f = load_measured(preset)
        optimizer = f.source["preset_config"]["optimizer"]
        for name in ("sgd", "adam", "amsgrad-l1"):
            family = get_family(name)
            if not in_scope(name, optimizer):
                continue
            try:
                values = resolve_constants(family, {}, f.values, "file")
                floors = analyse(family, values, ConstantValue("epsilon", 1e6, "C does not depend on ε")).players
            except TheoryInputError as error:
                rows.append(FloorRow(preset, optimizer, name, {}, {}, str(error).split(":")[0]))
                continue
            eps = resolve_epsilons(family, None, f.epsilon_players, "file")
            known = not any(e.source.startswith("default") for e in eps.values())
            rows.append(FloorRow(preset, optimizer, name, {p: floors[p].C for p in ("D", "G")},
                                 {p: eps[p].value ** 2 if known else math.nan for p in ("D", "G")}))
    return tuple(rows)


def _floor(preset: str, family: str) -> FloorRow:
    return next(r for r in floor_rows() if r.preset == preset and r.family == family)


def floors_table() -> str:
    """The floors against ε² (floor_rows) as a table."""
    lines = ["| preset (optimizer) | family | C_D | ε_D² | C_G | ε_G² | C/ε², the worse player |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in floor_rows():
        if r.error:
            lines.append(f"| {r.preset} ({r.optimizer}) | `{r.family}` | {r.error} | | | | |")
            continue
        lines.append(f"| {r.preset} ({r.optimizer}) | `{r.family}` | {r.C['D']:.3g} | {_fmt(r.e2['D'])} | "
                     f"{r.C['G']:.3g} | {_fmt(r.e2['G'])} | {_fmt(r.ratio)} |")
    return "\n".join(lines)


SPECIAL_BLOCKS: dict[str, Callable[[], str]] = {
    "constants:floors": floors_table,
    "constants:table": constants_table,
    "constants:predictions": predictions_table,
    "constants:h-by-batch": h_by_batch_table,
}


def committed_presets(results: Path = RESULTS) -> list[str]:
    """The presets whose sweep store is committed under docs/results."""
    return sorted(path.name.removesuffix(".db.gz") for path in results.glob("*.db.gz"))


def render_block(name: str, where: str = "") -> str:
    """The block NAME = PRESET:KIND; an unknown one is a one-line error naming `where` it was asked for."""
    if name in SPECIAL_BLOCKS:
        return SPECIAL_BLOCKS[name]()
    preset, _, kind = name.rpartition(":")
    if kind not in BLOCK_KINDS or (preset not in committed_presets() and preset not in STORE_SETS):
        raise EmpiricalInputError(f"{where}: unknown block {name!r} (PRESET:KIND, KIND one of {', '.join(BLOCK_KINDS)}"
                                  f", PRESET one of {', '.join([*committed_presets(), *STORE_SETS])})")
    return BLOCK_KINDS[kind](preset)


# ---------------------------------------------------------------------------------------------------------------
# Inline values


def _main_group(preset: str):
    groups = render(preset).groups
    return min(groups, key=lambda g: (abs(math.log(g.lr_scale)), g.optimizer))


def _fmt(x: float, spec: str = ".3g") -> str:
    return "—" if x is None or not math.isfinite(x) else format(x, spec)


def _prediction(preset: str, family: str):
    g = _main_group(preset)
    return next(t for t in render(preset).theory[(g.optimizer, g.lr_scale)] if t.family == family)


def _values() -> dict[str, Callable[[], str]]:
    out: dict[str, Callable[[], str]] = {}
    for p in committed_presets():
        g = lambda p=p: _main_group(p)  # noqa: E731 - a deferred lookup per preset
        out[f"{p}.b_star"] = lambda g=g: str(g().b_star)
        out[f"{p}.b_star.interval"] = lambda g=g: (
            f"[{g().boot.b_star.low:g}, {g().boot.b_star.high:g}]" if g().boot.b_star else "—")
        out[f"{p}.b_star_restart"] = lambda g=g: str(restart_b_star(g().summaries))
        out[f"{p}.b_star_restart.interval"] = lambda g=g: (
            f"[{g().boot.b_star_restart.low:g}, {g().boot.b_star_restart.high:g}]" if g().boot.b_star_restart
            else "—")
        out[f"{p}.floor.restart_ratio"] = lambda g=g: (
            f"{g().floor.prediction.b_star / restart_b_star(g().summaries):.2g}")
        out[f"{p}.noise2.restart_ratio"] = lambda p=p, g=g: (
            f"{2 * render(p).noise.joint / restart_b_star(g().summaries):.2g}")
        out[f"{p}.noise2.fit_ratio"] = lambda p=p, g=g: f"{2 * render(p).noise.joint / g().fit.b_star:.2g}"
        out[f"{p}.fit.c"] = lambda g=g: _fmt(g().fit.c)
        out[f"{p}.fit.r2"] = lambda g=g: f"{g().fit.r2:.2f}"
        out[f"{p}.fit.b_star"] = lambda g=g: _fmt(g().fit.b_star)
        out[f"{p}.floor.b_star"] = lambda g=g: _fmt(g().floor.prediction.b_star)
        out[f"{p}.floor.ratio"] = lambda g=g: f"{g().floor.prediction.b_star / g().b_star:.2f}"
        out[f"{p}.floor.pole"] = lambda g=g: _fmt(g().floor.fit.pole(g().target_fid))
        out[f"{p}.floor.q"] = lambda g=g: f"{g().floor.fit.q:.2g}"
        out[f"{p}.floor.factor"] = lambda g=g: f"{g().floor.prediction.factor:.2f}"
        out[f"{p}.pole_ratio"] = lambda g=g: f"{g().floor.fit.pole(g().target_fid) / g().fit.c:.2g}"
        out[f"{p}.noise.joint"] = lambda p=p: _fmt(render(p).noise.joint)
        out[f"{p}.noise.ratio"] = lambda p=p, g=g: f"{render(p).noise.joint / g().b_star:.2g}"
        out[f"{p}.noise2.ratio"] = lambda p=p, g=g: f"{2 * render(p).noise.joint / g().b_star:.2g}"
    for p in ("lqgan", "gauss-mlp-sgd"):
        out[f"{p}.sgd_frozen.b_star"] = lambda p=p: _fmt(_prediction(p, "sgd-frozen").b_star_joint)
        out[f"{p}.sgd_frozen.ratio"] = lambda p=p: (
            f"{_prediction(p, 'sgd-frozen').b_star_joint / _main_group(p).b_star:.2g}")
    out["lqgan.exact_floor.max_error"] = _exact_floor_error
    for player in ("D", "G"):
        out[f"lqgan.exact.gradient_b.{player}"] = lambda q=player: f"{_exact_lqgan_floor().gradient_b[q]:.3g}"
        out[f"lqgan.exact.template_b.{player}"] = lambda q=player: f"{_exact_lqgan_floor().template_b[q]:.3g}"
    out["lqgan.exact.frozen_slack"] = _frozen_slack
    for preset, family in (("ring8-amsgrad", "adam"), ("ring8-amsgrad", "amsgrad-l1"), ("lqgan-amsgrad", "adam"),
                           ("lqgan-amsgrad", "amsgrad-l1"), ("lqgan", "sgd")):
        out[f"floors.{preset}.{family}.ratio"] = lambda p=preset, f=family: f"{_floor(p, f).ratio:.3g}"
        for player in ("D", "G"):
            out[f"floors.{preset}.{family}.C_{player}"] = (
                lambda p=preset, f=family, q=player: f"{_floor(p, f).C[q]:.2g}")
    out["floors.ring8-amsgrad.drop"] = lambda: (
        f"{_floor('ring8-amsgrad', 'adam').C['G'] / _floor('ring8-amsgrad', 'amsgrad-l1').C['G']:.2g}")
    out["h.lqgan-amsgrad.min"] = lambda: f"{_h_min('lqgan-amsgrad'):.2g}"
    for p in committed_presets():
        for key in ("D", "G", "joint"):
            out[f"{p}.measure.stay.{key}.b_star"] = lambda p=p, key=key: str(_measure(p).stay[key].b_star)
            out[f"{p}.measure.stay.{key}.b_fit"] = lambda p=p, key=key: _fmt(_measure(p).stay[key].fit.b_star)
            out[f"{p}.measure.first.{key}.b_star"] = lambda p=p, key=key: str(_measure(p).k[key].b_star)
        for player in ("D", "G"):
            out[f"{p}.measure.eps2.{player}"] = lambda p=p, q=player: f"{_measure(p).epsilon_sq[q]:.3g}"
            out[f"{p}.measure.drift.{player}"] = lambda p=p, q=player: _drift(p, q)
    return out


@cache
def _exact_lqgan_floor():
    from empirical.benchmarks.lqgan_floor import exact_floor
    from empirical.presets import get_preset

    return exact_floor(get_preset("lqgan"))


def _frozen_slack() -> str:
    """With G frozen, D runs SGD on a λ-strongly convex quadratic: its floor is λα·tr Σ_D/(2 − αλ)/b against the
    template's L·α·σ²/b with L = λ, a factor 2 − αλ (docs/control-game.md)."""
    from empirical.presets import get_preset

    config = get_preset("lqgan")
    return f"{2 - config.lr_d * config.gp_weight:.3g}"


def _measure(preset: str):
    """The first K_ε analysis of the preset's main group (the measure its bound families use)."""
    found = render(preset).measures
    if not found:
        raise EmpiricalInputError(f"the {preset} results hold no theory measure with an ε")
    return found[0]


def _drift(preset: str, player: str) -> str:
    """How far the running mean at the FID hit moves across b: the largest over the smallest median, 'x.x×'."""
    medians = [row.median[player] for row in _measure(preset).mapping if row.median[player] is not None]
    return f"{max(medians) / min(medians):.1f}×"


def _exact_floor_error() -> str:
    """The largest |measured/exact − 1| of the median floor over b >= 16 on lqgan, as a whole percent."""
    g = _main_group("lqgan")
    errors = [abs(g.floor.median(s.batch_size) / float(g.exact_floor.floor(s.batch_size)) - 1)
              for s in g.summaries if s.batch_size >= 16 and g.floor.median(s.batch_size) is not None]
    return f"{math.ceil(100 * max(errors))}%"


# ---------------------------------------------------------------------------------------------------------------
# Scaling laws and the predictor table: sweeps with many groups, analysed with fewer resamples (their intervals
# say so), several stores (one per data noise scale) read as one sweep

LAW_BOOTSTRAP = 200
# A law sweep made of several committed stores (one per data noise scale): its name -> the stores.
STORE_SETS: dict[str, tuple[str, ...]] = {
    "lqgan-noise": ("lqgan-noise-s0.5", "lqgan-noise-s1", "lqgan-noise-s2", "lqgan-noise-s3", "lqgan-noise-s4"),
}


@dataclass(frozen=True)
class Sweep:
    """The groups of one committed sweep (or store set) with each store's preset and base config."""

    name: str
    groups: list  # GroupAnalysis, every store's
    presets: dict[int, tuple[str, object]]  # id(group) -> (preset, base TrainConfig)


@cache
def sweep(name: str, results: Path = RESULTS) -> Sweep:
    """Every group of the committed store NAME (or of STORE_SETS[NAME]), at LAW_BOOTSTRAP resamples."""
    from empirical import report

    groups, presets = [], {}
    for store in STORE_SETS.get(name, (name,)):
        with _unpacked(store, results) as folder:
            a = report.analyse_folder(folder, n_resamples=LAW_BOOTSTRAP)
        groups += a.groups
        presets.update({id(g): (a.preset, a.base) for g in a.groups})
    return Sweep(name, groups, presets)


@cache
def _laws(name: str):
    from empirical import report, scaling

    s = sweep(name)
    base = next(iter(s.presets.values()))[1]
    theory = report.noise_theory(base, [g.data_scale for g in s.groups])
    return scaling.analyse_scaling(s.groups, LAW_BOOTSTRAP, theory=theory)


def _laws_table(name: str) -> str:
    from empirical import scaling

    lines = scaling.markdown(_laws(name), None)[2:]  # without the heading: the page has its own
    lines = [x.replace("90% bootstrap intervals over seeds", f"90% bootstrap intervals over seeds ({LAW_BOOTSTRAP} "
                                                           "resamples)") for x in lines]
    return "\n".join(lines).strip("\n")


def _groups_table(name: str) -> str:
    from empirical import index_page

    return "\n".join(index_page.group_rows([index_page.Entry("", g) for g in sweep(name).groups], links=False))


def _poles_table(name: str) -> str:
    """Why the target law's exponent is what it is: per (optimizer, α, data scale) the floor's decay q (F(b) =
    B_F/b^q + C_F; the template has q = 1), so the pole c_floor ∝ (target − C_F)^(−1/q), the pole's fitted slope
    over the targets, and b*_floor/c_floor (the transient's factor) from the loosest to the tightest target."""
    import numpy as np

    lines = ["| optimizer | α_D | s | floor decay q | −1/q | slope of log c_floor | slope of log b*_floor | "
             "b*_floor / c_floor, loosest → tightest target | b*_fit / c_floor | slope of log b*_fit |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    families: dict[tuple, list] = {}
    for g in sweep(name).groups:
        families.setdefault((g.optimizer, g.lr_d, g.data_scale), []).append(g)
    for (optimizer, alpha, scale), gs in sorted(families.items()):
        gs = sorted((g for g in gs if g.floor and g.floor.fit and g.floor.prediction), key=lambda g: -g.target_fid)
        if len(gs) < 2:
            continue
        fit = gs[0].floor.fit
        x = np.log([g.target_fid - fit.c_f for g in gs])
        poles = [fit.pole(g.target_fid) for g in gs]
        floors = [g.floor.prediction.b_star for g in gs]
        fitted = [(xi, g.fit.b_star) for xi, g in zip(x, gs, strict=True) if g.fit is not None and g.fit.b_star > 0]
        slope_fit = (f"{np.polyfit([a for a, _ in fitted], np.log([b for _, b in fitted]), 1)[0]:.2f}"
                     if len(fitted) > 1 else "—")
        over = [g.fit.b_star / p for g, p in zip(gs, poles, strict=True) if g.fit is not None]
        fit_over = f"{min(over):.2f}–{max(over):.2f}" if over else "—"
        lines.append(f"| {optimizer} | {alpha:g} | {scale:g} | {fit.q:.2f} | {-1 / fit.q:.2f} | "
                     f"{np.polyfit(x, np.log(poles), 1)[0]:.2f} | {np.polyfit(x, np.log(floors), 1)[0]:.2f} | "
                     f"{floors[0] / poles[0]:.2f} → {floors[-1] / poles[-1]:.2f} | {fit_over} | {slope_fit} |")
    return "\n".join(lines)


BLOCK_KINDS["laws"] = _laws_table
BLOCK_KINDS["groups"] = _groups_table
BLOCK_KINDS["poles"] = _poles_table


def _law(name: str, law: str, series: str):
    found = _laws(name).law(law, series)
    if found is None or found.exponent is None:
        raise ValueError(f"no {law} law in {series} for {name}")
    return found


def _law_values() -> dict[str, Callable[[], str]]:
    from empirical.scaling import LAWS, SERIES

    out: dict[str, Callable[[], str]] = {}
    for name in ("lqgan-done", "lqgan-noise", "ring8-paper", "gauss-mlp-paper"):
        for law in LAWS:
            for series in SERIES:
                key = f"laws.{name}.{law}.{series}"
                out[key] = lambda n=name, w=law, s=series: f"{_law(n, w, s).exponent:.2f}"
                out[key + ".interval"] = lambda n=name, w=law, s=series: (
                    f"[{_law(n, w, s).interval.low:.2f}, {_law(n, w, s).interval.high:.2f}]")
                out[key + ".theory"] = lambda n=name, w=law, s=series: f"{_law(n, w, s).theory:.2f}"
    out["lqgan-noise.floor_exponent"] = _floor_noise_exponent
    for name in ("b*_floor", "sgd-frozen", "2·B_simple", "2·B_noise,H"):
        key = "predictors." + name.replace("*", "").replace("·", "").replace(",", "-")
        out[key + ".cells"] = lambda n=name: f"{_score(n).n_valued} of {_score(n).n_cells}"
        out[key + ".n_cells"] = lambda n=name: str(_score(n).n_cells)
        out[key + ".median_ratio"] = lambda n=name: f"{_score(n).median_ratio:.2g}"
        out[key + ".within_2x"] = lambda n=name: f"{_score(n).within_2x:.0%}"
        out[key + ".within_2x_measured"] = lambda n=name: f"{_score(n).within_2x_measured:.0%}"
        out[key + ".within_2x_restart"] = lambda n=name: f"{_score(n).within_2x_restart:.0%}"
        out[key + ".control"] = lambda n=name: "{}/{}".format(*_score(n).within_2x_control)
        out[key + ".neural"] = lambda n=name: "{}/{}".format(*_score(n).within_2x_neural)
    return out


def _score(name: str):
    from empirical import predictors

    return predictors.score(predictor_rows(), name)


def _floor_noise_exponent() -> str:
    """The exponent in s of lqgan's exact noise floor F(64) (the Lyapunov closed form) over the noise sweep's s."""
    from empirical.benchmarks.lqgan import scaling_exponent
    from empirical.benchmarks.lqgan_floor import exact_floor

    groups = sweep("lqgan-noise").groups
    scales = sorted({g.data_scale for g in groups})
    config = next(iter(sweep("lqgan-noise").presets.values()))[1]
    floors = [float(exact_floor(config.with_(data_scale=s)).floor(64)) for s in scales]
    return f"{scaling_exponent(scales, floors):.2f}"

# The sweeps whose every group is a cell of the predictor table (docs/findings.md).
PREDICTOR_SWEEPS = ("lqgan", "lqgan-done", "lqgan-noise", "lqgan-amsgrad", "lqgan-adam", "lqgan-adam-tight",
                    "gauss-mlp", "gauss-mlp-sgd", "gauss-mlp-paper", "ring8-amsgrad", "ring8-paper")
CONSTANTS_EXTRA = RESULTS / "constants"  # constants of a preset at another optimizer or data scale than shipped


def constants_for(preset: str, base, optimizer: str):
    """The constants file measured on `preset` with `optimizer` at `base`'s config (up to the grid's axes and the
    target), and the FID target its ε belongs to; (None, None) where none was measured."""
    from empirical.config import TrainConfig
    from empirical.report import _FREE_FIELDS
    from theory.schema import load_constants

    free = _FREE_FIELDS | {"target_fid"}
    scale = getattr(base, "data_scale", 1.0)
    names = [ROOT / "theory" / "measured" / f"{preset}.json", CONSTANTS_EXTRA / f"{preset}-{optimizer}.json",
             CONSTANTS_EXTRA / f"{preset}-s{scale:g}.json"]
    defaults = TrainConfig().to_dict()
    for path in names:
        if not path.is_file():
            continue
        f = load_constants(str(path))
        config = f.source.get("preset_config", {})
        if config.get("optimizer") != optimizer:
            continue
        if any(config.get(k, defaults[k]) != v for k, v in base.to_dict().items() if k not in free):
            continue
        return f, config.get("target_fid")
    return None, None


@cache
def predictor_rows() -> list:
    from empirical import predictors
    from empirical.report import ConstantsChoice, theory_predictions

    rows = []
    for name in PREDICTOR_SWEEPS:
        s = sweep(name)
        for g in s.groups:
            preset, base = s.presets[id(g)]
            cell = predictors.Cell(name, preset, g, control=base.data == "lqgan")
            file, target = constants_for(preset, base.with_(optimizer=g.optimizer, lr_table=None), g.optimizer)
            choice = ConstantsChoice(file, f"measured on {preset}")

            def predict(group, choice=choice):
                return theory_predictions(group.lr_d, group.lr_g, choice, group.optimizer)

            row = predictors.Row(cell, {"b*_floor": predictors.floor_value(cell)})
            row.values.update(predictors.family_values(cell, file, target, predict))
            row.values.update(predictors.noise_values(cell, file))
            rows.append(row)
    return rows


def _cell(value, b_fit) -> str:
    ratio = value.ratio(b_fit)
    if value.value is None:
        return "—"
    return f"{value.value:.3g}{value.mark}" + ("" if ratio is None else f" ({ratio:.2g}×)")


def predictors_table() -> str:
    """docs/findings.md: every cell's b*_fit and each predictor's b* (its ratio to b*_fit)."""
    from empirical import predictors

    rows = [r for r in predictor_rows() if r.cell.b_fit is not None]
    names = predictors.predictors_in(rows)
    lines = ["| sweep | optimizer, α_D | target | s | b*_fit | " + " | ".join(names) + " |",
             "|---|---|---:|---:|---:|" + "---:|" * len(names)]
    for r in rows:
        g = r.cell.group
        lines.append(f"| {r.cell.sweep} | {g.optimizer}, {g.lr_d:g} | {g.target_fid:g} | {g.data_scale:g} | "
                     f"{r.cell.b_fit:.3g} | " + " | ".join(_cell(r.values[n], r.cell.b_fit) if n in r.values
                                                         else "·" for n in names) + " |")
    return "\n".join(lines)


def predictor_scores_table() -> str:
    """docs/findings.md: per predictor, its median |log₂ ratio| and share of cells within 2× of b*_fit."""
    from empirical import predictors

    rows = predictor_rows()
    lines = ["| predictor | cells with a value (of those with a b*_fit) | median ratio to b*_fit | median "
             "\\|log₂ ratio\\| | within 2× | control game within 2× | neural GANs within 2× | within 2× of "
             "b*_measured | within 2× of b*_restart |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in predictors.predictors_in(rows):
        sc = predictors.score(rows, name)
        lines.append(f"| {name} | {sc.n_valued} of {sc.n_cells} | {_fmt(sc.median_ratio, '.2g')} | "
                     f"{_fmt(sc.median_log2, '.2f')} | "
                     f"{'—' if sc.within_2x is None else f'{sc.within_2x:.0%}'} | "
                     f"{sc.within_2x_control[0]}/{sc.within_2x_control[1]} | "
                     f"{sc.within_2x_neural[0]}/{sc.within_2x_neural[1]} | "
                     f"{'—' if sc.within_2x_measured is None else f'{sc.within_2x_measured:.0%}'} | "
                     f"{'—' if sc.within_2x_restart is None else f'{sc.within_2x_restart:.0%}'} |")
    return "\n".join(lines)


SPECIAL_BLOCKS["predictors:table"] = predictors_table
SPECIAL_BLOCKS["predictors:scores"] = predictor_scores_table


VALUES = {**_values(), **_law_values()}


# ---------------------------------------------------------------------------------------------------------------
# Filling in the pages


def fill(text: str, where: str) -> str:
    """`text` with every marked block and value re-rendered; an unknown name is a one-line error."""
    def block(m: re.Match) -> str:
        return m.group(1) + render_block(m["name"], where) + "\n" + m.group(4)

    def value(m: re.Match) -> str:
        name = m["name"]
        if name not in VALUES:
            raise EmpiricalInputError(f"{where}: unknown value {name!r} (known: {', '.join(sorted(VALUES))})")
        try:
            rendered = VALUES[name]()
        except (AttributeError, TypeError, ValueError, ZeroDivisionError, StopIteration) as error:
            # a value whose analysis is missing (no floor fit, no hyperbola fit, no family row) for this store
            raise EmpiricalInputError(f"{where}: value {name!r} cannot be rendered from the committed results "
                                      f"({type(error).__name__}: {error})") from None
        return m.group(1) + rendered + m.group(4)

    def cli(m: re.Match) -> str:
        return m.group(1) + theory_critical_output(m["name"]) + m.group(4)

    return _CLI.sub(cli, _VALUE.sub(value, _BLOCK.sub(block, text)))


def theory_critical_output(args: str) -> str:
    """What `python -m theory.critical ARGS` prints (its stdout, without the final newline)."""
    import contextlib
    import io
    import shlex

    from theory.critical import main as critical

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if critical(shlex.split(args)) != 0:
            raise EmpiricalInputError(f"python -m theory.critical {args} failed")
    return out.getvalue().rstrip("\n")


def _rerendered(root: Path) -> Iterator[tuple[str, Path, str, str]]:
    """(page, its path, its text, the text with every marked place re-rendered) for each published page."""
    for page in PAGES:
        path = root / page
        text = path.read_text(encoding="utf-8")
        yield page, path, text, fill(text, page)


def stale(root: Path = ROOT) -> list[str]:
    """The marked places of the published pages that differ from what the code renders now."""
    out = []
    for page, _, text, new in _rerendered(root):
        if new != text:
            old_marks = {m["name"]: m["body"] for r in (_BLOCK, _VALUE, _CLI) for m in r.finditer(text)}
            new_marks = {m["name"]: m["body"] for r in (_BLOCK, _VALUE, _CLI) for m in r.finditer(new)}
            out += [f"{page}: {name}" for name in old_marks if old_marks[name] != new_marks.get(name)]
    return out


FIGURES = {  # published figure -> (preset, the report's figure file)
    "docs/img/lqgan_floor.png": ("lqgan", "floor_sgd_x1.png"),
    "docs/img/lqgan_k_n.png": ("lqgan", "k_n_sgd_x1.png"),
    "docs/img/gauss_mlp_k_n.png": ("gauss-mlp", "k_n_adam_x1.png"),
}


CLI_FIGURES = {"docs/img/theory_critical.png": "--preset lqgan"}  # figure -> python -m theory.critical ARGS --plot
# figure -> the sweep (or store set) whose scaling laws it draws (the report's scaling.png, LAW_BOOTSTRAP resamples)
LAW_FIGURES = {"docs/img/lqgan_laws.png": "lqgan-done", "docs/img/lqgan_noise_law.png": "lqgan-noise",
               "docs/img/gauss_mlp_paper_laws.png": "gauss-mlp-paper"}


def write(root: Path = ROOT) -> list[str]:
    """Re-render every page's marked places and copy the report figures; return the pages changed."""
    changed = []
    for page, path, text, new in _rerendered(root):
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(page)
    folders = {preset: report_figures(preset) for preset in {p for p, _ in FIGURES.values()}}
    for target, (preset, name) in FIGURES.items():
        shutil.copy(folders[preset] / name, root / target)
    for target, args in CLI_FIGURES.items():
        theory_critical_output(f"{args} --plot {root / target}")
    from empirical.figures import plot_scaling

    for target, name in LAW_FIGURES.items():
        plot_scaling(_laws(name), root / target)
    return changed


def snapshot(out: Path, results: Path = RESULTS) -> list[Path]:
    """Copy sweep stores into `results`, gzipped: `out` is one sweep folder (stored under its folder name), or the
    demo's output folder, whose PRESET/sweep.db of each published preset is copied."""
    if (out / "sweep.db").is_file():
        sources = {out.name: out / "sweep.db"}
    else:
        sources = {preset: out / preset / "sweep.db" for preset in PUBLISHED_PRESETS}
    missing = [str(path) for path in sources.values() if not path.is_file()]
    if missing:
        raise EmpiricalInputError(f"no sweep store at {', '.join(missing)}: run `make demo` (or the sweep) first")
    results.mkdir(parents=True, exist_ok=True)
    written = []
    for name, source in sources.items():
        target = results / f"{name}.db.gz"
        # mtime=0: the same store gives the same bytes, so an unchanged result makes no diff in git
        with open(source, "rb") as src, open(target, "wb") as raw, \
                gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as dst:
            shutil.copyfileobj(src, dst)
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    prog = "python -m empirical.published"
    parser = OneLineParser(prog=prog, description="Render README.md's and docs/' published numbers from the "
                                                  "committed sweep results, or check that they are current.")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="re-render every marked block, value and figure")
    mode.add_argument("--check", action="store_true", help="exit 1 if any marked place is not what the code gives")
    mode.add_argument("--snapshot", metavar="FOLDER", help="copy a sweep folder's store (or, for the demo's output "
                      "folder, each PRESET/sweep.db) into docs/results")
    args = parser.parse_args(argv)
    try:
        if args.snapshot:
            for path in snapshot(Path(args.snapshot)):
                print(f"wrote {path.relative_to(ROOT)}")
            return 0
        if args.write:
            changed = write()
            print("updated: " + (", ".join(changed) if changed else "nothing (all current)"))
            return 0
        differ = stale()
    except EmpiricalInputError as error:
        return fail(prog, error)
    if differ:
        print("stale (run `make docs`): " + "; ".join(differ), file=sys.stderr)
        return 1
    print("every published number is current")
    return 0


if __name__ == "__main__":
    sys.exit(main())

