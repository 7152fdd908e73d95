"""Remat a block: `nn.remat(Block)` / `nn.checkpoint(Block)` built and called as a submodule.

What: the block is built in `__init__` like `Block` itself (its attribute keeps Linen's
name, `checkpoint_block_0` for the unnamed one) and each call runs through `nnx.remat`.
The same holds for a block built in `setup()` and for a remat class bound to a local
(`RB = nn.remat(Block)`, in a compact body or once in `setup()`).
`flax.linen.partitioning.remat(Block)` (Linen's alias that also takes `static_argnums`)
converts alike.

Why: Linen's `nn.remat(Block)` is a new module class whose forward pass is recomputed in
backprop. NNX transforms functions, not classes: the module is an ordinary one, and
`nnx.remat` wraps the function that calls it, with the same effect on memory and gradients.

Before:
    x = nn.remat(Block)(self.width)(x)

After:
    # __init__
    self.checkpoint_block_0 = Block(width=self.width, in_features=in_features, rngs=rngs)
    # __call__
    x = nnx.remat(lambda module, *args: module(*args))(self.checkpoint_block_0, x)

Reported: a call with keyword arguments (`nnx.remat` would trace them; pass them through by
hand). `nn.remat` with options (`static_argnums`, `policy`, ...) is left as Linen and
reported, to build by hand (at its binding where it is bound to a local).
"""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite import templates
from nnx_migrate.rewrite.classes.constructs.base import ModuleTransform
from nnx_migrate.rewrite.sizes import code

PARTITIONING_REMAT = "flax.linen.partitioning.remat"


class Remat(ModuleTransform):
    title = "Remat a block (`nn.remat`, `nn.checkpoint`)"
    linen = frozenset({"flax.linen.remat", "flax.linen.checkpoint", "flax.linen.transforms.checkpoint", PARTITIONING_REMAT})
    prefix = "Checkpoint"
    bindable = True

    def prefix_of(self, qualified: str | None) -> str:
        # flax.linen.partitioning.remat lifts `core_remat_static`: Linen's class is
        # `Core_remat_static<Class>` (without options it remats like nn.remat)
        return "Core_remat_static" if qualified == PARTITIONING_REMAT else self.prefix

    def wrapped_class(self, transform: cst.Call) -> cst.BaseExpression | None:
        args = transform.args
        return args[0].value if len(args) == 1 and args[0].keyword is None else None

    def call_source(self, rewriter, original, updated, sub):
        if any(a.keyword is not None or a.star for a in updated.args):
            rewriter.conv.todo(original, f"nn.remat({sub.attr})(...)", "keyword arguments to a rematerialized module: nnx.remat would trace them; pass them through by hand")
            return updated
        # Linen's remat-a-block: the block's forward pass is recomputed in backprop.
        args = ", ".join(code(a.value) for a in updated.args)
        return templates.parse_expression(f"nnx.remat(lambda module, *args: module(*args))({code(updated.func)}, {args})")
