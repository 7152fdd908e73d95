"""Training or evaluation: `self.is_mutable_collection('batch_stats')`, `self.is_initializing()`.

What: a class that asks Linen whether its batch statistics are mutable (true in `init` and
in a training `apply`) keeps a mode attribute instead, `use_running_average`, set to False
in `__init__` and switched by `model.train()` / `model.eval()` as on every NNX module that
has it; the question becomes `(not self.use_running_average)`. `self.is_initializing()`
becomes `False`: NNX has no init pass (the variables exist from `__init__`).

Why: NNX has no mutable collections; training vs evaluation is the module's mode.

Before:
    training = self.is_mutable_collection('batch_stats')

After:
    # __init__
    self.use_running_average = False  # model.train() / model.eval() set it
    # __call__
    training = not self.use_running_average

Reported: `is_mutable_collection` of any other collection, or in a class with a field
named `use_running_average`.
"""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite import templates
from nnx_migrate.rewrite.classes.constructs.base import SelfCallConstruct
from nnx_migrate.rewrite.classes.model import MODE_ATTRIBUTE
from nnx_migrate.rewrite.nodes import string_value


class Mode(SelfCallConstruct):
    title = "Training or evaluation (`self.is_mutable_collection`, `self.is_initializing`)"
    methods = frozenset({"is_mutable_collection", "is_initializing"})
    order = 40

    def walk(self, conv, walker, node, method) -> bool:
        if method != "is_mutable_collection":
            return False
        if len(node.args) == 1 and node.args[0].keyword is None and string_value(node.args[0].value) == "batch_stats" \
                and MODE_ATTRIBUTE not in {f.name for f in conv.shape.fields}:
            # Linen: batch statistics are mutable in init and in a training apply
            # (mutable=['batch_stats']), not in an evaluation apply. NNX: the module's
            # mode, the attribute model.train() / model.eval() set on every module that has it.
            conv.mode_calls.add(node)
            return True
        conv.todo(node, "self.is_mutable_collection()", "NNX has no mutable collections: training vs evaluation is the module's mode (model.train() / model.eval(), BatchNorm's use_running_average); decide it by hand")
        return True

    def init_source(self, conv) -> list[str]:
        # NNX's convention (nnx.BatchNorm's default): built in training mode.
        return [f"self.{MODE_ATTRIBUTE} = False  # model.train() / model.eval() set it\n"] if conv.mode_calls else []

    def call_source(self, rewriter, original, updated, method):
        if method == "is_initializing" and not original.args:
            return cst.Name("False")
        if original in rewriter.conv.mode_calls:
            # parenthesised: the call may be an operand (`a and self.is_mutable_collection(...)`)
            return templates.parse_expression(f"(not self.{MODE_ATTRIBUTE})")
        return None
