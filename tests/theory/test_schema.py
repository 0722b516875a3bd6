"""The constants JSON file: what the numerical module will write and theory.critical reads."""

import json
import re
from pathlib import Path

import pytest

from theory.errors import TheoryInputError
from theory.schema import SCHEMA, constants_document, load_constants, parse_constants, write_constants


def test_write_then_load_keeps_values_intervals_and_source(tmp_path):
    path = tmp_path / "c.json"
    values = {"alpha_D": 2e-4, "sigma2_G": {"value": 3.0, "interval": [2.5, 3.5], "method": "per-sample", "n": 8}}
    write_constants(path, values, {"preset": "ring8", "seed": 0})
    got = load_constants(path)
    assert got.values == {"alpha_D": 2e-4, "sigma2_G": 3.0}
    assert got.details == {"sigma2_G": {"interval": [2.5, 3.5], "method": "per-sample", "n": 8}}
    assert got.source == {"preset": "ring8", "seed": 0}
    assert not (tmp_path / "c.json.tmp").exists()


@pytest.mark.parametrize(
    "doc, message",
    [
        ([], "top level must be a JSON object"),
        ({"constants": {"alpha_D": 1}}, '"schema" must be'),
        ({"schema": SCHEMA, "constants": {}}, "non-empty object"),
        ({"schema": SCHEMA, "constants": {"alpha": 1}}, "unknown constants alpha"),
        ({"schema": SCHEMA, "constants": {"alpha_D": "1e-4"}}, "alpha_D must be a finite number"),
        ({"schema": SCHEMA, "constants": {"alpha_D": True}}, "alpha_D must be a finite number"),
        ({"schema": SCHEMA, "constants": {"alpha_D": {"interval": [0, 1]}}}, "alpha_D must be a finite number"),
        ({"schema": SCHEMA, "constants": {"alpha_D": {"value": 1, "interval": [2, 3]}}}, "lo <= value <= hi"),
        ({"schema": SCHEMA, "constants": {"alpha_D": {"value": 1, "n": 0}}}, "n must be a positive integer"),
        ({"schema": SCHEMA, "constants": {"alpha_D": {"value": 1, "units": "x"}}}, "unknown fields units"),
        ({"schema": SCHEMA, "constants": {"alpha_D": 1}, "source": []}, '"source" must be an object'),
    ],
)
def test_malformed_documents_are_refused_with_one_line(doc, message):
    with pytest.raises(TheoryInputError, match=message) as info:
        parse_constants(doc, "x.json")
    assert "\n" not in str(info.value)


def test_writer_refuses_what_the_reader_would_refuse(tmp_path):
    with pytest.raises(TheoryInputError, match="unknown constants"):
        write_constants(tmp_path / "c.json", {"alpha": 1.0})
    assert not (tmp_path / "c.json").exists()
    assert constants_document({"alpha_D": 1.0})["schema"] == SCHEMA


def test_non_utf8_and_infinity_are_refused(tmp_path):
    p = tmp_path / "c.json"
    p.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TheoryInputError, match="not UTF-8"):
        load_constants(p)
    p.write_text(json.dumps({"schema": SCHEMA, "constants": {"alpha_D": 1}}).replace("1}", "Infinity}"))
    with pytest.raises(TheoryInputError, match="Infinity is not a finite number"):
        load_constants(p)


def _document(**sections):
    return {"schema": SCHEMA, "constants": {"alpha_D": 1e-4}, **sections}


