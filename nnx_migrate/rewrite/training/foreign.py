"""Models that hold a Linen module of another package (classes/constructs/foreign_module.py):
its `nnx.bridge.ToNNX` wrapper makes no variables in the constructor, so the model is built
as `nnx.bridge.lazy_init(Model(...), x)`, which runs it once on `init`'s input (as Linen's
`init` ran it) and creates them. Without that, `nnx.Optimizer(model, tx, wrt=nnx.Param)`
would see no parameters of the wrapped module and never train them."""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite.lines import render as code_of

# `init` keywords that are Linen's own, not the model's call arguments
_INIT_ONLY = ("rngs", "method", "mutable", "capture_intermediates")


def lazily_initialised(ctor: str, summary, init_call: cst.Call) -> str:
    """`ctor` (the NNX constructor call) as the model `init_call` (`m.init(key, x, ...)`)
    made, for a class whose summary says it holds a wrapped Linen module; else `ctor`."""
    if not getattr(summary, "foreign", ()):
        return ctor
    args = [a for a in init_call.args if not a.star]
    positional = [a for a in args if a.keyword is None][1:]  # past the key
    keywords = [a for a in args if a.keyword is not None and a.keyword.value not in _INIT_ONLY]
    given = [code_of(a.value) for a in positional] + [f"{a.keyword.value}={code_of(a.value)}" for a in keywords]
    return f"nnx.bridge.lazy_init({', '.join([ctor, *given])})"


def surgery_note(foreign: tuple[str, ...]) -> str:
    """What a TODO about `init`'s variables adds where the model holds Linen modules of
    other packages (weight surgery, such as loading a pretrained backbone, is common there)."""
    if not foreign:
        return ""
    return (f"; the Linen module{'s' if len(foreign) > 1 else ''} {', '.join(f'`{q}`' for q in foreign)} sit{'' if len(foreign) > 1 else 's'} in "
            "nnx.bridge.ToNNX under Linen's names: load pretrained weights there with nnx.update(model.<attribute>, ...)")
