"""The CLI: its JSON contract, its text output, and one-line errors (exit 2, no traceback) on bad input."""

import json
import math
import subprocess
import sys

import pytest

from theory.critical import main
from theory.schema import write_constants


def run_json(capsys, *argv):
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_contract(capsys):
    out = run_json(capsys, "--alpha-d", "2e-4", "--alpha-g", "5e-5")
    assert set(out["b_star"]) == {"D", "G", "joint"}
    assert {"D", "G"} <= set(out["K_inf"])
    assert out["constants"]["alpha_D"] == {"value": 2e-4, "source": "flag --alpha-d"}
    eps2 = out["epsilon"]["value"] ** 2
    for p in "DG":
        assert out["b_star"][p] == pytest.approx(2 * out["B"][p] / (eps2 - out["C"][p]), rel=1e-12)
        assert out["K_inf"][p] == pytest.approx(out["A"][p] / (eps2 - out["C"][p]), rel=1e-12)
    assert out["b_star_case"] in {"D", "G", "crossing"}
    assert [row["b"] for row in out["table"]] == [2.0**k for k in range(13)]
    for row in out["table"]:
        assert set(row) == {"b", "K_D", "K_G", "K", "N"}
        for p in "DG":  # null exactly where b is outside the player's domain
            assert (row[f"K_{p}"] is None) == (row["b"] <= out["domain_edge"][p])
        if row["K"] is not None:
            assert row["K"] == max(row["K_D"], row["K_G"])
            assert row["N"] == pytest.approx(row["b"] * row["K"], rel=1e-15)
    finite = [r["N"] for r in out["table"] if r["N"] is not None]
    assert min(finite) >= out["N_at_b_star"]["joint"] * (1 - 1e-12)  # no grid point beats the joint b*


def test_flags_change_the_answer_as_the_closed_form_says(capsys):
    base = run_json(capsys, "--family", "sgd", "--cross-lip-d", "0", "--cross-lip-g", "0")
    doubled = run_json(capsys, "--family", "sgd", "--cross-lip-d", "0", "--cross-lip-g", "0", "--sigma2-d", "200")
    assert doubled["b_star"]["D"] == pytest.approx(2 * base["b_star"]["D"], rel=1e-12)  # C = 0: b* ∝ σ²
    assert doubled["b_star"]["G"] == base["b_star"]["G"]


def test_defaults_are_labelled_with_their_source(capsys):
    out = run_json(capsys)
    for key, c in out["constants"].items():
        assert c["source"].startswith("default: "), key
    assert out["constants"]["beta1_D"]["source"].endswith("(reference.md §1)")
    assert out["epsilon"]["source"].startswith("default: ")


def test_text_output_has_table_b_star_and_closed_forms(capsys):
    assert main(["--alpha-d", "2e-4", "--alpha-g", "5e-5"]) == 0
    text = capsys.readouterr().out
    assert "K_P(b) = A_P·b / ((ε² − C_P)·b − B_P)" in text
    assert "b*_P = argmin N_P = 2·B_P / (ε² − C_P)" in text
    assert "critical batch size b* =" in text
    assert "sympy proofs: 20/20 facts hold" in text
    assert "flag --alpha-d" in text


def test_constants_file_round_trip(tmp_path, capsys):
    ref = run_json(capsys, "--family", "sgd")
    path = tmp_path / "c.json"
    write_constants(path, {k: v["value"] for k, v in ref["constants"].items()}, {"preset": "test"})
    out = run_json(capsys, "--family", "sgd", "--constants", str(path))
    assert out["b_star"] == ref["b_star"]
    assert all(c["source"] == f"file {path}" for c in out["constants"].values())
    # a flag beats the file
    out = run_json(capsys, "--family", "sgd", "--constants", str(path), "--alpha-g", "2e-4")
    assert out["constants"]["alpha_G"]["source"] == "flag --alpha-g"


