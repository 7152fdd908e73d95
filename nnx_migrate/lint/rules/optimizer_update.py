from __future__ import annotations

import re

import libcst as cst

from nnx_migrate.lint.edits import insert_positional_arg
from nnx_migrate.lint.optimizers import optimizer_tracker
from nnx_migrate.lint.rule import Invalid, LintRule, Valid

_STEP_BEFORE = """\
from flax import nnx

@nnx.jit
def train_step(model, optimizer, batch):
    grads = nnx.grad(loss_fn)(model, batch)
    optimizer.update(grads)

optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
train_step(model, optimizer, batch)
"""


class OptimizerUpdateWithoutModel(LintRule):
    """`optimizer.update(grads)` without the model, or `optimizer.model`, on `nnx.Optimizer`.

    ## What it does
    Finds one-argument `update(grads)` calls and `.model` reads on values known to be an
    `nnx.Optimizer`: assigned from `nnx.Optimizer(...)` (to a name, or to `self.attr` in a
    class's methods), a parameter annotated with it, or a parameter that a call in the
    same file passes an optimizer to.

    ## Why
    Since Flax 0.11 `Optimizer.update` takes the model first, `update(model, grads)`,
    and the optimizer no longer holds the model: `update(grads)` raises `TypeError` and
    `optimizer.model` raises `AttributeError`.

    ## Fix safety
    Mixed. The model is read from where `grads` came from (`nnx.grad(f)(model, ...)`) or
    from the optimizer's construction `nnx.Optimizer(model, ...)` (also through the call
    that passes both to a train step). The fix is safe only when that name, written at the
    update, provably still means that model: it resolves to the same single binding (not
    rebound by `model = other` or a loop, not shadowed by a parameter of the same name),
    every call into the step passes the same optimizer and model, the gradients' model is
    the one the optimizer was built with, and `optimizer.model` is never assigned.
    Otherwise the fix is unsafe (`--unsafe-fixes`) and the message says why. An unknown
    model, and an assignment to `optimizer.model`, are reported without a fix.
    `nnx.ModelAndOptimizer` keeps the old API and is left to NNX005.
    """

    CODE = "NNX002"
    NAME = "optimizer-update-without-model"
    SUMMARY = "`optimizer.update(grads)` / `optimizer.model` were removed in Flax 0.11"
    FIX_SAFETY = "mixed"
    TRIGGER = re.compile(r"Optimizer")

    VALID = [
        Valid(
            "from flax import nnx\n"
            "opt = nnx.Optimizer(model, tx, wrt=nnx.Param)\n"
            "opt.update(model, grads)\n"
        ),
        Valid("import optax\ntx = optax.adam(1e-3)\nupdates, state = tx.update(grads, state)\n"),
        Valid("from flax import nnx\nopt = nnx.ModelAndOptimizer(model, tx, wrt=nnx.Param)\nopt.update(grads)\n"),
        Valid("from flax import nnx\ndef step(optimizer, grads):\n    optimizer.update(grads)\n"),
        Valid("from flax import nnx\nclass Opt:\n    def update(self, g): ...\nopt = Opt()\nopt.update(grads)\n"),
    ]
    INVALID = [
        Invalid(
            _STEP_BEFORE,
            _STEP_BEFORE.replace("optimizer.update(grads)", "optimizer.update(model, grads)"),
        ),
        Invalid(
            "from flax import nnx\n"
            "optimizer = nnx.Optimizer(net, tx, wrt=nnx.Param)\n"
            "optimizer.update(grads)\n"
            "print(optimizer.model)\n",
            "from flax import nnx\n"
            "optimizer = nnx.Optimizer(net, tx, wrt=nnx.Param)\n"
            "optimizer.update(net, grads)\n"
            "print(net)\n",
        ),
        Invalid(
            "from flax import nnx\n"
            "def step(model, optimizer: nnx.Optimizer, batch):\n"
            "    loss, grads = nnx.value_and_grad(loss_fn)(model, batch)\n"
            "    optimizer.update(grads)\n",
            "from flax import nnx\n"
            "def step(model, optimizer: nnx.Optimizer, batch):\n"
            "    loss, grads = nnx.value_and_grad(loss_fn)(model, batch)\n"
            "    optimizer.update(model, grads)\n",
        ),
        Invalid(
            "from flax import nnx\n"
            "def step(optimizer: nnx.Optimizer, grads):\n"
            "    optimizer.update(grads)\n",
            None,
        ),
        Invalid(
            "from flax import nnx\n"
            "class Trainer:\n"
            "    def __init__(self, model, tx):\n"
            "        self.model = model\n"
            "        self.opt = nnx.Optimizer(self.model, tx, wrt=nnx.Param)\n"
            "    def step(self, batch):\n"
            "        grads = nnx.grad(loss_fn)(self.model, batch)\n"
            "        self.opt.update(grads)\n"
            "        return self.opt.model\n",
            "from flax import nnx\n"
            "class Trainer:\n"
            "    def __init__(self, model, tx):\n"
            "        self.model = model\n"
            "        self.opt = nnx.Optimizer(self.model, tx, wrt=nnx.Param)\n"
            "    def step(self, batch):\n"
            "        grads = nnx.grad(loss_fn)(self.model, batch)\n"
            "        self.opt.update(self.model, grads)\n"
            "        return self.model\n",
        ),
        # The name no longer means the construction's model: unsafe fixes (--unsafe-fixes).
        Invalid(
            "from flax import nnx\n"
            "optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)\n"
            "model = other\n"
            "optimizer.update(grads)\n",
            "from flax import nnx\n"
            "optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)\n"
            "model = other\n"
            "optimizer.update(model, grads)\n",
        ),
        Invalid(
            "from flax import nnx\n"
            "optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)\n"
            "def step(model, grads):\n"
            "    optimizer.update(grads)\n",
            "from flax import nnx\n"
            "optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)\n"
            "def step(model, grads):\n"
            "    optimizer.update(model, grads)\n",
        ),
        # The old API's way to swap the model: no fix for either use.
        Invalid(
            "from flax import nnx\n"
            "optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)\n"
            "optimizer.model = new\n",
            None,
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        tracker = optimizer_tracker(self.analysis)
        api = self.analysis.api
        for use in tracker.one_arg_updates:
            if use.binding.kind != api.optimizer:
                continue
            if use.model is None:
                self.report(
                    use.node,
                    "`update(grads)` needs the model since Flax 0.11: `update(model, grads)` "
                    "(could not tell which model this optimizer updates)",
                )
            else:
                message = (
                    f"`update(grads)` needs the model since Flax 0.11: "
                    f"`update({self.analysis.code(use.model)}, grads)`"
                )
                self.report(
                    use.node,
                    message + _unproven(use.doubt),
                    replacement=insert_positional_arg(use.node, 0, use.model),
                    unsafe=use.doubt is not None,
                )
        for use in tracker.model_attributes:
            if use.binding.kind != api.optimizer:
                continue
            message = "`Optimizer.model` was removed in Flax 0.11; use the model itself"
            if use.written:
                self.report(use.node, message + " (assigning it swapped the model the old optimizer updated: convert by hand)")
            elif use.model is None:
                self.report(use.node, message)
            else:
                self.report(use.node, message + _unproven(use.doubt), replacement=use.model, unsafe=use.doubt is not None)


def _unproven(doubt: str | None) -> str:
    """Why an inserted model name is only an unsafe fix (--unsafe-fixes)."""
    return "" if doubt is None else f" (unsafe fix: {doubt})"
