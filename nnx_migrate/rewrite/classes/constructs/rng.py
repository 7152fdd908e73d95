"""Random streams: `self.make_rng(stream)`.

What: the module keeps the `rngs` it is built with (`self.rngs = rngs` in `__init__`) and
`self.make_rng('dropout')` becomes `self.rngs.dropout()`.

Why: Linen hands out keys from the streams given to `apply`; an NNX module draws them from
the `nnx.Rngs` it holds.

Before:
    key = self.make_rng('noise')

After:
    # __init__
    self.rngs = rngs
    # __call__
    key = self.rngs.noise()

Reported: nothing of its own; a stream name that is not a plain literal identifier is left
as Linen and reported with the other Linen API left in the class.
"""

from __future__ import annotations

from nnx_migrate.rewrite import templates
from nnx_migrate.rewrite.classes.constructs.base import SelfCallConstruct
from nnx_migrate.rewrite.nodes import string_value


class MakeRng(SelfCallConstruct):
    title = "Random streams (`self.make_rng`)"
    methods = frozenset({"make_rng"})
    order = 30

    def walk(self, conv, walker, node, method) -> bool:
        conv.needs_rngs_attr = True
        return False

    def init_source(self, conv) -> list[str]:
        return ["self.rngs = rngs\n"] if conv.needs_rngs_attr else []

    def call_source(self, rewriter, original, updated, method):
        stream = string_value(original.args[0].value) if len(original.args) == 1 else None
        if stream is None or not stream.isidentifier():
            return None
        return templates.parse_expression(f"self.rngs.{stream}()")
