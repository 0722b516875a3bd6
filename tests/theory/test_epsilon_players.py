"""Each player's own target ε_P: the flags, the constants file's per-player form, the Python API and the output.

The numbers are worked by hand for `sgd-frozen` (A_P = 2Δ_P/α_P, B_P = L_P·α_P·σ²_P, C_P = 0) on the constants
below: A_D = 20, B_D = 1, A_G = 80, B_G = 0.6. With ε_D = 0.5, ε_G = 1: b*_D = 2B_D/ε_D² = 8, b*_G = 1.2,
K_D(8) = 20/0.25·8/(8 − 4) = 160 > K_G(8) = 80·8/7.4, so D binds and the joint b* = 8. With one ε = 1 for both:
b*_D = 2, K_G(b*_G = 1.2) = 160 > K_D(1.2) = 120, so G binds and b* = 1.2.
"""

import json

import pytest

from theory import critical
from theory.analysis import ConstantValue, analyse, resolve_constants, resolve_epsilon, resolve_epsilons
from theory.critical import main
from theory.families import get_family
from theory.schema import ConstantsFile, write_constants

FROZEN = {"alpha_D": 0.1, "smoothness_D": 2.0, "sigma2_D": 5.0, "gap_D": 1.0,
          "alpha_G": 0.05, "smoothness_G": 4.0, "sigma2_G": 3.0, "gap_G": 2.0}


