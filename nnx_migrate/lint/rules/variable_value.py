from __future__ import annotations

import re

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
    Safe. A read of a Variable known to hold an array (built by `jnp.*`, `jax.random.*`,
    an initializer...) becomes `[...]`, the idiom Flax recommends; a read of one that may
    hold something else (a Python number, a dict), where `[...]` would fail, becomes
    `.get_value()`. Every write becomes `.set_value(x)`: `v[...] = x` would cast and
    broadcast `x` into the old array (`w[...] = 1.0` fills it, `c[...] += 0.5` keeps an int),
    where `v.value = x` replaced it.
    """

    CODE = "NNX004"
    NAME = "variable-value"
    SUMMARY = "`Variable.value` is deprecated since Flax 0.12.1"
    FIX_SAFETY = "safe"
    TRIGGER = re.compile(r"\.value\b")

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
        Valid(
            "from flax import nnx\n"
            "class M(nnx.Module):\n"
            "    def __init__(self, rngs):\n"
            "        self.w = nnx.Param(rngs.params())\n"
            "        self.w = nnx.Linear(2, 2, rngs=rngs)  # not only a Variable\n"
            "    def f(self):\n"
            "        return self.w.value\n"
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
            "        self.count.set_value(self.count.get_value() + 1)\n"
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
            "from flax import nnx\n"
            "class Embed(nnx.Module):\n"
            "    def __init__(self, init, rngs):\n"
            "        if init is not None:\n"
            "            self.table = nnx.Param(init(rngs(), (4, 2)))\n"
            "        else:\n"
            "            self.table = None\n"
            "    def __call__(self):\n"
            "        return self.table.value\n",
            "from flax import nnx\n"
            "class Embed(nnx.Module):\n"
            "    def __init__(self, init, rngs):\n"
            "        if init is not None:\n"
            "            self.table = nnx.Param(init(rngs(), (4, 2)))\n"
            "        else:\n"
            "            self.table = None\n"
            "    def __call__(self):\n"
            "        return self.table.get_value()\n",
        ),
        Invalid(
            "import jax\n"
            "from flax import nnx\n"
            "w = nnx.Param(jax.random.normal(key, (3,)))\n"
            "w.value = w.value * 2\n",
            "import jax\n"
            "from flax import nnx\n"
            "w = nnx.Param(jax.random.normal(key, (3,)))\n"
            "w.set_value(w[...] * 2)\n",
        ),
    ]

    def __init__(self, analysis) -> None:
        super().__init__(analysis)
        # Phase 1 (the visit) records, without any metadata, every `.value` use and
        # every assignment that looks like it builds a Variable; phase 2 (leave_Module)
        # confirms only the plausible uses with qualified names and scopes.
        self._classes: list[cst.ClassDef] = []
        self._statement: cst.SimpleStatementLine | None = None
        self._uses: list[tuple[cst.Attribute, cst.ClassDef | None]] = []
        self._setters: dict[int, tuple[cst.Assign | cst.AugAssign, cst.ClassDef | None, bool]] = {}
        self._variable_like_names: set[str] = set()
        self._variable_like_attrs: set[tuple[str | None, str]] = set()
        self._handled: set[int] = set()
        self._spellings: set[str] | None = None
        self._class_variables_cache: dict[str, dict[str, bool]] | None = None

    # ---- phase 1 -------------------------------------------------------------------------
    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._classes.append(node)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._classes.pop()

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
        self._statement = node

    def _current_class(self) -> cst.ClassDef | None:
        return self._classes[-1] if self._classes else None

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._note_assignment(target.target, node.value)
        if len(node.targets) == 1:
            self._note_setter(node, node.targets[0].target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._note_assignment(node.target, node.value)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._note_setter(node, node.target)

    def _note_assignment(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        if not isinstance(value, cst.Call) or _last_name(value.func) not in self._variable_spellings():
            return
        if isinstance(target, cst.Name):
            self._variable_like_names.add(target.value)
        elif m.matches(target, m.Attribute(value=m.Name("self"), attr=m.Name())):
            cls = self._current_class()
            self._variable_like_attrs.add((cls.name.value if cls else None, target.attr.value))
            self._variable_like_attrs.add((None, target.attr.value))

    def _note_setter(self, node: cst.Assign | cst.AugAssign, target: cst.BaseExpression) -> None:
        if m.matches(target, m.Attribute(attr=m.Name("value"))):
            alone = self._statement is not None and len(self._statement.body) == 1 and self._statement.body[0] is node
            self._setters[id(target)] = (node, self._current_class(), alone)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value == "value":
            self._uses.append((node, self._current_class()))

    # Plain methods, not properties: LibCST's batched visitor inspects every attribute of
    # a rule instance, which would evaluate a property before any node is visited.
    def _variable_spellings(self) -> set[str]:
        if self._spellings is None:
            api = self.analysis.api
            spellings = set(api.variable_types)
            spellings |= {alias for alias, name in self.analysis.import_aliases.items() if name in spellings}
            classes = self.analysis.local_classes
            changed = True
            while changed:  # local subclasses of Variable types, by their bases' names
                changed = False
                for name, classdef in classes.items():
                    if name not in spellings and any(_last_name(b.value) in spellings for b in classdef.bases):
                        spellings.add(name)
                        changed = True
            self._spellings = spellings
        return self._spellings

    def _plausible(self, receiver: cst.BaseExpression, cls: cst.ClassDef | None) -> bool:
        if isinstance(receiver, cst.Name):
            return receiver.value in self._variable_like_names
        if m.matches(receiver, m.Attribute(value=m.Name(), attr=m.Name())):
            owner = cls.name.value if cls is not None and receiver.value.value == "self" else None
            return (owner, receiver.attr.value) in self._variable_like_attrs
        return False

    # ---- phase 2 -------------------------------------------------------------------------
    def leave_Module(self, original_node: cst.Module) -> None:
        for node, cls in self._uses:
            if id(node) in self._handled or not self._plausible(node.value, cls):
                continue
            holds_array = self._holds_array(node.value, cls)
            if holds_array is None:
                continue
            setter = self._setters.get(id(node))
            if setter is not None:  # `[...] = x` would cast and broadcast x into the old array; set_value replaces it
                self._report_setter(node, *setter)
                continue
            self.report(
                node,
                "`Variable.value` is deprecated since Flax 0.12.1; use "
                + ("`[...]`" if holds_array else "`get_value()`"),
                replacement=_replacement(node, holds_array),
            )

    def _class_variables(self) -> dict[str, dict[str, bool]]:
        """class name -> {attribute: holds an array} for attributes only holding Variables."""
        if self._class_variables_cache is None:
            self._class_variables_cache = {
                name: self.analysis.variable_attributes(c) for name, c in self.analysis.local_classes.items()
            }
        return self._class_variables_cache

    def _holds_array(self, receiver: cst.BaseExpression, cls: cst.ClassDef | None) -> bool | None:
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
            return self._class_variables().get(cls.name.value, {}).get(attr) if cls is not None else None
        instance = analysis.assigned_value(owner)
        local_class = analysis.constructs_local_class(instance) if instance is not None else None
        return self._class_variables().get(local_class, {}).get(attr) if local_class else None

    def _report_setter(self, target: cst.Attribute, node, cls, alone: bool) -> None:
        # `v.value = x` -> `v.set_value(x)` when `[...]` is not known to work;
        # `v.value += x` -> `v.set_value(v.get_value() + x)`.
        if not alone:
            self.report(target, "`Variable.value` is deprecated since Flax 0.12.1; use `set_value(...)`")
            return
        new_value = _ValueReplacer(self, cls).rewrite(node.value)
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


def _last_name(node: cst.BaseExpression) -> str | None:
    if isinstance(node, cst.Attribute):
        return node.attr.value
    if isinstance(node, cst.Name):
        return node.value
    return None


def _replacement(node: cst.Attribute, holds_array: bool) -> cst.BaseExpression:
    if holds_array:
        return cst.Subscript(value=node.value, slice=_ELLIPSIS_INDEX, lpar=node.lpar, rpar=node.rpar)
    return cst.Call(func=cst.Attribute(value=node.value, attr=cst.Name("get_value")), lpar=node.lpar, rpar=node.rpar)


class _ValueReplacer(cst.CSTTransformer):
    """Rewrites the `.value` reads inside an assigned expression (`x.value + 1`)."""

    def __init__(self, rule: VariableValue, cls: cst.ClassDef | None) -> None:
        super().__init__()
        self.rule = rule
        self.cls = cls

    def rewrite(self, expr: cst.BaseExpression) -> cst.BaseExpression:
        return expr.visit(self)

    def leave_Attribute(self, original_node: cst.Attribute, updated_node: cst.Attribute):
        if original_node.attr.value != "value":
            return updated_node
        if not self.rule._plausible(original_node.value, self.cls):
            return updated_node
        holds_array = self.rule._holds_array(original_node.value, self.cls)
        if holds_array is None:
            return updated_node
        self.rule._handled.add(id(original_node))
        return _replacement(updated_node, holds_array)
