from __future__ import annotations

import re

import libcst as cst
import libcst.matchers as m

from nnx_migrate.lint.rule import Invalid, LintRule, Valid


class RngsForkSplit(LintRule):
    """`rngs.fork(split=n)` instead of `rngs.split(n)`.

    ## What it does
    Finds `.fork(split=...)` called on NNX RNG streams: a name bound to `nnx.Rngs(...)`,
    a parameter called `rngs` or annotated `nnx.Rngs`, an attribute `<x>.rngs`, or one
    stream of those (`rngs.dropout.fork(split=4)`).

    ## Why
    Flax 0.12.6 deprecated the `split` argument of `fork`:
    `DeprecationWarning: The 'split' argument of 'fork' is deprecated; use the 'split'
    method instead.`

    ## Fix safety
    Safe for a count or a shape (`fork(split=4)`, `fork(split=(2, 3))`): `split(n)` draws
    the same keys (checked on Flax 0.12.8) and leaves the streams in the same state.
    Unsafe for anything else: with a per-stream mapping (`{'dropout': 4}`) `split` does not
    fork the streams the mapping leaves out, as `fork` does.
    """

    CODE = "NNX011"
    NAME = "rngs-fork-split"
    SUMMARY = "`rngs.fork(split=n)` is deprecated since Flax 0.12.6; use `rngs.split(n)`"
    FIX_SAFETY = "mixed"
    TRIGGER = re.compile(r"\.fork\(\s*split\s*=")

    VALID = [
        Valid("from flax import nnx\ndef make(rngs: nnx.Rngs):\n    return rngs.split(4)\n"),
        Valid("from flax import nnx\nchild = stream.fork(split=4)  # not known to be NNX RNG streams\n"),
        Valid("from flax import nnx\ndef make(rngs):\n    return rngs.fork()\n"),
    ]
    INVALID = [
        Invalid(
            "from flax import nnx\n"
            "def make(rngs: nnx.Rngs):\n"
            "    return rngs.fork(split=4), rngs.dropout.fork(split=(2, 3))\n",
            "from flax import nnx\n"
            "def make(rngs: nnx.Rngs):\n"
            "    return rngs.split(4), rngs.dropout.split((2, 3))\n",
        ),
        Invalid(
            "from flax import nnx\n"
            "streams = nnx.Rngs(0, dropout=1)\n"
            "split = streams.fork(split={'dropout': 4})\n",
            "from flax import nnx\n"
            "streams = nnx.Rngs(0, dropout=1)\n"
            "split = streams.split({'dropout': 4})\n",
        ),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        if not m.matches(node.func, m.Attribute(attr=m.Name("fork"))):
            return
        if len(node.args) != 1 or node.args[0].keyword is None or node.args[0].keyword.value != "split":
            return
        receiver = node.func.value
        if not (self._is_rngs(receiver) or (isinstance(receiver, cst.Attribute) and self._is_rngs(receiver.value))):
            return
        value = node.args[0].value
        safe = isinstance(value, (cst.Integer, cst.Tuple)) and not any(isinstance(e.value, cst.Dict) for e in getattr(value, "elements", ()))
        self.report(
            node,
            "`fork(split=...)` is deprecated since Flax 0.12.6: use `.split(...)`",
            replacement=node.with_changes(
                func=node.func.with_changes(attr=cst.Name("split")),
                args=[cst.Arg(value=value)],
            ),
            unsafe=not safe,
        )

    def _is_rngs(self, expr: cst.BaseExpression) -> bool:
        if m.matches(expr, m.Attribute(attr=m.Name("rngs"))):
            return True
        if not isinstance(expr, cst.Name):
            return False
        value = self.analysis.assigned_value(expr)
        if value is not None:
            return self.analysis.called_nnx_symbol(value, {"Rngs"}) is not None
        for assignment in self.analysis.assignments_of(expr):
            param = assignment.node
            if isinstance(param, cst.Param):
                annotation = param.annotation.annotation if param.annotation is not None else None
                if param.name.value == "rngs" or (annotation is not None and self.analysis.nnx_symbol(annotation, {"Rngs"})):
                    return True
        return False
