"""The functional form for module-level models (notebooks, scripts, plain optax loops).

A Linen program written as a script builds its model at module level and trains a
pytree of parameters with optax:

    model = MLP()
    params = model.init(key, x)
    ... model.apply(params, x, rngs={'dropout': k}) ... update_step(model.apply, ...) ...

The program keeps that shape. The model is built where `init` had the key and an input,
split once, and `model.apply` becomes a function of the parameters that merges the model
(`merged_apply`, written once into the file):

    model = MLP(in_features=4, rngs=nnx.Rngs(key, dropout=key))
    model_graphdef, params, model_rest = nnx.split(model, nnx.Param, ...)
    model_apply = merged_apply(model_graphdef, model_rest)
    ... model_apply(params, x, rngs={'dropout': k}) ... update_step(model_apply, ...) ...

`params` is an `nnx.State` of the model's `nnx.Param`s, a pytree like Linen's params:
`tx.init`, `jax.grad`, `optax.apply_updates`, `optax.incremental_update`, copies for a
target network and `jax.lax.stop_gradient` work on it unchanged. `rngs=` reseeds the
merged model's streams, so each key draws its own dropout mask as in Linen (the streams
the file names in `rngs=` dicts are given to the constructor). The model is differentiated
through its parameters only (never a whole module holding RNG state), which holds in
NNX's graph and tree modes alike.

The rule applies only where every use of the model name is its `init` (one, at module
level, after the construction) and `apply` (called or passed as a value) without
`mutable=` or `method=`, and `tabulate`; otherwise the construction and its uses stay
for leftovers.py to report.
"""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite.edits import NNX, FileEdits, Place
from nnx_migrate.rewrite.nodes import names_in
from nnx_migrate.rewrite.training.dataflow import init_receiver
from nnx_migrate.rewrite.training.foreign import lazily_initialised
from nnx_migrate.rewrite.training.models import ModelIndex
from nnx_migrate.rewrite.training.steps.common import (
    _dict_entries,
    _static_last_dim,
    _subscript_key,
    code_of,
)
from nnx_migrate.rewrite.visitors import FastTransformer, FastVisitor

HELPER = "merged_apply"

_HELPER_SOURCE = '''\
def {name}(graphdef, rest):
{i}"""Linen's `model.apply` for a model split by `nnx.split(model, nnx.Param, ...)`: the
{i}parameters first; `rngs=` reseeds the model's streams (a fresh dropout mask per key)."""
{i}def apply(params, *args, rngs=None, **kwargs):
{i}{i}model = nnx.merge(graphdef, params, rest, copy=True)
{i}{i}if rngs is not None:
{i}{i}{i}nnx.reseed(model, **rngs)
{i}{i}return model(*args, **kwargs)
{i}return apply
'''