def test_plot_and_latex(tmp_path, capsys):
    png = tmp_path / "sub" / "kb.png"
    assert main(["--plot", str(png), "--latex"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    tex = capsys.readouterr().out
    assert r"\begin{align*}" in tex and "b^*_D" in tex and r"\end{align*}" in tex


def test_unreachable_epsilon_names_the_smallest_reachable(capsys):
    floors = run_json(capsys)["C"]
    assert main(["--epsilon", "0.5"]) == 2
    err = capsys.readouterr().err
    assert f"ε > {math.sqrt(max(floors.values())):.6g}" in err


def _bad_inputs(tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    wrong_schema = tmp_path / "schema.json"
    wrong_schema.write_text(json.dumps({"schema": "other", "constants": {"alpha_D": 1}}))
    incomplete = tmp_path / "incomplete.json"
    incomplete.write_text(json.dumps({"schema": "ttur-constants/1", "constants": {"alpha_D": 1e-4}}))
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"schema": "ttur-constants/1", "constants": {"alpha_X": 1e-4}}))
    nan = tmp_path / "nan.json"
    nan.write_text('{"schema": "ttur-constants/1", "constants": {"alpha_D": NaN}}')
    return [
        (["--alpha-d", "-1"], "alpha_D must be > 0"),
        (["--alpha-d", "0"], "alpha_D must be > 0"),
        (["--alpha-d", "nan"], "alpha_D must be finite"),
        (["--alpha-d", "inf"], "alpha_D must be finite"),
        (["--alpha-d", "abc"], "not a number"),
        (["--beta1-d", "1"], "beta1_D must lie in [0, 1)"),
        (["--family", "nope"], "unknown family 'nope'"),
        (["--epsilon", "0"], "epsilon must be a positive finite number"),
        (["--epsilon", "nan"], "epsilon must be a positive finite number"),
        (["--epsilon", "1e-3"], "target unreachable"),
        (["--family", "sgd", "--alpha-d", "0.5"], "needs alpha_D*smoothness_D <= 1"),
        (["--h-min-d", "1", "--h-max-d", "0.1"], "needs h_min_D <= h_max_D"),
        (["--smoothness-d", "3"], "--smoothness-d is not a constant of family 'adam'"),
        (["--batch-sizes", "0,4"], "batch sizes must be"),
        (["--batch-sizes", "a,b"], "comma-separated numbers"),
        (["--batch-sizes", ""], "batch sizes must be a non-empty list"),
        (["--alpha-d", "1e300", "--h-min-d", "1e-300", "--h-max-d", "1"], "overflow float64"),
        (["--constants", str(tmp_path / "missing.json")], "cannot read constants file"),
        (["--constants", str(bad_json)], "is not valid JSON"),
        (["--constants", str(wrong_schema)], "\"schema\" must be"),
        (["--constants", str(incomplete)], "incomplete for family 'adam': missing beta1_D"),
        (["--constants", str(unknown)], "unknown constants alpha_X"),
        (["--constants", str(nan)], "NaN is not a finite number"),
        (["--plot", str(tmp_path / "bad.json" / "x.png")], "cannot write plot"),
        (["--no-such-flag"], "unrecognized arguments"),
    ]


def test_bad_inputs_give_one_line_and_exit_2(tmp_path, capsys):
    for argv, message in _bad_inputs(tmp_path):
        assert main(argv) == 2, argv
        cap = capsys.readouterr()
        lines = cap.err.strip().splitlines()
        assert len(lines) == 1, (argv, cap.err)
        assert lines[0].startswith("theory.critical: error: "), argv
        assert message in lines[0], (argv, lines[0])
        assert cap.out == ""


def test_real_process_prints_no_traceback(tmp_path):
    for argv in (["--alpha-d", "-1"], ["--constants", str(tmp_path / "nope.json")], ["--epsilon", "x"]):
        proc = subprocess.run([sys.executable, "-m", "theory.critical", *argv], capture_output=True, text=True)
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_the_readme_command_runs_as_a_process():
    proc = subprocess.run([sys.executable, "-m", "theory.critical", "--alpha-d", "2e-4", "--alpha-g", "5e-5"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "critical batch size b* =" in proc.stdout
