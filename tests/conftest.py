"""Shared test helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# XLA compiles every eager operation and every jitted program of the suite once, and the
# tests' programs are tiny: its optimisation passes cost far more than they save (about 40%
# of a first equivalence check's CPU time). The flag's default is read from the environment
# when jax is imported, so it is set before any test imports jax, and the subprocesses the
# tests start inherit it. Every comparison's two sides compile with the same options.
# `JAX_DISABLE_MOST_OPTIMIZATIONS=0 python -m pytest` runs the suite fully optimised.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
if "jax" in sys.modules:  # a plugin imported it first
    sys.modules["jax"].config.update(
        "jax_disable_most_optimizations", os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"].lower() in ("1", "true"))


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """Runs `nnx-migrate ARGS...` in this process; returns exit code, stdout, stderr."""
    from nnx_migrate.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors and --help
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def run_python():
    """Runs this interpreter in a fresh process with the repo importable."""

    def run(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        return subprocess.run(
            [sys.executable, *[str(a) for a in args]], cwd=cwd, env=env, capture_output=True, text=True,
            timeout=timeout,
        )

    return run


# NNX's two modes (Flax plans to make tree mode the default: FLIP 5310). The flags are
# read when a transform is built, so whatever a test imports or builds under this fixture
# (a converted file's module-level `@nnx.jit` included) takes the test's mode, whatever
# the environment (`NNX_GRAPH_MODE`, `NNX_GRAPH_UPDATES`) sets as the default.
NNX_MODES = {"graph": True, "tree": False}


@pytest.fixture(params=list(NNX_MODES))
def nnx_mode(request):
    from flax import nnx

    graph = NNX_MODES[request.param]
    with nnx.set_graph_mode(graph), nnx.set_graph_updates(graph):
        yield request.param
