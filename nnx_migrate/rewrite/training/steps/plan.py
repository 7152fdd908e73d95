"""The plan of a top-level function before the transform enters it: which train state it steps,
which inner functions are differentiated over the model, which models it builds and initializes."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from nnx_migrate.rewrite.names import dotted
from nnx_migrate.rewrite.training.dataflow import init_receiver
from nnx_migrate.rewrite.training.steps.common import (
    FunctionPlan,
    _bound_in,
    _is_state_params,
    _takes_params,
)
from nnx_migrate.rewrite.visitors import FastVisitor


class PlanFunctions:
    """Part of `TrainingTransformer`: names that qualify, and `_plan_function`."""

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
        flowing = self.state_flow.names(func) if self.state_flow is not None else None
        if flowing is not None:  # train states by data flow (states.py), not by attribute names
            step_uses = [n for n in step_uses if n in flowing]
            attrs_used = {n: used for n, used in attrs_used.items() if n in flowing}
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
