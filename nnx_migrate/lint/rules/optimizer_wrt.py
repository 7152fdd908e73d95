from __future__ import annotations

import re

import libcst as cst

from nnx_migrate.lint.edits import append_keyword_arg
from nnx_migrate.lint.rule import Invalid, LintRule, Valid


class OptimizerWithoutWrt(LintRule):
    """`nnx.Optimizer(...)` is called without `wrt=`.

    ## What it does
    Finds `nnx.Optimizer(model, tx)` calls that do not say which variables the optimizer
    updates.

    ## Why
    Since Flax 0.11 `wrt` is a required keyword argument: the call raises
    `TypeError: ... the wrt argument is required`. Before 0.11 it defaulted to
    `nnx.Param`.

    ## Fix safety
    Safe: adds `wrt=nnx.Param` (spelled with the file's own import of nnx), which is
    exactly the old default. Not reported when `wrt` may already be given positionally
    or through `*args`/`**kwargs`.
    """

    CODE = "NNX001"
    NAME = "optimizer-without-wrt"
    SUMMARY = "`nnx.Optimizer(...)` without `wrt=` raises TypeError since Flax 0.11"
    FIX_SAFETY = "safe"
    TRIGGER = re.compile(r"Optimizer\s*\(")

    VALID = [
        Valid("from flax import nnx\nopt = nnx.Optimizer(model, tx, wrt=nnx.Param)\n"),
        Valid("from flax import nnx\nopt = nnx.Optimizer(model, tx, nnx.Param)\n"),
        Valid("from flax import nnx\nopt = nnx.Optimizer(model, tx, **kwargs)\n"),
        Valid("from flax import nnx\nopt = nnx.Optimizer(*args)\n"),
        Valid("from mylib import Optimizer\nfrom flax import nnx\nopt = Optimizer(model, tx)\n"),
        Valid(
            "from flax import nnx\n"
            "class Optimizer:\n"
            "    pass\n"
            "opt = Optimizer(model, tx)\n"
        ),
    ]
    INVALID = [
        Invalid(
            "from flax import nnx\nopt = nnx.Optimizer(model, optax.adam(1e-3))\n",
            "from flax import nnx\nopt = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)\n",
        ),
        Invalid(
            "import flax.nnx as fx\nopt = fx.Optimizer(model, tx)\n",
            "import flax.nnx as fx\nopt = fx.Optimizer(model, tx, wrt=fx.Param)\n",
        ),
        Invalid(
            "from flax.nnx import Optimizer, Param\nopt = Optimizer(model, tx)\n",
            "from flax.nnx import Optimizer, Param\nopt = Optimizer(model, tx, wrt=Param)\n",
        ),
        Invalid(
            "from flax.nnx import Optimizer\nopt = Optimizer(model, tx)\n",
            "from flax.nnx import Param, Optimizer\nopt = Optimizer(model, tx, wrt=Param)\n",
        ),
        Invalid(
            "import flax.nnx\nopt = flax.nnx.Optimizer(model, tx)\n",
            "import flax.nnx\nopt = flax.nnx.Optimizer(model, tx, wrt=flax.nnx.Param)\n",
        ),
        Invalid(
            "from flax import nnx\n"
            "opt = nnx.Optimizer(\n"
            "    model,\n"
            "    tx,  # the optimizer\n"
            ")\n",
            "from flax import nnx\n"
            "opt = nnx.Optimizer(\n"
            "    model,\n"
            "    tx,  # the optimizer\n"
            "    wrt=nnx.Param,\n"
            ")\n",
        ),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        api = self.analysis.api
        # Only `Optimizer`: `ModelAndOptimizer` still defaults `wrt` to `nnx.Param`.
        symbol = self.analysis.nnx_symbol(node.func, {api.optimizer})
        if symbol is None:
            return
        if any(arg.star for arg in node.args):
            return  # *args / **kwargs may carry wrt
        if any(arg.keyword is not None and arg.keyword.value == "wrt" for arg in node.args):
            return
        if sum(arg.keyword is None for arg in node.args) >= 3:
            return  # wrt passed positionally, as the pre-0.11 signature allowed
        wrt, imports = self.analysis.nnx_reference(api.default_wrt)
        self.report(
            node,
            f"`{symbol}` needs `wrt=` since Flax 0.11; add `wrt={self.analysis.code(wrt)}` "
            "(the old default)",
            replacement=append_keyword_arg(node, "wrt", wrt),
            imports=imports,
        )