def test_epsilon_and_noise_scale_round_trip(tmp_path):
    path = tmp_path / "c.json"
    epsilon = {"sgd": {"value": 0.2, "interval": [0.15, 0.25], "method": "mean ‖∇L‖² up to the target", "n": 3},
               "adam": 4.0}
    noise = {"D": {"value": 40.0, "interval": [30.0, 50.0], "n": 8}, "G": 12.5}
    write_constants(path, {"alpha_D": 2e-4}, {"preset": "ring8"}, epsilon=epsilon, noise_scale=noise)
    got = load_constants(path)
    assert got.values == {"alpha_D": 2e-4}
    assert got.epsilon == {"sgd": 0.2, "adam": 4.0}
    assert got.epsilon_details == {"sgd": {"interval": [0.15, 0.25], "method": "mean ‖∇L‖² up to the target", "n": 3}}
    assert got.noise_scale == {"D": 40.0, "G": 12.5}
    assert got.noise_scale_details == {"D": {"interval": [30.0, 50.0], "n": 8}}
    assert got.source == {"preset": "ring8"}
    assert not (tmp_path / "c.json.tmp").exists()


def test_preconditioned_noise_scale_round_trips_beside_b_simple(tmp_path):
    """A player's noise_scale entry may hold B_noise,H under "preconditioned"; it stays out of noise_scale (the
    B_simple per player that older readers take) and comes back in noise_scale_preconditioned and the details."""
    path = tmp_path / "c.json"
    noise = {"D": {"value": 40.0, "interval": [30.0, 50.0], "n": 8,
                   "preconditioned": {"value": 55.0, "interval": [41.0, 70.0], "n": 7, "method": "Adam metric"}},
             "G": {"value": 12.5, "preconditioned": 3.0}}
    write_constants(path, {"alpha_D": 2e-4}, noise_scale=noise)
    got = load_constants(path)
    assert got.noise_scale == {"D": 40.0, "G": 12.5}
    assert got.noise_scale_preconditioned == {"D": 55.0, "G": 3.0}
    assert got.noise_scale_details["D"] == {"interval": [30.0, 50.0], "n": 8, "preconditioned": {
        "value": 55.0, "interval": [41.0, 70.0], "n": 7, "method": "Adam metric"}}
    assert parse_constants(_document(noise_scale={"D": 4.0}), "x.json").noise_scale_preconditioned == {}


def test_both_sections_are_optional_and_written_only_when_given(tmp_path):
    doc = constants_document({"alpha_D": 1.0})
    assert "epsilon" not in doc and "noise_scale" not in doc
    got = parse_constants(doc, "x.json")
    assert got.epsilon == got.noise_scale == got.epsilon_details == got.noise_scale_details == {}
    assert set(constants_document({"alpha_D": 1.0}, epsilon={"sgd": 1.0})) == {"schema", "constants", "epsilon",
                                                                               "source"}


