"""Every rule's VALID/INVALID examples are its tests (and its documentation)."""

from __future__ import annotations

import libcst as cst
import pytest

from nnx_migrate.lint.engine import lint_source
from nnx_migrate.lint.rules import all_rules


def _cases(kind):
    for rule in all_rules():
        for index, example in enumerate(getattr(rule, kind)):
            yield pytest.param(rule, example, id=f"{rule.CODE}-{kind.lower()}-{index}")


def test_every_rule_has_examples_of_both_kinds():
    for rule in all_rules():
        assert rule.VALID and rule.INVALID, rule.CODE
        assert rule.CODE and rule.NAME and rule.SUMMARY and rule.__doc__


@pytest.mark.parametrize("rule, example", _cases("VALID"))
def test_valid_examples_are_not_reported(rule, example):
    outcome = lint_source(example.code, [rule])
    assert outcome.findings == []


@pytest.mark.parametrize("rule, example", _cases("INVALID"))
def test_invalid_examples_are_reported_and_fixed(rule, example):
    outcome = lint_source(example.code, [rule])
    assert [f.code for f in outcome.findings], "expected a finding"
    assert {f.code for f in outcome.findings} == {rule.CODE}
    fixed = lint_source(example.code, [rule], fix=True, unsafe_fixes=True)
    if example.fixed is None:
        assert all(f.fix is None for f in outcome.findings)
        assert fixed.fixed_source is None
        return
    assert fixed.fixed_source == example.fixed
    cst.parse_module(example.fixed)  # the expected output is valid Python
    # A second run finds nothing more to fix.
    again = lint_source(example.fixed, [rule], fix=True, unsafe_fixes=True)
    assert again.fixed_source is None
    assert [f for f in again.findings if f.fix] == []
