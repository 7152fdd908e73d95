from __future__ import annotations

import re

import libcst as cst
import libcst.matchers as m

from nnx_migrate.lint.edits import wrap_in_call
from nnx_migrate.lint.rule import Invalid, LintRule, Valid

_SEQUENCES = (cst.List, cst.ListComp)
_MAPPINGS = (cst.Dict, cst.DictComp)


class PlainContainerOfModules(LintRule):
    """A plain `list`/`dict` of NNX modules or arrays is assigned to an `nnx.Module` attribute.

    ## What it does
    Finds `self.attr = [...]` / `{...}` (literals and comprehensions) in a subclass of
    `nnx.Module` whose elements build NNX modules, Variables or arrays, and also an empty
    `self.attr = []` that later gets such elements appended.

    ## Why
    Since Flax 0.12.0 a Module attribute is static unless it is a Module, Variable or an
    NNX container: assigning a plain list or dict holding data raises
    `ValueError: Found data on value of type <class 'list'> assigned to static attribute`.

    ## Fix safety
    Safe: wraps the value in `nnx.List(...)` / `nnx.Dict(...)`, which behave as the list or
    dict did. Lists of plain static data (numbers, strings, shapes) are not reported.
    """

    CODE = "NNX003"
    NAME = "plain-container-of-modules"
    SUMMARY = "plain list/dict of modules or arrays on an nnx.Module raises since Flax 0.12"
    FIX_SAFETY = "safe"
    TRIGGER = re.compile(r"self\.\w+\s*(?::[^=\n]*)?=\s*[\[{]")

    VALID = [
        Valid(
            "from flax import nnx\n"
            "class M(nnx.Module):\n"
            "    def __init__(self, rngs):\n"
            "        self.features = [8, 16, 32]\n"
            "        self.names = {'a': 'relu'}\n"
            "        self.layers = nnx.List([nnx.Linear(2, 2, rngs=rngs)])\n"
        ),
        Valid(
            "from flax import nnx\n"
            "class NotAModule:\n"
            "    def __init__(self, rngs):\n"
            "        self.layers = [nnx.Linear(2, 2, rngs=rngs)]\n"
        ),
        Valid(
            "from flax import nnx\n"
            "class M(nnx.Module):\n"
            "    def __init__(self, rngs):\n"
            "        layers = [nnx.Linear(2, 2, rngs=rngs)]\n"
            "        self.seq = nnx.Sequential(*layers)\n"
        ),
    ]
    INVALID = [
        Invalid(
            "from flax import nnx\n"
            "class MLP(nnx.Module):\n"
            "    def __init__(self, sizes, rngs):\n"
            "        self.layers = [nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes, sizes[1:])]\n",
            "from flax import nnx\n"
            "class MLP(nnx.Module):\n"
            "    def __init__(self, sizes, rngs):\n"
            "        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes, sizes[1:])])\n",
        ),
        Invalid(
            "import jax.numpy as jnp\n"
            "from flax import nnx\n"
            "class Block(nnx.Module):\n"
            "    pass\n"
            "class Net(Block):\n"
            "    def __init__(self, rngs):\n"
            "        self.heads = {'a': Block(), 'b': Block()}\n"
            "        self.buffers = [jnp.zeros(3)]\n",
            "import jax.numpy as jnp\n"
            "from flax import nnx\n"
            "class Block(nnx.Module):\n"
            "    pass\n"
            "class Net(Block):\n"
            "    def __init__(self, rngs):\n"
            "        self.heads = nnx.Dict({'a': Block(), 'b': Block()})\n"
            "        self.buffers = nnx.List([jnp.zeros(3)])\n",
        ),
        Invalid(
            "from flax.nnx import Module, Linear\n"
            "class M(Module):\n"
            "    def __init__(self, rngs):\n"
            "        self.blocks = []\n"
            "        for _ in range(3):\n"
            "            self.blocks.append(Linear(2, 2, rngs=rngs))\n",
            "from flax.nnx import List, Module, Linear\n"
            "class M(Module):\n"
            "    def __init__(self, rngs):\n"
            "        self.blocks = List([])\n"
            "        for _ in range(3):\n"
            "            self.blocks.append(Linear(2, 2, rngs=rngs))\n",
        ),
    ]

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if node.name.value not in self.analysis.local_module_classes:
            return
        appended = _appended_values(node)
        for attr, value, _ in self.analysis.self_attribute_assignments(node):
            if isinstance(value, _SEQUENCES):
                holds_data = self._holds_data(value) or (
                    isinstance(value, cst.List)
                    and not value.elements
                    and any(self._is_data(v) for v in appended.get(attr, ()))
                )
                container = self.analysis.api.list_container
            elif isinstance(value, _MAPPINGS):
                holds_data = self._holds_data(value)
                container = self.analysis.api.dict_container
            else:
                continue
            if not holds_data:
                continue
            func, imports = self.analysis.nnx_reference(container)
            self.report(
                value,
                f"`self.{attr}` holds modules or arrays in a plain "
                f"{'list' if container == self.analysis.api.list_container else 'dict'}, "
                f"which raises since Flax 0.12; wrap it in `{self.analysis.code(func)}(...)`",
                replacement=wrap_in_call(func, value),
                imports=imports,
            )

    def _holds_data(self, value: cst.BaseExpression) -> bool:
        if isinstance(value, cst.List):
            return any(self._is_data(e.value) for e in value.elements if isinstance(e, cst.Element))
        if isinstance(value, cst.ListComp):
            return self._is_data(value.elt)
        if isinstance(value, cst.Dict):
            return any(self._is_data(e.value) for e in value.elements if isinstance(e, cst.DictElement))
        if isinstance(value, cst.DictComp):
            return self._is_data(value.value)
        return False

    def _is_data(self, expr: cst.BaseExpression) -> bool:
        """Builds an NNX module, a Variable or an array (directly, nested, or via a local)."""
        if isinstance(expr, cst.Name):
            expr = self.analysis.assigned_value(expr) or expr
        if isinstance(expr, (cst.List, cst.ListComp, cst.Dict, cst.DictComp, cst.Tuple)):
            if isinstance(expr, cst.Tuple):
                return any(self._is_data(e.value) for e in expr.elements)
            return self._holds_data(expr)
        return (
            self.analysis.constructs_module(expr)
            or self.analysis.constructs_variable(expr)
            or self.analysis.makes_array(expr)
        )


def _appended_values(classdef: cst.ClassDef) -> dict[str, list[cst.BaseExpression]]:
    """`self.attr.append(value)` calls in the class, by attribute."""
    found: dict[str, list[cst.BaseExpression]] = {}
    pattern = m.Call(
        func=m.Attribute(value=m.Attribute(value=m.Name("self"), attr=m.Name()), attr=m.Name("append")),
        args=[m.Arg(keyword=None)],
    )
    for call in m.findall(classdef, pattern):
        found.setdefault(call.func.value.attr.value, []).append(call.args[0].value)
    return found
