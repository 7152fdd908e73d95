"""The issue's promise, run for real: a Flax 0.10-era program crashes on the installed
Flax, and after `nnx-migrate lint --fix` it trains without any DeprecationWarning, in NNX's
graph mode and in its tree mode (`NNX_GRAPH_MODE=false NNX_GRAPH_UPDATES=false`)."""

from __future__ import annotations

import shutil
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "lint" / "flax010_train.in.py"


def test_old_program_fails_and_fixed_program_trains(tmp_path, cli, run_python, monkeypatch):
    program = tmp_path / "train.py"
    shutil.copy(FIXTURE, program)

    before = run_python(str(program))
    assert before.returncode != 0
    # The plain list of Linear layers is the first thing to break (the model is built
    # before the optimizer); each rule's docs name the error for its own pattern.
    assert "ValueError" in before.stderr and "nnx.List" in before.stderr

    fixed = cli("lint", "--fix", program)
    assert fixed.code == 0, fixed.out + fixed.err
    assert "7 fixed" in fixed.err

    monkeypatch.setenv("NNX_GRAPH_MODE", "true")
    monkeypatch.setenv("NNX_GRAPH_UPDATES", "true")
    after = run_python("-W", "error::DeprecationWarning", str(program))
    assert after.returncode == 0, after.stderr
    monkeypatch.setenv("NNX_GRAPH_MODE", "false")
    monkeypatch.setenv("NNX_GRAPH_UPDATES", "false")
    tree = run_python("-W", "error::DeprecationWarning", str(program))
    assert tree.returncode == 0, tree.stderr
    assert tree.stdout == after.stdout  # the same training, step for step
    lines = dict(line.split(" ", 1) for line in after.stdout.splitlines())
    losses = [float(v) for v in lines["losses"].split()]
    assert len(losses) == 5 and losses[-1] < losses[0] * 0.6
    assert int(lines["calls"]) == 5  # the counter Variable is still updated in place
    assert int(lines["weights"]) == 4  # nnx.Not(StepCounter): 2 kernels + 2 biases
