from __future__ import annotations

import re

import libcst as cst

from nnx_migrate.lint.rule import Invalid, LintRule, Valid
from nnx_migrate.lint.tree_mode import compat_reference, transform_symbol


class SplitRngsInPlace(LintRule):
    """`nnx.split_rngs(node, splits=...)` is relied on to split `node`'s RNG streams in place.

    ## What it does
    Finds `nnx.split_rngs` (and `nnx.fork_rngs`) called with the node to split whose result
    is dropped (a statement of its own) or used as a context manager
    (`with nnx.split_rngs(self, splits=n): ...`), the graph-mode idioms that split the
    streams in place and restore them afterwards. The decorator form
    (`@nnx.split_rngs(splits=n)` on a transformed function) is not reported: it runs the
    same in both modes.

    ## Why
    In NNX's tree mode (Flax 0.12.5+, the planned default, FLIP 5310) `split_rngs` leaves
    `node` as it is and returns a split copy: a dropped result splits nothing (the
    `nnx.vmap` after it fails on an unbatched key), and the copy is no context manager
    (`TypeError: ... does not support the context manager protocol`).

    ## Fix safety
    Safe: the call becomes `nnx.compat.split_rngs` (`graph=True, graph_updates=True`),
    what it does today, in either mode. The tree-mode form uses the returned copy:
    `rngs = nnx.split_rngs(rngs, splits=n)` and passes it to the transform.
    """

    CODE = "NNX008"
    NAME = "split-rngs-in-place"
    SUMMARY = "`nnx.split_rngs(node, ...)` splits nothing in place in tree mode (Flax 0.12.5+)"
    FIX_SAFETY = "safe"
    TRIGGER = re.compile(r"\b(?:split_rngs|fork_rngs)\b")

    VALID = [
        Valid(
            "from flax import nnx\n"
            "@nnx.split_rngs(splits=4)\n"
            "@nnx.vmap(in_axes=(0, None))\n"
            "def ensemble(rngs, x):\n"
            "    return nnx.Dropout(0.5)(x, rngs=rngs)\n"
        ),
        Valid("from flax import nnx\nsplit = nnx.split_rngs(rngs, splits=4, graph_updates=False)\n"),
        Valid("from flax import nnx\nwith nnx.compat.split_rngs(model, splits=4):\n    y = forward(model, x)\n"),
    ]
    INVALID = [
        Invalid(
            "from flax import nnx\n"
            "class Ensemble(nnx.Module):\n"
            "    def __call__(self, x):\n"
            "        with nnx.split_rngs(self, splits=3):\n"
            "            return nnx.vmap(lambda m, x: m.dropout(x), in_axes=(0, None))(self, x)\n",
            "from flax import nnx\n"
            "class Ensemble(nnx.Module):\n"
            "    def __call__(self, x):\n"
            "        with nnx.compat.split_rngs(self, splits=3):\n"
            "            return nnx.vmap(lambda m, x: m.dropout(x), in_axes=(0, None))(self, x)\n",
        ),
        Invalid(
            "from flax import nnx\n"
            "nnx.split_rngs(model, splits=3)\n"
            "y = nnx.vmap(lambda m, x: m(x), in_axes=(0, None))(model, x)\n",
            "from flax import nnx\n"
            "nnx.compat.split_rngs(model, splits=3)\n"
            "y = nnx.vmap(lambda m, x: m(x), in_axes=(0, None))(model, x)\n",
        ),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        symbol = transform_symbol(self.analysis, node)
        if symbol not in ("split_rngs", "fork_rngs") or not node.args or node.args[0].keyword is not None:
            return
        if any(a.keyword is not None and a.keyword.value in ("graph", "graph_updates") for a in node.args):
            return  # the mode is chosen at the call
        parent = self.analysis.parent(node)
        if not isinstance(parent, (cst.Expr, cst.WithItem)):
            return
        replacement, imports = compat_reference(self.analysis, symbol)
        self.report(
            node,
            f"in NNX's tree mode (Flax 0.12.5+, the planned default) `nnx.{symbol}` returns a split copy and "
            f"leaves its argument as it is: use `nnx.compat.{symbol}` (graph mode) or the returned copy",
            replace=node.func,
            replacement=replacement,
            imports=imports,
        )
