"""A run collects cycles rarely (the run's parse caches make each collection costly) and
gives the caller back the thresholds it had, also when a file fails."""

from __future__ import annotations

import gc

from nnx_migrate.rewrite import runner
from nnx_migrate.run_files.collections import RUN_GC_THRESHOLDS


def test_run_raises_gc_thresholds_and_restores_them(tmp_path, monkeypatch):
    (tmp_path / "a.py").write_text("import flax.linen as nn\n")
    seen = []

    def spy(*args, **kwargs):
        seen.append(gc.get_threshold())
        raise RuntimeError("boom")  # a failing file must not leave the thresholds raised

    monkeypatch.setattr(runner, "rewrite_source", spy)
    before = gc.get_threshold()
    results = runner.rewrite_files([tmp_path / "a.py"])
    assert results[0].status == "failed" and "boom" in results[0].error
    assert seen == [RUN_GC_THRESHOLDS] != [before]
    assert gc.get_threshold() == before


def test_lint_run_raises_gc_thresholds_and_restores_them(tmp_path, monkeypatch):
    from nnx_migrate.lint import runner as lint_runner

    (tmp_path / "a.py").write_text("from flax import nnx\nx = nnx.Optimizer(m, t)\n")
    seen = []

    def spy(path, options):
        seen.append(gc.get_threshold())
        return lint_runner.FileResult(path)

    monkeypatch.setattr(lint_runner, "lint_file", spy)
    before = gc.get_threshold()
    lint_runner.lint_paths([str(tmp_path / "a.py")], lint_runner.LintOptions())
    assert seen == [RUN_GC_THRESHOLDS] != [before]
    assert gc.get_threshold() == before
