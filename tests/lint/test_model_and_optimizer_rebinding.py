"""NNX005 rewrites `nnx.ModelAndOptimizer` and inserts the model name at each
`update(grads)` / `.model` (all unsafe fixes): each use's message says why its model is
not proven (the same reasons as NNX002), and where the fix would be wrong for certain
(the file swaps `optimizer.model`) there is no fix at all."""

from __future__ import annotations

import textwrap

import pytest

from nnx_migrate.lint.engine import lint_source
from nnx_migrate.lint.rules.model_and_optimizer import ModelAndOptimizerDeprecated

RULE = [ModelAndOptimizerDeprecated]


def _lint(source: str):
    return lint_source(textwrap.dedent(source), RULE)


UNPROVEN = [
    pytest.param(
        """
        from flax import nnx
        model = A()
        optimizer = nnx.ModelAndOptimizer(model, tx)
        model = other
        optimizer.update(grads)
        print(optimizer.model)
        """,
        "`model` is bound more than once", id="rebound-after-construction",
    ),
    pytest.param(
        """
        from flax import nnx
        model = A()
        optimizer = nnx.ModelAndOptimizer(model, tx)
        def step(model, grads):
            optimizer.update(grads)
            print(optimizer.model)
        """,
        "(a parameter or local of the same name)", id="shadowed-by-a-parameter",
    ),
]


@pytest.mark.parametrize("source, why", UNPROVEN)
def test_each_use_says_why_its_model_is_not_proven(source, why):
    outcome = _lint(source)
    uses = [f for f in outcome.findings if "update(grads)" in f.message or "`.model`" in f.message]
    assert len(uses) == 2, [(f.fix, f.message) for f in outcome.findings]
    for finding in uses:
        assert finding.fix == "unsafe" and "the model is not proven" in finding.message and why in finding.message, finding.message


def test_a_proven_model_gives_no_reason():
    outcome = _lint(
        """
        from flax import nnx
        model = A()
        optimizer = nnx.ModelAndOptimizer(model, tx)
        optimizer.update(grads)
        """
    )
    assert [f.fix for f in outcome.findings] == ["unsafe", "unsafe"]
    assert not any("not proven" in f.message for f in outcome.findings)
    assert "`update(model, grads)` with" in outcome.findings[1].message


def test_swapping_optimizer_model_gets_no_fix():
    """`optimizer.model = new` is the old API's way to swap the model; a fix that writes
    `model = new` would rebind the caller's model, so none is offered."""
    source = textwrap.dedent(
        """
        from flax import nnx
        optimizer = nnx.ModelAndOptimizer(model, tx)
        optimizer.model = new
        optimizer.update(grads)
        """
    )
    outcome = lint_source(source, RULE)
    assert [f.fix for f in outcome.findings] == [None], [(f.fix, f.message) for f in outcome.findings]
    assert "`optimizer.model` is assigned" in outcome.findings[0].message and "convert by hand" in outcome.findings[0].message
    unsafe = lint_source(source, RULE, fix=True, unsafe_fixes=True)
    assert unsafe.fixed_source is None or unsafe.fixed_source == source
