"""Notebook-style training code: a model built, initialised and put into a TrainState at
module level (tutorials, notebooks exported as scripts, `# %%` cells).

    model = CNN()
    print(model.tabulate(jax.random.key(0), x))
    variables = model.init(jax.random.key(0), x)
    state = train_state.TrainState.create(apply_fn=model.apply, params=variables['params'], tx=tx)
    print(model.apply(variables, x).shape)
    ... state, loss = train_step(state, batch) ...
    logits = model.apply({'params': state.params}, x)

becomes

    model = CNN(in_features=x.shape[-1], rngs=nnx.Rngs(jax.random.key(0)))
    print(nnx.tabulate(model, x))
    state = TrainState.create(model, tx)
    print(model(x).shape)
    ... state, loss = train_step(state, batch) ...
    logits = state.model(x)

The NNX constructor needs `init`'s key and input: it goes before the model's first use
(the `tabulate`, or the `init` itself) where every name `init`'s arguments read is bound
by then and not rebound before the `init`; `init`'s result is gone (the model holds the
weights). This runs on the module rewrite's output before the training transformer, which
then converts the steps the state flows into as in any program (`TrainState.create(model,
tx)` is the emitted helper's).

The rule takes a model only where every use of it and of its variables is one of these:
`init` (one, at module level), `apply` with Linen's variables (`variables`,
`{'params': variables['params']}`: the model, which holds the initial weights),
`{'params': state.params}` of a train state (by data flow: `state.model`), or
`{'params': p}` of a parameter `p` (the model a caller passes, as a step's `p(x)`), without
`mutable=`/`method=`; `tabulate(key, x)`; `apply_fn=`/`params=`/`batch_stats=` of one
module-level `TrainState.create`. In the nnx-jit style the state holds the model itself and
steps update it in place, so there `apply` with the initial variables converts only at
module level before the state is created. Anything else leaves the model as it was, for
leftovers.py to report at each site.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass, field

import libcst as cst

from nnx_migrate.rewrite.names import ImportMap
from nnx_migrate.rewrite.training.dataflow import init_receiver, names_of_target
from nnx_migrate.rewrite.training.functional import _constructor, _single_assign
from nnx_migrate.rewrite.training.models import ModelIndex
from nnx_migrate.rewrite.training.states import StateFlow
from nnx_migrate.rewrite.training.steps.common import _dict_entries, _subscript_key, code_of
from nnx_migrate.rewrite.visitors import FastTransformer, FastVisitor

_KEEPS_LINEN = ("mutable", "method", "capture_intermediates")
_BUILTINS = frozenset(dir(builtins))


@dataclass
class _Model:
    name: str
    at: int  # index of the construction statement
    summary: object
    init_at: int = -1
    variables: str = ""
    params_only: bool = False  # `init(...)['params']`
    create_at: int = -1
    create: cst.Call | None = None
    consumed: set[int] = field(default_factory=set)  # ids of Name nodes a converted site reads
    uses: dict[int, int] = field(default_factory=dict)  # id(Name) -> top-level statement index
    replacements: dict[int, object] = field(default_factory=dict)  # id(original call) -> new call from the updated one
    broken: bool = False


def notebook_form(module: cst.Module, models: ModelIndex, imports: ImportMap, rules, helper_name: str, style: str,
                  is_state_class, states: Callable[[], StateFlow], carried: set[str]) -> cst.Module | None:
    """`module` with its notebook-style models converted, or None where none is; `states`
    gives the train states by data flow (asked only where a candidate is found)."""
    body = list(module.body)
    found = _candidates(body, models, imports, is_state_class)
    if not found:
        return None
    walk = _Walk(found, style, states(), helper_name, rules, carried)
    for i, stmt in enumerate(body):
        walk.index, walk.top = i, stmt if isinstance(stmt, cst.FunctionDef) else module
        walk.walk(stmt)
    plans = []
    for model in found.values():
        if model.broken or not set(model.uses) <= model.consumed:
            continue
        ctor = _constructor(body[model.at], body[model.init_at], model.summary, set())
        # the first statement that runs with the model (a function's body runs when called)
        first = min((i for i in model.uses.values() if i != model.at and not isinstance(body[i], (cst.FunctionDef, cst.ClassDef))), default=model.init_at)
        if ctor is None or not _can_build_at(body, first, model):
            continue
        plans.append((model, ctor, first))
    if not plans:
        return None
    return _rebuild(module, body, plans)


def _candidates(body, models: ModelIndex, imports: ImportMap, is_state_class) -> dict[str, _Model]:
    """Models built at module level without rngs=, `init`ed once there, and given to one
    module-level `TrainState.create`."""
    assigned: dict[str, int] = {}
    for stmt in body:
        for name in _bound(stmt):
            assigned[name] = assigned.get(name, 0) + 1
    found: dict[str, _Model] = {}
    for i, stmt in enumerate(body):
        assign = _single_assign(stmt)
        if assign is None or not isinstance(assign.targets[0].target, cst.Name):
            continue
        target, value = assign.targets[0].target, assign.value
        name = target.value
        if isinstance(value, cst.Call) and models.lookup(value.func) is not None and assigned[name] == 1 and not any(
                a.star or a.keyword is not None and a.keyword.value == "rngs" for a in value.args):
            found[name] = _Model(name, i, models.lookup(value.func), consumed={id(target)})
            continue
        sub = _subscript_key(value)
        call = sub[0] if sub is not None and sub[1] == "params" else value
        receiver = init_receiver(call, imports) if isinstance(call, cst.Call) else None
        if isinstance(receiver, cst.Name) and receiver.value in found:
            model = found[receiver.value]
            if model.init_at >= 0 or assigned[name] != 1 or name == model.name:
                model.broken = True
            model.init_at, model.variables, model.params_only = i, name, call is not value
            model.consumed.update((id(target), id(receiver)))
            continue
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and value.func.attr.value == "create" and is_state_class(value.func.value):
            params = next((a.value for a in value.args if a.keyword is not None and a.keyword.value == "params"), None)
            for model in found.values():
                if model.init_at >= 0 and params is not None and _is_params_of(params, model):
                    model.broken |= model.create is not None
                    model.create_at, model.create = i, value
    return {n: m for n, m in found.items() if m.init_at >= 0 and m.create is not None and not m.broken}


def _is_params_of(node, model: _Model) -> bool:
    """`variables['params']` (or `params` where `init(...)['params']` made it)."""
    return _variables_read(node, model, "params") is not None


def _variables_read(node, model: _Model, collection: str) -> cst.Name | None:
    """The variables' Name in `variables[collection]` (`params` itself where
    `init(...)['params']` made it)."""
    if model.params_only:
        return node if collection == "params" and isinstance(node, cst.Name) and node.value == model.variables else None
    sub = _subscript_key(node)
    if sub is not None and sub[1] == collection and isinstance(sub[0], cst.Name) and sub[0].value == model.variables:
        return sub[0]
    return None


class _Walk(FastVisitor):
    """Every read of a model's and its variables' names (where no parameter shadows them),
    and the sites that convert (`_Model.replacements`); one top-level statement a walk."""

    def __init__(self, found: dict[str, _Model], style, states: StateFlow, helper_name, rules, carried) -> None:
        self.found = found
        self.by_name = {m.name: m for m in found.values()} | {m.variables: m for m in found.values()}
        self.creates = {id(m.create): m for m in found.values()}
        self.style, self.states, self.helper_name, self.rules, self.carried = style, states, helper_name, rules, carried
        self.index = -1  # the top-level statement
        self.top: cst.CSTNode | None = None  # the top-level function, or the module
        self.scopes: list[set[str]] = []  # parameters of the enclosing functions
        self.skip: set[int] = set()  # attribute names, keywords, parameters

    @staticmethod
    def _params(params: cst.Parameters) -> set[str]:
        return {p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params,
                                        *(x for x in (params.star_arg, params.star_kwarg) if isinstance(x, cst.Param)))}

    def visit_FunctionDef(self, node):
        self.scopes.append(self._params(node.params))

    def leave_FunctionDef(self, node):
        self.scopes.pop()

    def visit_Lambda(self, node):
        self.scopes.append(self._params(node.params))

    def leave_Lambda(self, node):
        self.scopes.pop()

    def visit_Param(self, node):
        self.skip.add(id(node.name))

    def visit_Attribute(self, node):
        self.skip.add(id(node.attr))

    def visit_Arg(self, node):
        if node.keyword is not None:
            self.skip.add(id(node.keyword))

    def _model(self, node) -> _Model | None:
        if isinstance(node, cst.Name) and node.value in self.by_name and not any(node.value in s for s in self.scopes):
            return self.by_name[node.value]
        return None

    def _is_model_name(self, node, model: _Model) -> bool:
        return self._model(node) is model and node.value == model.name

    def visit_Name(self, node):
        model = self._model(node)
        if model is not None and id(node) not in self.skip:
            model.uses[id(node)] = self.index

    def visit_Call(self, node):
        if id(node) in self.creates:
            self._create(node, self.creates[id(node)])
            return
        func = node.func
        if not isinstance(func, cst.Attribute):
            return
        model = self._model(func.value)
        if model is None or not self._is_model_name(func.value, model):
            return
        if func.attr.value == "tabulate" and len(node.args) >= 2 and all(a.keyword is None and not a.star for a in node.args):
            model.consumed.add(id(func.value))
            model.replacements[id(node)] = lambda u, name=model.name: u.with_changes(
                func=cst.parse_expression("nnx.tabulate"), args=[cst.Arg(cst.Name(name), comma=_COMMA), *u.args[1:]])
        elif func.attr.value == "apply":
            self._apply(node, model)

    def _apply(self, node: cst.Call, model: _Model) -> None:
        if not node.args or node.args[0].keyword is not None or any(a.star or a.keyword is not None and a.keyword.value in _KEEPS_LINEN for a in node.args):
            return
        target = self._applied_to(node.args[0].value, model)
        if target is None:
            return
        reads, new_func = target
        model.consumed.add(id(node.func.value))
        model.consumed.update(reads)

        def build(updated: cst.Call) -> cst.Call:
            args = [a for a in updated.args[1:] if not (a.keyword is not None and a.keyword.value == "rngs")]
            if args:
                args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            return updated.with_changes(func=cst.parse_expression(new_func), args=args)

        model.replacements[id(node)] = build

    def _applied_to(self, first, model: _Model) -> tuple[set[int], str] | None:
        """What `model.apply(first, ...)` calls in NNX, and the variables' Names it reads."""
        # nnx-jit: the state holds this very model and steps update it in place
        initial = self.style != "nnx-jit" or (isinstance(self.top, cst.Module) and self.index < model.create_at)
        if isinstance(first, cst.Name) and first.value == model.variables and self._model(first) is model:
            return ({id(first)}, model.name) if initial else None
        entries = _dict_entries(first)
        if entries is None or "params" not in entries or not set(entries) <= {"params", "batch_stats"}:
            return None
        params, stats = entries["params"], entries.get("batch_stats")
        read = _variables_read(params, model, "params")
        if read is not None and self._model(read) is model:
            stats_read = _variables_read(stats, model, "batch_stats") if stats is not None else None
            if stats is not None and stats_read is None or not initial:
                return None
            return {id(read), *((id(stats_read),) if stats_read is not None else ())}, model.name
        if isinstance(params, cst.Attribute) and params.attr.value == "params" and isinstance(params.value, cst.Name):
            owner = params.value.value
            if owner in self.states.names(self.top) and (stats is None or code_of(stats) == f"{owner}.batch_stats"):
                return set(), f"{owner}.model"
            return None
        if isinstance(params, cst.Name) and stats is None and self.scopes and params.value in self.scopes[-1]:
            return set(), params.value  # the model a caller passes where Linen passed its params
        return None

    def _create(self, node: cst.Call, model: _Model) -> None:
        tx, fields, reads = None, [], set()
        for arg in node.args:
            if arg.keyword is None:
                return
            keyword, value = arg.keyword.value, arg.value
            kind = self.rules.create_keywords.get(keyword)
            if keyword == "apply_fn" and isinstance(value, cst.Attribute) and value.attr.value == "apply" and self._is_model_name(value.value, model):
                reads.add(id(value.value))
            elif keyword == "params" and _variables_read(value, model, "params") is not None:
                reads.add(id(_variables_read(value, model, "params")))
            elif kind == "drop" and _variables_read(value, model, keyword) is not None:
                reads.add(id(_variables_read(value, model, keyword)))
            elif kind == "tx":
                tx = value
            elif keyword in self.carried:
                fields.append(f"{keyword}={code_of(value)}")
            else:
                return
        if tx is None:
            return
        model.consumed.update(reads)
        text = f"{self.helper_name}.create({', '.join([model.name, code_of(tx), *fields])})"
        model.replacements[id(node)] = lambda u: cst.parse_expression(text)


