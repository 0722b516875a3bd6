"""The CLI: its JSON contract, its text output, and one-line errors (exit 2, no traceback) on bad input."""

import json
import math
import subprocess
import sys

import pytest

from theory.analysis import resolve_constants, resolve_epsilon
from theory.bounds import bounds_for
from theory.critical import main
from theory.families import DEFAULT_FAMILY, get_family
from theory.measured import DEFAULT_PRESET, load_measured, measured_presets
from theory.schema import write_constants

RING8 = "measured on preset ring8 (theory/measured/ring8.json)"
# ring8's file gives each player its own ε (theory/measured/ring8.json's "players")
RING8_EPSILONS = ("ε_D is from the ε_D the ring8 reference run reached (theory/measured/ring8.json), "
                  "ε_G is from the ε_G the ring8 reference run reached (theory/measured/ring8.json)")


def run_json(capsys, *argv):
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_contract(capsys):
    out = run_json(capsys, "--alpha-d", "2e-4", "--alpha-g", "5e-5")
    assert set(out["b_star"]) == {"D", "G", "joint"}
    assert {"D", "G"} <= set(out["K_inf"])
    assert out["constants"]["alpha_D"] == {"value": 2e-4, "source": "flag --alpha-d"}
    # ring8's file gives each player its own ε (D's is the smaller); "epsilon" is the larger, for one-ε readers
    assert out["epsilon"]["value"] == max(out["epsilon_players"][p]["value"] for p in "DG")
    assert out["epsilon_players"]["D"]["value"] < out["epsilon_players"]["G"]["value"]
    for p in "DG":
        eps2 = out["epsilon_players"][p]["value"] ** 2
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
    base = run_json(capsys, "--family", "sgd", "--cross-lip-d", "0", "--cross-lip-g", "0", "--sigma2-d", "100")
    doubled = run_json(capsys, "--family", "sgd", "--cross-lip-d", "0", "--cross-lip-g", "0", "--sigma2-d", "200")
    assert doubled["b_star"]["D"] == pytest.approx(2 * base["b_star"]["D"], rel=1e-12)  # C = 0: b* ∝ σ²
    assert doubled["b_star"]["G"] == base["b_star"]["G"]


def test_without_flags_the_constants_and_epsilon_are_ring8s_measured_ones(capsys):
    assert DEFAULT_PRESET == "ring8"
    ring8 = load_measured("ring8")
    out = run_json(capsys)
    assert out["family"] == DEFAULT_FAMILY
    keys = bounds_for(get_family(DEFAULT_FAMILY)).keys()
    assert set(out["constants"]) == set(keys)
    for key in keys:
        assert out["constants"][key] == {"value": ring8.values[key], "source": RING8}, key
    assert out["epsilon"] == {"value": ring8.epsilon[DEFAULT_FAMILY],
                              "source": "the ε_G the ring8 reference run reached (theory/measured/ring8.json)"}
    assert {p: e["value"] for p, e in out["epsilon_players"].items()} == ring8.epsilon_players[DEFAULT_FAMILY]
    assert out["noise_scale"] == ring8.noise_scale
    assert run_json(capsys, "--preset", "ring8") == out
    # the text output prints each constant's value from the file and the file it was measured in
    assert main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines.index("constants") + 1
    printed = {}
    for line in lines[start:start + len(keys)]:
        key, value, source = line.split(maxsplit=2)
        printed[key] = (float(value), source)
    assert printed == {k: (float(f"{ring8.values[k]:.7g}"), "measured on preset ring8 (theory/measured/ring8.json)")
                       for k in keys}


def test_the_default_family_gives_a_prediction_with_the_measured_defaults(capsys):
    # the reason DEFAULT_FAMILY is sgd-frozen: at ring8's own α and at the README's, it certifies the reached ε
    for argv in ([], ["--alpha-d", "2e-4", "--alpha-g", "5e-5"]):
        out = run_json(capsys, *argv)
        assert 0 < out["b_star"]["joint"] < math.inf
    # sgd cannot: its coupling floor exceeds the ε² the ring8 run reached
    assert main(["--family", "sgd"]) == 2
    err = capsys.readouterr().err
    assert "not certifiable by this bound: ε_G² = " in err and err.rstrip().endswith(RING8_EPSILONS), err
    # the Adam-type families get no ε from ring8 (its VI gap at θ_ref is negative): their defaults, said so
    for family in ("adam", "adam-cs"):
        assert main(["--family", family]) == 2
        err = capsys.readouterr().err
        assert "not certifiable by this bound: ε_G² = " in err, err
        assert f"ε is from default: {get_family(family).epsilon.source}" in err, err


