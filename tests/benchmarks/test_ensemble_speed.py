"""benchmarks/ensemble_speed.py end to end at a tiny size: both sides agree bit for bit, the profile lines, a preset
the sweep cannot batch, and the speed-up line are printed."""

import importlib.util
import re
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "ensemble_speed.py"


def test_a_tiny_run_prints_agreement_the_profile_and_a_positive_speed_up(capsys):
    spec = importlib.util.spec_from_file_location("ensemble_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--batch-sizes", "16", "--seeds", "5", "--max-steps", "20", "--profile-steps", "10",
                        "--also", "digits"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "ring8: runs with another status, K or stop than alone: 0 of 5; runs whose FID history differs in any " \
           "bit: 0 of 5" in lines
    assert any(line.startswith("training only, b =   16:") for line in lines)
    assert any(re.match(r"evaluation: .* forward pass \d+\.\d\d ms \(\d+ GFLOP/s\)", line) for line in lines)
    assert any(line.startswith("digits: one run per cell, not batched: seed ensembles need model") for line in lines)
    speed_up = re.fullmatch(r"speed-up: (\d+\.\d\d)x", lines[-1])
    assert speed_up and float(speed_up.group(1)) > 0
