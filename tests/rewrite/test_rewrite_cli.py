"""The `rewrite` command end to end, as a CI would run it (subprocess, exit codes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "modules"


def run(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "nnx_migrate", "rewrite", *map(str, args)],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )


@pytest.fixture()
def tree(tmp_path):
    """A small repository: a Linen model, a file without Linen, one that does not parse,
    one with a TODO site."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "model.py").write_text((FIXTURES / "compact_mlp.in.py").read_text())
    (tmp_path / "pkg" / "plain.py").write_bytes((FIXTURES / "noop_plain.in.py").read_bytes())
    (tmp_path / "pkg" / "todo.py").write_text(
        "import flax.linen as nn\n\n\nclass CNN(nn.Module):\n  @nn.compact\n  def __call__(self, x):\n"
        "    x = nn.Conv(4, (3, 3))(x)\n    x = x.reshape((x.shape[0], -1))\n    return nn.Dense(2)(x)\n"
    )
    (tmp_path / "broken.py").write_text("import flax.linen as nn\ndef f(:\n")
    return tmp_path


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_default_diff_writes_nothing_and_exit_code_reports_failures_and_todos(tree):
    before = snapshot(tree)
    proc = run(tree)
    assert snapshot(tree) == before
    assert "+class MLP(nnx.Module):" in proc.stdout
    assert "broken.py: error: does not parse" in proc.stderr
    assert "todo.py:9: " in proc.stderr and "input size" in proc.stderr
    assert "4 files scanned: 2 changed, 1 unchanged, 1 failed" in proc.stderr
    assert proc.returncode == 2 | 8


def test_check_exit_codes(tree):
    assert run("--check", tree / "pkg" / "model.py").returncode == 1
    assert run("--check", tree / "pkg" / "plain.py").returncode == 0
    assert run("--check", tree / "pkg" / "todo.py").returncode == 1 | 8
    assert run("--check", tree / "broken.py").returncode == 2


def test_write_edits_in_place_and_second_run_changes_nothing(tree):
    plain_before = (tree / "pkg" / "plain.py").read_bytes()
    proc = run("--write", tree / "pkg")
    assert proc.returncode == 8  # the TODO site in todo.py
    assert (tree / "pkg" / "model.py").read_text() == (FIXTURES / "compact_mlp.out.py").read_text()
    assert (tree / "pkg" / "plain.py").read_bytes() == plain_before
    assert not list(tree.rglob("*.nnx-migrate.tmp"))
    again = run("--check", tree / "pkg" / "model.py")
    assert again.returncode == 0
    assert "0 changed" in again.stderr


def test_output_dir_mirrors_the_tree_and_leaves_sources(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted")
    before = snapshot(tree)
    proc = run("--output-dir", out, tree / "pkg", "--jobs", "2")
    assert proc.returncode == 8
    assert snapshot(tree) == before
    assert (out / "pkg" / "model.py").read_text() == (FIXTURES / "compact_mlp.out.py").read_text()
    assert (out / "pkg" / "todo.py").exists()
    # unchanged files are copied too, so the copy is a whole tree that runs on its own
    assert (out / "pkg" / "plain.py").read_bytes() == (tree / "pkg" / "plain.py").read_bytes()


def test_report_lists_every_todo_site_in_json_and_markdown(tree):
    report = tree / "report"
    run(tree, "--report", report, "-q")
    data = json.loads((tree / "report.json").read_text())
    assert data["summary"]["failed"] == 1 and data["summary"]["changed"] == 2
    sites = data["todos"]
    assert any(s["path"].endswith("todo.py") and s["line"] == 9 and "input size" in s["why"] for s in sites)
    markdown = (tree / "report.md").read_text()
    assert "todo.py:9" in markdown and "broken.py" in markdown


def test_usage_errors_exit_4(tree):
    assert run(tree / "missing").returncode == 4
    assert run("--jobs", "x", tree).returncode == 4
    assert run("--write", "--check", tree).returncode == 4
    assert run("--write", "--output-dir", tree / "o", tree).returncode == 4


def test_help_documents_exit_codes():
    proc = run("--help")
    assert proc.returncode == 0
    for line in ("1  --check only", "2  some files failed", "4  usage error", "8  TODO(nnx-migrate)"):
        assert line in proc.stdout


def test_write_keeps_a_files_declared_encoding(tmp_path):
    """A latin-1 file (PEP 263 cookie) is written back in latin-1: its strings keep their
    characters under the cookie that still heads the file."""
    source = ("# -*- coding: latin-1 -*-\nimport flax.linen as nn\n\nNAME = 'caf\u00e9'\n\n\n"
              "class M(nn.Module):\n  @nn.compact\n  def __call__(self, x):\n    return nn.relu(x)\n")
    path = tmp_path / "m.py"
    path.write_bytes(source.encode("latin-1"))
    proc = run("--write", path)
    assert proc.returncode == 0, proc.stderr
    text = path.read_bytes().decode("latin-1")
    assert "NAME = 'caf\u00e9'" in text and "nnx.Module" in text
    namespace: dict = {}
    exec(compile(path.read_bytes(), str(path), "exec"), namespace)
    assert namespace["NAME"] == "caf\u00e9"