_COMMA = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))


def _bound(stmt) -> set[str]:
    """Names a top-level statement binds (not inside the functions it defines)."""
    names: set[str] = set()

    class Bind(FastVisitor):
        def visit_FunctionDef(self, node):
            names.add(node.name.value)
            return False

        def visit_ClassDef(self, node):
            names.add(node.name.value)
            return False

        def visit_AssignTarget(self, node):
            names.update(names_of_target(node.target))

        def visit_AnnAssign(self, node):
            names.update(names_of_target(node.target))

        def visit_AugAssign(self, node):
            names.update(names_of_target(node.target))

        def visit_For(self, node):
            names.update(names_of_target(node.target))

        def visit_AsName(self, node):
            names.update(names_of_target(node.name))

        def visit_ImportAlias(self, node):
            if node.asname is None:
                names.add(code_of(node.name).partition(".")[0])

        def visit_NamedExpr(self, node):
            names.update(names_of_target(node.target))

    Bind().walk(stmt)
    return names


def _can_build_at(body, first: int, model: _Model) -> bool:
    """Whether the constructor, reading `init`'s arguments, can run before statement `first`:
    at the `init` itself, or where every name those arguments read is bound before and not
    rebound up to the `init`."""
    if first == model.init_at:
        return True
    if first > model.init_at:
        return False
    init_value = _single_assign(body[model.init_at]).value
    sub = _subscript_key(init_value)
    call = sub[0] if sub is not None else init_value
    needed = {n.value for a in call.args for n in _names(a.value)}
    before = set().union(*(_bound(s) for s in body[:first]))
    between = set().union(*(_bound(s) for s in body[first:model.init_at]))
    return needed <= (before | _BUILTINS) and not (needed & between)