@pytest.mark.parametrize("preset", measured_presets())
def test_every_shipped_preset_is_a_default_layer(preset, capsys):
    measured = load_measured(preset)
    out = run_json(capsys, "--preset", preset, "--family", "adam", "--epsilon", "1e6")
    for key, c in out["constants"].items():
        if key in measured.values:
            assert c == {"value": measured.values[key],
                         "source": f"measured on preset {preset} (theory/measured/{preset}.json)"}, key
        else:  # a constant the preset's run has none of (no preconditioner): the family default, labelled so
            assert c["source"].startswith("default: "), key
    assert out["epsilon"] == {"value": 1e6, "source": "flag --epsilon"}


def test_a_flag_beats_the_measured_default(capsys):
    out = run_json(capsys, "--alpha-d", "2e-4", "--sigma2-g", "10", "--epsilon", "2")
    assert out["constants"]["alpha_D"] == {"value": 2e-4, "source": "flag --alpha-d"}
    assert out["constants"]["sigma2_G"] == {"value": 10.0, "source": "flag --sigma2-g"}
    assert out["constants"]["alpha_G"]["source"] == RING8
    assert out["epsilon"] == {"value": 2.0, "source": "flag --epsilon"}


def test_a_constants_file_replaces_the_preset(tmp_path, capsys):
    path = tmp_path / "c.json"
    write_constants(path, SGD_CONSTANTS, {"preset": "test"}, noise_scale={"D": 1.5, "G": 2.5})
    out = run_json(capsys, "--constants", str(path))
    assert out["family"] == DEFAULT_FAMILY
    for key, c in out["constants"].items():
        assert c == {"value": SGD_CONSTANTS[key], "source": f"file {path}"}, key
    # the file has no ε for the family: the family's default, not the preset's measured ε
    assert out["epsilon"]["source"].startswith("default: ")
    assert out["noise_scale"] == {"D": 1.5, "G": 2.5}


def test_resolve_constants_layers_flags_file_defaults_family():
    frozen = get_family("sgd-frozen")
    family_defaults = resolve_constants(frozen, {})  # the Python API's illustrative defaults, unchanged
    assert all(c.source.startswith("default: ") for c in family_defaults.values())
    partial = {"alpha_D": 1e-3, "sigma2_D": 7.0}
    got = resolve_constants(frozen, {"alpha_D": 5e-4}, defaults=partial, defaults_label="measured here")
    assert (got["alpha_D"].value, got["alpha_D"].source) == (5e-4, "flag --alpha-d")
    assert (got["sigma2_D"].value, got["sigma2_D"].source) == (7.0, "measured here")
    assert got["gap_D"] == family_defaults["gap_D"]  # a constant the defaults layer lacks
    # a file is complete and wins over the defaults layer (which is then ignored)
    got = resolve_constants(frozen, {}, SGD_CONSTANTS, "f.json", defaults=partial, defaults_label="measured here")
    assert {c.source for c in got.values()} == {"file f.json"}
    # the empirical report's positional call still works
    assert resolve_constants(frozen, {"alpha_D": 1e-3, "alpha_G": 5e-4}, None, "label")["gap_G"].source.startswith(
        "default: ")
    eps = resolve_epsilon(frozen, None, None, "", {"sgd-frozen": 1.5}, "measured ε")
    assert (eps.value, eps.source) == (1.5, "measured ε")
    assert resolve_epsilon(frozen, None, {"adam": 9.0}, "f.json", {"sgd-frozen": 1.5}, "x").source.startswith("default")
    assert resolve_epsilon(frozen, 0.7, {"sgd-frozen": 2.0}, "f.json").source == "flag --epsilon"


