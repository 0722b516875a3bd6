"""README.md stays true: its CLI output is what the CLI prints, and CI runs its test command."""

import re
import shlex
from pathlib import Path

from theory.critical import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_output_block_is_the_current_output(capsys):
    m = re.search(r"<!-- output of: python -m theory.critical (.*?) -->\n```text\n\$ [^\n]*\n(.*?)\n```", README,
                  re.S)
    assert m, "README lost its output block"
    assert main(shlex.split(m.group(1))) == 0
    assert capsys.readouterr().out.rstrip("\n") == m.group(2)


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith(("#", "set ", "cd "))]
    assert ci == ["make test"]
