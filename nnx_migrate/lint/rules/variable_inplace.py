from __future__ import annotations

import re

import libcst as cst
import libcst.matchers as m

from nnx_migrate.lint.rule import Invalid, LintRule, Valid

_ELLIPSIS_INDEX = [cst.SubscriptElement(slice=cst.Index(value=cst.Ellipsis()))]


class VariableInPlaceOperator(LintRule):
    """An in-place operator (`+=`, `*=`, ...) applied to an NNX Variable itself.

    ## What it does
    Finds `v += x` (any augmented assignment) where `v` is known to be an NNX Variable: an
    attribute of `self` that is only ever assigned `nnx.Variable`/`nnx.Param`/`nnx.BatchStat`
    /... (or a subclass defined in the file), the same attribute through an instance of that
    class, or a local name assigned such a Variable. `v[...] += x` and `v.value += x`
    (NNX004) are not reported.

    ## Why
    Since Flax 0.12.0 a Variable's in-place operators raise `NotImplementedError:
    In-place operations are no longer supported for Variable. Use `variable[...] += x`
    instead.`

    ## Fix safety
    Safe: a Variable known to hold an array becomes `v[...] += x`, which updates it as the
    old operator did; one that may hold something else (a Python number), where `[...]`
    would fail, becomes `v.set_value(v.get_value() + x)`.
    """

    CODE = "NNX012"
    NAME = "variable-inplace-operator"
    SUMMARY = "In-place operators on a Variable raise since Flax 0.12.0; use `v[...] += x`"
    FIX_SAFETY = "safe"
    TRIGGER = re.compile(r"[-+*/%@&|^]=|<<=|>>=|\*\*=|//=")

    VALID = [
        Valid(
            "import jax.numpy as jnp\nfrom flax import nnx\n"
            "class Counter(nnx.Module):\n"
            "    def __init__(self):\n"
            "        self.count = nnx.BatchStat(jnp.zeros(()))\n"
            "        self.total = 0\n"
            "    def __call__(self):\n"
            "        self.count[...] += 1\n"
            "        self.total += 1  # a plain int attribute\n"
        ),
        Valid("from flax import nnx\nx = 1\nx += 2\n"),
    ]
    INVALID = [
        Invalid(
            "import jax.numpy as jnp\nfrom flax import nnx\n"
            "class Counter(nnx.Module):\n"
            "    def __init__(self):\n"
            "        self.count = nnx.BatchStat(jnp.zeros(()))\n"
            "        self.steps = nnx.Variable(0)\n"
            "    def __call__(self, x):\n"
            "        self.count += 1\n"
            "        self.steps *= 2\n"
            "        return x\n",
            "import jax.numpy as jnp\nfrom flax import nnx\n"
            "class Counter(nnx.Module):\n"
            "    def __init__(self):\n"
            "        self.count = nnx.BatchStat(jnp.zeros(()))\n"
            "        self.steps = nnx.Variable(0)\n"
            "    def __call__(self, x):\n"
            "        self.count[...] += 1\n"
            "        self.steps.set_value(self.steps.get_value() * 2)\n"
            "        return x\n",
        ),
        Invalid(
            "import jax.numpy as jnp\nfrom flax import nnx\n"
            "w = nnx.Param(jnp.ones(3))\n"
            "w -= 0.1 * g\n",
            "import jax.numpy as jnp\nfrom flax import nnx\n"
            "w = nnx.Param(jnp.ones(3))\n"
            "w[...] -= 0.1 * g\n",
        ),
    ]

    def __init__(self, analysis) -> None:
        super().__init__(analysis)
        self._classes: list[cst.ClassDef] = []

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._classes.append(node)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._classes.pop()

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        holds_array = self._holds_array(node.target)
        if holds_array is None:
            return
        message = "in-place operators on a Variable raise since Flax 0.12.0: update `[...]` or use `set_value`"
        if holds_array:
            target = cst.Subscript(value=node.target, slice=_ELLIPSIS_INDEX)
            self.report(node, message, replacement=node.with_changes(target=target))
            return
        statement = self.analysis.parent(node)
        if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
            self.report(node, message)
            return
        operator = cst.parse_expression(f"a {node.operator._get_token()[:-1]} b").operator
        right = node.value
        if not isinstance(right, (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.BaseNumber)):
            right = right.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        current = cst.Call(func=cst.Attribute(value=node.target, attr=cst.Name("get_value")))
        call = cst.Call(
            func=cst.Attribute(value=node.target, attr=cst.Name("set_value")),
            args=[cst.Arg(value=cst.BinaryOperation(left=current, operator=operator, right=right))],
        )
        self.report(node, message, replacement=cst.Expr(value=call, semicolon=node.semicolon))

    def _holds_array(self, target: cst.BaseExpression) -> bool | None:
        """None if `target` is not known to be a Variable, else whether it holds an array."""
        analysis = self.analysis
        if isinstance(target, cst.Name):
            if not analysis.may_be_bound_to_call_of(target, analysis.api.variable_types, local=True):
                return None
            value = self._bound_value(target)
            if value is not None and analysis.constructs_variable(value):
                return analysis.variable_holds_array(value)
            return None
        if not m.matches(target, m.Attribute(value=m.Name(), attr=m.Name())):
            return None
        owner, attr = target.value, target.attr.value
        if owner.value == "self":
            cls = self._classes[-1] if self._classes else None
            return analysis.variable_attributes(cls).get(attr) if cls is not None else None
        instance = analysis.assigned_value(owner)
        local_class = analysis.constructs_local_class(instance) if instance is not None else None
        if local_class is None:
            return None
        return analysis.variable_attributes(analysis.local_classes[local_class]).get(attr)

    def _bound_value(self, name: cst.Name) -> cst.BaseExpression | None:
        """What `name = value` bound `name` to, when that is its one binding besides
        augmented assignments (`w -= g` rebinds `w` to the same object)."""
        analysis = self.analysis
        plain = [a for a in analysis.assignments_of(name) if not isinstance(analysis.parent(a.node), cst.AugAssign)]
        if len(plain) != 1:
            return None
        holder = analysis.parent(plain[0].node)
        if isinstance(holder, cst.AssignTarget):
            assign = analysis.parent(holder)
            if isinstance(assign, cst.Assign) and len(assign.targets) == 1:
                return assign.value
        return None
