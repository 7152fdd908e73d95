"""README.md is the front door: its commands must stay true, and it stays short."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text("utf-8")
BASH_BLOCKS = re.findall(r"```bash\n(.*?)```", README, re.S)


def test_readme_is_a_front_door():
    # depth goes to docs/ (tests/test_docs.py checks the links into it)
    assert len(README.splitlines()) < 300


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = next(b.strip() for b in BASH_BLOCKS if "pytest" in b)
    assert test_command in ci


def test_readme_main_job_converts_the_bundled_example(cli):
    main_job = BASH_BLOCKS[0].strip().split("&&")[1].split()
    assert main_job[0] == "nnx-migrate"
    result = cli(*main_job[1:])
    assert result.code == 0, result.err
    assert "+class MLP(nnx.Module):" in result.out and "-from flax import linen as nn" in result.out
    assert "1 modules converted, 0 converted with TODO sites" in result.err


def test_readme_walkthrough_runs_as_written(tmp_path):
    """The five-minute walk-through's commands, in order, in one shell: rewrite into a
    copy beside the original, check the copy against it, lint it."""
    section = README[README.index("## A migration in five minutes"):README.index("## Commands and exit codes")]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    demo = tmp_path / "nnx-demo"
    script = "\n".join(["set -euo pipefail", 'nnx-migrate() { "$PYTHON" -m nnx_migrate "$@"; }', *blocks])
    script = script.replace("/tmp/nnx-demo", str(demo))
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=str(ROOT))
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "class MLP(nn.Module):" in (demo / "src" / "models.py").read_text()
    assert "class MLP(nnx.Module):" in (demo / "nnx" / "src" / "models.py").read_text()
    assert (demo / "migration.md").is_file()
    assert "EQUIVALENT: max |diff| 0" in done.stdout
    assert "0 findings" in done.stderr
