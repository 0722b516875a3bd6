"""theory/ never imports torch (nor the empirical package): it must stay usable without them."""

import subprocess
import sys


def test_theory_imports_no_torch(tmp_path):
    code = (
        "import sys, theory.critical, theory.analysis, theory.render, theory.plot, theory.schema;"
        "theory.critical.main(['--json', '--plot', sys.argv[1]]);"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'empirical'))];"
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "p.png")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
