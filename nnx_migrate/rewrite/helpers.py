"""Linen functions NNX has no counterpart for, kept as small helpers written into the
converted file (rules/linen_functions.toml, [helpers], names which).

`nn.merge_param(name, a, b)` (a hyperparameter given to the constructor or at call time)
has no NNX function: `nnx.module.first_from` returns the first value that is set but does
not raise when both are, which Linen does. The helper is Linen's function, so behaviour,
error messages included, does not change. No jax or flax import.
"""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite.logical_axes import LOGICAL_AXIS_HELPERS

HELPER_SOURCES = {
    "merge_param": '''def merge_param(name, a, b):
    """Linen's `nn.merge_param`: the one of `a` (constructor) and `b` (call) that is set."""
    if a is None and b is None:
        raise ValueError(f'Parameter "{name}" must be passed to the constructor or at call time.')
    if a is not None and b is not None:
        raise ValueError(f'Parameter "{name}" was passed to the constructor and at call time. Should be passed just once.')
    return b if a is None else a
''',
    **{name: source for name, (source, _, _) in LOGICAL_AXIS_HELPERS.items()},
}
# helper -> the helpers it calls (written with it)
HELPER_NEEDS = {name: needs for name, (_, needs, _) in LOGICAL_AXIS_HELPERS.items()}
# helper -> the import lines its code reads
HELPER_IMPORTS = {name: imports for name, (_, _, imports) in LOGICAL_AXIS_HELPERS.items()}


def with_needs(names: set[str]) -> set[str]:
    """`names` and every helper they call."""
    found, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo.extend(HELPER_NEEDS.get(name, ()))
    return found


def add_helpers(module: cst.Module, needed: set[str], before_index: int | None) -> cst.Module:
    """The module with the `needed` helpers defined before statement `before_index` (the
    first converted class), or after the imports."""
    if not needed:
        return module
    body = list(module.body)
    if before_index is None:
        before_index = 0
        for i, stmt in enumerate(body):
            if isinstance(stmt, cst.SimpleStatementLine) and all(isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body):
                before_index = i + 1
    defs = [
        cst.parse_statement(HELPER_SOURCES[name], config=module.config_for_parsing).with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()])
        for name in sorted(with_needs(needed))
    ]
    body[before_index:before_index] = defs
    return module.with_changes(body=body)
