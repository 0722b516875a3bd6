"""examples/your_own_gan.py end to end (--quick): the monitor's constants file, a sweep of the user's `train`
through --entry, and the report that reads both."""

import importlib.util
import json
from pathlib import Path

from empirical.store import read_store
from theory.schema import load_constants

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "your_own_gan.py"


def test_the_example_measures_sweeps_and_reports_a_users_gan(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("your_own_gan", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--out", str(tmp_path), "--quick"]) == 0
    out = capsys.readouterr().out
    assert "1. monitor: 60 measurements" in out  # steps 0, 10, ..., 290 (the loop stops at the step-300 FID), D and G
    constants = load_constants(tmp_path / "constants.json")
    assert set(constants.noise_scale) == {"D", "G"} and constants.values["alpha_D"] == 4 * constants.values["alpha_G"]
    assert "user's training loop" in json.loads((tmp_path / "constants.json").read_text())["source"]["measured"]
    with read_store(tmp_path / "sweep") as store:
        assert store.base_config().entry == "your_own_gan:train"
        assert sorted((r.cell.batch_size, r.cell.seed) for r in store.runs()) == [(16, 0), (64, 0)]
    text = (tmp_path / "sweep" / "report.md").read_text()
    assert "FID ≤ 0.1 (as the user's function computes it)" in text
    assert f"The theory's constants: file {tmp_path / 'constants.json'}" in text
    assert "| 2·B_simple (the template's b* = 2c ↔ 2·B_noise): D, G, **joint** |" in text