def run_json(capsys, *argv):
    assert main([*argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def files(tmp_path):
    """Constants files for sgd-frozen: per-player ε (0.5, 1), and the old single-ε form (1)."""
    split, single = tmp_path / "split.json", tmp_path / "single.json"
    write_constants(split, FROZEN, epsilon={"sgd-frozen": {"value": 1.0, "players": {"D": 0.5, "G": 1.0}}})
    write_constants(single, FROZEN, epsilon={"sgd-frozen": 1.0})
    return split, single


def test_per_player_flags_give_each_player_its_own_b_star(files, capsys):
    _, single = files
    out = run_json(capsys, "--constants", str(single), "--epsilon-d", "0.5")
    assert out["b_star"] == {"D": 8.0, "G": pytest.approx(1.2, rel=1e-15), "joint": 8.0}
    assert out["b_star_case"] == "D"
    assert out["K_inf"] == {"D": 80.0, "G": 80.0, "joint": 80.0}
    assert out["epsilon_players"] == {
        "D": {"value": 0.5, "source": "flag --epsilon-d"},
        "G": {"value": 1.0, "source": f"file {single} (the ε the measured run reached)"}}
    common = run_json(capsys, "--constants", str(single))
    assert common["b_star"] == {"D": 2.0, "G": pytest.approx(1.2, rel=1e-15), "joint": common["b_star"]["G"]}
    assert common["b_star_case"] == "G"
    # --epsilon sets both, a player's own flag beats it for that player
    out = run_json(capsys, "--constants", str(single), "--epsilon", "1", "--epsilon-g", "2")
    assert out["epsilon_players"]["D"] == {"value": 1.0, "source": "flag --epsilon"}
    assert out["epsilon_players"]["G"] == {"value": 2.0, "source": "flag --epsilon-g"}
    assert out["b_star"]["G"] == pytest.approx(2 * 0.6 / 4, rel=1e-15)


def test_a_files_per_player_epsilon_is_the_target_and_old_files_mean_both(files, capsys):
    split, single = files
    out = run_json(capsys, "--constants", str(split))
    assert out["b_star"] == {"D": 8.0, "G": pytest.approx(1.2, rel=1e-15), "joint": 8.0}
    assert out["epsilon_players"] == {
        p: {"value": v, "source": f"file {split} (the ε_{p} the measured run reached)"} for p, v in (("D", 0.5),
                                                                                                    ("G", 1.0))}
    assert out["epsilon"] == out["epsilon_players"]["G"]  # the one ε shown: the larger
    assert out["min_epsilon_players"] == {"D": 0.0, "G": 0.0}
    old = run_json(capsys, "--constants", str(single))
    assert old["epsilon_players"]["D"] == old["epsilon_players"]["G"] == old["epsilon"]
    # flags beat the file: --epsilon both players, --epsilon-g only G (D keeps the file's 0.5)
    assert run_json(capsys, "--constants", str(split), "--epsilon", "1")["b_star"] == old["b_star"]
    out = run_json(capsys, "--constants", str(split), "--epsilon-g", "2")
    assert (out["b_star"]["D"], out["epsilon_players"]["G"]["source"]) == (8.0, "flag --epsilon-g")


def test_a_presets_per_player_epsilon_is_used_and_labelled(monkeypatch, capsys):
    file = ConstantsFile(values=FROZEN, epsilon={"sgd-frozen": 1.0},
                         epsilon_details={"sgd-frozen": {"players": {"D": 0.5, "G": 1.0}}})
    monkeypatch.setattr(critical, "load_measured", lambda preset: file)
    out = run_json(capsys, "--preset", "lqgan")
    assert out["b_star"]["joint"] == 8.0
    assert out["epsilon_players"]["D"]["source"] == "the ε_D the lqgan reference run reached " \
                                                    "(theory/measured/lqgan.json)"


def test_text_output_names_each_players_target_and_forms(files, capsys):
    split, single = files
    assert main(["--constants", str(split)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[2:4] == [f"target: ε_D = 0.5 (ε_D² = 0.25)   [file {split} (the ε_D the measured run reached)]",
                         f"        ε_G = 1 (ε_G² = 1)   [file {split} (the ε_G the measured run reached)]"]
    assert "  each player P has its own target: V_P <= ε_P²" in text
    assert "  b*_P = argmin N_P = 2·B_P / (ε_P² − C_P) = 2·c_P" in text
    assert "  critical batch size b* = 8: the discriminator binds at its own optimum (b* = b*_D)" in text
    assert main(["--constants", str(single)]) == 0  # one ε: the one-target output, unchanged
    text = capsys.readouterr().out.splitlines()
    assert text[2] == f"target: ε = 1 (ε² = 1)   [file {single} (the ε the measured run reached)]"
    assert "  b*_P = argmin N_P = 2·B_P / (ε² − C_P) = 2·c_P" in text
    assert not any("ε_P" in line for line in text)


def test_python_api_takes_one_epsilon_or_one_per_player():
    family = get_family("sgd-frozen")
    constants = resolve_constants(family, FROZEN)
    one = ConstantValue("epsilon", 1.0, "x")
    a = analyse(family, constants, one)  # the single ConstantValue still works
    assert (a.joint.b_star, a.joint.case, a.epsilon, a.per_player_epsilon) == (pytest.approx(1.2), "G", one, False)
    assert analyse(family, constants, {"D": one, "G": one}).joint == a.joint
    split = {"D": ConstantValue("epsilon_D", 0.5, "x"), "G": one}
    b = analyse(family, constants, split)
    assert (b.joint.b_star, b.joint.case, b.per_player_epsilon, b.epsilon) == (8.0, "D", True, one)
    assert b.players["G"] == a.players["G"]  # G's target is unchanged, so is everything of G's
    with pytest.raises(ValueError, match="epsilon must be a ConstantValue or"):
        analyse(family, constants, {"D": one})


def test_resolve_epsilons_layers_per_player():
    family = get_family("sgd-frozen")
    file = {"sgd-frozen": {"D": 0.5, "G": 1.0}}
    got = resolve_epsilons(family, None, file, "f.json")
    assert {p: (v.value, v.source) for p, v in got.items()} == {
        "D": (0.5, "file f.json (the ε_D the measured run reached)"),
        "G": (1.0, "file f.json (the ε_G the measured run reached)")}
    got = resolve_epsilons(family, 2.0, file, "f.json", player_flags={"G": 3.0})
    assert {p: (v.value, v.source) for p, v in got.items()} == {"D": (2.0, "flag --epsilon"),
                                                                 "G": (3.0, "flag --epsilon-g")}
    got = resolve_epsilons(family, defaults={"sgd-frozen": {"D": 0.5, "G": 0.5}}, defaults_label="the ε it reached")
    assert got["D"] == got["G"] == ConstantValue("epsilon", 0.5, "the ε it reached")  # equal: one target
    got = resolve_epsilons(family, None, {"adam": 1.0}, "f.json", {"sgd-frozen": 9.0}, "ignored: a file is given")
    assert got["D"].source.startswith("default: ") and got["D"] == got["G"]
    # the one-ε API, as the empirical report calls it, is unchanged; per-player values give the larger
    assert resolve_epsilon(family, None, {"sgd-frozen": 1.5}, "f.json").value == 1.5
    assert resolve_epsilon(family, None, file, "f.json").value == 1.0
    with pytest.raises(ValueError, match="unknown players X"):
        resolve_epsilons(family, player_flags={"X": 1.0})
