"""README.md is the front door: its commands and tables must stay true."""

import re
from pathlib import Path

from nnx_migrate.lint.docs import readme_with_table

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text("utf-8")


def test_rule_table_is_current():
    assert readme_with_table(README) == README, "run: python -m nnx_migrate.lint.docs README.md"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    test_command = next(b.strip() for b in blocks if "pytest" in b)
    assert test_command in ci


def test_readme_main_job_converts_the_bundled_example(cli):
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    main_job = blocks[0].strip().split("&&")[1].split()
    assert main_job[0] == "nnx-migrate"
    result = cli(*main_job[1:])
    assert result.code == 0, result.err
    assert "+class MLP(nnx.Module):" in result.out and "-from flax import linen as nn" in result.out
    assert "1 modules converted, 0 converted with TODO sites" in result.err