class _Uses(FastVisitor):
    """Every `Name` node of one model name, and those that are `M.apply`/`M.tabulate`
    receivers, `rngs=` dict keys anywhere, names `V` is subscripted with."""

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.count: dict[str, int] = {n: 0 for n in names}
        self.attributes: dict[str, list[cst.Attribute]] = {n: [] for n in names}
        self.calls: dict[int, cst.Call] = {}  # id(func attribute) -> the call
        self.streams: set[str] = set()
        self.subscripted: set[str] = set()
        self.shadowed: list[tuple[cst.CSTNode, set[str]]] = []
        self.passed: dict[str, list[tuple[cst.Call, cst.Arg]]] = {}  # name -> calls it is an argument of

    def visit_FunctionDef(self, node):
        self._shadowing(node.params, node)

    def leave_FunctionDef(self, node):
        self._unshadow(node)

    def visit_Lambda(self, node):
        self._shadowing(node.params, node)

    def leave_Lambda(self, node):
        self._unshadow(node)

    def _shadowing(self, params: cst.Parameters, node) -> None:
        """A function whose parameter has one of the names: there it is another value."""
        own = {p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)} & set(self.count)
        if own:
            self.shadowed.append((node, own))

    def _unshadow(self, node) -> None:
        if self.shadowed and self.shadowed[-1][0] is node:
            self.shadowed.pop()

    def _visible(self, name: str) -> bool:
        return not any(name in own for _, own in self.shadowed)

    def visit_Name(self, node):
        if node.value in self.count and self._visible(node.value):
            self.count[node.value] += 1

    def visit_Arg(self, node):
        if node.keyword is not None and node.keyword.value in self.count and self._visible(node.keyword.value):
            self.count[node.keyword.value] -= 1  # `f(model=...)`: a parameter's name

    def visit_Attribute(self, node):
        if isinstance(node.value, cst.Name) and node.value.value in self.names and self._visible(node.value.value):
            self.attributes[node.value.value].append(node)
        if node.attr.value in self.count and self._visible(node.attr.value):  # `self.model`: another object's attribute
            self.count[node.attr.value] -= 1

    def visit_Subscript(self, node):
        if isinstance(node.value, cst.Name) and node.value.value in self.names and self._visible(node.value.value):
            self.subscripted.add(node.value.value)

    def visit_Call(self, node):
        self.calls[id(node.func)] = node
        for arg in node.args:
            if isinstance(arg.value, cst.Name) and arg.value.value in self.names and not arg.star and self._visible(arg.value.value):
                self.passed.setdefault(arg.value.value, []).append((node, arg))
        for arg in node.args:
            if arg.keyword is not None and arg.keyword.value == "rngs":
                entries = _dict_entries(arg.value)
                self.streams.update(entries or ())


def functional_form(module: cst.Module, models: ModelIndex, imports, edits: FileEdits) -> tuple[cst.Module, bool]:
    """`module` with its module-level models in the functional form; whether it changed."""
    body = list(module.body)
    candidates = {}  # model name -> (index of construction, index of init, summary)
    for i, stmt in enumerate(body):
        assign = _single_assign(stmt)
        if assign is None or not isinstance(assign.targets[0].target, cst.Name):
            continue
        name = assign.targets[0].target.value
        value = assign.value
        if isinstance(value, cst.Call) and models.lookup(value.func) is not None and not any(a.keyword is not None and a.keyword.value == "rngs" or a.star for a in value.args):
            candidates[name] = (i, None, models.lookup(value.func))
            continue
        inner = _subscript_key(value)
        call = inner[0] if inner is not None and inner[1] == "params" else value
        receiver = init_receiver(call, imports) if isinstance(call, cst.Call) else None
        if isinstance(receiver, cst.Name) and receiver.value in candidates and candidates[receiver.value][1] is None:
            candidates[receiver.value] = (candidates[receiver.value][0], i, candidates[receiver.value][2])
    candidates = {n: c for n, c in candidates.items() if c[1] is not None}
    if not candidates:
        return module, False
    uses = _Uses(set(candidates) | {_single_assign(body[c[1]]).targets[0].target.value for c in candidates.values()})
    uses.walk(module)
    taken = names_in(module)
    functions = {s.name.value: s for s in body if isinstance(s, cst.FunctionDef)}
    plans = {}
    for name, (at, init_at, summary) in candidates.items():
        variables = _single_assign(body[init_at]).targets[0].target.value
        attributes = uses.attributes[name]
        applies = [a for a in attributes if a.attr.value == "apply" and _convertible(uses.calls.get(id(a)))]
        tabulates = [a for a in attributes if a.attr.value == "tabulate" and _tabulable(uses.calls.get(id(a)))]
        inits = [a for a in attributes if a.attr.value == "init"]
        passes = [(arg, _passed_into(call, arg, functions, imports)) for call, arg in uses.passed.get(name, [])]
        if any(p is None for _, p in passes):
            continue  # passed to code whose use of it is not known
        # the construction's target, the init's receiver, and the uses converted here: nothing else
        if uses.count[name] != 1 + len(inits) + len(applies) + len(tabulates) + len(passes) or len(inits) != 1:
            continue
        param_applies = [a for _, found in passes for a in found]
        if variables != name and (uses.attributes.get(variables) or variables in uses.subscripted):
            continue  # `variables['params']`, `params.x`: Linen's layout of the variables
        new_names = (f"{name}_graphdef", f"{name}_rest", f"{name}_apply")
        if any(n in taken for n in new_names):
            continue
        ctor = _constructor(body[at], body[init_at], summary, uses.streams)
        if ctor is None:
            continue
        plans[name] = (at, init_at, variables, ctor, {id(a) for a in applies}, {id(a) for a in tabulates}, {id(arg) for arg, _ in passes}, {id(a) for a in param_applies})
    if not plans:
        return module, False
    new_body = []
    for i, stmt in enumerate(body):
        plan = next(((n, p) for n, p in plans.items() if i in (p[0], p[1])), None)
        if plan is None:
            new_body.append(stmt)
            continue
        name, (at, init_at, variables, ctor, *_) = plan
        if i == at:
            continue  # built where `init` had the key and an input
        lines = [f"{name} = {ctor}", f"{name}_graphdef, {variables}, {name}_rest = nnx.split({name}, nnx.Param, ...)",
                 f"{name}_apply = {HELPER}({name}_graphdef, {name}_rest)"]
        for k, line in enumerate(lines):
            new = cst.parse_statement(line + "\n", config=module.config_for_parsing)
            new_body.append(new.with_changes(leading_lines=[*body[at].leading_lines, *stmt.leading_lines]) if k == 0 else new)
    module = module.with_changes(body=new_body)
    module = module.visit(_Rewrite(plans))
    module = _with_helper(module)
    edits.add_import(NNX, Place.AFTER_IMPORTS)
    return module, True


