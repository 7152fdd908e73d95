"""Progress goes to stderr on a terminal only, so pipes and CI logs stay clean."""

import io
import sys

from nnx_migrate.lint.runner import LintOptions, lint_paths


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _files(tmp_path, n=25):
    for i in range(n):
        (tmp_path / f"m{i}.py").write_text("from flax import nnx\nx = nnx.Optimizer(m, tx)\n")
    return [str(p) for p in sorted(tmp_path.glob("*.py"))]


def test_progress_bar_on_a_terminal(tmp_path, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    run = lint_paths(_files(tmp_path), LintOptions())
    assert len(run.findings) == 25
    assert "nnx-migrate lint" in terminal.getvalue()


def test_no_progress_when_not_a_terminal(tmp_path, monkeypatch):
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    lint_paths(_files(tmp_path), LintOptions())
    assert pipe.getvalue() == ""
