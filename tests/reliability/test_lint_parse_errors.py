"""lint reports a file it cannot parse (E902) whatever its text, also when no rule's
trigger text is in it or it never mentions flax; such a file is read by Python's parser
alone, never by LibCST."""

from __future__ import annotations

import pytest
from reliability_helpers import cli

from nnx_migrate.lint import engine
from nnx_migrate.lint.rules import all_rules


@pytest.mark.parametrize(
    "text",
    [
        "import flax.linen as nn\n\ndef f(:\n    pass\n",  # Linen only: no rule triggers
        "from flax import nnx\n\nclass M(nnx.Module:\n    pass\n",  # NNX, but no trigger text
        "from flax import nnx\nx = nnx.Optimizer(m, tx\n",  # a trigger, and broken
        "import flax\n\x00\n",  # a null byte: Python's parser refuses it outright
        "import numpy as np\n\ndef f(:\n    pass\n",  # no Flax at all
        "print 'python 2'\n",
    ],
)
def test_file_that_does_not_parse_is_e902(tmp_path, text):
    (tmp_path / "broken.py").write_text(text)
    (tmp_path / "fine.py").write_text("import flax.linen as nn\n")
    done = cli("lint", tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout.startswith(f"{tmp_path / 'broken.py'}:1:1: E902 cannot parse"), done.stdout
    assert "2 files checked, 0 findings, 1 file could not be read or parsed" in done.stderr


def test_syntax_newer_than_this_python_is_not_an_error_when_libcst_reads_it():
    """Python's parser answers first; LibCST (which reads newer syntax) has the last word."""
    text = "import flax\ntype Alias = int\n"  # PEP 695: Python 3.12
    engine.check_syntax(text)  # no error
    assert engine.lint_source(text, all_rules()).findings == []


def test_files_without_flax_are_read_by_pythons_parser_only(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("LibCST parsed a file no rule can touch")

    monkeypatch.setattr(engine.cst, "parse_module", refuse)
    for text in ("import numpy as np\nx = np.value\nself.a = [1]\n", "nnx = 1\n"):
        assert engine.lint_source(text, all_rules()).findings == []
