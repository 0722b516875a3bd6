"""theory.critical on its whole input domain: a result, or one line on stderr and exit 2, never a traceback.

Hypothesis drives the CLI in process with every numeric flag (each family's constants, --epsilon,
--batch-sizes) drawn from the whole positive finite float64 range, subnormals included, through every output
(text, --json, --latex, --proofs, --plot) and through --constants files. A numpy or matplotlib warning
counts as a failure too: in a real process it would be a second line on stderr.
"""

import json
import math
import re
import sys
import tempfile
import warnings
from fractions import Fraction
from pathlib import Path

import pytest
import sympy as sp
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from theory.analysis import resolve_constants
from theory.bounds import bounds_for
from theory.critical import main
from theory.families import FAMILIES
from theory.measured import load_measured, measured_presets
from theory.schema import write_constants

FLOAT64_MAX = sys.float_info.max
EXTREMES = (5e-324, 1e-320, sys.float_info.min, 1e-300, 1e-200, 1e-154, 1e154, 1e200, 1e300, 1e308, FLOAT64_MAX)
ERROR_PREFIX = "theory.critical: error: "  # the CLI's one-line convention (tests/theory/test_critical.py)


def examples(n: int) -> settings:
    """``n`` examples under the dev/ci profiles (60 examples by default), scaled with a larger profile."""
    scale = max(1.0, settings.default.max_examples / 60)
    return settings(max_examples=round(n * scale), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def positive_float64():
    """Any positive finite float64: hypothesis's own mix (which favours edges), a uniform decimal exponent, an
    extreme, or a moderate value (1e-6 to 1e6, so that a draw of several values still often has a result)."""
    whole = st.floats(min_value=5e-324, max_value=FLOAT64_MAX, allow_nan=False, allow_infinity=False)
    by_exponent = st.builds(lambda m, e: m * 10.0**e, st.floats(1.0, 9.999), st.integers(-323, 307))
    moderate = st.builds(lambda m, e: m * 10.0**e, st.floats(1.0, 9.999), st.integers(-6, 6))
    return st.one_of(whole, by_exponent, st.sampled_from(EXTREMES), moderate).filter(lambda x: x > 0)


POSITIVE = positive_float64()
DOMAIN_VALUES = {  # each documented domain of theory.constants over its whole float64 extent
    "positive": POSITIVE,
    "nonnegative": st.just(0.0) | POSITIVE,
    "unit_interval": st.sampled_from([0.0, 5e-324, 1e-300, 0.5, 1 - 2**-53]) | st.floats(0.0, 1.0, exclude_max=True),
}


def spec_of(family, key):
    name, _, _ = key.rpartition("_")
    return family.spec(name)


@st.composite
def constants_for(draw, family, every=False):
    """Up to three (or, with ``every``, all) of the family's constants, each over its whole domain; the others
    come from the preset's measured file, so that results, not only refusals, are drawn."""
    keys = bounds_for(family).keys()
    chosen = keys if every else draw(st.lists(st.sampled_from(keys), unique=True, max_size=3))
    return {k: draw(DOMAIN_VALUES[spec_of(family, k).domain]) for k in chosen}


def flag(key: str) -> str:
    return "--" + key.replace("_", "-").lower()


batch_lists = st.lists(POSITIVE, min_size=1, max_size=4)


def run_cli(capsys, argv):
    """main(argv) with every warning an error; its status, stdout and stderr."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        status = main(argv)
    cap = capsys.readouterr()
    return status, cap.out, cap.err


def assert_refusal(status, out, err, argv):
    assert status == 2, (argv, status)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX), (argv, err)
    assert out == "", argv


def positive_finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def close(x: Fraction, y: Fraction, rel: float = 1e-12) -> bool:
    return abs(x - y) <= Fraction(rel) * abs(y)


def assert_json_result(out: str, argv) -> None:
    """The JSON result is finite and consistent: b*_P = 2B/(ε² − C) = 2c, K(b*) = 2K(∞), N(b*) = b*·K(b*)."""
    doc = json.loads(out)
    for what in ("b_star", "K_inf", "K_at_b_star", "N_at_b_star"):
        assert all(positive_finite(v) for v in doc[what].values()), (argv, what, doc[what])
    for what in ("A", "B", "domain_edge"):
        assert all(positive_finite(v) for v in doc[what].values()), (argv, what, doc[what])
    assert all(math.isfinite(v) and v >= 0 for v in doc["C"].values()), argv
    for p in "DG":
        eps2 = Fraction(doc["epsilon_players"][p]["value"]) ** 2  # the player's own target
        b_star, K_inf, C = (Fraction(doc[w][p]) for w in ("b_star", "K_inf", "C"))
        assert b_star == 2 * Fraction(doc["domain_edge"][p]), argv
        assert close(Fraction(doc["K_at_b_star"][p]), 2 * K_inf), argv
        assert close(Fraction(doc["N_at_b_star"][p]), b_star * Fraction(doc["K_at_b_star"][p])), argv
        if eps2 >= 2 * C:  # well conditioned: C as printed is rounded, so ε² − C must not cancel
            assert close(b_star, 2 * Fraction(doc["B"][p]) / (eps2 - C), rel=1e-9), (argv, p)
        n = doc["b_star_integer"][p]
        assert isinstance(n, int) and n >= 1 and abs(n - b_star) < 1, argv
    assert doc["b_star_case"] in {"D", "G", "crossing"}
    assert doc["b_star"]["joint"] in {doc["b_star"]["D"], doc["b_star"]["G"]} or doc["b_star_case"] == "crossing"
    for row in doc["table"]:
        for p in "DG":
            assert (row[f"K_{p}"] is None) == (row["b"] <= doc["domain_edge"][p]), (argv, row)
        if row["K"] is not None:
            assert positive_finite(row["K"]) and positive_finite(row["N"]), (argv, row)
            assert row["K"] == max(row["K_D"], row["K_G"])
            assert close(Fraction(row["N"]), Fraction(row["b"]) * Fraction(row["K"]), rel=1e-15), (argv, row)


def assert_text_result(out: str, argv) -> None:
    """The text result names a positive finite b* and prints no inf or nan anywhere."""
    found = re.search(r"critical batch size b\* = (\S+):", out)
    assert found and positive_finite(float(found.group(1))), (argv, out[-2000:])
    assert not re.search(r"\b(inf|nan)\b", out, re.IGNORECASE), argv


def assert_outcome(status, out, err, argv, mode) -> None:
    # --hypothesis-show-statistics: how many draws gave a result, and why the others were refused
    event("result" if status == 0 else "refused: " + err.removeprefix(ERROR_PREFIX)[:24])
    if status != 0:
        assert_refusal(status, out, err, argv)
        return
    assert err == "", (argv, err)
    if mode == "--json":
        assert_json_result(out, argv)
    elif mode == "--latex":
        assert r"\begin{align*}" in out and r"\end{align*}" in out
    else:
        assert_text_result(out, argv)


def made_valid(family, drawn: dict, values: dict) -> dict:
    """``drawn`` changed as little as possible to meet the family's validity conditions (α_P·L_P <= 1,
    h_min,P <= h_max,P; decided on exact fractions), so that draws reach the bound and not only its refusal.
    ``values`` holds the constants the CLI falls back to for those not drawn."""
    out = dict(drawn)
    full = {**values, **out}
    for p in "DG":
        alpha, smooth = f"alpha_{p}", f"smoothness_{p}"
        if smooth in full and Fraction(full[alpha]) * Fraction(full[smooth]) > 1:
            key, other = (smooth, alpha) if smooth in out else (alpha, smooth)
            x = float(1 / Fraction(full[other]))  # fits: 1/other < the drawn value, a float
            while x > 0 and Fraction(x) * Fraction(full[other]) > 1:
                x = math.nextafter(x, 0.0)
            out[key] = x
        lo, hi = f"h_min_{p}", f"h_max_{p}"
        if lo in full and full[lo] > full[hi]:
            key, other = (lo, hi) if lo in out else (hi, lo)
            out[key] = full[other]
    return out


def floor(family, values: dict) -> sp.Float:
    """max(C_D, C_G) for these constants to 30 digits, with sympy (the test's own, not theory.exact); built
    unevaluated, since sympy 1.14 can raise ValueError simplifying the square root of a large rational."""
    fb = bounds_for(family)
    exact = {s: sp.Rational(values[s.name]) for s in fb.args if s.name in values}
    with sp.evaluate(False):
        floors = [fb.players[p].C.xreplace(exact) for p in "DG"]
    return max(sp.N(C, 30) for C in floors)


@st.composite
def family_inputs(draw, every=False):
    """A family, a preset, drawn constants (some or ``every`` one, each over its whole domain, mostly made
    valid) and ε: none (the preset's), any positive float64, or above the floor max C_P by any factor."""
    family = FAMILIES[draw(st.sampled_from(sorted(FAMILIES)))]
    preset = draw(st.sampled_from(measured_presets()))
    drawn = draw(constants_for(family, every))
    values = {k: v.value for k, v in
              resolve_constants(family, drawn, defaults=load_measured(preset).values).items()}
    if draw(st.integers(0, 3)):
        drawn = made_valid(family, drawn, values)
        values.update(drawn)
    how = draw(st.sampled_from(["above floor", "whole", "above floor", "preset", "above floor", "whole"]))
    epsilon = None if how == "preset" else draw(POSITIVE)
    if how == "above floor" and floor(family, values) > 0:
        root = sp.sqrt(floor(family, values) * (1 + sp.Float(epsilon, 30)))
        epsilon = float(root) if sys.float_info.min <= root <= FLOAT64_MAX else epsilon
    return family, preset, drawn, epsilon


@st.composite
def cli_runs(draw):
    """An argv with a family, some of its constants, maybe ε, batch sizes and a preset, and an output mode."""
    family, preset, drawn, epsilon = draw(family_inputs())
    argv = ["--family", family.name, "--preset", preset]
    for key, value in drawn.items():
        argv += [flag(key), repr(value)]
    if epsilon is not None:
        split = draw(st.sampled_from([None, None, "d", "g"]))  # sometimes one player's target set apart
        if split is None:
            argv += ["--epsilon", repr(epsilon)]
        else:  # ε for the other player, and up to 4x it (still above the floor where ε is) for this one
            argv += ["--epsilon", repr(epsilon), f"--epsilon-{split}", repr(epsilon * draw(st.floats(1.0, 4.0)))]
    if draw(st.booleans()):
        argv += ["--batch-sizes", ",".join(map(repr, draw(batch_lists)))]
    mode = draw(st.sampled_from(["--json", "--json", "text", "--latex", "--proofs"]))
    return ([*argv, mode] if mode != "text" else argv), mode


@examples(80)
@given(run=cli_runs())
def test_every_flag_over_the_whole_float64_range(run, capsys):
    argv, mode = run
    assert_outcome(*run_cli(capsys, argv), argv, mode)


@examples(30)
@given(inputs=family_inputs(every=True), noise=st.tuples(POSITIVE, POSITIVE), mode=st.sampled_from(["--json", "text"]),
       g_factor=st.none() | st.floats(1.0, 4.0))
def test_a_constants_file_over_the_whole_float64_range(inputs, noise, mode, g_factor, capsys):
    family, _, values, epsilon = inputs
    entry = epsilon  # one ε, or (g_factor) per-player values with ε_G = g_factor·ε_D where that is finite
    if epsilon is not None and g_factor is not None and math.isfinite(epsilon * g_factor):
        entry = {"value": epsilon * g_factor, "players": {"D": epsilon, "G": epsilon * g_factor}}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "constants.json"
        write_constants(path, values, {"preset": "hypothesis"}, noise_scale=dict(zip("DG", noise, strict=True)),
                        epsilon={} if epsilon is None else {family.name: entry})
        argv = ["--family", family.name, "--constants", str(path)] + ([mode] if mode != "text" else [])
        assert_outcome(*run_cli(capsys, argv), argv, mode)


@st.composite
def extreme_curves(draw):
    """sgd-frozen with α = L = ε = 1, so that b*_P = 2σ²_P and K_P(∞) = 2Δ_P: b* and K(∞) drawn anywhere in
    float64, which puts the figure's curves anywhere in it too."""
    argv = ["--family", "sgd-frozen", "--epsilon", "1"]
    for p in "dg":
        argv += [f"--alpha-{p}", "1", f"--smoothness-{p}", "1",
                 f"--sigma2-{p}", repr(draw(POSITIVE)), f"--gap-{p}", repr(draw(POSITIVE))]
    if draw(st.booleans()):
        argv += ["--batch-sizes", ",".join(map(repr, draw(batch_lists)))]
    return argv


@examples(12)
@given(argv=extreme_curves())
def test_plot_over_the_whole_float64_range(argv, capsys):
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "kb.png"
        status, out, err = run_cli(capsys, [*argv, "--json", "--plot", str(png)])
        assert_outcome(status, out, err, argv, "--json")
        if status == 0:
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# Scalings by powers of two that multiply every A_P, B_P, C_P and ε² by s = 2^k (first map: the exponent of s
# per constant), or leave all of them unchanged with t = 2^j (second map). Powers of two are exact in float64,
# so with exact evaluation A, B, C scale exactly and every other result is bit-for-bit the same.
SCALINGS = {
    "sgd-frozen": ({"gap": 1, "sigma2": 1}, {"alpha": 1, "smoothness": -1, "gap": 1}),
    "sgd": ({"gap": 1, "sigma2": 1, "grad_bound": 0.5, "cross_lip": 0.5}, {"alpha": 1, "smoothness": -1, "gap": 1}),
    "adam": ({"dim": 1, "sigma2": 1, "grad_bound": 0.5}, {"alpha": 1, "h_min": 1, "h_max": 1}),
    "adam-cs": ({"dim": 1, "sigma2": 1, "grad_bound": 0.5}, {"alpha": 1, "h_min": 1, "h_max": 1}),
}
INVARIANT = ("b_star", "b_star_integer", "b_star_case", "K_inf", "K_at_b_star", "N_at_b_star", "domain_edge",
             "table")


def family_argv(family, values: dict, epsilon: float) -> list[str]:
    argv = ["--family", family.name, "--epsilon", repr(epsilon), "--json"]
    for key, value in values.items():
        argv += [flag(key), repr(value)]
    return argv


@examples(15)
@given(family=st.sampled_from(sorted(SCALINGS)), k=st.integers(-250, 250).map(lambda i: 2 * i),
       j=st.integers(-500, 500))
def test_power_of_two_scalings_change_nothing_but_A_B_C(family, k, j, capsys):
    """The family's illustrative defaults scaled by up to 2^±1000 (every scaled constant stays a normal float,
    as do A, B and C): a result always, and the same result."""
    fam = FAMILIES[family]
    base = {key: fam.defaults[key].value for key in bounds_for(fam).keys()}
    by_s, by_t = SCALINGS[family]
    scaled = {}
    for key, value in base.items():
        name = spec_of(fam, key).name
        scaled[key] = math.ldexp(value, round(by_s.get(name, 0) * k + by_t.get(name, 0) * j))
    epsilon = math.ldexp(fam.epsilon.value, k // 2)
    status, out, err = run_cli(capsys, family_argv(fam, base, fam.epsilon.value))
    assert status == 0, err
    ref = json.loads(out)
    status, out, err = run_cli(capsys, family_argv(fam, scaled, epsilon))
    assert status == 0, (scaled, epsilon, err)
    got = json.loads(out)
    for what in INVARIANT:
        assert got[what] == ref[what], what
    for what in "ABC":
        assert got[what] == {p: math.ldexp(v, k) for p, v in ref[what].items()}, what


# Inputs that raised a traceback before theory.exact: the refusal must name the quantity and say why.
REFUSED = [
    (["--alpha-d", "5e-324"], "A_D = 2·Δ_D/α_D = 5.5918e+323 overflows float64"),
    (["--gap-d", "1e308", "--alpha-d", "1e-300"], "A_D = 2·Δ_D/α_D = 2e+608 overflows float64"),
    (["--sigma2-d", "5e-324"], "B_D = L_D·α_D·σ²_D = 3.1085e-325 underflows float64"),
    (["--epsilon", "1e300"], "c_D = B_D/(ε_D² − C_D) = 3.63441e-600 underflows float64"),
    (["--epsilon", "1e-300"], "ε_D² − C_D = 1e-600"),  # ε² underflowed to 0: "not certifiable, ε > 0" before
    (["--epsilon-g", "1e-300"], "ε_G² − C_G = 1e-600"),  # the same for one player's own target
    (["--family", "sgd", "--grad-bound-d", "1e200"],
     "not certifiable by this bound: ε_G² = 3.29511 <= C_G = 5.04746e+201"),
    (["--family", "sgd", "--cross-lip-d", "1e308"], "C_D = 4.73955e+308"),
    (["--batch-sizes", "1e306"], "batch size 1e+306: N(b) = b·K(b)"),
    (["--family", "sgd", "--alpha-d", "1e300", "--smoothness-d", "1e10"], "got alpha_D*smoothness_D = 1e+310"),
    # sympy 1.14 raised ValueError simplifying sqrt(G_G² + σ²_G) = sqrt(1e8 + 5e-324) exactly (sympy#28621)
    (["--family", "adam-cs", "--sigma2-g", "5e-324", "--grad-bound-g", "10000"], "<= C_G = 2.5e+12"),
    # ε² = C_D = 2·M_D·α_G·sqrt(G_G² + σ²_G)/α_D = 2·0.5·sqrt(16) exactly: not certifiable, decided exactly
    (["--family", "sgd", "--epsilon", "2", "--cross-lip-d", "0.5", "--cross-lip-g", "0", "--alpha-d", "1",
      "--alpha-g", "1", "--smoothness-d", "1", "--smoothness-g", "1", "--grad-bound-g", "0", "--sigma2-g", "16"],
     "not certifiable by this bound: ε_D² = 4 <= C_D = 4"),
    # the same with ε_D alone at the floor, and ε_G far above G's: only D is named
    (["--family", "sgd", "--epsilon-d", "2", "--epsilon-g", "1e3", "--cross-lip-d", "0.5", "--cross-lip-g", "0",
      "--alpha-d", "1", "--alpha-g", "1", "--smoothness-d", "1", "--smoothness-g", "1", "--grad-bound-g", "0",
      "--sigma2-g", "16"], "not certifiable by this bound: ε_D² = 4 <= C_D = 4, the discriminator's floor"),
]


@pytest.mark.parametrize(("argv", "message"), REFUSED)
def test_former_tracebacks_are_one_line_refusals(argv, message, capsys):
    status, out, err = run_cli(capsys, argv)
    assert_refusal(status, out, err, argv)
    assert message in err, err


def test_a_result_whose_float64_intermediates_overflow_is_computed_exactly(capsys):
    """ε² = 1e320 and A_D = 2Δ/α ≈ 2.8e301 are beyond or near float64, yet b*_D = 2B/ε² and K(∞) = A/ε² fit."""
    c = {f"{name}_{p}": v for p in "DG" for name, v in
         (("alpha", 1e-301), ("smoothness", 1e300), ("sigma2", 1e300), ("gap", 1.5))}
    argv = ["--epsilon", "1e160", "--json"] + [x for k, v in c.items() for x in (flag(k), repr(v))]
    status, out, err = run_cli(capsys, argv)
    assert status == 0, err
    doc = json.loads(out)
    eps2 = Fraction(1e160) ** 2
    B = Fraction(c["smoothness_D"]) * Fraction(c["alpha_D"]) * Fraction(c["sigma2_D"])
    A = 2 * Fraction(c["gap_D"]) / Fraction(c["alpha_D"])
    assert doc["b_star"]["D"] == float(2 * B / eps2)  # correctly rounded
    assert doc["K_inf"]["D"] == float(A / eps2)
    assert_json_result(out, argv)


def test_validity_is_exact_up_to_the_inputs_rounding(capsys):
    """α_D·L_D <= 1 is decided on exact values, but α = 0.1 (1/10 + 5.6e-18 as a float) with L = 10 means 1."""
    argv = ["--family", "sgd-frozen", "--smoothness-d", "10", "--json", "--alpha-d"]
    status, out, err = run_cli(capsys, [*argv, "0.1"])
    assert status == 0, err
    assert json.loads(out)["constants"]["alpha_D"]["value"] == 0.1
    status, out, err = run_cli(capsys, [*argv, "0.10000000000000003"])  # 2 ulps above 0.1: within rounding
    assert status == 0, err
    status, out, err = run_cli(capsys, [*argv, "0.1000000000000002"])  # 14 ulps above: α·L > 1 by 2e-15
    assert_refusal(status, out, err, argv)
    assert "got alpha_D*smoothness_D = 1.000000000000002" in err, err
