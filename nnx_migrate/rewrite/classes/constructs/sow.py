"""Sown values: `self.sow(collection, name, value)`.

What: the call stays, with the collection replaced by its NNX variable type
(`'intermediates'` -> `nnx.Intermediate`); NNX keeps the sown value in the attribute
`name` of the module.

Why: NNX's `Module.sow` takes the variable type, not a collection name.

Before:
    self.sow('intermediates', 'pre_activation', y)

After:
    self.sow(nnx.Intermediate, 'pre_activation', y)

Reported: a sown name that is also a field of the module (NNX would overwrite the field).
"""

from __future__ import annotations

from nnx_migrate.rewrite import templates
from nnx_migrate.rewrite.classes.constructs.base import SelfCallConstruct
from nnx_migrate.rewrite.nodes import string_value


class Sow(SelfCallConstruct):
    title = "Sown values (`self.sow`)"
    methods = frozenset({"sow"})
    order = 20

    def walk(self, conv, walker, node, method) -> bool:
        name = string_value(node.args[1].value) if len(node.args) >= 2 else None
        if name is not None:
            conv.sow_names.add(name)  # NNX keeps it in an attribute of that name
        if name is not None and name in {f.name for f in conv.shape.fields}:
            # Linen keeps sown values in a collection apart; NNX sets an attribute of that name
            conv.todo(node, f"self.sow(..., {name!r}, ...)", f"NNX stores sown values as the attribute '{name}', which is also a field of the module: rename the sown value (and whoever reads it)")
        return False

    def call_source(self, rewriter, original, updated, method):
        collection = string_value(original.args[0].value) if original.args else None
        if collection is None:
            return None
        vtype = rewriter.conv.ctx.variable_type(collection)
        return updated.with_changes(args=[updated.args[0].with_changes(value=templates.parse_expression(vtype)), *updated.args[1:]])
