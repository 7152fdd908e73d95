from __future__ import annotations

import re

import libcst as cst

from nnx_migrate.lint.edits import append_keyword_arg, insert_positional_arg
from nnx_migrate.lint.optimizers import optimizer_tracker
from nnx_migrate.lint.rule import Invalid, LintRule, Valid


class ModelAndOptimizerDeprecated(LintRule):
    """`nnx.ModelAndOptimizer` is deprecated.

    ## What it does
    Finds `nnx.ModelAndOptimizer(model, tx, ...)`, the stop-gap that kept the pre-0.11
    optimizer API (`update(grads)`, `.model`).

    ## Why
    Flax's docstring marks it deprecated and due for removal (it does not warn at run
    time, so nothing tells its users); code should use `nnx.Optimizer(model, tx, wrt=...)`
    and `update(model, grads)`.

    ## Fix safety
    Unsafe (applied only with `--unsafe-fixes`): the fix rewrites the construction to
    `nnx.Optimizer(..., wrt=...)` and every `update(grads)` / `.model` it can see on that
    optimizer, also inside the train steps it is passed to in the same file. Code in other
    files that uses the same object is not visible, so review the change. Where the model
    name inserted at a use is not proven to be the optimizer's model (rebound, shadowed,
    other gradients: see NNX002), that use's message says why. When the model of some
    `update(grads)` cannot be found, or the file assigns `optimizer.model` (the old API's
    way to swap the model, which the fix would turn into `model = ...`), nothing is
    rewritten and the site is reported.
    """

    CODE = "NNX005"
    NAME = "model-and-optimizer"
    SUMMARY = "`nnx.ModelAndOptimizer` is deprecated: use `nnx.Optimizer` + `update(model, grads)`"
    FIX_SAFETY = "unsafe"
    TRIGGER = re.compile(r"ModelAndOptimizer")

    VALID = [
        Valid("from flax import nnx\nopt = nnx.Optimizer(model, tx, wrt=nnx.Param)\nopt.update(model, grads)\n"),
        Valid("class ModelAndOptimizer:\n    pass\nnnx = None\nopt = ModelAndOptimizer()\n"),
    ]
    INVALID = [
        Invalid(
            "from flax import nnx\n"
            "\n"
            "@nnx.jit\n"
            "def train_step(optimizer, batch):\n"
            "    grads = nnx.grad(loss_fn)(optimizer.model, batch)\n"
            "    optimizer.update(grads)\n"
            "\n"
            "optimizer = nnx.ModelAndOptimizer(model, tx, wrt=nnx.Param)\n"
            "train_step(optimizer, batch)\n",
            None,  # the train step gets no model: reported, not rewritten
        ),
        Invalid(
            "from flax import nnx\n"
            "optimizer = nnx.ModelAndOptimizer(model, tx)\n"
            "optimizer.model = new\n"
            "optimizer.update(grads)\n",
            None,  # the model is swapped: the fix would write `model = new`
        ),
        Invalid(
            "from flax import nnx\n"
            "\n"
            "@nnx.jit\n"
            "def train_step(model, optimizer, batch):\n"
            "    grads = nnx.grad(loss_fn)(model, batch)\n"
            "    optimizer.update(grads)\n"
            "\n"
            "optimizer = nnx.ModelAndOptimizer(model, tx)\n"
            "train_step(model, optimizer, batch)\n",
            "from flax import nnx\n"
            "\n"
            "@nnx.jit\n"
            "def train_step(model, optimizer, batch):\n"
            "    grads = nnx.grad(loss_fn)(model, batch)\n"
            "    optimizer.update(model, grads)\n"
            "\n"
            "optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)\n"
            "train_step(model, optimizer, batch)\n",
        ),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        analysis = self.analysis
        symbol = analysis.nnx_symbol(node.func, analysis.api.deprecated_optimizers)
        if symbol is None:
            return
        tracker = optimizer_tracker(analysis)
        root = next((b for b in tracker.constructed() if b.construction is node), None)
        uses = tracker.uses_of(root) if root is not None else []
        message = f"`{symbol}` is deprecated; use `nnx.Optimizer(..., wrt=...)` and `update(model, grads)`"
        unknown = [u for u in uses if u.model is None and not u.written]
        written = [u for u in uses if u.written]
        if root is None or unknown or written:
            if written:
                # The fix would rename `optimizer.model = new` to `model = new`.
                why = f"`{analysis.code(written[0].node)}` is assigned (the old API's way to swap the model): convert by hand"
            else:
                where = ", ".join(f"`{analysis.code(u.node)}`" for u in unknown)
                why = f"cannot tell the model of {where}" if where else ""
            self.report(node, message + (f" ({why})" if why else ""))
            return
        optimizer, imports = analysis.nnx_reference(analysis.api.optimizer)
        replacement = node.with_changes(func=_renamed(node.func, optimizer))
        if not any(a.keyword is not None and a.keyword.value == "wrt" for a in node.args):
            wrt, more = analysis.nnx_reference(analysis.api.default_wrt)
            replacement = append_keyword_arg(replacement, "wrt", wrt)
            imports = imports + more
        self.report(node, message, replacement=replacement, unsafe=True, imports=imports)
        for use in uses:
            if isinstance(use.node, cst.Call):
                fixed = insert_positional_arg(use.node, 0, use.model)
                self.report(use.node, f"`update(grads)` becomes `update({analysis.code(use.model)}, grads)` with `nnx.Optimizer`" + _unproven(use.doubt),
                            replacement=fixed, unsafe=True)
            else:
                self.report(use.node, f"`.model` does not exist on `nnx.Optimizer`; use the model (`{analysis.code(use.model)}`)" + _unproven(use.doubt),
                            replacement=use.model, unsafe=True)


def _unproven(doubt: str | None) -> str:
    """Why the model name inserted at a use may not be the optimizer's model."""
    return "" if doubt is None else f" (the model is not proven: {doubt})"


def _renamed(func: cst.BaseExpression, optimizer: cst.BaseExpression) -> cst.BaseExpression:
    """`nnx.ModelAndOptimizer` -> `nnx.Optimizer`, keeping the file's spelling of the module."""
    if isinstance(func, cst.Attribute) and isinstance(optimizer, cst.Attribute):
        return func.with_changes(attr=optimizer.attr)
    return optimizer
