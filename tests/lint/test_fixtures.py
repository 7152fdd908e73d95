"""Golden fixtures: fixtures/lint/<case>.in.py -> <case>.out.py (+ <case>.lint.txt)."""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest

from nnx_migrate.lint.engine import lint_source
from nnx_migrate.lint.rules import all_rules

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "lint"
CASES = sorted(FIXTURES.glob("*.in.py"))
# An emptied or moved folder must fail, not collect nothing.
assert len(CASES) >= 3, f"{FIXTURES}: {len(CASES)} cases, expected at least 3"


def _expected(case: Path, suffix: str) -> Path:
    return case.with_name(case.name.replace(".in.py", suffix))


def test_fixtures_are_found():
    assert len(CASES) >= 3


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name.replace(".in.py", ""))
def test_fix_gives_expected_output(case: Path):
    source = case.read_text("utf-8")
    expected = _expected(case, ".out.py").read_text("utf-8")
    outcome = lint_source(source, all_rules(), fix=True)
    assert (outcome.fixed_source or source) == expected
    cst.parse_module(expected)
    again = lint_source(expected, all_rules(), fix=True)
    assert again.fixed_source is None, "a second run must change nothing"
    assert [f for f in again.findings if f.fix == "safe"] == []


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name.replace(".in.py", ""))
def test_findings_match_lint_txt(case: Path):
    outcome = lint_source(case.read_text("utf-8"), all_rules())
    lines = [f"{f.line}:{f.column}: {f.code} {f.message}" for f in outcome.findings]
    assert "".join(line + "\n" for line in lines) == _expected(case, ".lint.txt").read_text("utf-8")
