"""A Linen module class from another package, built as a submodule: `Backbone(features=8)(x)` with `from backbone_lib import Backbone`.

What: the class is not part of the run (its module is no file of the program), so it stays
Linen: `__init__` wraps it in `nnx.bridge.ToNNX`, the one legitimate use of the bridge in
converted code; the call uses the attribute. The model's constructor does not create the
wrapped module's variables: the training pass builds the model as
`nnx.bridge.lazy_init(Model(...), x)` where Linen's `init` had the input
(`ClassSummary.foreign`). The variables keep Linen's names under the attribute
(`backbone_0/Dense_0/kernel`).

Only a class built and called at once (`Backbone(...)(x)`) whose package is neither the
file's own (a folder of its path) nor a module file of the program, nor the standard
library, counts: a class built and kept may be any data class (reported as before).

Why: a pretrained backbone from a library cannot be converted by this run, and NNX code
cannot hold a Linen module without the bridge. Its output size is not known to the tool
(a layer after it takes its input size as a constructor argument).

Before:
    x = Backbone(features=8)(x, train=train)

After:
    # __init__
    # TODO(nnx-migrate): Linen class `backbone_lib.Backbone` ...
    self.backbone_0 = nnx.bridge.ToNNX(Backbone(features=8), rngs=rngs)
    # __call__
    x = self.backbone_0(x, train=train)

Reported: always, naming the foreign class (a BatchNorm inside it updates statistics only
when called with `mutable=['batch_stats']`; Dropout inside it needs a `dropout` stream in
the model's `nnx.Rngs`; code that loads weights into it by Linen paths needs a look).
"""

from __future__ import annotations

import sys
from pathlib import Path

from nnx_migrate.rewrite.classes.constructs.base import SubmoduleConstruct
from nnx_migrate.rewrite.classes.model import SubKind
from nnx_migrate.rewrite.sizes import code

# Packages whose capitalised callables are no Linen modules (as for the walk's foreign check).
_NOT_MODULES = ("jax", "numpy", "math", "functools", "builtins", "operator", "einops", "optax", "flax", "typing", "dataclasses", "collections")


class ForeignModule(SubmoduleConstruct):
    title = "Linen modules of other packages (kept, wrapped by nnx.bridge.ToNNX)"
    linen = frozenset()  # classes imported from a module that is no file of the program
    kind = SubKind.FOREIGN
    order = 85

    def matches(self, conv, func, qual) -> bool:
        ctx = conv.ctx
        if qual is None or "." not in qual or ctx.run_context is None or ctx.path.startswith("<") or id(func) not in conv.called_classes:
            return False  # only `Cls(...)(x)`: a class built and not called at once may be any data class
        module, name = qual.rsplit(".", 1)
        top = module.split(".")[0]
        if not name[:1].isupper() or top in _NOT_MODULES or top in sys.stdlib_module_names or module.startswith(".") or ctx.module_class(func) is not None:
            return False
        # a module of the program (a sibling file, the file's own package) is converted or
        # reported by the run itself; only one Python finds elsewhere is foreign
        return top not in Path(ctx.path).resolve().parts[:-1] and ctx.run_context.local_module_file(ctx.path, module) is None

    def analyse(self, conv, sub, ctor, walker) -> str:
        qual = conv.ctx.imports.qualify(ctor.func)
        sub.problems.append(
            f"Linen class `{qual}` is not part of this run: kept as Linen in nnx.bridge.ToNNX; its variables (Linen's names) "
            "are made by nnx.bridge.lazy_init(model, x); inside it BatchNorm needs mutable=['batch_stats'], Dropout a 'dropout' stream")
        return qual.rsplit(".", 1)[1]

    def init_source(self, conv, sub) -> str:
        return f"nnx.bridge.ToNNX({code(sub.ctor)}, rngs=rngs)"
