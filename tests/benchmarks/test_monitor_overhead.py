"""benchmarks/monitor_overhead.py end to end at a tiny size: every variant is timed against the plain loop and the
last line is the overhead at N = 10."""

import importlib.util
import re
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "monitor_overhead.py"


def test_a_tiny_run_prints_each_variants_ratio_and_the_overhead_line(capsys):
    spec = importlib.util.spec_from_file_location("monitor_overhead", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--steps", "20", "--batch-size", "16", "--width", "16", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("plain loop: ")
    assert [line.split(":")[0] for line in lines[1:5]] == [
        "N = 1 (two halves)", "N = 1 (reuse_grad)", "N = 10 (two halves)", "N = 10 (reuse_grad)"]
    overhead = re.fullmatch(r"overhead at N = 10 \(reuse_grad\): (\d+\.\d\d)x", lines[-1])
    assert overhead and float(overhead.group(1)) > 0
