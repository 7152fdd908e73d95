"""Glob-discovered fixtures: an emptied or moved folder must fail the suite, not make the
tests over it collect nothing and pass. The helpers assert their minimum counts; this
checks that they do, on a real empty folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent


@pytest.mark.parametrize(
    ("folder", "module"),
    [("rewrite", "rewrite_fixture_models"), ("training", "training_programs")],
)
def test_an_emptied_fixture_folder_fails(tmp_path, monkeypatch, folder, module):
    monkeypatch.syspath_prepend(str(ROOT / folder))
    helpers = __import__(module)
    assert len(helpers.cases()) >= helpers.MIN_CASES  # the real folder holds its cases
    monkeypatch.setattr(helpers, "FIXTURES", tmp_path)  # an empty folder
    with pytest.raises(AssertionError, match="expected at least"):
        helpers.cases()
    sys.modules.pop(module, None)
