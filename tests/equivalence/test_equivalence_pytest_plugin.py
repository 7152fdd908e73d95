"""The pytest plugin: a user's CI test in a few lines, failing with the report."""

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODELS = Path(__file__).parent / "models"


def test_plugin_is_registered_through_the_pytest11_entry_point():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    entry = project["entry-points"]["pytest11"]
    assert entry == {"nnx_migrate.pytest_plugin": "nnx_migrate.pytest_plugin"}
    assert (ROOT / "nnx_migrate" / "pytest_plugin.py").is_file()


def test_plugin_module_stays_light():
    code = "import sys, nnx_migrate.pytest_plugin; print('jax' in sys.modules, 'flax' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.split() == ["False", "False"], done.stderr


def test_fixture_passes_a_right_port_and_fails_a_wrong_one_with_the_report(tmp_path):
    (tmp_path / "test_port.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(MODELS)!r})
        import jax.numpy as jnp
        from linen_models import MLP
        from nnx_ports import MLPRewrite, MLPWrongActivation

        def test_right(nnx_equivalence):
            result = nnx_equivalence(MLP(), MLPRewrite, jnp.ones((2, 10)))
            assert result.ok

        def test_wrong(nnx_equivalence):
            nnx_equivalence(MLP(), MLPWrongActivation, jnp.ones((2, 10)))

        def test_tolerance_option_reaches_compare(nnx_equivalence):
            assert nnx_equivalence(MLP(), MLPRewrite, jnp.ones((2, 10))).atol == 2e-6
    """))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "nnx_migrate.pytest_plugin", "--nnx-atol", "2e-6",
         "-p", "no:cacheprovider", "test_port.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert "1 failed, 2 passed" in done.stdout, done.stdout + done.stderr
    assert "NOT EQUIVALENT" in done.stdout
    assert "first diverging submodule in forward: Dense_1 (NNX dense_1)" in done.stdout
