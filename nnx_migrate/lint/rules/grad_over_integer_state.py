from __future__ import annotations

import re

import libcst as cst
import libcst.matchers as m

from nnx_migrate.lint.rule import Invalid, LintRule, Valid
from nnx_migrate.lint.tree_mode import compat_reference, transform_symbol


class GradOverIntegerState(LintRule):
    """`nnx.grad(f)(model)` over a whole model that holds RNG state or integer Variables.

    ## What it does
    Finds `nnx.grad(f)` / `nnx.value_and_grad(f)` (no `argnums`, or `argnums=0`) applied to
    a model of a class of this file that holds RNG state (it builds `nnx.Dropout`,
    `nnx.MultiHeadAttention` or `nnx.Rngs` with `rngs=`, or keeps its `rngs`) or an integer
    Variable (a Variable other than `nnx.Param` built from an integer: `jnp.array(0)`, `0`,
    `dtype=jnp.int32`), itself or in a submodule of a class of this file. The model is known from its construction
    (`model = Model(...)`), from an annotated parameter (`def step(model: Model, ...)`) or
    from what the callers of the function in this file pass for the parameter, also
    through a name bound to the transform (`grad_fn = nnx.grad(f)`, `grad_fn(model)`).

    ## Why
    In graph mode (Flax 0.12's default) `nnx.grad` differentiates only the model's
    `nnx.Param`. In NNX's tree mode (Flax 0.12.5+, the planned default, FLIP 5310) it
    differentiates every Variable, and an RNG stream's uint32 count or an integer counter
    makes it raise `TypeError: grad requires real- or complex-valued inputs ... but got
    uint32` (or int32); the
    gradients also come back shaped like the model instead of an `nnx.State` of Params.

    ## Fix safety
    Safe: the transform becomes `nnx.compat.grad` / `nnx.compat.value_and_grad`
    (`graph=True, graph_updates=True`), what it does today, in either mode. The tree-mode
    form FLIP 5310 gives splits the Params off:
    `graphdef, params, rest = nnx.split(model, nnx.Param, ...)`, a loss of
    `(params, rest)` that builds `nnx.merge(graphdef, params, rest, recreate_variables=False)`
    (which keeps BatchNorm statistics and RNG counts updated), and
    `nnx.grad(loss)(params, rest)`.
    """

    CODE = "NNX009"
    NAME = "grad-over-integer-state"
    SUMMARY = "`nnx.grad(f)(model)` over a model with RNG or integer state raises in tree mode (Flax 0.12.5+)"
    FIX_SAFETY = "safe"
    TRIGGER = re.compile(r"grad\b")

    _PRELUDE = (
        "from flax import nnx\n"
        "class Model(nnx.Module):\n"
        "    def __init__(self, rngs: nnx.Rngs):\n"
        "        self.linear = nnx.Linear(2, 2, rngs=rngs)\n"
        "        self.dropout = nnx.Dropout(0.5, rngs=rngs)\n"
    )
    VALID = [
        Valid(_PRELUDE + "def step(model: Model):\n    return nnx.compat.grad(loss_fn)(model)\n"),
        Valid(
            "from flax import nnx\n"
            "class Model(nnx.Module):\n"
            "    def __init__(self, rngs: nnx.Rngs):\n"
            "        self.linear = nnx.Linear(2, 2, rngs=rngs)\n"
            "        self.dropout = nnx.Dropout(0.5)  # keys come at call time\n"
            "model = Model(nnx.Rngs(0))\n"
            "grads = nnx.grad(loss_fn)(model)\n"
        ),
        Valid(
            "import jax.numpy as jnp\nfrom flax import nnx\n"
            "class Averaged(nnx.Module):\n"
            "    def __init__(self, rngs: nnx.Rngs):\n"
            "        self.linear = nnx.Linear(2, 2, rngs=rngs)\n"
            "        self.mean = nnx.BatchStat(jnp.zeros(2))\n"
            "model = Averaged(nnx.Rngs(0))\n"
            "grads = nnx.grad(loss_fn)(model)\n"
        ),
        Valid(_PRELUDE + "model = Model(nnx.Rngs(0))\ngraphdef, params, rest = nnx.split(model, nnx.Param, ...)\ngrads = nnx.grad(loss_fn)(params, rest)\n"),
    ]
    INVALID = [
        Invalid(
            "import jax.numpy as jnp\nfrom flax import nnx\n"
            "class Count(nnx.Variable):\n    pass\n"
            "class Counted(nnx.Module):\n"
            "    def __init__(self, rngs: nnx.Rngs):\n"
            "        self.linear = nnx.Linear(2, 2, rngs=rngs)\n"
            "        self.calls = Count(jnp.array(0))\n"
            "model = Counted(nnx.Rngs(0))\n"
            "grads = nnx.grad(loss_fn)(model)\n",
            "import jax.numpy as jnp\nfrom flax import nnx\n"
            "class Count(nnx.Variable):\n    pass\n"
            "class Counted(nnx.Module):\n"
            "    def __init__(self, rngs: nnx.Rngs):\n"
            "        self.linear = nnx.Linear(2, 2, rngs=rngs)\n"
            "        self.calls = Count(jnp.array(0))\n"
            "model = Counted(nnx.Rngs(0))\n"
            "grads = nnx.compat.grad(loss_fn)(model)\n",
        ),
        Invalid(
            _PRELUDE + "def step(model: Model, x):\n    return nnx.value_and_grad(loss_fn)(model, x)\n",
            _PRELUDE + "def step(model: Model, x):\n    return nnx.compat.value_and_grad(loss_fn)(model, x)\n",
        ),
        Invalid(
            _PRELUDE
            + "class Net(nnx.Module):\n"
            "    def __init__(self, rngs: nnx.Rngs):\n"
            "        self.body = Model(rngs)\n"
            "net = Net(nnx.Rngs(0))\n"
            "grad_fn = nnx.grad(loss_fn, has_aux=True)\n"
            "grads, aux = grad_fn(net)\n",
            _PRELUDE
            + "class Net(nnx.Module):\n"
            "    def __init__(self, rngs: nnx.Rngs):\n"
            "        self.body = Model(rngs)\n"
            "net = Net(nnx.Rngs(0))\n"
            "grad_fn = nnx.compat.grad(loss_fn, has_aux=True)\n"
            "grads, aux = grad_fn(net)\n",
        ),
    ]

    def __init__(self, analysis) -> None:
        super().__init__(analysis)
        self._applications: list[tuple[cst.Call, cst.Call, str]] = []  # (application, transform, symbol)
        self._holders: set[str] | None = None
        self._calls_by_name: dict[str, list[cst.Call]] = {}

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Name):
            self._calls_by_name.setdefault(node.func.value, []).append(node)
        transform = node.func
        if isinstance(transform, cst.Name):
            if not self.analysis.may_be_bound_to_call_of(transform, self.analysis.api.compat_transforms):
                return
            transform = self.analysis.assigned_value(transform)
        symbol = transform_symbol(self.analysis, transform)
        if symbol not in ("grad", "value_and_grad"):
            return
        argnums = next((a.value for a in transform.args if a.keyword is not None and a.keyword.value == "argnums"), None)
        if argnums is not None and not m.matches(argnums, m.Integer("0")):
            return  # another argument, or a DiffState (NNX007)
        if node.args and node.args[0].keyword is None and not node.args[0].star:
            self._applications.append((node, transform, symbol))

    def leave_Module(self, original_node: cst.Module) -> None:
        reported: set[int] = set()
        for application, transform, symbol in self._applications:
            cls = self._model_class(application.args[0].value)
            if cls is None or cls not in self._rng_holders() or id(transform) in reported:
                continue
            reported.add(id(transform))
            replacement, imports = compat_reference(self.analysis, symbol)
            self.report(
                application,
                f"`{cls}` holds RNG or integer state: in NNX's tree mode (Flax 0.12.5+, the planned default) `nnx.{symbol}` "
                f"differentiates every Variable and raises on integers; use `nnx.compat.{symbol}` "
                "(graph mode) or split the Params off (`nnx.split(model, nnx.Param, ...)`)",
                replace=transform.func,
                replacement=replacement,
                imports=imports,
            )

    def _model_class(self, expr: cst.BaseExpression, depth: int = 0) -> str | None:
        """The local class of the model `expr` names: by its construction, its annotation,
        or (a parameter) what the function's callers in this file pass."""
        if not isinstance(expr, cst.Name):
            return None
        value = self.analysis.assigned_value(expr)
        if value is not None:
            return self.analysis.constructs_local_class(value)
        for assignment in self.analysis.assignments_of(expr):
            param = assignment.node
            if not isinstance(param, cst.Param):
                continue
            if param.annotation is not None:
                annotation = param.annotation.annotation
                if isinstance(annotation, cst.Name) and annotation.value in self.analysis.local_module_classes:
                    return annotation.value
            elif depth < 2:
                return self._passed_class(param, depth)
        return None

    def _passed_class(self, param: cst.Param, depth: int) -> str | None:
        """The one local class the callers of `param`'s function pass for it, if any."""
        function = self.analysis.enclosing(param, cst.FunctionDef)
        if function is None or param not in function.params.params:
            return None
        index = function.params.params.index(param)
        found = set()
        for call in self._calls_by_name.get(function.name.value, []):
            positional = [a for a in call.args if a.keyword is None and not a.star]
            if len(positional) > index:
                found.add(self._model_class(positional[index].value, depth + 1))
        return found.pop() if len(found) == 1 else None

    def _rng_holders(self) -> set[str]:
        """Local Module classes holding RNG or integer state, themselves or through a local submodule."""
        if self._holders is None:
            analysis = self.analysis
            own: dict[str, bool] = {}
            uses: dict[str, set[str]] = {}
            for name in analysis.local_module_classes:
                calls = [c for c in _calls_in(analysis.local_classes[name])]
                own[name] = any(self._builds_rng_state(c) or self._builds_integer_variable(c) for c in calls) or _keeps_rngs(analysis.local_classes[name])
                uses[name] = {n for n in (analysis.constructs_local_class(c) for c in calls) if n}
            holders = {n for n, has in own.items() if has}
            changed = True
            while changed:
                changed = False
                for name, used in uses.items():
                    if name not in holders and used & holders:
                        holders.add(name)
                        changed = True
            self._holders = holders
        return self._holders

    def _builds_rng_state(self, call: cst.Call) -> bool:
        symbol = self.analysis.called_nnx_symbol(call, self.analysis.api.rng_holding_modules)
        if symbol == "Rngs":
            return True
        return symbol is not None and any(a.keyword is not None and a.keyword.value == "rngs" for a in call.args)

    def _builds_integer_variable(self, call: cst.Call) -> bool:
        """A Variable other than a Param whose value is an integer (`Count(jnp.array(0))`)."""
        analysis = self.analysis
        if not analysis.constructs_variable(call) or analysis.called_nnx_symbol(call, {"Param"}):
            return False
        if not call.args or call.args[0].keyword is not None:
            return False
        value = call.args[0].value
        if isinstance(value, cst.Integer):
            return True
        if not (isinstance(value, cst.Call) and analysis.makes_array(value)):
            return False
        dtype = next((a.value for a in value.args if a.keyword is not None and a.keyword.value == "dtype"), None)
        if dtype is not None:
            return bool(re.search(r"\bu?int\d*\b|\bbool_?\b", analysis.code(dtype)))
        return bool(value.args) and isinstance(value.args[0].value, cst.Integer) and _last(value.func) in ("array", "asarray")


def _last(node: cst.BaseExpression) -> str | None:
    return node.attr.value if isinstance(node, cst.Attribute) else node.value if isinstance(node, cst.Name) else None


def _calls_in(node: cst.CSTNode) -> list[cst.Call]:
    found: list[cst.Call] = []

    class Collect(cst.CSTVisitor):
        def visit_Call(self, call: cst.Call) -> None:
            found.append(call)

    node.visit(Collect())
    return found


def _keeps_rngs(classdef: cst.ClassDef) -> bool:
    """`self.<x> = rngs` (the constructor's RNG streams kept on the module)."""
    found = False

    class Collect(cst.CSTVisitor):
        def visit_Assign(self, assign: cst.Assign) -> None:
            nonlocal found
            if m.matches(assign.value, m.Name("rngs")) and any(
                m.matches(t.target, m.Attribute(value=m.Name("self"))) for t in assign.targets
            ):
                found = True

    classdef.visit(Collect())
    return found
