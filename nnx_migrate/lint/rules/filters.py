from __future__ import annotations

import re

import libcst as cst

from nnx_migrate.lint.rule import Invalid, LintRule, Valid


class OutdatedFilterSyntax(LintRule):
    """NNX filters written as in out-of-date guides: `nnx.All - X`, `nnx.state(m, filter=...)`.

    ## What it does
    Finds `nnx.All - X` (meant as "everything but X") and the keyword `filter=` passed to
    `nnx.state`, `nnx.split` or `nnx.pop`.

    ## Why
    Filters do not support `-`: `nnx.All - nnx.BatchStat` raises `TypeError`. They compose
    with `nnx.Not(X)`, `nnx.All(a, b)` and `nnx.Any(a, b)`. `nnx.state(model, *filters)`
    takes filters positionally: `filter=` raises `TypeError` (unexpected keyword).

    ## Fix safety
    Safe: `nnx.All - X` becomes `nnx.Not(X)`, which selects exactly what was meant;
    `filter=F` becomes the positional argument `F`.
    """

    CODE = "NNX006"
    NAME = "outdated-filter-syntax"
    SUMMARY = "`nnx.All - X` and `nnx.state(m, filter=...)` raise; use `nnx.Not(X)` / positional filters"
    FIX_SAFETY = "safe"
    TRIGGER = re.compile(r"\bAll\s*-|\bfilter\s*=")

    VALID = [
        Valid("from flax import nnx\nparams = nnx.state(model, nnx.Not(nnx.BatchStat))\n"),
        Valid("from flax import nnx\ngraphdef, params, rest = nnx.split(model, nnx.Param, ...)\n"),
        Valid("from flax import nnx\nAll = 10\nx = All - 3\n"),
        Valid("from flax import nnx\nimport numpy as np\nx = np.state(model, filter=3)\n"),
    ]
    INVALID = [
        Invalid(
            "from flax import nnx\nparams = nnx.state(model, filter=nnx.All - nnx.BatchStat)\n",
            "from flax import nnx\nparams = nnx.state(model, nnx.Not(nnx.BatchStat))\n",
        ),
        Invalid(
            "from flax.nnx import All, BatchStat, split\ngraphdef, state = split(model, All - BatchStat)\n",
            "from flax.nnx import Not, All, BatchStat, split\ngraphdef, state = split(model, Not(BatchStat))\n",
        ),
    ]

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        api = self.analysis.api
        if not isinstance(node.operator, cst.Subtract):
            return
        if self.analysis.nnx_symbol(node.left, {api.filter_everything}) is None:
            return
        negate, imports = self.analysis.nnx_reference(api.filter_negate)
        excluded = node.right.with_changes(lpar=[], rpar=[]) if node.right.lpar else node.right
        replacement = cst.Call(func=negate, args=[cst.Arg(value=excluded)], lpar=node.lpar, rpar=node.rpar)
        self.report(
            node,
            f"filters do not support `-`: use `{self.analysis.code(replacement)}`",
            replacement=replacement,
            imports=imports,
        )

    def visit_Call(self, node: cst.Call) -> None:
        symbol = self.analysis.nnx_symbol(node.func, self.analysis.api.positional_filter_functions)
        if symbol is None:
            return
        for index, arg in enumerate(node.args):
            if arg.keyword is None or arg.keyword.value != "filter":
                continue
            if any(later.keyword is None and not later.star for later in node.args[index + 1:]):
                self.report(arg, f"`nnx.{symbol}` takes filters positionally, not as `filter=`")
                continue  # moving it before later positional arguments would reorder them
            self.report(
                arg,
                f"`nnx.{symbol}` takes filters positionally: drop `filter=`",
                replacement=arg.with_changes(keyword=None, equal=cst.MaybeSentinel.DEFAULT),
            )
