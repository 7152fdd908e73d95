"""The linter on real code: Flax's own NNX sources, and a whole site-packages."""

from __future__ import annotations

import site
from pathlib import Path

import flax

from nnx_migrate.files import iter_python_files
from nnx_migrate.lint.runner import LintOptions, lint_paths

FLAX = Path(flax.__file__).parent


def test_flax_own_sources_have_no_findings():
    run = lint_paths([str(p) for p in iter_python_files([FLAX])], LintOptions())
    assert len(run.files) > 100
    assert run.errors == []
    assert run.findings == []


def test_whole_site_packages_never_crashes():
    root = Path(site.getsitepackages()[0])
    files = [str(p) for p in iter_python_files([root])]
    run = lint_paths(files, LintOptions(), jobs=2)
    assert len(run.files) == len(files) > 1000
    for result in run.errors:
        assert "internal error" not in result.error, (result.path, result.error)
        # Only files Python itself cannot read or compile may be reported as errors.
        data = Path(result.path).read_bytes()
        try:
            compile(data, result.path, "exec")
        except (SyntaxError, ValueError):
            continue
        raise AssertionError(f"{result.path} compiles but was reported: {result.error}")
    # Linting reads, never writes.
    assert all(f.fixes_applied == 0 for f in run.files)
