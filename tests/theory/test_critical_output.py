"""What `--proofs` and `--latex` print: each checked against what it is about, so that wrong content fails.

`--proofs`: every template fact (the list docs/theory.md §1 names) and every family fact is printed with its
status, and the printed expression has the printed sign when sympy re-checks it here from the text alone.
`--latex`: the LaTeX of K, N and b* is translated back to sympy (sympy's own LaTeX parser needs antlr4 or
lark, which this project does not install) and compared with the closed forms written out by hand.
"""

import re

import pytest
import sympy as sp
from sympy.parsing.sympy_parser import implicit_multiplication, parse_expr, standard_transformations

from theory import template
from theory.critical import main
from theory.families import FAMILIES, get_family
from theory.schema import write_constants
from theory.template import Fact

TEMPLATE_FACTS = ["K_solves_bound", "bound_decreasing_in_K", "unreachable_below_floor", "K_positive",
                  "K_decreasing", "K_convex", "N_convex", "b_star_in_domain", "b_star_stationary", "N_gap_identity",
                  "b_star_unique_minimiser", "K_at_b_star_is_twice_K_inf", "K_hyperbolic_form",
                  "inverse_K_affine_in_inverse_b"]
FAMILY_FACTS = [f"{w}_{p}_{s}" for p in "DG" for w, s in (("A", "positive"), ("B", "positive"), ("C", "nonnegative"))]
PROOF_LINE = re.compile(r"^  \[(ok|FAILED)\] (\w+): (.*)   \((.*) is (positive|negative|nonnegative|zero)\)$")

# sgd-frozen: A = 2Δ/α, B = L·α·σ², C = 0
FROZEN = {"alpha_D": 0.1, "smoothness_D": 2.0, "sigma2_D": 5.0, "gap_D": 1.0,
          "alpha_G": 0.05, "smoothness_G": 4.0, "sigma2_G": 3.0, "gap_G": 2.0}


@pytest.fixture(scope="module")
def constants_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("c") / "c.json"
    write_constants(path, FROZEN, epsilon={"sgd-frozen": 1.0})
    return path