def test_text_output_has_table_b_star_and_closed_forms(capsys):
    assert main(["--alpha-d", "2e-4", "--alpha-g", "5e-5"]) == 0
    text = capsys.readouterr().out
    assert "K_P(b) = A_P·b / ((ε_P² − C_P)·b − B_P)" in text  # ring8's ε_D ≠ ε_G: each player's own
    assert "b*_P = argmin N_P = 2·B_P / (ε_P² − C_P)" in text
    assert "critical batch size b* =" in text
    assert "sympy proofs: 20/20 facts hold" in text
    assert "flag --alpha-d" in text
    ring8 = load_measured("ring8")
    assert "alpha_G       5e-05        flag --alpha-g" in text
    assert f"gap_G         {ring8.values['gap_G']:<12.7g} {RING8}" in text
    assert "[the ε_D the ring8 reference run reached (theory/measured/ring8.json)]" in text
    noise, pre = ring8.noise_scale, ring8.noise_scale_preconditioned  # ring8 is Adam: both players have B_noise,H
    assert "noise-scale prediction b* ≈ 2·B_simple" in text
    assert (f"D {2 * noise['D']:.5g} (B_simple {noise['D']:.5g}; in the optimizer's metric 2·B_noise,H "
            f"{2 * pre['D']:.5g}), G {2 * noise['G']:.5g} (B_simple {noise['G']:.5g}; in the optimizer's metric "
            f"2·B_noise,H {2 * pre['G']:.5g})" in text)


def test_constants_file_round_trip(tmp_path, capsys):
    ref = run_json(capsys, "--family", "sgd", "--epsilon", "30")
    path = tmp_path / "c.json"
    write_constants(path, {k: v["value"] for k, v in ref["constants"].items()}, {"preset": "test"})
    out = run_json(capsys, "--family", "sgd", "--constants", str(path), "--epsilon", "30")
    assert out["b_star"] == ref["b_star"]
    assert all(c["source"] == f"file {path}" for c in out["constants"].values())
    # a flag beats the file
    out = run_json(capsys, "--family", "sgd", "--constants", str(path), "--epsilon", "30", "--alpha-g", "2e-4")
    assert out["constants"]["alpha_G"]["source"] == "flag --alpha-g"


# sgd: B_P = L_P·α_P·σ_P², C_P = 2·M_P·α_Q·sqrt(G_Q² + σ_Q²)/α_P, b*_P = 2·B_P/(ε² − C_P)
SGD_CONSTANTS = {
    "alpha_D": 1e-3, "alpha_G": 5e-4, "smoothness_D": 50.0, "smoothness_G": 20.0, "sigma2_D": 4.0, "sigma2_G": 9.0,
    "gap_D": 1.0, "gap_G": 0.5, "cross_lip_D": 0.01, "cross_lip_G": 0.02, "grad_bound_D": 1.0, "grad_bound_G": 2.0,
}


def sgd_b_star(c, p, eps):
    q = "G" if p == "D" else "D"
    B = c[f"smoothness_{p}"] * c[f"alpha_{p}"] * c[f"sigma2_{p}"]
    G_Q = math.sqrt(c[f"grad_bound_{q}"] ** 2 + c[f"sigma2_{q}"])  # bound on E||g_Q||
    C = 2 * c[f"cross_lip_{p}"] * c[f"alpha_{q}"] * G_Q / c[f"alpha_{p}"]
    assert 0 < C < eps**2
    return 2 * B / (eps**2 - C)


def test_the_files_epsilon_and_noise_scale_are_used(tmp_path, capsys):
    path = tmp_path / "c.json"
    write_constants(path, SGD_CONSTANTS, {"preset": "test"},
                    epsilon={"sgd": {"value": 0.5, "method": "x"}, "adam": 9.0},
                    noise_scale={"D": 12.3, "G": {"value": 45.6, "interval": [40.0, 50.0]}})
    out = run_json(capsys, "--family", "sgd", "--constants", str(path))
    assert out["epsilon"] == {"value": 0.5, "source": f"file {path} (the ε the measured run reached)"}
    for p in "DG":
        assert out["b_star"][p] == pytest.approx(sgd_b_star(SGD_CONSTANTS, p, 0.5), rel=1e-12)
    assert out["noise_scale"] == {"D": 12.3, "G": 45.6}
    # a flag beats the file
    out = run_json(capsys, "--family", "sgd", "--constants", str(path), "--epsilon", "0.7")
    assert out["epsilon"] == {"value": 0.7, "source": "flag --epsilon"}
    assert out["b_star"]["D"] == pytest.approx(sgd_b_star(SGD_CONSTANTS, "D", 0.7), rel=1e-12)

    assert main(["--family", "sgd", "--constants", str(path)]) == 0
    text = capsys.readouterr().out
    assert f"target: ε = 0.5 (ε² = 0.25)   [file {path} (the ε the measured run reached)]" in text
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if "critical batch size b* =" in line)
    assert lines[at + 1].startswith("  noise-scale prediction b* ≈ 2·B_simple")
    assert lines[at + 1].endswith(": D 24.6 (B_simple 12.3), G 91.2 (B_simple 45.6)")


