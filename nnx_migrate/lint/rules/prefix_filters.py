from __future__ import annotations

import re

import libcst as cst

from nnx_migrate.lint.rule import Invalid, LintRule, Valid
from nnx_migrate.lint.tree_mode import compat_reference, transform_symbol


class TreeModePrefixFilter(LintRule):
    """An NNX transform is given a prefix filter: `nnx.StateAxes`, `nnx.DiffState`, `nnx.StateSharding`.

    ## What it does
    Finds `nnx.vmap`, `nnx.scan`, `nnx.grad`, `nnx.jit`... (called or used as a decorator)
    whose arguments build one of the prefix filters, directly or through a name bound to
    one (`state_axes = nnx.StateAxes({...: nnx.Carry})`, then `in_axes=(state_axes, 0)`).

    ## Why
    Flax 0.12.5 added NNX's tree mode (FLIP 5310: the flags `nnx_graph_mode` and
    `nnx_graph_updates`, or `NNX_GRAPH_MODE=false NNX_GRAPH_UPDATES=false`) and plans to
    make it the default. Tree mode has no prefix filters: the transform raises
    `ValueError: `in_axes` cannot contain `StateAxes` objects when `graph=False` or
    `graph_updates=False``.

    ## Fix safety
    Safe: the transform becomes `nnx.compat.<name>`, which is
    `partial(nnx.<name>, graph=True, graph_updates=True)`, what the call does today, in
    either mode. The tree-mode form, for code that should leave graph mode behind, splits
    the model into the groups the filter named and passes each with its own axis:
    `graphdef, carried, rest = nnx.split(model, F, ...)` and
    `nnx.merge(graphdef, carried, rest)` inside; a module carried through `nnx.scan`
    (`StateAxes({...: nnx.Carry})`) goes inside the carry tuple.
    """

    CODE = "NNX007"
    NAME = "tree-mode-prefix-filter"
    SUMMARY = "`StateAxes`/`DiffState`/`StateSharding` in an NNX transform raise in tree mode (Flax 0.12.5+)"
    FIX_SAFETY = "safe"
    TRIGGER = re.compile(r"\b(?:StateAxes|DiffState|StateSharding)\b")

    VALID = [
        Valid(
            "from flax import nnx\n"
            "carry, ys = nnx.compat.scan(step, in_axes=(nnx.StateAxes({...: nnx.Carry}), nnx.Carry, 1),\n"
            "                            out_axes=(nnx.Carry, 1))(cell, carry, xs)\n"
        ),
        Valid("from flax import nnx\ngrads = nnx.grad(loss_fn)(params, rest)\n"),
        Valid("from flax import nnx\nclass StateAxes:\n    pass\ny = nnx.vmap(f, in_axes=(StateAxes(), 0))(m, x)\n"),
        Valid("from flax import nnx\naxes = nnx.StateAxes({nnx.Param: 0, ...: None})  # never given to a transform\n"),
    ]
    INVALID = [
        Invalid(
            "from flax import nnx\n"
            "carry, ys = nnx.scan(step, in_axes=(nnx.StateAxes({...: nnx.Carry}), nnx.Carry, 1),\n"
            "                     out_axes=(nnx.Carry, 1))(cell, carry, xs)\n",
            "from flax import nnx\n"
            "carry, ys = nnx.compat.scan(step, in_axes=(nnx.StateAxes({...: nnx.Carry}), nnx.Carry, 1),\n"
            "                     out_axes=(nnx.Carry, 1))(cell, carry, xs)\n",
        ),
        Invalid(
            "from flax import nnx\n"
            "state_axes = nnx.StateAxes({nnx.Param: 0, ...: None})\n"
            "@nnx.vmap(in_axes=(state_axes, 0))\n"
            "def forward(model, x):\n"
            "    return model(x)\n",
            "from flax import nnx\n"
            "state_axes = nnx.StateAxes({nnx.Param: 0, ...: None})\n"
            "@nnx.compat.vmap(in_axes=(state_axes, 0))\n"
            "def forward(model, x):\n"
            "    return model(x)\n",
        ),
        Invalid(
            "from flax.nnx import DiffState, Param, grad\n"
            "grads = grad(loss_fn, argnums=DiffState(0, Param))(model)\n",
            "from flax.nnx import compat, DiffState, Param, grad\n"
            "grads = compat.grad(loss_fn, argnums=DiffState(0, Param))(model)\n",
        ),
    ]

    def __init__(self, analysis) -> None:
        super().__init__(analysis)
        self._transforms: list[tuple[cst.Call, str]] = []

    def visit_Call(self, node: cst.Call) -> None:
        symbol = transform_symbol(self.analysis, node)
        if symbol is not None:
            self._transforms.append((node, symbol))

    def leave_Module(self, original_node: cst.Module) -> None:
        for call, symbol in self._transforms:
            filters = sorted({name for arg in call.args for name in self._filters_in(arg.value)})
            if not filters:
                continue
            replacement, imports = compat_reference(self.analysis, symbol)
            self.report(
                call,
                f"`{', '.join(filters)}` in `nnx.{symbol}` raises in NNX's tree mode (Flax 0.12.5+, the planned "
                f"default): use `nnx.compat.{symbol}` (graph mode) or split the model into groups",
                replace=call.func,
                replacement=replacement,
                imports=imports,
            )

    def _filters_in(self, expr: cst.BaseExpression) -> set[str]:
        """The prefix filters `expr` builds, directly or through a name bound to one."""
        found: set[str] = set()
        prefix_filters = self.analysis.api.prefix_filters
        analysis = self.analysis

        class Finder(cst.CSTVisitor):
            def visit_Call(self, node: cst.Call) -> None:
                symbol = analysis.called_nnx_symbol(node, prefix_filters)
                if symbol is not None:
                    found.add(symbol)

            def visit_Attribute(self, node: cst.Attribute) -> bool:
                node.value.visit(self)  # `a.b`: only `a` can be a bound name
                return False

            def visit_Name(self, node: cst.Name) -> None:
                value = analysis.assigned_value(node)
                symbol = analysis.called_nnx_symbol(value, prefix_filters) if value is not None else None
                if symbol is not None:
                    found.add(symbol)

        expr.visit(Finder())
        return found