def _names(node) -> list[cst.Name]:
    out = []

    class Names(FastVisitor):
        def visit_Attribute(self, node):
            node.value.visit(self)
            return False

        def visit_Name(self, node):
            out.append(node)

    Names().walk(node)
    return out


class _Replace(FastTransformer):
    def __init__(self, replacements) -> None:
        super().__init__()
        self.replacements = replacements

    def leave_Call(self, original, updated):
        build = self.replacements.get(id(original))
        return build(updated) if build is not None else updated


def _rebuild(module: cst.Module, body: list, plans) -> cst.Module:
    """The constructions moved before each model's first use, the `init`s gone, the sites
    converted."""
    drop = {model.at for model, _, _ in plans} | {model.init_at for model, _, _ in plans}
    build = {first: (model, ctor) for model, ctor, first in plans}
    new_body, pending = [], []
    for i, stmt in enumerate(body):
        if i in build:
            model, ctor = build[i]
            line = cst.parse_statement(f"{model.name} = {ctor}\n", config=module.config_for_parsing)
            new_body.append(line.with_changes(leading_lines=[*pending, *stmt.leading_lines]))
            pending = []
            if i != model.init_at:
                new_body.append(stmt.with_changes(leading_lines=[]))
            continue
        if i in drop:
            pending.extend(stmt.leading_lines)
            continue
        new_body.append(stmt.with_changes(leading_lines=[*pending, *stmt.leading_lines]) if pending else stmt)
        pending = []
    replacements = {k: v for model, _, _ in plans for k, v in model.replacements.items()}
    return module.with_changes(body=new_body).visit(_Replace(replacements))
