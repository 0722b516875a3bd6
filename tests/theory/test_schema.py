"""The constants JSON file: what the numerical module will write and theory.critical reads."""

import json

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
