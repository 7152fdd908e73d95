"""Each rule's pattern really breaks on the installed Flax, and its fix really works.

Every snippet runs twice in this process: as written (it must raise the error or warning
the rule's docs name) and after `lint --fix --unsafe-fixes` (it must run with warnings
as errors).
"""

from __future__ import annotations

import warnings

import pytest

from nnx_migrate.lint.engine import lint_source
from nnx_migrate.lint.rules import all_rules

PRELUDE = """\
import jax, jax.numpy as jnp, optax
from flax import nnx
model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
x = jnp.ones((3, 2))
def loss_fn(model):
    return jnp.mean(model(x) ** 2)
"""

CASES = {
    "NNX001": ("opt = nnx.Optimizer(model, optax.sgd(0.1))\n", TypeError),
    # A model with state that is not a parameter (BatchNorm statistics), trained the usual
    # way: only `wrt=nnx.Param` (the old default) runs; `wrt=nnx.Variable` fails at the
    # update (see the test below), so a fix that picked it would fail here.
    "NNX001-batchnorm": (
        "class Net(nnx.Module):\n"
        "    def __init__(self, rngs):\n"
        "        self.lin = nnx.Linear(2, 2, rngs=rngs)\n"
        "        self.bn = nnx.BatchNorm(2, rngs=rngs)\n"
        "    def __call__(self, x):\n"
        "        return self.bn(self.lin(x))\n"
        "net = Net(nnx.Rngs(0))\n"
        "opt = nnx.Optimizer(net, optax.adam(0.1))\n"
        "before = net.bn.bias[...]\n"
        "grads = nnx.grad(lambda m: jnp.mean((m(x) - 1.0) ** 2))(net)\n"
        "opt.update(net, grads)\n"
        "assert not jnp.allclose(before, net.bn.bias[...])\n",
        TypeError,
    ),
    "NNX002-update": (
        "opt = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)\n"
        "grads = nnx.grad(loss_fn)(model)\n"
        "opt.update(grads)\n",
        TypeError,
    ),
    "NNX002-model": (
        "opt = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)\nm = opt.model\n",
        AttributeError,
    ),
    "NNX003": (
        "class Stack(nnx.Module):\n"
        "    def __init__(self, rngs):\n"
        "        self.layers = [nnx.Linear(2, 2, rngs=rngs) for _ in range(2)]\n"
        "Stack(nnx.Rngs(0))\n",
        ValueError,
    ),
    "NNX004": (
        "class Counter(nnx.Module):\n"
        "    def __init__(self):\n"
        "        self.n = nnx.Variable(jnp.array(0))\n"
        "        self.steps = nnx.Variable(0)\n"
        "    def __call__(self):\n"
        "        self.n.value += 1\n"
        "        self.steps.value += 1\n"
        "c = Counter()\n"
        "c()\n"
        "assert int(c.n.value) == 1 and c.steps.value == 1\n",
        DeprecationWarning,
    ),
    "NNX005": (
        "opt = nnx.ModelAndOptimizer(model, optax.sgd(0.1), wrt=nnx.Param)\n"
        "grads = nnx.grad(loss_fn)(model)\n"
        "opt.update(grads)\n",
        None,  # deprecated in Flax's docs only: it still runs, silently
    ),
    "NNX006-minus": ("s = nnx.state(model, nnx.All - nnx.Param)\n", TypeError),
    "NNX006-keyword": ("s = nnx.state(model, filter=nnx.Param)\n", TypeError),
}


def _run(code: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exec(compile(code, "<snippet>", "exec"), {})


@pytest.mark.parametrize("case", sorted(CASES))
def test_pattern_breaks_and_fix_works(case):
    body, error = CASES[case]
    code = PRELUDE + body
    if error is None:
        _run(code)
    else:
        with pytest.raises(error):
            _run(code)
    outcome = lint_source(code, all_rules(), fix=True, unsafe_fixes=True)
    assert outcome.fixed_source is not None
    assert "ModelAndOptimizer" not in outcome.fixed_source
    assert {f.code for f in outcome.initial_findings} == {case.split("-")[0]}
    _run(outcome.fixed_source)


def test_nnx001_batchnorm_case_tells_the_right_wrt_from_a_wrong_one():
    """The case above has teeth: with `wrt=nnx.Variable` instead of the fix's
    `wrt=nnx.Param`, the same program fails."""
    code = PRELUDE + CASES["NNX001-batchnorm"][0]
    fixed = lint_source(code, all_rules(), fix=True).fixed_source
    assert "wrt=nnx.Param" in fixed
    _run(fixed)
    with pytest.raises(ValueError):
        _run(fixed.replace("wrt=nnx.Param", "wrt=nnx.Variable"))