def test_the_preconditioned_noise_scale_is_printed_beside_b_simple(tmp_path, capsys):
    """A player whose entry has B_noise,H (Adam's metric) gets 2·B_noise,H beside its 2·B_simple; a player without
    one only B_simple; --json has both under their own keys."""
    path = tmp_path / "c.json"
    write_constants(path, SGD_CONSTANTS, {"preset": "test"},
                    noise_scale={"D": {"value": 12.3, "preconditioned": {"value": 20.5, "interval": [18.0, 22.0]}},
                                 "G": 45.6})
    out = run_json(capsys, "--family", "sgd", "--constants", str(path), "--epsilon", "0.5")
    assert out["noise_scale"] == {"D": 12.3, "G": 45.6} and out["noise_scale_preconditioned"] == {"D": 20.5}
    assert main(["--family", "sgd", "--constants", str(path), "--epsilon", "0.5"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "noise-scale prediction" in x)
    assert line.endswith(": D 24.6 (B_simple 12.3; in the optimizer's metric 2·B_noise,H 41), "
                         "G 91.2 (B_simple 45.6)")


def test_without_epsilon_for_the_family_the_default_is_used(tmp_path, capsys):
    path = tmp_path / "c.json"
    write_constants(path, {**SGD_CONSTANTS, "cross_lip_D": 0.0, "cross_lip_G": 0.0}, epsilon={"adam": 9.0})
    out = run_json(capsys, "--family", "sgd", "--constants", str(path))
    assert out["epsilon"]["source"].startswith("default: ") and out["noise_scale"] == {}
    assert out["noise_scale_preconditioned"] == {}
    assert main(["--family", "sgd", "--constants", str(path)]) == 0
    assert "noise-scale prediction" not in capsys.readouterr().out


def test_plot_and_latex(tmp_path, capsys):
    png = tmp_path / "sub" / "kb.png"
    assert main(["--plot", str(png), "--latex"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    tex = capsys.readouterr().out
    assert r"\begin{align*}" in tex and "b^*_D" in tex and r"\end{align*}" in tex


def test_an_uncertifiable_epsilon_names_each_floor_and_the_smallest_certifiable(capsys):
    floors = run_json(capsys, "--family", "adam", "--epsilon", "1e4")["C"]
    assert floors["G"] > floors["D"] > 0.25  # ε² = 0.25 lies below both floors: both are named, G's first
    assert main(["--family", "adam", "--epsilon", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"theory.critical: error: not certifiable by this bound: ε_G² = 0.25 <= C_G = {floors['G']:.6g}, the "
        f"generator's floor for family 'adam' (it certifies only ε_G > {math.sqrt(floors['G']):.6g}); and "
        f"ε_D² = 0.25 <= C_D = {floors['D']:.6g}, the discriminator's floor for family 'adam' (it certifies only "
        f"ε_D > {math.sqrt(floors['D']):.6g}); ε is from flag --epsilon\n")
    # a per-player target above D's floor leaves only G's named, with both sources
    eps_d = 1.01 * math.sqrt(floors["D"])
    assert main(["--family", "adam", "--epsilon-d", repr(eps_d), "--epsilon-g", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "ε_D²" not in err and f"ε_G² = 0.25 <= C_G = {floors['G']:.6g}" in err
    assert err.rstrip().endswith("ε_D is from flag --epsilon-d, ε_G is from flag --epsilon-g")


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

    def with_sections(name, **sections):
        path = tmp_path / name
        path.write_text(json.dumps({"schema": "ttur-constants/1", "constants": SGD_CONSTANTS, **sections}))
        return ["--family", "sgd", "--constants", str(path)]

    return [
        (["--alpha-d", "-1"], "alpha_D must be > 0"),
        (["--alpha-d", "0"], "alpha_D must be > 0"),
        (["--alpha-d", "nan"], "alpha_D must be finite"),
        (["--alpha-d", "inf"], "alpha_D must be finite"),
        (["--alpha-d", "abc"], "not a number"),
        (["--family", "adam", "--beta1-d", "1"], "beta1_D must lie in [0, 1)"),
        (["--family", "nope"], "unknown family 'nope'"),
        (["--epsilon", "0"], "epsilon must be a positive finite number"),
        (["--epsilon", "nan"], "epsilon must be a positive finite number"),
        (["--epsilon-d", "0"], "epsilon_D must be a positive finite number, got 0.0"),
        (["--epsilon", "1", "--epsilon-g=-inf"], "epsilon_G must be a positive finite number, got -inf"),
        (["--epsilon-g", "x"], "argument --epsilon-g: not a number: 'x'"),
        (["--family", "sgd", "--epsilon", "1e-3"], "not certifiable by this bound: ε_G² = 1e-06 <= C_G = "),
        (["--family", "adam"], "the generator's floor for family 'adam'"),
        (["--family", "sgd"], f"; {RING8_EPSILONS}"),
        (["--preset", "nope"], "argument --preset: invalid choice: 'nope'"),
        (["--preset", "ring8", "--constants", str(tmp_path / "x.json")], "not allowed with argument --preset"),
        (["--family", "sgd", "--alpha-d", "0.5"], "needs alpha_D*smoothness_D <= 1"),
        (["--family", "adam", "--h-min-d", "1", "--h-max-d", "0.1"], "needs h_min_D <= h_max_D"),
        (["--family", "adam", "--smoothness-d", "3"], "--smoothness-d is not a constant of family 'adam'"),
        (["--h-min-d", "3"], "--h-min-d is not a constant of family 'sgd-frozen'"),
        (["--batch-sizes", "0,4"], "batch sizes must be"),
        (["--batch-sizes", "a,b"], "comma-separated numbers"),
        (["--batch-sizes", ""], "batch sizes must be a non-empty list"),
        # a floor beyond float64 is still compared exactly: the target is unreachable, not an overflow
        (["--family", "adam", "--alpha-d", "1e300", "--h-min-d", "1e-300", "--h-max-d", "1", "--grad-bound-d", "1",
          "--beta1-d", "0.5"], "<= C_D = 1.5e+600, the discriminator's floor"),
        (["--family", "adam", "--alpha-d", "1e-300", "--dim-d", "1e300", "--epsilon", "1e4"],
         "A_D = Dist_D^2·d_D·h_max,D·(β1_D + 1)/"),
        (["--constants", str(tmp_path / "missing.json")], "cannot read constants file"),
        (["--constants", str(bad_json)], "is not valid JSON"),
        (["--constants", str(wrong_schema)], "\"schema\" must be"),
        (["--family", "adam", "--constants", str(incomplete)], "incomplete for family 'adam': missing beta1_D"),
        (["--constants", str(unknown)], "unknown constants alpha_X"),
        (["--constants", str(nan)], "NaN is not a finite number"),
        (with_sections("neg.json", epsilon={"sgd": -0.5}), "epsilon.sgd must be > 0, got -0.5"),
        (with_sections("fam.json", epsilon={"sdg": 0.5}),
         'unknown family sdg (known: adam, adam-cs, amsgrad-l1, sgd, sgd-frozen)'),
        (with_sections("ns.json", noise_scale={"D": 1.0, "X": 2.0}), '"noise_scale" has unknown player X'),
        (with_sections("iv.json", noise_scale={"D": {"value": 5.0, "interval": [6.0, 7.0]}}),
         "noise_scale.D interval must be [lo, hi] with lo <= value <= hi"),
        (with_sections("iv2.json", epsilon={"sgd": {"value": 0.5, "interval": [0.1, 0.2]}}),
         "epsilon.sgd interval must be [lo, hi]"),
        (with_sections("low.json", epsilon={"sgd": 0.01}), "not certifiable by this bound: ε_G² = 0.0001 <= C_G"),
        (with_sections("pl.json", epsilon={"sgd": {"value": 1.0, "players": {"D": 1.0}}}),
         'epsilon.sgd players must be {"D": value, "G": value}, got [\'D\']'),
        (with_sections("pl2.json", epsilon={"sgd": {"value": 1.0, "players": {"D": 1.0, "G": 0}}}),
         "epsilon.sgd players.G must be a positive finite number, got 0"),
        (with_sections("low2.json", epsilon={"sgd": 0.01}), f"ε is from file {tmp_path / 'low2.json'} (the ε"),
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
    for argv in (["--alpha-d", "-1"], ["--constants", str(tmp_path / "nope.json")], ["--epsilon", "x"],
                 ["--preset", "nope"], ["--family", "adam"]):
        proc = subprocess.run([sys.executable, "-m", "theory.critical", *argv], capture_output=True, text=True)
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_the_readme_command_runs_as_a_process():
    proc = subprocess.run([sys.executable, "-m", "theory.critical", "--alpha-d", "2e-4", "--alpha-g", "5e-5"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "critical batch size b* =" in proc.stdout
