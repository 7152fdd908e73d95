"""What the tree-mode rules share: which calls are NNX transforms, and the fix that keeps a
transform's graph-mode behaviour whatever the default (`nnx.compat.<name>`).

`nnx.compat.<name>` is `functools.partial(nnx.<name>, graph=True, graph_updates=True)`
(tests/lint/test_api_facts.py checks it): exactly what the call does under Flax 0.12's
defaults, and still after Flax flips them to tree mode (FLIP 5310). Pure: no flax import.
"""

from __future__ import annotations

import libcst as cst

from nnx_migrate.lint.analysis import NNX_MODULES, FileAnalysis
from nnx_migrate.lint.rule import ImportNeeded


def is_compat(analysis: FileAnalysis, node: cst.CSTNode) -> bool:
    """Whether `node` names something in `flax.nnx.compat` (already pinned to graph mode)."""
    return any(q.startswith(f"{mod}.compat.") for q in analysis.qualified_names(node) for mod in NNX_MODULES)


def transform_symbol(analysis: FileAnalysis, call: cst.CSTNode) -> str | None:
    """`vmap` for a call of `nnx.vmap` (not `nnx.compat.vmap`); None otherwise."""
    if not isinstance(call, cst.Call):
        return None
    symbol = analysis.nnx_symbol(call.func, analysis.api.compat_transforms)
    if symbol is None or is_compat(analysis, call.func):
        return None
    return symbol


def compat_reference(analysis: FileAnalysis, symbol: str) -> tuple[cst.BaseExpression, tuple[ImportNeeded, ...]]:
    """`nnx.compat.<symbol>` spelled with the file's own imports."""
    compat, imports = analysis.nnx_reference("compat")
    return cst.Attribute(value=compat, attr=cst.Name(symbol)), imports
