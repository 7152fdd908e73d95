"""NNX002 inserts the optimizer's model into `update(grads)`: a safe fix (applied by --fix)
only where the name provably still means that model; otherwise the fix is unsafe (only
with --unsafe-fixes) and the message says why, or there is no fix."""

from __future__ import annotations

import textwrap

import pytest

from nnx_migrate.lint.engine import lint_source
from nnx_migrate.lint.rules.optimizer_update import OptimizerUpdateWithoutModel

RULE = [OptimizerUpdateWithoutModel]


def _lint(source: str):
    source = textwrap.dedent(source)
    return source, lint_source(source, RULE), lint_source(source, RULE, fix=True)


UNSAFE = [
    pytest.param(
        """
        from flax import nnx
        model = A()
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        model = other
        optimizer.update(grads)
        """,
        "`model` is bound more than once", id="rebound-after-construction",
    ),
    pytest.param(
        """
        from flax import nnx
        model = A()
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        def step(model, grads):
            optimizer.update(grads)
        """,
        "(a parameter or local of the same name)", id="shadowed-by-a-parameter",
    ),
    pytest.param(
        """
        from flax import nnx
        optimizer = None
        for model in models:
            if optimizer is None:
                optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
            optimizer.update(grads)
        """,
        "rebound by a loop", id="loop-rebinds-the-model",
    ),
    pytest.param(
        """
        from flax import nnx
        model = A()
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        optimizer.model = new
        optimizer.update(grads)
        """,
        "`optimizer.model` is assigned", id="optimizer-model-reassigned",
    ),
    pytest.param(
        """
        from flax import nnx
        def train_step(model, optimizer, batch):
            optimizer.update(grads)
        model = A()
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        train_step(model, optimizer, b)
        train_step(other, optimizer, b)
        """,
        "called with different optimizers or models", id="step-called-with-another-model",
    ),
    pytest.param(
        """
        from flax import nnx
        def train_step(model, optimizer, batch):
            optimizer.update(grads)
        model = A()
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        train_step(model, optimizer, b)
        train_step(model, make_optimizer(), b)
        """,
        "an optimizer this file does not track", id="step-called-with-an-untracked-optimizer",
    ),
    pytest.param(
        """
        from flax import nnx
        def train_step(model, optimizer, batch):
            model = model.clone()
            optimizer.update(grads)
        model = A()
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        train_step(model, optimizer, b)
        """,
        "`model` is bound more than once", id="step-rebinds-its-model-parameter",
    ),
    pytest.param(
        """
        from flax import nnx
        model = A()
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        grads = nnx.grad(f)(teacher, x)
        optimizer.update(grads)
        """,
        "the gradients are of `teacher`, the optimizer was built with `model`", id="grads-of-another-model",
    ),
    pytest.param(
        """
        from flax import nnx
        class T:
            def __init__(self, model, tx):
                self.model = model
                self.opt = nnx.Optimizer(self.model, tx, wrt=nnx.Param)
            def swap(self, m):
                self.model = m
            def step(self, grads):
                self.opt.update(grads)
        """,
        "`self.model` is assigned more than once", id="self-model-reassigned",
    ),
]


@pytest.mark.parametrize("source, why", UNSAFE)
def test_update_fix_is_unsafe_where_the_model_name_may_have_changed(source, why):
    source, outcome, safe_only = _lint(source)
    updates = [f for f in outcome.findings if "update(grads)" in f.message]
    assert len(updates) == 1 and updates[0].fix == "unsafe", [(f.fix, f.message) for f in outcome.findings]
    assert why in updates[0].message
    # --fix alone leaves the call; --unsafe-fixes inserts the name.
    assert safe_only.fixed_source is None or ".update(grads)" in safe_only.fixed_source
    unsafe = lint_source(source, RULE, fix=True, unsafe_fixes=True)
    assert unsafe.fixed_source is not None and ".update(grads)" not in unsafe.fixed_source


SAFE = [
    pytest.param(
        """
        from flax import nnx
        model = A()
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        for batch in batches:
            optimizer.update(grads)
        """,
        "optimizer.update(model, grads)", id="same-binding-in-a-loop-body",
    ),
    pytest.param(
        """
        from flax import nnx
        model = A()
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        def step(grads):
            optimizer.update(grads)
        """,
        "optimizer.update(model, grads)", id="closure-over-the-one-global-binding",
    ),
    pytest.param(
        """
        from flax import nnx
        def train_step(model, optimizer, batch):
            grads = nnx.grad(loss)(model, batch)
            optimizer.update(grads)
        def main():
            model = A()
            optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
            losses = [train_step(model, optimizer, b) for b in batches]
            train_step(model, optimizer, last)
        """,
        "optimizer.update(model, grads)", id="step-called-twice-with-the-same-pair",
    ),
]


@pytest.mark.parametrize("source, fixed_line", SAFE)
def test_update_fix_is_safe_where_the_name_still_means_the_model(source, fixed_line):
    source, outcome, safe_only = _lint(source)
    assert [f.fix for f in outcome.findings] == ["safe"], [(f.fix, f.message) for f in outcome.findings]
    assert "unsafe fix" not in outcome.findings[0].message
    assert fixed_line in safe_only.fixed_source


def test_assigning_optimizer_model_is_reported_without_a_fix():
    source, outcome, safe_only = _lint(
        """
        from flax import nnx
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        optimizer.model = new
        print(optimizer.model)
        """
    )
    written, read = outcome.findings
    assert written.fix is None and "convert by hand" in written.message
    assert read.fix == "unsafe"  # the read is `model` only if nothing swapped it
    unsafe = lint_source(source, RULE, fix=True, unsafe_fixes=True)
    assert "optimizer.model = new" in unsafe.fixed_source and "print(model)" in unsafe.fixed_source