@pytest.mark.parametrize(
    "sections, message",
    [
        ({"epsilon": []}, '"epsilon" must be an object of family -> value'),
        ({"epsilon": {"nope": 1.0}},
         '"epsilon" has unknown family nope (known: adam, adam-cs, amsgrad-l1, sgd, sgd-frozen)'),
        ({"epsilon": {"sgd": -0.1}}, "epsilon.sgd must be > 0, got -0.1"),
        ({"epsilon": {"sgd": 0}}, "epsilon.sgd must be > 0"),
        ({"epsilon": {"sgd": "0.1"}}, "epsilon.sgd must be a finite number"),
        ({"epsilon": {"sgd": {"value": 1, "interval": [2, 3]}}}, "epsilon.sgd interval must be [lo, hi]"),
        ({"epsilon": {"adam": {"value": 1, "units": "x"}}}, "epsilon.adam has unknown fields units"),
        ({"epsilon": {"sgd": {"value": 1, "players": [1, 2]}}}, 'epsilon.sgd players must be {"D": value, "G": value}'),
        ({"epsilon": {"sgd": {"value": 1, "players": {"D": 1, "G": 2, "X": 3}}}},
         "epsilon.sgd players must be {\"D\": value, \"G\": value}, got ['D', 'G', 'X']"),
        ({"epsilon": {"sgd": {"value": 1, "players": {"D": 1, "G": "2"}}}},
         "epsilon.sgd players.G must be a positive finite number, got '2'"),
        ({"epsilon": {"sgd": {"value": 1, "players": {"D": -1.0, "G": 2}}}},
         "epsilon.sgd players.D must be a positive finite number, got -1.0"),
        ({"epsilon": {"sgd": {"value": 1, "players": {"D": True, "G": 2}}}}, "players.D must be a positive finite"),
        ({"noise_scale": {"D": {"value": 1.0, "players": {"D": 1.0, "G": 1.0}}}},
         "noise_scale.D has unknown fields players"),
        ({"noise_scale": {"X": 1.0}}, '"noise_scale" has unknown player X (known: D, G)'),
        ({"noise_scale": {"D": -5.0}}, "noise_scale.D must be > 0"),
        ({"noise_scale": {"G": {"value": 5.0, "n": 0}}}, "noise_scale.G n must be a positive integer"),
        ({"noise_scale": 3}, '"noise_scale" must be an object of player -> value'),
        ({"noise_scale": {"D": {"value": 1.0, "preconditioned": -2.0}}},
         "noise_scale.D.preconditioned must be > 0, got -2"),
        ({"noise_scale": {"D": {"value": 1.0, "preconditioned": "2"}}},
         "noise_scale.D.preconditioned must be a finite number, got '2'"),
        ({"noise_scale": {"G": {"value": 1.0, "preconditioned": {"value": 2.0, "interval": [3.0, 4.0]}}}},
         "noise_scale.G.preconditioned interval must be [lo, hi] with lo <= value <= hi"),
        ({"noise_scale": {"G": {"value": 1.0, "preconditioned": {"value": 2.0, "preconditioned": 3.0}}}},
         "noise_scale.G.preconditioned has unknown fields preconditioned"),
        ({"noise_scale": {"preconditioned": {"D": 2.0}}}, '"noise_scale" has unknown player preconditioned'),
        ({"epsilon": {"sgd": {"value": 1.0, "preconditioned": 2.0}}}, "epsilon.sgd has unknown fields preconditioned"),
    ],
)
def test_malformed_epsilon_and_noise_scale_are_refused_with_one_line(sections, message, tmp_path):
    with pytest.raises(TheoryInputError, match=re.escape(message)) as info:
        parse_constants(_document(**sections), "x.json")
    assert "\n" not in str(info.value)
    with pytest.raises(TheoryInputError, match=re.escape(message)):  # the writer refuses the same
        write_constants(tmp_path / "c.json", {"alpha_D": 1e-4}, **sections)
    assert not (tmp_path / "c.json").exists()


def test_the_documented_example_is_a_valid_file():
    text = (Path(__file__).parents[2] / "docs" / "constants-schema.md").read_text(encoding="utf-8")
    example = json.loads(text.split("```json\n", 1)[1].split("```", 1)[0])
    got = parse_constants(example, "docs/constants-schema.md")
    assert set(got.epsilon) == {"sgd", "adam"} and set(got.noise_scale) == {"D", "G"}


def test_per_player_epsilon_round_trips_and_old_entries_mean_both_players(tmp_path):
    path = tmp_path / "c.json"
    epsilon = {"sgd": {"value": 1.1657, "players": {"D": 0.5942, "G": 1.1657}, "method": "mean ‖∇L‖², per player"},
               "adam": {"value": 0.5, "interval": [0.4, 0.6]}, "adam-cs": 0.7}
    write_constants(path, {"alpha_D": 2e-4}, {"preset": "lqgan"}, epsilon=epsilon)
    got = load_constants(path)
    assert got.epsilon == {"sgd": 1.1657, "adam": 0.5, "adam-cs": 0.7}  # the single values, as before
    assert got.epsilon_players == {"sgd": {"D": 0.5942, "G": 1.1657}, "adam": {"D": 0.5, "G": 0.5},
                                   "adam-cs": {"D": 0.7, "G": 0.7}}
    assert got.epsilon_details["sgd"] == {"players": {"D": 0.5942, "G": 1.1657}, "method": "mean ‖∇L‖², per player"}
    assert json.loads(path.read_text())["epsilon"]["sgd"]["players"] == {"D": 0.5942, "G": 1.1657}
    assert parse_constants(_document(), "x.json").epsilon_players == {}
