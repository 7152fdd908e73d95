"""Expressions: `state.params`/`state.step` reads, gradient transforms over the model, and the
calls that the other parts rewrite (create, apply, apply_gradients, replace), dispatched."""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite.edits import NNX, Place
from nnx_migrate.rewrite.names import dotted
from nnx_migrate.rewrite.training import param_grad
from nnx_migrate.rewrite.training.dataflow import names_of_target
from nnx_migrate.rewrite.training.steps.common import (
    _FOREIGN_GRAD,
    FunctionPlan,
    _dict_entries,
    _lambda_takes_params,
    _takes_params,
    code_of,
)
from nnx_migrate.rewrite.visitors import nodes_of_type


class Calls:
    """Part of `TrainingTransformer`: the expression-level callbacks."""

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
            if plan is None and self._depth == 0 and self._stmt_stack and owner in self._module_states():
                return self._module_state_attribute(owner, attr, updated)
        if self.helper_name and self._qualify(original) in self.rules.train_state_classes:
            self.used_helper = self.changed = True
            return cst.Name(self.helper_name)
        return updated

    def _module_states(self) -> set[str]:
        """Names of module-level code (an `if __name__ == '__main__':` block included) that
        hold a train state, by data flow (states.py)."""
        if self.state_flow is None or self.module is None or not self.knows_train_state:
            return set()
        return self.state_flow.names(self.module)

    def _module_state_attribute(self, owner: str, attr: str, updated):
        """`state.step` / `state.params` / ... read at module level: the eager form (through
        the helper state's properties), as in a function that only reads the state. Any other
        TrainState attribute there (`apply_fn`, `apply_gradients`, `batch_stats`) has no
        form outside a step: marked and reported."""
        if attr in self.rules.state_attributes_eager:
            self.changed = True
            return cst.parse_expression(self.rules.state_attributes_eager[attr].format(state=owner))
        if attr in self.rules.state_attribute_names and attr != "replace":  # the helper's replace sets carried fields
            self._stmt_stack[-1]["todos"].append((f"{owner}.{attr}", (
                f"`{owner}.{attr}` of a converted TrainState used at module level: the NNX state holds the model and "
                f"optimizer (`{owner}.model`, `{owner}.optimizer`); move this into a function or rewrite it by hand")))
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
                self.edits.remove_linen_if_unused()  # (nn.apply, converted)
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
                self.edits.add_import(NNX, Place.AFTER_IMPORTS)
                self.changed = True
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
