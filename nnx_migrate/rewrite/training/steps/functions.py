"""Entering and leaving functions: a top-level function's plan, the `model, optimizer =
state.merge()` prologue, the parameter a differentiated loss now takes, dead constructions."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from nnx_migrate.rewrite.nodes import is_docstring, names_in
from nnx_migrate.rewrite.training.foreign import surgery_note
from nnx_migrate.rewrite.training.steps.common import (
    FunctionPlan,
    _dict_bindings,
    _rebinds,
    _subscript_key,
    _with_todo,
)
from nnx_migrate.rewrite.visitors import FastTransformer


class Functions:
    """Part of `TrainingTransformer`: the function-level callbacks."""

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
            optimizer = plan.optimizer_name if plan.optimizer_name in names_in(func.body) else "_"
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
        leftovers = set(self._init_results) & names_in(func.body) if self._init_results else set()
        if leftovers:
            why = f"`{', '.join(sorted(leftovers))}` held Linen variables from `init`; NNX keeps them in the model (use nnx.state(model))"
            why += surgery_note(tuple(dict.fromkeys(q for name in sorted(leftovers) for q in self._init_foreign.get(name, ()))))
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
                    target in names_in(other) for other in func.body.body if other is not stmt):
                continue
            # `variables = {'params': ..., 'batch_stats': state.batch_stats}` whose only reader,
            # an apply, became a call of the model: the dict (Linen's variables, reading state
            # fields NNX no longer has) goes with it
            if target in self._consumed_dicts and isinstance(stmt.body[0].value, cst.Dict) and not any(
                    target in names_in(other) for other in func.body.body if other is not stmt):
                continue
            body.append(stmt)
        if not body or len(body) == len(func.body.body):
            return func
        self.changed = True
        return func.with_changes(body=func.body.with_changes(body=body))