def _passed_into(call: cst.Call, arg: cst.Arg, functions: dict[str, cst.FunctionDef], imports) -> list[cst.Attribute] | None:
    """A model passed to a top-level function of the file (`f(model)`, `f(m=model)`,
    `functools.partial(f, model=model)`): the `P.apply` nodes of the parameter `P` that
    receives it, where those (called without `mutable=`/`method=`, or passed on as a
    value) are all of `P`'s uses; None otherwise."""
    func, args = call.func, list(call.args)
    if imports.qualify(func) == "functools.partial" and args and args[0] is not arg:
        func, args = args[0].value, args[1:]
    if not isinstance(func, cst.Name) or func.value not in functions:
        return None
    target = functions[func.value]
    params = [*target.params.posonly_params, *target.params.params]
    if arg.keyword is not None:
        param = next((p for p in (*params, *target.params.kwonly_params) if p.name.value == arg.keyword.value), None)
    else:
        index = [a for a in args if a.keyword is None and not a.star].index(arg)
        param = params[index] if index < len(params) else None
    if param is None:
        return None
    uses = _Uses({param.name.value})
    uses.walk(target.body)
    name = param.name.value
    applies = [a for a in uses.attributes[name] if a.attr.value == "apply" and _convertible(uses.calls.get(id(a)))]
    if uses.count[name] != len(applies):
        return None
    return applies


def _single_assign(stmt) -> cst.Assign | None:
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1:
        return stmt.body[0]
    return None


def _convertible(call: cst.Call | None) -> bool:
    """`M.apply` passed as a value, or called without `mutable=`/`method=` (those keep
    Linen's collections and are reported)."""
    if call is None:
        return True
    return bool(call.args) and not any(a.keyword is not None and a.keyword.value in ("mutable", "method", "capture_intermediates") for a in call.args)


def _tabulable(call: cst.Call | None) -> bool:
    return call is not None and len(call.args) >= 2 and all(a.keyword is None and not a.star for a in call.args)


