"""`nnx-migrate rewrite --train-style`: the flag picks the emitted step style; training TODO
sites reach the report and the exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from nnx_migrate.cli import main

from training_programs import FIXTURES, ROOT, expected_todos, output_path

EXIT_TODO = 8


def test_train_style_flag_selects_the_emitted_style(tmp_path):
    source = FIXTURES / "mlp_trainstate.in.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for style in ("flat-state", "nnx-jit"):
        out = tmp_path / style
        done = subprocess.run(
            [sys.executable, "-m", "nnx_migrate", "rewrite", "--train-style", style, "--output-dir", str(out), "-q", str(source)],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )
        assert done.returncode == 0, done.stderr
        assert (out / source.name).read_text() == output_path("mlp_trainstate", style).read_text()


def test_unknown_train_style_is_a_usage_error(capsys):
    try:
        code = main(["rewrite", "--train-style", "fast", str(FIXTURES / "mlp_trainstate.in.py")])
    except SystemExit as exc:
        code = exc.code
    assert code == 4


def test_training_todo_sites_are_reported(tmp_path, capsys):
    source = tmp_path / "program.py"
    source.write_text((FIXTURES / "todo_pmap_checkpoint.in.py").read_text())
    # pmap over the flat-state TrainState is converted; the nnx-jit style leaves it to a person
    code = main(["rewrite", "--check", "--train-style", "nnx-jit", "--report", str(tmp_path / "report"), str(source)])
    assert code & EXIT_TODO
    report = json.loads((tmp_path / "report.json").read_text())
    reported = [f"{t['line']}: {t['construct']}: {t['why']}\n" for t in report["todos"]]
    assert "".join(reported) == expected_todos("todo_pmap_checkpoint", "nnx-jit")
    assert "pmap-specific code" in (tmp_path / "report.md").read_text()
    assert "program.py:31: @jax.pmap" in capsys.readouterr().err