def proofs(capsys, argv) -> tuple[str, dict[str, tuple[str, str, str]]]:
    """The summary line and name -> (status, printed expression, sign) of every printed proof."""
    assert main([*argv, "--proofs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("sympy proofs: "))
    found = {}
    for line in lines[at + 1:]:
        m = PROOF_LINE.match(line)
        assert m, line
        found[m.group(2)] = (m.group(1), m.group(4), m.group(5))
    return lines[at], found


def sign_of_text(expr: str, sign: str) -> bool:
    """Whether ``expr`` (as printed) has ``sign`` with every symbol positive, as the proofs assume (s >= 0)."""
    names = {n: sp.Symbol(n, positive=True) for n in re.findall(r"[A-Za-z_]\w*", expr)}
    names |= {n: sp.Symbol(n, nonnegative=True) for n in ("s",) if n in names}
    e = sp.simplify(parse_expr(expr, local_dict=names))
    return bool({"positive": e.is_positive, "negative": e.is_negative, "nonnegative": e.is_nonnegative,
                 "zero": e == 0}[sign])


def test_proofs_list_every_fact_with_its_status(constants_file, capsys):
    summary, found = proofs(capsys, ["--constants", str(constants_file)])
    assert summary == "sympy proofs: 20/20 facts hold (14 for the template, 6 for family 'sgd-frozen')"
    assert list(found) == TEMPLATE_FACTS + FAMILY_FACTS
    for name, (status, expr, sign) in found.items():
        assert status == "ok", name
        assert sign_of_text(expr, sign), (name, expr, sign)  # what is printed is itself true
    # the family facts print that family's A, B, C
    assert found["A_D_positive"][1] == "2*gap_D/alpha_D"
    assert found["B_G_positive"][1] == "alpha_G*sigma2_G*smoothness_G"
    assert found["C_D_nonnegative"][1] == "0"


def test_a_fact_that_does_not_hold_is_printed_as_failed(constants_file, capsys, monkeypatch):
    real = template.template_facts()
    A = template.A
    monkeypatch.setattr(template, "template_facts", lambda: (*real, Fact("bogus", "−A > 0", -A, "positive")))
    summary, found = proofs(capsys, ["--constants", str(constants_file)])
    assert summary == "sympy proofs: 20/21 facts hold (15 for the template, 6 for family 'sgd-frozen')"
    assert found["bogus"] == ("FAILED", "-A", "positive")
    assert not sign_of_text("-A", "positive")


def test_a_broken_family_is_refused_not_proven(capsys, monkeypatch):
    """A family whose B cannot be proven positive (registered without the check, like the shipped ones) is
    refused in one line when used, so --proofs never prints facts that do not apply to it."""
    import dataclasses

    broken = dataclasses.replace(get_family("sgd-frozen"), name="broken", B="smoothness_P*(alpha_P - sigma2_P)")
    monkeypatch.setitem(FAMILIES, "broken", broken)
    assert main(["--family", "broken", "--proofs"]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err == ("theory.critical: error: family 'broken': sympy cannot prove B_D = "
                       "smoothness_D*(alpha_D - sigma2_D) is positive, so the template's facts would not apply\n")


# --- LaTeX -------------------------------------------------------------------------------------------------
LATEX_NAMES = {r"\varepsilon_P": "eps_P", r"\varepsilon_D": "eps_D", r"\varepsilon_G": "eps_G",
               r"\varepsilon": "eps", r"\sigma^2_D": "sigma2_D", r"\sigma^2_G": "sigma2_G", r"\sigma^2_P": "sigma2_P",
               r"\alpha_D": "alpha_D", r"\alpha_G": "alpha_G", r"\alpha_P": "alpha_P", r"\Delta_P": "Delta_P",
               r"\left(": "(", r"\right)": ")"}


def latex_to_sympy(tex: str) -> sp.Expr:
    """Translate the subset of LaTeX that sympy.latex writes for these forms (\\frac, ^{..}, \\left( \\right),
    implicit products, the family's symbol names) back to a sympy expression with positive symbols."""
    for k, v in LATEX_NAMES.items():
        tex = tex.replace(k, f" {v} ")
    frac = re.compile(r"\\frac\{([^{}]*)\}\{([^{}]*)\}")
    power = re.compile(r"\^\{([^{}]*)\}")
    while "{" in tex:
        before = tex
        tex = power.sub(r"**(\1)", frac.sub(r"((\1)/(\2))", tex))
        assert tex != before, f"cannot translate {tex!r}"
    names = {n: sp.Symbol(n, positive=True) for n in re.findall(r"[A-Za-z_]\w*", tex)}
    return parse_expr(tex, local_dict=names, transformations=(*standard_transformations, implicit_multiplication))


def latex_lines(capsys, argv) -> dict[str, str]:
    assert main([*argv, "--latex"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == r"\begin{align*}" and out[-1] == r"\end{align*}"
    rows = {}
    for line in out[2:-1]:
        lhs, rhs = line.split(" &= ")
        rows[lhs] = rhs.removesuffix(r" \\").split(r" \quad")[0]
    return rows


def sym(*names: str) -> list[sp.Symbol]:
    return [sp.Symbol(n, positive=True) for n in names]


@pytest.mark.parametrize("split", [False, True])
def test_latex_closed_forms_parse_back_to_the_derivation(constants_file, capsys, split):
    argv = ["--constants", str(constants_file)] + (["--epsilon-d", "0.5"] if split else [])
    rows = latex_lines(capsys, argv)
    A, B, C, b = sym("A_P", "B_P", "C_P", "b")
    e = sp.Symbol("eps_P" if split else "eps", positive=True)
    expected = {"K_P(b)": A * b / ((e**2 - C) * b - B), "N_P(b)": A * b**2 / ((e**2 - C) * b - B),
                "c_P": B / (e**2 - C), "b^*_P": 2 * B / (e**2 - C), r"K_P(\infty)": A / (e**2 - C),
                "N_P(b^*_P)": 4 * A * B / (e**2 - C) ** 2}
    for lhs, expr in expected.items():
        assert sp.simplify(latex_to_sympy(rows[lhs]) - expr) == 0, (lhs, rows[lhs])
    alpha, L, sigma2, gap = sym("alpha_P", "L_P", "sigma2_P", "Delta_P")
    assert sp.simplify(latex_to_sympy(rows["A_P"]) - 2 * gap / alpha) == 0
    assert sp.simplify(latex_to_sympy(rows["B_P"]) - L * alpha * sigma2) == 0
    assert rows["C_P"] == "0"
    for p in "DG":  # b*_P = 2·L_P·α_P·σ²_P/ε_P² in the family's own constants, each with its own target
        alpha, L, sigma2 = sym(f"alpha_{p}", f"L_{p}", f"sigma2_{p}")
        e = sp.Symbol(f"eps_{p}" if split else "eps", positive=True)
        assert sp.simplify(latex_to_sympy(rows[f"b^*_{p}"]) - 2 * L * alpha * sigma2 / e**2) == 0, rows[f"b^*_{p}"]


def test_the_latex_translator_fails_on_wrong_content():
    assert sp.simplify(latex_to_sympy(r"\frac{2 B_P}{- C_P + \varepsilon^{2}}")
                       - 2 * sp.Symbol("B_P", positive=True) / sp.Symbol("eps", positive=True) ** 2) != 0
