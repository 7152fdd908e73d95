"""The pre-commit hooks name real commands that work on the files pre-commit passes."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_hooks_run_the_cli(cli, tmp_path):
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert set(hooks) == {"nnx-migrate-lint", "nnx-migrate-fix"}
    target = tmp_path / "a.py"
    target.write_text("from flax import nnx\nopt = nnx.Optimizer(model, tx)\n")
    lint_args = hooks["nnx-migrate-lint"]["entry"].split()
    assert lint_args[0] == "nnx-migrate"
    assert cli(*lint_args[1:], target).code == 1  # pre-commit fails the commit
    fix_args = hooks["nnx-migrate-fix"]["entry"].split()
    assert cli(*fix_args[1:], target).code == 0
    assert "wrt=nnx.Param" in target.read_text()
