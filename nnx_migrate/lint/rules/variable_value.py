from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from nnx_migrate.lint.rule import Invalid, LintRule, Valid

_ELLIPSIS_INDEX = [cst.SubscriptElement(slice=cst.Index(value=cst.Ellipsis()))]


class VariableValue(LintRule):
    """`.value` is read or written on an NNX Variable.

    ## What it does
    Finds `.value` on expressions known to be an NNX Variable: an attribute of `self`
    that is only ever assigned `nnx.Variable`/`nnx.Param`/`nnx.BatchStat`/... (or a
    subclass defined in the file), the same attribute read through an instance of that
    class (`model.count.value`), or a local name assigned such a Variable. `self.value`
    that is a sub-layer (as in `nnx.MultiHeadAttention`) or any other `.value` is never
    touched.

    ## Why
    `Variable.value` is deprecated since Flax 0.12.1 and emits a DeprecationWarning.

    ## Fix safety
    Safe. When the Variable is known to hold an array (built by `jnp.*`, `jax.random.*`,
    an initializer...) `.value` becomes `[...]`, the idiom Flax recommends. When it may
    hold something else (a Python number, a dict), where `[...]` would fail, it becomes
    `.get_value()` / `.set_value(x)`, which work for every value.
    """

    CODE = "NNX004"
    NAME = "variable-value"
    SUMMARY = "`Variable.value` is deprecated since Flax 0.12.1"
    FIX_SAFETY = "safe"

    VALID = [
        Valid(
            "from flax import nnx\n"
            "class Attention(nnx.Module):\n"
            "    def __init__(self, rngs):\n"
            "        self.value = nnx.Linear(2, 2, rngs=rngs)\n"
            "    def __call__(self, x):\n"
            "        return self.value(x)\n"
        ),
        Valid("from flax import nnx\nimport enum\nclass Color(enum.Enum):\n    RED = 1\nprint(Color.RED.value)\n"),
        Valid(
            "from flax import nnx\n"
            "class M(nnx.Module):\n"
            "    def __init__(self, thing):\n"
            "        self.thing = thing\n"
            "    def f(self):\n"
            "        return self.thing.value\n"
        ),
    ]
    INVALID = [
        Invalid(
            "import jax.numpy as jnp\n"
            "from flax import nnx\n"
            "class Count(nnx.Variable):\n"
            "    pass\n"
            "class Counter(nnx.Module):\n"
            "    def __init__(self):\n"
            "        self.count = Count(jnp.array(0))\n"
            "    def __call__(self):\n"
            "        self.count.value += 1\n"
            "        return self.count.value\n"
            "model = Counter()\n"
            "print(model.count.value)\n",
            "import jax.numpy as jnp\n"
            "from flax import nnx\n"
            "class Count(nnx.Variable):\n"
            "    pass\n"
            "class Counter(nnx.Module):\n"
            "    def __init__(self):\n"
            "        self.count = Count(jnp.array(0))\n"
            "    def __call__(self):\n"
            "        self.count[...] += 1\n"
            "        return self.count[...]\n"
            "model = Counter()\n"
            "print(model.count[...])\n",
        ),
        Invalid(
            "from flax import nnx\n"
            "class Stats(nnx.Module):\n"
            "    def __init__(self):\n"
            "        self.steps = nnx.Variable(0)\n"
            "    def tick(self):\n"
            "        self.steps.value = self.steps.value + 1\n"
            "        self.steps.value *= 2\n",
            "from flax import nnx\n"
            "class Stats(nnx.Module):\n"
            "    def __init__(self):\n"
            "        self.steps = nnx.Variable(0)\n"
            "    def tick(self):\n"
            "        self.steps.set_value(self.steps.get_value() + 1)\n"
            "        self.steps.set_value(self.steps.get_value() * 2)\n",
        ),
        Invalid(
            "import jax\n"
            "from flax import nnx\n"
            "w = nnx.Param(jax.random.normal(key, (3,)))\n"
            "w.value = w.value * 2\n",
            "import jax\n"
            "from flax import nnx\n"
            "w = nnx.Param(jax.random.normal(key, (3,)))\n"
            "w[...] = w[...] * 2\n",
        ),
    ]

    def __init__(self, analysis) -> None:
        super().__init__(analysis)
        # class name -> {attribute: holds an array}
        self._class_variables = {
            name: analysis.variable_attributes(classdef)
            for name, classdef in analysis.local_classes.items()
        }
        self._handled: set[int] = set()

    def _holds_array(self, receiver: cst.BaseExpression) -> bool | None:
        """None if `receiver` is not known to be a Variable, else whether it holds an array."""
        analysis = self.analysis
        if isinstance(receiver, cst.Name):
            value = analysis.assigned_value(receiver)
            if value is not None and analysis.constructs_variable(value):
                return analysis.variable_holds_array(value)
            return None
        if not m.matches(receiver, m.Attribute(value=m.Name(), attr=m.Name())):
            return None
        owner, attr = receiver.value, receiver.attr.value
        if owner.value == "self":
            classdef = analysis.enclosing(receiver, cst.ClassDef)
            if classdef is None:
                return None
            return self._class_variables.get(classdef.name.value, {}).get(attr)
        instance = analysis.assigned_value(owner)
        cls = analysis.constructs_local_class(instance) if instance is not None else None
        return self._class_variables.get(cls, {}).get(attr) if cls else None

    def visit_Assign(self, node: cst.Assign) -> None:
        if len(node.targets) == 1:
            self._setter(node, node.targets[0].target, node.value)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._setter(node, node.target, node.value)

    def _setter(self, node: cst.Assign | cst.AugAssign, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        # `v.value = x` -> `v.set_value(x)` when `[...]` is not known to work;
        # `v.value += x` -> `v.set_value(v.get_value() + x)`.
        if not m.matches(target, m.Attribute(attr=m.Name("value"))):
            return
        holds_array = self._holds_array(target.value)
        if holds_array is None or holds_array:
            return  # handled by visit_Attribute (as `v[...] = x`) or not a Variable
        self._handled.add(id(target))
        parent = self.analysis.parent(node)
        if not isinstance(parent, cst.SimpleStatementLine) or len(parent.body) != 1:
            self.report(target, "`Variable.value` is deprecated; use `set_value(...)`")
            return
        new_value = _ValueReplacer(self).rewrite(value)
        if isinstance(node, cst.AugAssign):
            # `+=` -> `+`; the right side is parenthesized unless it is atomic.
            operator = cst.parse_expression(f"a {node.operator._get_token()[:-1]} b").operator
            if not isinstance(new_value, (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.BaseNumber)):
                new_value = new_value.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
            new_value = cst.BinaryOperation(left=_replacement(target, False), operator=operator, right=new_value)
        call = cst.Expr(
            value=cst.Call(
                func=cst.Attribute(value=target.value, attr=cst.Name("set_value")),
                args=[cst.Arg(value=new_value)],
            ),
            semicolon=node.semicolon,
        )
        self.report(target, "`Variable.value` is deprecated since Flax 0.12.1; use `set_value(...)`",
                    replace=node, replacement=call)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value != "value" or id(node) in self._handled:
            return
        holds_array = self._holds_array(node.value)
        if holds_array is None:
            return
        parent = self.analysis.parent(node)
        if not holds_array and (
            isinstance(parent, cst.AssignTarget) or (isinstance(parent, cst.AugAssign) and parent.target is node)
        ):
            return  # reported by _setter
        self.report(
            node,
            "`Variable.value` is deprecated since Flax 0.12.1; use "
            + ("`[...]`" if holds_array else "`get_value()`"),
            replacement=_replacement(node, holds_array),
        )


def _replacement(node: cst.Attribute, holds_array: bool) -> cst.BaseExpression:
    if holds_array:
        return cst.Subscript(value=node.value, slice=_ELLIPSIS_INDEX, lpar=node.lpar, rpar=node.rpar)
    return cst.Call(func=cst.Attribute(value=node.value, attr=cst.Name("get_value")), lpar=node.lpar, rpar=node.rpar)


class _ValueReplacer(cst.CSTTransformer):
    """Rewrites the `.value` reads inside an assigned expression (`x.value + 1`)."""

    def __init__(self, rule: VariableValue) -> None:
        super().__init__()
        self.rule = rule

    def rewrite(self, expr: cst.BaseExpression) -> cst.BaseExpression:
        return expr.visit(self)

    def leave_Attribute(self, original_node: cst.Attribute, updated_node: cst.Attribute):
        if original_node.attr.value != "value":
            return updated_node
        holds_array = self.rule._holds_array(original_node.value)
        if holds_array is None:
            return updated_node
        self.rule._handled.add(id(original_node))
        return _replacement(updated_node, holds_array)
