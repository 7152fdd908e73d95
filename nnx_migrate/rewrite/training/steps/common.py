"""What the parts of the training transform share: small questions about nodes, the plan
of one function (`FunctionPlan`), the texts of TODOs more than one part writes."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

import libcst as cst
import libcst.matchers as m

from nnx_migrate.rewrite.lines import render
from nnx_migrate.rewrite.report import TODO_MARK
from nnx_migrate.rewrite.training.dataflow import names_of_target
from nnx_migrate.rewrite.visitors import FastVisitor, nodes_of_type

# `train=True`, not `train = True`, in a call the pass rebuilds on one line (PEP 8)
_TIGHT_EQUAL = cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(""))


def code_of(node: cst.CSTNode) -> str:
    return render(node)


def _bound_in(func: cst.FunctionDef) -> set[str]:
    names: set[str] = set()

    class Collect(FastVisitor):
        def visit_Param(self, node):
            names.add(node.name.value)

        def visit_AssignTarget(self, node):
            for n in names_of_target(node.target):
                names.add(n)

        def visit_For(self, node):
            names.update(names_of_target(node.target))

    Collect().walk(func)
    return names


def _subscript_key(node: cst.BaseExpression) -> tuple[cst.BaseExpression, str] | None:
    """`x['params']` -> (x, 'params')."""
    if isinstance(node, cst.Subscript) and len(node.slice) == 1:
        index = node.slice[0].slice
        if isinstance(index, cst.Index) and isinstance(index.value, cst.SimpleString):
            key = index.value.evaluated_value
            if isinstance(key, str):
                return node.value, key
    return None


def _dict_entries(node: cst.BaseExpression) -> dict[str, cst.BaseExpression] | None:
    if not isinstance(node, cst.Dict):
        return None
    out = {}
    for el in node.elements:
        if not isinstance(el, cst.DictElement) or not isinstance(el.key, cst.SimpleString):
            return None
        out[el.key.evaluated_value] = el.value
    return out


def _static_last_dim(node: cst.BaseExpression) -> str | None:
    """`jnp.ones((1, 28, 28, 1))` -> "1": the size is written in the source."""
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value in ("ones", "zeros", "empty") and node.args:
        shape = node.args[0].value
        if isinstance(shape, (cst.Tuple, cst.List)) and shape.elements:
            last = shape.elements[-1].value
            if isinstance(last, cst.Integer):
                return last.value
    return None


@dataclass
class FunctionPlan:
    """What the pre-analysis of one top-level function found."""

    state: str | None = None  # the train-state name whose steps get `model, optimizer`
    extra_states: list[str] = field(default_factory=list)
    eager_states: set[str] = field(default_factory=set)
    ctor_bindings: dict[str, cst.Call] = field(default_factory=dict)  # V -> Cls(...)
    inited: set[str] = field(default_factory=set)  # V with a `V.init(...)` site
    differentiated: set[str] = field(default_factory=set)  # inner functions under jax.grad
    over_model: set[str] = field(default_factory=set)  # functions whose grad is taken at `state.params`
    over_model_lambdas: set[int] = field(default_factory=set)  # ids of lambdas whose grad is taken at `state.params`
    model_name: str = "model"
    optimizer_name: str = "optimizer"



# Why `dynamic_scale.value_and_grad(loss_fn)` and other gradient transforms the pass does
# not know are reported where they differentiate a loss over the parameters.
_FOREIGN_GRAD = ("`{name}` differentiates its argument like jax.value_and_grad, but the loss function now takes the NNX "
                 "model: a jax transform over the model differentiates every Variable (RNG keys, BatchNorm statistics), "
                 "not only the nnx.Param; convert by hand (e.g. differentiate a function of nnx.split(model, nnx.Param, ...)'s "
                 "params and nnx.merge inside, and use the resulting grads with optimizer.update)")

# Why a dropped `rngs=` under jax.pmap is reported (pmapped.py).
_PMAPPED_RNGS = ("rngs= dropped under jax.pmap: the replicated model's own RNG stream is the same on every "
                 "device, so every device now draws the same dropout masks (Linen's per-device keys gave "
                 "different ones); make the model's keys differ per device by hand (e.g. fold "
                 "jax.lax.axis_index into them inside the step)")


class _BindingValues(FastVisitor):
    """Name -> the values assigned to it (None: not a plain `name = value`), outside nested
    functions. Module-level, so its callback tables are filled once (rewrite/visitors.py)."""

    def __init__(self, values: dict[str, list]) -> None:
        self.values = values

    def visit_FunctionDef(self, node):
        return False

    def visit_Assign(self, node):
        for target in node.targets:
            for name in names_of_target(target.target):
                self.values.setdefault(name, []).append(node.value if isinstance(target.target, cst.Name) else None)

    def visit_AugAssign(self, node):
        for name in names_of_target(node.target):
            self.values.setdefault(name, []).append(None)


def _dict_bindings(func: cst.FunctionDef) -> dict[str, cst.Dict]:
    """Names of this function (not nested ones) assigned exactly once, to a dict literal."""
    values: dict[str, list] = {}
    _BindingValues(values).walk(func.body)
    return {name: vs[0] for name, vs in values.items() if len(vs) == 1 and isinstance(vs[0], cst.Dict)}


def _is_state_params(arg: cst.Arg) -> bool:
    v = arg.value
    return arg.keyword is None and not arg.star and isinstance(v, cst.Attribute) and v.attr.value == "params" and isinstance(v.value, cst.Name)


def _lambda_takes_params(node: cst.Lambda) -> bool:
    params = node.params.params
    if not params:
        return False
    matcher = m.DictElement(key=m.SimpleString(), value=m.Name(params[0].name.value))
    return any(e.key.evaluated_value == "params" for e in nodes_of_type(node.body, cst.DictElement) if m.matches(e, matcher))


def _rebinds(func: cst.FunctionDef, state: str) -> bool:
    """Whether `state` gets a new value other than from its own apply_gradients/replace."""
    own = m.Call(func=m.Attribute(value=m.Name(state), attr=m.Name("apply_gradients") | m.Name("replace")))
    for assign in nodes_of_type(func.body, cst.Assign):
        names = [n for t in assign.targets for n in names_of_target(t.target)]
        if state in names and not m.matches(assign.value, own):
            return True
    return any(state in names_of_target(loop.target) for loop in nodes_of_type(func.body, cst.For))


def _takes_params(func: cst.FunctionDef, name: str) -> bool:
    """Whether the inner function `name` passes its first parameter as Linen's
    `{'params': p}`: only then is it differentiated with respect to the model."""
    found = []

    class Find(FastVisitor):
        def visit_FunctionDef(self, node):
            if node.name.value == name and node.params.params:
                first = node.params.params[0].name.value
                matcher = m.DictElement(key=m.SimpleString(), value=m.Name(first))
                found.extend(e for e in nodes_of_type(node.body, cst.DictElement) if m.matches(e, matcher) and e.key.evaluated_value == "params")

    Find().walk(func.body)
    return bool(found)


class _SmallStatements(FastVisitor):
    def __init__(self, out: list) -> None:
        self.out = out

    def visit_SimpleStatementLine(self, node):
        self.out.extend(node.body)


def _walk_statements(block):
    out: list = []
    _SmallStatements(out).walk(block)
    return out


def _with_todo(stmt, why: str):
    comment = cst.EmptyLine(comment=cst.Comment(f"# {TODO_MARK}: {why}"))
    if any(line.comment is not None and line.comment.value == comment.comment.value for line in stmt.leading_lines):
        return stmt
    return stmt.with_changes(leading_lines=[*stmt.leading_lines, comment])


_UNKNOWN = object()


def _arguments_text(call: cst.Call) -> str:
    return ", ".join(code_of(arg.value) if arg.keyword is None else f"{arg.keyword.value}={code_of(arg.value)}" for arg in call.args)


def _literal(source: str):
    """The value of a constant argument (`True`, `0.5`, `'x'`), else _UNKNOWN."""
    try:
        return ast.literal_eval(source)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _UNKNOWN
