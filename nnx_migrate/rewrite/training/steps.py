"""The LibCST transform of the training pass, one function at a time.

What changes inside a function (see `rules/linen_training.toml` for the data):

- `model = CNN(...)` + `params = model.init(key, x)['params']` -> one
  `model = CNN(..., in_features=<x's last dim>, rngs=nnx.Rngs(key))`; `init`'s result
  then stands for the model.
- `TrainState.create(apply_fn=model.apply, params=params, tx=tx, batch_stats=...)` ->
  `TrainState.create(model, tx)` (the emitted helper, see `state_helper`).
- A function that applies or trains a state (`state.apply_fn(...)`,
  `state.apply_gradients(...)`, a gradient over `state.params`) starts with
  `model, optimizer = state.merge()`; then `state.apply_fn({'params': p, ...}, x, ...)`
  -> `p(x, ...)` (`mutable=`/`rngs=` dropped: NNX updates variables in place and the model
  draws from its own RNG streams), `jax.value_and_grad(loss_fn)(state.params)` ->
  `nnx.value_and_grad(loss_fn)(model)` with `loss_fn`'s parameter renamed `model`,
  `state = state.apply_gradients(grads=g)` -> `optimizer.update(model, g)` +
  `state = state.updated(model, optimizer)`, `state.step` -> `optimizer.step[...]`. The
  `updates` a `mutable=` call returned are removed where they were unpacked and returned,
  and `state.replace(batch_stats=...)` disappears.
- Elsewhere `state.params` -> `state.model`, `state.step` -> `state.optimizer.step[...]`.
- `Model(...).apply({'params': p}, x)` -> `p(x)` (`p` is the model after conversion).

What it cannot convert gets a `# TODO(nnx-migrate): ...` line and a report entry.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

import libcst as cst
import libcst.matchers as m

from nnx_migrate.rewrite.lines import render
from nnx_migrate.rewrite.names import ImportMap, dotted
from nnx_migrate.rewrite.nodes import is_docstring
from nnx_migrate.rewrite.report import TODO_MARK
from nnx_migrate.rewrite.training.api_map import TrainingRules
from nnx_migrate.rewrite.training.dataflow import EMPTY, Flow, init_receiver, names_of_target
from nnx_migrate.rewrite.training import param_grad
from nnx_migrate.rewrite.training.models import ModelIndex
from nnx_migrate.rewrite.visitors import FastTransformer, FastVisitor, children_in_order, nodes_of_type

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


class TrainingTransformer(FastTransformer):
    def __init__(self, imports: ImportMap, rules: TrainingRules, models: ModelIndex, style: str,
                 state_class_names: set[str], helper_name: str, knows_train_state: bool, flow: Flow = EMPTY):
        super().__init__()
        self.flow = flow  # models that cross function boundaries (dataflow.py)
        self.pmapped: set[str] = set()  # functions that run under jax.pmap (pmapped.py)
        self.module: cst.Module | None = None  # the file, for _built_differently
        self._built_with: dict[str, set[str]] | None = None  # callee -> argument texts of its calls
        self.used_functools = False
        self.used_apply_fn = False  # a state's `apply_fn` passed on as a value
        self.used_param_grad = ""  # the helper's name, once a gradient is taken over the model (param_grad.py)
        self._model_values: set[str] = set()  # names holding the model a helper's `init` built
        self._callees: set[int] = set()  # ids of original call targets
        self._top: str | None = None  # the enclosing top-level function
        self._top_node: cst.FunctionDef | None = None
        self._params: set[str] = set()  # its parameters
        self._dict_bindings: list[dict[str, cst.Dict]] = []  # per enclosing function: `v = {...}` bound once
        self.imports = imports
        self.rules = rules
        self.models = models
        self.style = style
        self.carried_fields: set[str] = set()  # own fields of the file's TrainState subclasses (run.carried_fields)
        self._stale_state = False  # the step applied the gradients into another name than its state
        self.state_class_names = state_class_names  # local subclasses + the helper
        self.helper_name = helper_name
        self.knows_train_state = knows_train_state
        self.todos: list[tuple[cst.CSTNode, str, str]] = []  # (statement, construct, why)
        self.used_nnx = False
        self.used_helper = False
        self.changed = False
        self._plan: FunctionPlan | None = None
        self._depth = 0
        self._stmt_stack: list[dict] = []
        self._init_results: dict[str, str] = {}  # init's result name -> model variable
        self._removed_names: set[str] = set()
        self._applied_gradients = False
        self._applied_bindings: set[str] = set()  # `m = Model(...)` whose `m.apply(...)` became a call of the model
        self._mutable_calls: set[int] = set()  # ids of original calls that had mutable=
        self._replace_calls: set[int] = set()  # ids of original `state.replace(...)` calls
        self.converted_linen: set[str] = set()  # Linen functions this pass converted (nn.apply)
        self._functions: list[str] = []  # names of the enclosing functions
        self._aux_removed: set[str] = set()  # differentiated functions whose only aux went away
        self._derived_states: set[str] = set()  # names bound to `<state>.apply_gradients/replace(...)` in this function
        self._consumed_dicts: set[str] = set()  # `variables = {'params': ...}` read by a converted apply in this function
        self.unsupported = rules.unsupported_for(style)
        # Import aliases through which a name can qualify to an unsupported API: names with
        # any other head never match, so the per-statement check skips them cheaply.
        self._unsupported_heads = {
            head for head, full in imports.aliases.items()
            if any(prefix == full or prefix.startswith(full + ".") for prefix in self.unsupported)
        }

    # ---- analysis ---------------------------------------------------------------------

    def _qualify(self, node) -> str | None:
        return self.imports.qualify(node)

    def _is_train_state_class(self, node) -> bool:
        name = dotted(node)
        if name in self.state_class_names:
            return True
        return self._qualify(node) in self.rules.train_state_classes

    def _is_grad_transform(self, node) -> str | None:
        q = self._qualify(node)
        return self.rules.grad_transforms.get(q) if q else None

    def _plan_function(self, func: cst.FunctionDef) -> FunctionPlan:
        plan = FunctionPlan()
        attrs_used: dict[str, set[str]] = {}
        step_uses: list[str] = []
        rules = self.rules
        outer = self

        statements = []  # the small statements of every line, as _walk_statements gives them

        callees: set[int] = set()

        class Analyse(FastVisitor):
            def visit_SimpleStatementLine(self, node):
                statements.extend(node.body)

            def visit_Attribute(self, node):
                if isinstance(node.value, cst.Name) and node.attr.value in rules.state_attribute_names:
                    if id(node) in callees and node.attr.value in rules.state_attributes:
                        return  # `env.step(action)`: a train state's fields are never called
                    attrs_used.setdefault(node.value.value, set()).add(node.attr.value)

            def visit_Call(self, node):
                callees.add(id(node.func))
                f = node.func
                if isinstance(f, cst.Attribute) and isinstance(f.value, cst.Name):
                    if f.attr.value in ("apply_fn", "apply_gradients"):
                        step_uses.append(f.value.value)
                    if f.attr.value == "init":
                        plan.inited.add(f.value.value)
                receiver = init_receiver(node, outer.imports) if isinstance(f, cst.Call) else None
                if isinstance(receiver, cst.Name):  # `jax.jit(m.init)(...)`
                    plan.inited.add(receiver.value)
                if isinstance(f, cst.Call) and outer._is_grad_transform(f.func) and f.args:
                    inner = f.args[0].value
                    if isinstance(inner, cst.Name):
                        plan.differentiated.add(inner.value)
                        if node.args and _is_state_params(node.args[0]):
                            plan.over_model.add(inner.value)
                    elif isinstance(inner, cst.Lambda) and node.args and _is_state_params(node.args[0]):
                        # `jax.grad(lambda p: loss(state, p, x))(state.params)`: the lambda
                        # now receives the model, so it is a model gradient like a named one
                        plan.over_model_lambdas.add(id(inner))
                    for arg in node.args:
                        v = arg.value
                        if isinstance(v, cst.Attribute) and v.attr.value == "params" and isinstance(v.value, cst.Name):
                            step_uses.append(v.value.value)
                if outer._is_grad_transform(f) and node.args and isinstance(node.args[0].value, cst.Name):
                    plan.differentiated.add(node.args[0].value.value)

        Analyse().walk(func.body)
        plan.differentiated = {name for name in plan.differentiated if _takes_params(func, name)}
        plan.over_model -= plan.differentiated
        # A grad_fn = jax.value_and_grad(loss_fn); grad_fn(state.params) pair.
        grad_fn_names = {}  # grad_fn -> the function it differentiates
        for stmt in statements:
            if m.matches(stmt, m.Assign(targets=[m.AssignTarget(target=m.Name())], value=m.Call())):
                call = stmt.value
                if self._is_grad_transform(call.func):
                    target = call.args[0].value if call.args else None
                    grad_fn_names[stmt.targets[0].target.value] = target.value if isinstance(target, cst.Name) else (
                        target if isinstance(target, cst.Lambda) else None)
        if grad_fn_names:
            class GradCalls(FastVisitor):
                def visit_Call(self, node):
                    if isinstance(node.func, cst.Name) and node.func.value in grad_fn_names:
                        inner = grad_fn_names[node.func.value]
                        if node.args and _is_state_params(node.args[0]) and inner is not None:
                            if isinstance(inner, cst.Lambda):
                                plan.over_model_lambdas.add(id(inner))
                            else:
                                plan.over_model.add(inner)
                        for arg in node.args:
                            v = arg.value
                            if isinstance(v, cst.Attribute) and v.attr.value == "params" and isinstance(v.value, cst.Name):
                                step_uses.append(v.value.value)
            GradCalls().walk(func.body)
        for stmt in func.body.body:
            if m.matches(stmt, m.SimpleStatementLine(body=[m.Assign(targets=[m.AssignTarget(target=m.Name())], value=m.Call())])):
                assign = stmt.body[0]
                if self.models.lookup(assign.value.func) is not None:
                    plan.ctor_bindings[assign.targets[0].target.value] = assign.value
        plan.inited &= set(plan.ctor_bindings)
        states = list(dict.fromkeys(step_uses))
        if states:
            plan.state = states[0]
            plan.extra_states = states[1:]
        if self.knows_train_state:
            annotated = {p.name.value for p in (*func.params.posonly_params, *func.params.params, *func.params.kwonly_params)
                         if p.annotation is not None and self._is_train_state_class(p.annotation.annotation)}
            plan.eager_states = {n for n, used in attrs_used.items() if (used & (set(rules.state_attributes) | {"apply_fn", "apply_gradients", "batch_stats"}) or n in annotated) and n != "self"} - set(states)
        if plan.state:
            bound = _bound_in(func)
            if "model" in bound:
                plan.model_name = f"{plan.state}_model"
            if "optimizer" in bound:
                plan.optimizer_name = f"{plan.state}_optimizer"
        return plan

    # ---- statements the pass skips (run.py) ---------------------------------------------

    def may_change_unmentioned(self) -> bool:
        """Whether a statement without any trigger name could still change: a tuple naming
        the `updates` a converted call no longer returns (`leave_Tuple`)."""
        return bool(self._removed_names)

    def skipped(self, has_function: bool) -> None:
        """What visiting a top-level statement without trigger names leaves behind: each
        function in it starts a new plan (`visit_FunctionDef`), and none is left open."""
        if has_function:
            self._init_results = {}
            self._removed_names = set()
            self._applied_gradients = False
            self._plan = None

    # ---- functions ---------------------------------------------------------------------

    def visit_FunctionDef(self, node):
        self._functions.append(node.name.value)
        self._dict_bindings.append(_dict_bindings(node))
        self._depth += 1
        if self._depth == 1:
            self._plan = self._plan_function(node)
            self._top = node.name.value
            self._top_node = node
            self._params = {p.name.value for p in (*node.params.posonly_params, *node.params.params, *node.params.kwonly_params)}
            self._model_values = set()
            self._init_results = {}
            self._removed_names = set()
            self._applied_gradients = False
            self._applied_bindings = set()
            self._derived_states = set()
            self._stale_state = False
            self._consumed_dicts = set()
        return True

    def leave_Return(self, original, updated):
        # a helper whose `init` now builds the model returns the model (dataflow.py)
        if self._top in self.flow.model_results and self._depth == 1 and updated.value is not None:
            value = updated.value
            sub = _subscript_key(value)
            if sub is not None and sub[1] == "params":
                value = sub[0]
            if isinstance(value, cst.Name) and value.value in self._init_results:
                self.changed = True
                return updated.with_changes(value=cst.Name(self._init_results[value.value]))
        # `return loss, updates` -> `return loss`: the function no longer has an aux output
        if isinstance(original.value, cst.Tuple) and len(original.value.elements) == 2 and not isinstance(updated.value, cst.Tuple):
            self._aux_removed.add(self._functions[-1])
        return updated

    def leave_FunctionDef(self, original, updated):
        self._functions.pop()
        self._dict_bindings.pop()
        self._depth -= 1
        plan = self._plan
        if plan is None:
            return updated
        if self._depth >= 1 and original.name.value in plan.differentiated and plan.state:
            updated = self._rename_differentiated_param(updated, plan)
        if self._depth == 0:
            updated = self._finish_function(original, updated, plan)
            self._plan = None
            self._top, self._params = None, set()
        return updated

    def _rename_differentiated_param(self, func: cst.FunctionDef, plan: FunctionPlan) -> cst.FunctionDef:
        params = func.params.params
        if not params:
            return func
        old = params[0].name.value
        new = plan.model_name
        if old == new:
            return func

        class Rename(FastTransformer):
            def leave_Name(self, o, u):
                return u.with_changes(value=new) if u.value == old else u

            def leave_Attribute(self, o, u):
                return u.with_changes(attr=o.attr)

            def leave_Arg(self, o, u):
                return u.with_changes(keyword=o.keyword)

        self.changed = True
        return func.with_changes(
            params=func.params.with_changes(params=[params[0].with_changes(name=cst.Name(new)), *params[1:]]),
            body=Rename().transform(func.body),
        )

    def _finish_function(self, original: cst.FunctionDef, func: cst.FunctionDef, plan: FunctionPlan) -> cst.FunctionDef:
        if plan.state:
            self.changed = True
            optimizer = plan.optimizer_name if plan.optimizer_name in _names_in(func.body) else "_"
            prologue = cst.parse_statement(f"{plan.model_name}, {optimizer} = {plan.state}.merge()\n")
            body = list(func.body.body)
            at = 1 if body and is_docstring(body[0]) else 0
            body.insert(at, prologue)
            if _rebinds(original, plan.state):
                why = f"`{plan.state}` is rebound in this function: `{plan.model_name}, {plan.optimizer_name}` come from its first value only"
                body[at] = _with_todo(body[at], why)
                self.todos.append((original, f"def {original.name.value}", why))
            if plan.extra_states:
                body[at] = _with_todo(body[at], f"this function also trains {', '.join(plan.extra_states)}: only {plan.state} was converted")
                self.todos.append((original, f"def {original.name.value}", f"more than one train state ({plan.state}, {', '.join(plan.extra_states)}); only {plan.state} converted"))
            func = func.with_changes(body=func.body.with_changes(body=body))
            if self.style == "nnx-jit":
                decorators = []
                for dec in func.decorators:
                    if self._qualify(dec.decorator) == "jax.jit":
                        dec = dec.with_changes(decorator=cst.parse_expression("nnx.jit"))
                    decorators.append(dec)
                func = func.with_changes(decorators=decorators)
        for dec in original.decorators:
            for construct, why in self._unsupported_in(dec):
                self.todos.append((dec, f"@{construct}", why))
                func = _with_todo(func, why)
        func = self._drop_dead_constructions(func, plan)
        leftovers = set(self._init_results) & _names_in(func.body) if self._init_results else set()
        if leftovers:
            why = f"`{', '.join(sorted(leftovers))}` held Linen variables from `init`; NNX keeps them in the model (use nnx.state(model))"
            self.todos.append((original, f"def {original.name.value}", why))
            body = list(func.body.body)
            at = 1 if body and is_docstring(body[0]) else 0
            body[at] = _with_todo(body[at], why)
            func = func.with_changes(body=func.body.with_changes(body=body))
        return func

    def _drop_dead_constructions(self, func: cst.FunctionDef, plan: FunctionPlan) -> cst.FunctionDef:
        """`model = Model(...)` whose only use, `model.apply(variables, x)`, became a call of
        the NNX model the variables hold: the Linen blueprint is dead, and kept it would build
        an NNX model without its input sizes and rngs (a TypeError at run time)."""
        dead = {name for name in self._applied_bindings if name in plan.ctor_bindings}
        if not dead and not self._consumed_dicts:
            return func
        body = []
        for stmt in func.body.body:
            target = stmt.body[0].targets[0].target.value if m.matches(
                stmt, m.SimpleStatementLine(body=[m.Assign(targets=[m.AssignTarget(target=m.Name())])])) else None
            if target in dead and stmt.body[0].value is plan.ctor_bindings[target] and not any(
                    target in _names_in(other) for other in func.body.body if other is not stmt):
                continue
            # `variables = {'params': ..., 'batch_stats': state.batch_stats}` whose only reader,
            # an apply, became a call of the model: the dict (Linen's variables, reading state
            # fields NNX no longer has) goes with it
            if target in self._consumed_dicts and isinstance(stmt.body[0].value, cst.Dict) and not any(
                    target in _names_in(other) for other in func.body.body if other is not stmt):
                continue
            body.append(stmt)
        if not body or len(body) == len(func.body.body):
            return func
        self.changed = True
        return func.with_changes(body=func.body.with_changes(body=body))

    # ---- statements ---------------------------------------------------------------------

    def visit_SimpleStatementLine(self, node):
        self._stmt_stack.append({"before": [], "todos": [], "drop": False, "unsupported": []})
        return True

    # Unsupported APIs of a statement line, found during the one traversal (what
    # `_unsupported_in` would find visiting the line again; lines do not nest).
    def visit_Name(self, node):
        if self._stmt_stack:
            self._check_unsupported(node)

    def visit_Attribute(self, node):
        if self._stmt_stack:
            self._check_unsupported(node)

    def _check_unsupported(self, node):
        name = dotted(node)
        if name is None or name.partition(".")[0] not in self._unsupported_heads:
            return
        q = self._qualify(node) or ""
        for prefix, why in self.unsupported.items():
            if q == prefix:
                self._stmt_stack[-1]["unsupported"].append((name or q, why))

    def leave_SimpleStatementLine(self, original, updated):
        frame = self._stmt_stack[-1]
        plan = self._plan
        if plan is not None and len(updated.body) == 1:
            small = updated.body[0]
            replaced = self._rewrite_init(small, plan) if isinstance(small, cst.Assign) else None
            if replaced is None and isinstance(small, cst.Assign):
                replaced = self._factory_site(small)
            if replaced is not None:
                updated = updated.with_changes(body=[replaced])
                frame.pop("init_todo", None)
            elif (isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name)
                  and small.targets[0].target.value in plan.inited and isinstance(small.value, cst.Call)
                  and self.models.lookup(small.value.func) is not None):
                self.changed = True
                self._stmt_stack.pop()
                return cst.RemovalSentinel.REMOVE  # the constructor moves to the init site
        if plan is not None and m.matches(updated, m.SimpleStatementLine(body=[m.Del(target=m.Name())])):
            name = updated.body[0].target.value
            if name in self._init_results and self._init_results[name] != name:
                # `del variables` of an `init` result that the NNX constructor replaced
                self._stmt_stack.pop()
                self.changed = True
                return cst.RemovalSentinel.REMOVE
        self._stmt_stack.pop()
        if frame["drop"]:
            self.changed = True
            if frame["before"]:  # what replaced it (an nnx.update of the statistics)
                return cst.FlattenSentinel([frame["before"][0].with_changes(leading_lines=updated.leading_lines), *frame["before"][1:]])
            return cst.RemovalSentinel.REMOVE
        unsupported = [] if any(isinstance(s, (cst.Import, cst.ImportFrom)) for s in original.body) else list(dict.fromkeys(frame["unsupported"]))
        todos = frame["todos"] + ([frame["init_todo"]] if "init_todo" in frame else []) + unsupported
        for construct, why in todos:
            self.todos.append((original, construct, why))
            updated = _with_todo(updated, why)
        if frame["before"]:
            self.changed = True
            first = frame["before"][0].with_changes(leading_lines=updated.leading_lines)
            return cst.FlattenSentinel([first, *frame["before"][1:], updated.with_changes(leading_lines=[])])
        return updated

    def _unsupported_in(self, stmt: cst.CSTNode) -> list[tuple[str, str]]:
        found = []
        outer = self

        class Find(FastVisitor):
            def visit_Attribute(self, node):
                self._check(node)

            def visit_Name(self, node):
                self._check(node)

            def _check(self, node):
                q = outer._qualify(node) or ""
                for prefix, why in outer.unsupported.items():
                    if q == prefix:
                        found.append((dotted(node) or q, why))

        Find().walk(stmt)
        if any(isinstance(s, (cst.Import, cst.ImportFrom)) for s in getattr(stmt, "body", [])):
            return []
        return list(dict.fromkeys(found))

    def _rewrite_init(self, assign: cst.Assign, plan: FunctionPlan) -> cst.Assign | None:
        if len(assign.targets) != 1 or not isinstance(assign.targets[0].target, cst.Name):
            return None
        value = assign.value
        sub = _subscript_key(value)
        if sub is not None:
            value = sub[0]
        receiver = init_receiver(value, self.imports) if isinstance(value, cst.Call) else None
        if receiver is None:
            return None
        summary = None
        if isinstance(receiver, cst.Name) and self.flow.is_blueprint(self._top, receiver.value):
            # a model built elsewhere, now a factory: call it here (dataflow.py)
            ctor, model_var = cst.Call(func=receiver), receiver.value
            summary = self.flow.classes.get((self._top, receiver.value))
        elif isinstance(receiver, cst.Name) and receiver.value in plan.ctor_bindings:
            ctor, model_var = plan.ctor_bindings[receiver.value], receiver.value
        elif isinstance(receiver, cst.Call) and self.models.lookup(receiver.func) is not None:
            ctor, model_var = receiver, "model" if "model" not in self._init_results.values() else assign.targets[0].target.value
        else:
            return None
        summary = summary or self.models.lookup(ctor.func)
        if summary is None:
            return None
        positional = [a.value for a in value.args if a.keyword is None and not a.star]
        if not positional:
            return None
        rng_arg, inputs = positional[0], positional[1:]
        entries = _dict_entries(rng_arg)
        if entries is not None:
            # NNX layers may draw from streams Linen never had (nnx.RNN forks `carry`): they
            # fall back to the default stream, which the `params` key seeds
            default = [code_of(entries["params"])] if "params" in entries and "default" not in entries else []
            rngs = "nnx.Rngs(" + ", ".join([*default, *(f"{k}={code_of(v)}" for k, v in entries.items())]) + ")"
        else:
            rngs = f"nnx.Rngs({code_of(rng_arg)})"
        extra = []
        for param in summary.size_params:
            idx = summary.size_param_args.get(param)
            if (idx is None or idx >= len(inputs)) and param in summary.optional_size_params:
                continue  # an argument left out: the constructor's default (None) says so
            if idx is None or idx >= len(inputs):
                self._stmt_stack[-1]["todos"].append((f"{code_of(value.func)}(...)", f"the NNX constructor needs `{param}`: pass the input size by hand"))
                extra.append(f"{param}=None")
                continue
            size = _static_last_dim(inputs[idx]) or f"{code_of(inputs[idx])}.shape[-1]"
            extra.append(f"{param}={size}")
        extra.append(f"rngs={rngs}")
        args = [code_of(a.with_changes(comma=cst.MaybeSentinel.DEFAULT)).strip() for a in ctor.args] + extra
        new_ctor = cst.parse_expression(f"{code_of(ctor.func)}({', '.join(args)})")
        self._init_results[assign.targets[0].target.value] = model_var
        self.used_nnx = self.changed = True
        return cst.Assign(targets=[cst.AssignTarget(target=cst.Name(model_var))], value=new_ctor)

    def _factory_site(self, assign: cst.Assign) -> cst.Assign | None:
        """`model = Net(f)` whose model is initialized in another function ->
        `model = functools.partial(Net, f)` (dataflow.py)."""
        target = assign.targets[0].target if len(assign.targets) == 1 else None
        if not (isinstance(target, cst.Name) and self.flow.is_factory_site(self._top, target.value) and isinstance(assign.value, cst.Call)):
            return None
        call = assign.value
        first = cst.Arg(value=call.func, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")) if call.args else cst.MaybeSentinel.DEFAULT)
        self.used_functools = self.changed = True
        return assign.with_changes(value=call.with_changes(func=cst.parse_expression("functools.partial"), args=[first, *call.args]))

    def leave_Assign(self, original, updated):
        value = original.value
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value in self.flow.model_results and len(original.targets) == 1 and isinstance(original.targets[0].target, cst.Name):
            self._model_values.add(original.targets[0].target.value)
        # `out, updates = <module call that had mutable=...>`: NNX updated the model in place.
        if id(original.value) in self._mutable_calls:
            target = updated.targets[0].target
            if isinstance(target, cst.Tuple) and len(target.elements) == 2 and isinstance(target.elements[1].value, cst.Name):
                name = target.elements[1].value.value
                self._removed_names.add(name)
                if self._top_node is not None and sum(1 for n in nodes_of_type(self._top_node, cst.Name) if n.value == name) <= 1:
                    # Linen threw these updates away; the NNX model keeps them (in place)
                    self._stmt_stack[-1]["todos"].append(("mutable=", f"Linen discarded `{name}` (the updated variables, e.g. "
                        "BatchNorm statistics); NNX updates the model in place: call it in eval mode or on a copy if that matters"))
                return updated.with_changes(targets=[updated.targets[0].with_changes(target=target.elements[0].value)])
            if isinstance(target, cst.Name):
                self._stmt_stack[-1]["todos"].append(("mutable=", f"`{target.value}` was (output, updated variables); NNX returns only the output"))
        if self._plan and self._plan.state and len(original.targets) == 1 and isinstance(original.targets[0].target, cst.Name) and m.matches(
                original.value, m.Call(func=m.Attribute(value=m.Name(self._plan.state), attr=m.Name("apply_gradients") | m.Name("replace")))):
            target = original.targets[0].target.value
            if target != self._plan.state:
                self._derived_states.add(target)
                if original.value.func.attr.value == "apply_gradients" and self._applied_gradients:
                    self._stale_state = True  # `state` now names Linen's values before the update
        if self._plan and self._plan.state and len(updated.targets) == 1:
            # `state = state.replace(batch_stats=...)` after the gradients were applied
            if self._applied_gradients and m.matches(updated.value, m.Call(func=m.Attribute(value=m.Name(self._plan.state), attr=m.Name("updated")))) and id(original.value) in self._replace_calls:
                self._stmt_stack[-1]["drop"] = True
        return updated

    # ---- expressions ---------------------------------------------------------------------

    def visit_Call(self, node):
        self._callees.add(id(node.func))
        return True

    def leave_Attribute(self, original, updated):
        plan = self._plan
        if isinstance(original.value, cst.Name):
            owner, attr = original.value.value, original.attr.value
            if attr == "apply_fn" and plan is not None and (owner == plan.state or owner in plan.eager_states) and id(original) not in self._callees:
                self.used_apply_fn = True  # the helper state gets an `apply_fn` that calls the model
            if plan is not None and owner == plan.state and attr in self.rules.state_attributes:
                if self._stale_state and self._stmt_stack:
                    self._stmt_stack[-1]["todos"].append((f"{owner}.{attr}", (
                        f"`{owner}.{attr}` read after the gradients were applied into another state: Linen's `{owner}` still held "
                        "the values before the update, but the NNX model and optimizer were updated in place; keep a copy "
                        "(nnx.state(...)) before the update by hand")))
                self.changed = True
                return cst.parse_expression(self.rules.state_attributes[attr].format(model=plan.model_name, optimizer=plan.optimizer_name))
            if plan is not None and owner in plan.eager_states and attr in self.rules.state_attributes_eager:
                self.changed = True
                return cst.parse_expression(self.rules.state_attributes_eager[attr].format(state=owner))
        if self.helper_name and self._qualify(original) in self.rules.train_state_classes:
            self.used_helper = self.changed = True
            return cst.Name(self.helper_name)
        return updated

    def leave_Tuple(self, original, updated):
        if not self._removed_names:
            return updated
        keep = [el for el in updated.elements if not (isinstance(el.value, cst.Name) and el.value.value in self._removed_names)]
        if len(keep) == len(updated.elements):
            return updated
        self.changed = True
        if len(keep) == 1:
            return keep[0].value
        return updated.with_changes(elements=[*keep[:-1], keep[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)])

    def leave_Call(self, original, updated):
        plan = self._plan
        func = updated.func
        # nn.apply(fn, Model(...))({'params': p}) -> fn(p): `fn` gets the NNX model itself
        if isinstance(func, cst.Call) and self._qualify(func.func) == "flax.linen.apply" and len(func.args) == 2 and len(updated.args) == 1:
            receiver = func.args[1].value
            entries = _dict_entries(updated.args[0].value)
            if isinstance(receiver, cst.Call) and self.models.lookup(receiver.func) is not None and entries is not None and "params" in entries:
                if self._built_differently(receiver):
                    return updated
                self.converted_linen.add(dotted(func.func))
                self.changed = True
                return cst.Call(func=func.args[0].value, args=[cst.Arg(entries["params"])])
        # TrainState.create(...)
        if isinstance(func, cst.Attribute) and func.attr.value == "create" and (
            self._is_train_state_class(original.func.value) or dotted(func.value) == self.helper_name):
            return self._rewrite_create(original, updated)
        if plan is None:
            return updated
        # grad transforms over a model
        if plan.state and isinstance(func, (cst.Name, cst.Attribute)):
            nnx_name = self._is_grad_transform(func)
            target = original.args[0].value if original.args else None
            over_model = (isinstance(target, cst.Name) and target.value in plan.differentiated | plan.over_model) or (
                isinstance(target, cst.Lambda) and (id(target) in plan.over_model_lambdas or _lambda_takes_params(target)))
            if nnx_name and over_model:
                self.used_nnx = self.changed = True
                args = updated.args
                if isinstance(target, cst.Name) and target.value in self._aux_removed:
                    args = [a for a in args if not (a.keyword is not None and a.keyword.value == "has_aux")]
                    args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
                # over the Params only, in graph and tree mode alike (param_grad.py)
                self.used_param_grad = self.used_param_grad or param_grad.helper_name(self.module)
                return updated.with_changes(func=cst.Name(self.used_param_grad), args=[cst.Arg(cst.parse_expression(nnx_name)), *args])
        if (isinstance(func, cst.Attribute) and func.attr.value in ("value_and_grad", "grad") and plan.state and self._stmt_stack
                and not (self._qualify(func) or "").startswith(("jax.", "flax.nnx.")) and self._differentiates_model(original, plan)):
            self._stmt_stack[-1]["todos"].append((code_of(original.func), _FOREIGN_GRAD.format(name=code_of(original.func))))
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name):
            owner, attr = func.value.value, func.attr.value
            if plan.state == owner and attr == "apply_gradients":
                return self._rewrite_apply_gradients(updated, plan)
            if plan.state == owner and attr == "replace":
                return self._rewrite_replace(original, updated, plan)
            if attr == "replace" and plan.state and (owner in self._derived_states or owner in plan.eager_states):
                return self._rewrite_replace(original, updated, plan, owner)
            if attr == "apply_fn" and (owner == plan.state or owner in plan.eager_states):
                return self._rewrite_apply(original, updated, eager_owner=None if owner == plan.state else owner)
        if isinstance(func, cst.Name) and func.value in self._params and original.args and original.args[0].keyword is None:
            first = original.args[0].value
            entries = _dict_entries(self._bound_dict(first.value) if isinstance(first, cst.Name) and self._bound_dict(first.value) is not None else first)
            if entries is not None and "params" in entries:
                # `apply_fn({'params': p}, x)` with `apply_fn` a parameter: Linen's apply. Unless
                # every caller passes a train state's `apply_fn`, one may pass another
                # configuration's apply (an eval model's): listed.
                if not self._only_state_apply_fns(self._top, func.value, frozenset()):
                    self._stmt_stack[-1]["todos"].append((
                        f"{func.value}(...)", f"`{func.value}` (an apply function passed in) became a call of the model holding the "
                        "parameters; if a caller passes another configuration's apply (e.g. an eval model), set it by hand"))
                return self._rewrite_apply(original, updated, eager_owner=None)
        if isinstance(func, cst.Attribute) and func.attr.value == "init" and self._stmt_stack:
            receiver = func.value
            if (isinstance(receiver, cst.Call) and self.models.lookup(receiver.func) is not None) or (
                    isinstance(receiver, cst.Name) and receiver.value in plan.ctor_bindings):
                # cleared when the statement is the `variables = model.init(...)` form
                self._stmt_stack[-1]["init_todo"] = (f"{code_of(func)}(...)", "`init` of a converted model outside `variables = model.init(...)`: build the NNX model with rngs= instead")
        if isinstance(func, cst.Attribute) and func.attr.value == "apply":
            receiver = func.value
            if (isinstance(receiver, cst.Call) and self.models.lookup(receiver.func) is not None) or (
                    isinstance(receiver, cst.Name) and receiver.value in plan.ctor_bindings):
                if self._built_differently(receiver if isinstance(receiver, cst.Call) else plan.ctor_bindings[receiver.value]):
                    return updated
                new = self._rewrite_apply(original, updated, eager_owner=None)
                if new is not updated and isinstance(receiver, cst.Name):
                    self._applied_bindings.add(receiver.value)
                return new
        return updated

    def _differentiates_model(self, call: cst.Call, plan: FunctionPlan) -> bool:
        """`X.value_and_grad(loss_fn, ...)` of an inner function the pass turns into a loss
        over the model (it passes its first parameter as `{'params': p}`)."""
        target = call.args[0].value if call.args and call.args[0].keyword is None else None
        if isinstance(target, cst.Lambda):
            return id(target) in plan.over_model_lambdas or _lambda_takes_params(target)
        return isinstance(target, cst.Name) and (
            target.value in plan.differentiated | plan.over_model or (self._top_node is not None and _takes_params(self._top_node, target.value)))

    def _only_state_apply_fns(self, function: str | None, param: str, seen: frozenset) -> bool:
        """Whether every call in this file of the top-level `function` (directly, or through
        a name bound to `jax.grad`/`jax.value_and_grad` of it) passes, for `param`, a train
        state's `.apply_fn` or a parameter of its caller for which the same holds. No call in
        the file: unknown callers, False."""
        if self.module is None or function is None or (function, param) in seen:
            return False
        seen = seen | {(function, param)}
        defs = {s.name.value: s for s in self.module.body if isinstance(s, cst.FunctionDef)}
        target = defs.get(function)
        if target is None:
            return False
        names = [p.name.value for p in (*target.params.posonly_params, *target.params.params)]
        found = False
        for caller, node in defs.items():
            aliases = {function}
            for assign in nodes_of_type(node, cst.Assign):
                value = assign.value
                if (isinstance(value, cst.Call) and self._is_grad_transform(value.func) and value.args
                        and isinstance(value.args[0].value, cst.Name) and value.args[0].value.value == function):
                    aliases.update(names_of_target(assign.targets[0].target))
            for call in nodes_of_type(node, cst.Call):
                if not (isinstance(call.func, cst.Name) and call.func.value in aliases):
                    continue
                found = True
                positional = [a.value for a in call.args if a.keyword is None and not a.star]
                given = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == param), None)
                if given is None and param in names and names.index(param) < len(positional):
                    given = positional[names.index(param)]
                if isinstance(given, cst.Attribute) and given.attr.value == "apply_fn":
                    continue
                caller_params = {p.name.value for p in (*node.params.posonly_params, *node.params.params, *node.params.kwonly_params)}
                if isinstance(given, cst.Name) and given.value in caller_params and self._only_state_apply_fns(caller, given.value, seen):
                    continue
                return False
        return found

    def _built_differently(self, ctor: cst.Call) -> bool:
        """`Model(...).apply(variables, x)` becomes a call of the NNX model the variables
        belong to, which was built once, with its own arguments. If the file builds this
        model (class or factory) elsewhere with another constant for the same argument
        (say `teacher_force=True` for training, `False` for decoding), Linen ran that other
        configuration on the same weights and the call would silently run the first one:
        reported instead. Arguments are compared where both sides are literals (given, or
        a field's literal default); names such as `config.latents` are taken as equal.
        The file's calls are collected once, only when such an apply is met."""
        if self._built_with is None:
            self._built_with = {}
            for call in nodes_of_type(self.module, cst.Call) if self.module is not None else ():
                name = dotted(call.func)
                if name is not None:
                    self._built_with.setdefault(name, []).append(call)
        summary = self.models.lookup(ctor.func)
        is_class = summary is not None and (dotted(ctor.func) or "").rsplit(".", 1)[-1] == summary.name
        order = [f.name for f in summary.fields] if is_class else []
        defaults = {f.name: _literal(f.default_code) for f in summary.fields if f.default_code is not None} if is_class else {}

        def bound(call: cst.Call) -> dict:
            values = dict(defaults)
            for index, arg in enumerate(a for a in call.args if a.keyword is None and not a.star):
                values[order[index] if index < len(order) else index] = _literal(code_of(arg.value))
            values.update({arg.keyword.value: _literal(code_of(arg.value)) for arg in call.args if arg.keyword is not None})
            return values

        mine, unsure = bound(ctor), None
        for other in self._built_with.get(dotted(ctor.func), ()):
            theirs = bound(other)
            differs = [k for k in mine.keys() & theirs.keys() if mine[k] is not _UNKNOWN and theirs[k] is not _UNKNOWN and mine[k] != theirs[k]]
            if differs:
                self._stmt_stack[-1]["todos"].append((
                    f"{code_of(ctor)}.apply", f"the file also builds this model with another {differs[0]!s}; NNX has one model "
                    "holding the weights, so run this configuration on it by hand (e.g. set the differing fields on a copy)"))
                return True
            if unsure is None and _arguments_text(other) != _arguments_text(ctor):
                unsure = other
        if unsure is not None:
            # Not provably the same (`Net(config)` vs `Net(eval_config)` may differ, `model(latents)`
            # vs `model(config.latents)` may not): converted, and left for a person to check.
            self._stmt_stack[-1]["todos"].append((
                f"{code_of(ctor)}.apply", f"called as the one NNX model, which the file also builds as {code_of(unsure)}: "
                "if the two configurations differ (an eval or decode config), set the differing fields by hand"))
        return False

    def _state_read(self, node: cst.BaseExpression) -> cst.BaseExpression:
        """An expression of the original tree, with `state.params` read as `leave_Attribute`
        reads it (the expression is taken from another statement)."""
        plan = self._plan
        if plan is not None and isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.attr.value == "params":
            owner = node.value.value
            if owner == plan.state:
                return cst.parse_expression(self.rules.state_attributes["params"].format(model=plan.model_name, optimizer=plan.optimizer_name))
            if owner in plan.eager_states:
                return cst.parse_expression(self.rules.state_attributes_eager["params"].format(state=owner))
        return node

    def _bound_dict(self, name: str) -> cst.Dict | None:
        for bindings in reversed(self._dict_bindings):
            if name in bindings:
                return bindings[name]
        return None

    def _rewrite_create(self, original, updated):
        if dotted(updated.func.value) == self.helper_name and updated.args and all(a.keyword is None for a in updated.args):
            return updated  # already the helper's create(model, tx)
        model = tx = None
        problems = []
        fields = []  # the subclass's own fields, carried by the helper state
        for arg in updated.args:
            if arg.keyword is None:
                problems.append("positional TrainState.create argument")
                continue
            kind = self.rules.create_keywords.get(arg.keyword.value)
            if kind == "model" and arg.keyword.value == "params":
                model = self._model_of_variables(arg.value)
                if model is None:
                    problems.append(f"params={code_of(arg.value)} does not come from a converted `init` in this function: build the NNX model here (with rngs=) and call {self.helper_name}.create(model, tx)")
            elif kind == "tx":
                tx = arg.value
            elif kind in ("model", "drop"):
                continue
            elif kind is None and arg.keyword.value in self.carried_fields:
                held = _names_in(arg.value) & (set(self._init_results) | set(self._init_results.values()) | self._model_values)
                if held:  # converted all the same (the rest of the call is sound), and reported
                    self._stmt_stack[-1]["todos"].append(("TrainState.create", (
                        f"TrainState field `{arg.keyword.value}` is given `{', '.join(sorted(held))}`, Linen variables "
                        "from `init` that are now the NNX model: give it the arrays it needs by hand (e.g. nnx.state(model, nnx.Param))")))
                fields.append(f"{arg.keyword.value}={code_of(arg.value)}")
            else:
                problems.append(f"TrainState field `{arg.keyword.value}` has no NNX counterpart here")
        if model is None or tx is None or problems:
            for p in problems or ["TrainState.create without params= and tx="]:
                self._stmt_stack[-1]["todos"].append(("TrainState.create", p))
            return updated
        self.used_helper = self.used_nnx = self.changed = True
        return cst.parse_expression(f"{self.helper_name}.create({', '.join([model, code_of(tx), *fields])})")

    def _model_of_variables(self, node) -> str | None:
        """`params`, `variables['params']` -> the model variable init's result became."""
        sub = _subscript_key(node)
        if sub is not None:
            node = sub[0]
        if isinstance(node, cst.Name) and node.value in self._init_results:
            return self._init_results[node.value]
        if isinstance(node, cst.Name) and (node.value in self._model_values or self.flow.holds_model(self._top, node.value)):
            return node.value
        return None

    def _rewrite_apply_gradients(self, updated, plan):
        """`state.apply_gradients(grads=g, **fields)` is Linen's
        `state.apply_gradients(grads=g).replace(**fields)`: model-state fields as in
        `_rewrite_replace`, the subclass's carried fields set on the updated state."""
        grads = next((a.value for a in updated.args if a.keyword is not None and a.keyword.value == "grads"), None)
        others = [a for a in updated.args if not (a.keyword is not None and a.keyword.value == "grads")]
        carried = [a for a in others if a.keyword is not None and a.keyword.value in self.carried_fields]
        model_state = [a for a in others if a.keyword is not None and self.rules.replace_fields.get(a.keyword.value) == "drop"]
        statistics = self._model_state_updates(model_state, plan)
        if grads is None or len(carried) + len(model_state) != len(others) or statistics is None:
            self._stmt_stack[-1]["todos"].append(("apply_gradients", "only apply_gradients(grads=...) (with the TrainState subclass's own "
                                                  "fields, and batch_stats from the `mutable=` updates) is converted"))
            return updated
        update = cst.parse_statement(f"{plan.optimizer_name}.update({plan.model_name}, {code_of(grads)})\n")
        self._stmt_stack[-1]["before"].extend([update, *statistics])
        self._applied_gradients = self.changed = True
        new = cst.parse_expression(f"{plan.state}.updated({plan.model_name}, {plan.optimizer_name})")
        if carried:
            new = cst.Call(func=cst.Attribute(value=new, attr=cst.Name("replace")),
                           args=[a.with_changes(comma=cst.MaybeSentinel.DEFAULT) if i == len(carried) - 1 else a for i, a in enumerate(carried)])
        return new

    def _model_state_updates(self, args, plan) -> list | None:
        """The statements that stand for `batch_stats=<value>` given to `replace` or
        `apply_gradients` in a step, where NNX already updated the statistics in place:
        none for the `mutable=` call's own updates (`updates['batch_stats']`), an
        `nnx.update` for their `jax.lax.pmean` over devices; None (not converted) for
        any other value, which Linen would have stored and NNX would silently ignore."""
        out = []
        for arg in args:
            value = arg.value
            if self._is_model_state_update(value, arg.keyword.value):
                continue
            if (isinstance(value, cst.Call) and self._qualify(value.func) == "jax.lax.pmean" and value.args and value.args[0].keyword is None
                    and self._is_model_state_update(value.args[0].value, arg.keyword.value)):
                rest = "".join(", " + code_of(a.with_changes(comma=cst.MaybeSentinel.DEFAULT)) for a in value.args[1:])
                out.append(cst.parse_statement(
                    f"nnx.update({plan.model_name}, {code_of(value.func)}(nnx.state({plan.model_name}, nnx.BatchStat){rest}))\n"))
                self.used_nnx = True
                continue
            return None
        return out

    def _is_model_state_update(self, value, field: str) -> bool:
        """`updates['batch_stats']` (or `updates`) of a `mutable=` call the pass converted."""
        sub = _subscript_key(value)
        if sub is not None and sub[1] == field:
            value = sub[0]
        return isinstance(value, cst.Name) and value.value in self._removed_names

    def _rewrite_replace(self, original, updated, plan, owner: str | None = None):
        """`<state>.replace(...)`: `owner` None is the step's own state (`plan.state`), else a
        state the step derived from it (`new_state = state.apply_gradients(...)`) or one it
        only reads (eager)."""
        name = owner or plan.state
        fields = [a.keyword.value if a.keyword else None for a in updated.args]
        base = [f for f in fields if f in self.rules.state_attributes or f == "apply_fn"]
        if base:
            self._stmt_stack[-1]["todos"].append((f"{name}.replace", (
                f"TrainState fields {base} replaced: the NNX model and optimizer hold them and were updated in place "
                "(e.g. the is_fin rollback of dynamic loss scaling, which restores the old params and opt_state); "
                "restore them by hand (nnx.update on the model and optimizer)")))
            return updated
        if owner is not None and owner not in self._derived_states:
            # a state this step only reads: the helper state's replace sets its carried fields
            unknown = [f for f in fields if f not in self.carried_fields]
            if unknown:
                self._stmt_stack[-1]["todos"].append((f"{name}.replace", f"TrainState fields {unknown} have no NNX counterpart here"))
            return updated
        drop = [f for f in fields if self.rules.replace_fields.get(f) == "drop"]
        carried = [a for a in updated.args if a.keyword is not None and a.keyword.value in self.carried_fields]
        if not fields or len(drop) + len(carried) != len(fields):
            unknown = [f for f in fields if f not in drop and f not in self.carried_fields]
            self._stmt_stack[-1]["todos"].append((f"{name}.replace", f"TrainState fields {unknown} have no NNX counterpart here"))
            return updated
        held = {plan.model_name, plan.optimizer_name} & set().union(*(_names_in(a.value) for a in carried)) if carried else set()
        states = {plan.state, *self._derived_states, *plan.eager_states}
        held.update(code_of(node) for a in original.args if a.keyword is not None and a.keyword.value in self.carried_fields
                    for node in nodes_of_type(a.value, cst.Attribute)
                    if node.attr.value in ("params", "opt_state") and isinstance(node.value, cst.Name) and node.value.value in states)
        if held:
            self._stmt_stack[-1]["todos"].append((f"{name}.replace", (
                f"a carried TrainState field is given a value computed from `{', '.join(sorted(held))}` (Linen's params or "
                "optimizer state, now the NNX objects): compute it from nnx.state(model, nnx.Param) by hand")))
            return updated
        if not drop:
            return updated  # only carried fields: the helper state's replace sets them
        statistics = self._model_state_updates([a for a in updated.args if a.keyword is not None and a.keyword.value in drop], plan)
        if statistics is None:
            self._stmt_stack[-1]["todos"].append((f"{name}.replace", (
                f"TrainState fields {drop} given a value other than the `mutable=` call's updates (or their jax.lax.pmean): "
                "NNX updated the model's statistics in place; set them by hand (nnx.update(model, ...))")))
            return updated
        self._stmt_stack[-1]["before"].extend(statistics)
        self.changed = True
        if owner is not None or (self._applied_gradients and not self._stale_state and carried):
            # derived after the update, or the step's state after `state = state.apply_gradients(...)`:
            # it already holds the model's state
            new = cst.Name(name)
        else:
            new = cst.parse_expression(f"{plan.state}.updated({plan.model_name}, {plan.optimizer_name})")
            self._replace_calls.add(id(original))
        if carried:
            args = [a.with_changes(comma=cst.MaybeSentinel.DEFAULT) if i == len(carried) - 1 else a for i, a in enumerate(carried)]
            new = cst.Call(func=cst.Attribute(value=new, attr=cst.Name("replace")), args=args)
        return new

    def _rewrite_apply(self, original, updated, eager_owner):
        args = list(updated.args)
        positional = [a for a in args if a.keyword is None and not a.star]
        if not positional:
            return updated
        variables = positional[0].value
        entries = _dict_entries(variables)
        callee = None
        if entries is not None and "params" in entries:
            callee = entries["params"]
        elif isinstance(variables, cst.Name) and variables.value in self._init_results:
            callee = cst.Name(self._init_results[variables.value])
        elif isinstance(variables, cst.Name) and (bound := self._bound_dict(variables.value)) is not None:
            # `variables = {'params': p}` then `apply_fn(variables, x)`
            entries = _dict_entries(bound)
            if entries is None or "params" not in entries:
                self._stmt_stack[-1]["todos"].append(("apply", f"variables {code_of(variables)} not understood; call the NNX model instead"))
                return updated
            callee = self._state_read(entries["params"])
            self._consumed_dicts.add(variables.value)
        elif eager_owner is None and isinstance(variables, cst.Name):
            callee = variables  # a model passed where Linen passed its variables
        if callee is None:
            self._stmt_stack[-1]["todos"].append(("apply", f"variables {code_of(variables)} not understood; call the NNX model instead"))
            return updated
        rest = []
        mutable = False
        for a in args:
            if a is positional[0]:
                continue
            kw = a.keyword.value if a.keyword is not None else None
            action = self.rules.apply_keywords.get(kw) if kw else None
            if action == "drop":
                if kw == "mutable" and not (isinstance(a.value, cst.Name) and a.value.value == "False"):
                    mutable = True
                if kw == "rngs" and self.pmapped.intersection(self._functions):
                    self._stmt_stack[-1]["todos"].append(("rngs=", _PMAPPED_RNGS))
                continue
            if action == "method":
                method = a.value
                name = method.value if isinstance(method, cst.SimpleString) and isinstance(method.evaluated_value, str) else None
                name = method.evaluated_value if name else (method.attr.value if isinstance(method, cst.Attribute) else None)
                if name is None:
                    self._stmt_stack[-1]["todos"].append(("method=", "method given as a function object: call it on the model by hand"))
                    return updated
                callee = cst.Attribute(value=callee, attr=cst.Name(name))
                continue
            rest.append(a)
        if rest and len(rest) + 1 < len(args):
            rest[-1] = rest[-1].with_changes(comma=args[-1].comma)
        self.changed = True
        new = updated.with_changes(func=callee, args=rest)
        compact = cst.Call(func=callee, args=[cst.Arg(value=a.value, keyword=a.keyword, star=a.star, equal=_TIGHT_EQUAL if a.keyword else cst.MaybeSentinel.DEFAULT) for a in rest])
        if len(code_of(compact)) <= 60:  # what is left fits on a line: write it on one
            new = compact
        if mutable:
            self._mutable_calls.add(id(original))
        elif self.models.may_decide_mode():
            # Linen evaluated here (batch statistics immutable); the NNX model is in the mode
            # it was last put in (training, as built)
            self._stmt_stack[-1]["todos"].append(("apply", "Linen ran this call in evaluation mode (no mutable=), and the model decides "
                                                  "train/eval by its mode (is_mutable_collection in Linen): call model.eval() before it and model.train() after"))
        return new


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


def _names_in(node) -> set[str]:
    """The names a node's code reads or binds (not attribute names, not keywords)."""
    names = set()
    stack = [node]
    while stack:  # a set: order does not matter, so no (rebuilding) visit
        node = stack.pop()
        kind = type(node)
        if kind is cst.Name:
            names.add(node.value)
        elif kind is cst.Attribute or kind is cst.Arg:
            stack.append(node.value)
        else:
            stack.extend(children_in_order(node))
    return names


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