def _constructor(construction, init_stmt, summary, streams: set[str]) -> str | None:
    """The NNX constructor call at the init site, or None where an input size is not known."""
    ctor = _single_assign(construction).value
    value = _single_assign(init_stmt).value
    sub = _subscript_key(value)
    if sub is not None:
        value = sub[0]
    positional = [a.value for a in value.args if a.keyword is None and not a.star]
    if len(positional) != len(value.args) or not positional:
        return None
    rng_arg, inputs = positional[0], positional[1:]
    entries = _dict_entries(rng_arg)
    if entries is not None:
        first = [code_of(entries["params"])] if "params" in entries and "default" not in entries else []
        keys = [*first, *(f"{k}={code_of(v)}" for k, v in entries.items())]
    else:
        keys = [code_of(rng_arg)] + [f"{s}={code_of(rng_arg)}" for s in sorted(streams) if s != "params"]
    extra = []
    for param in summary.size_params:
        idx = summary.size_param_args.get(param)
        if (idx is None or idx >= len(inputs)) and param in summary.optional_size_params:
            continue
        if idx is None or idx >= len(inputs):
            return None
        extra.append(f"{param}={_static_last_dim(inputs[idx]) or code_of(inputs[idx]) + '.shape[-1]'}")
    args = [code_of(a.with_changes(comma=cst.MaybeSentinel.DEFAULT)).strip() for a in ctor.args] + extra + [f"rngs=nnx.Rngs({', '.join(keys)})"]
    return lazily_initialised(f"{code_of(ctor.func)}({', '.join(args)})", summary, value)


class _Rewrite(FastTransformer):
    """`M.apply(...)` / `M.apply` -> `M_apply(...)` / `M_apply` (Linen's `{'params': p}`
    argument -> `p`); `M.tabulate(key, x)` -> `nnx.tabulate(M, x)`."""

    def __init__(self, plans) -> None:
        super().__init__()
        self.applies = {i: n for n, p in plans.items() for i in p[4]}
        self.tabulates = {i: n for n, p in plans.items() for i in p[5]}
        self.arguments = {i: n for n, p in plans.items() for i in p[6]}
        self.parameter_applies = {i for p in plans.values() for i in p[7]}

    def leave_Arg(self, original, updated):
        name = self.arguments.get(id(original))
        return updated.with_changes(value=cst.Name(f"{name}_apply")) if name is not None else updated

    def leave_Call(self, original, updated):
        name = self.tabulates.get(id(original.func))
        if name is not None:
            return updated.with_changes(func=cst.parse_expression("nnx.tabulate"), args=[cst.Arg(cst.Name(name), comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))), *updated.args[1:]])
        if (id(original.func) in self.applies or id(original.func) in self.parameter_applies) and updated.args:
            entries = _dict_entries(updated.args[0].value)
            if entries is not None and set(entries) == {"params"}:
                return updated.with_changes(args=[updated.args[0].with_changes(value=entries["params"]), *updated.args[1:]])
        return updated

    def leave_Attribute(self, original, updated):
        if id(original) in self.parameter_applies:
            return original.value  # `P.apply` of a parameter given `M_apply` -> `P`
        name = self.applies.get(id(original))
        return cst.Name(f"{name}_apply") if name is not None else updated


def _with_helper(module: cst.Module) -> cst.Module:
    """`merged_apply` once, after the file's imports."""
    if any(isinstance(s, cst.FunctionDef) and s.name.value == HELPER for s in module.body):
        return module
    indent = module.default_indent
    helper = cst.parse_statement(_HELPER_SOURCE.format(name=HELPER, i=indent), config=module.config_for_parsing)
    body = list(module.body)
    last_import = max((i for i, s in enumerate(body) if isinstance(s, cst.SimpleStatementLine) and isinstance(s.body[0], (cst.Import, cst.ImportFrom))), default=-1)
    at = last_import + 1
    helper = helper.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()])
    if at < len(body):
        body[at] = body[at].with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()]) if isinstance(body[at], (cst.FunctionDef, cst.ClassDef)) else body[at]
    body.insert(at, helper)
    return module.with_changes(body=body)
