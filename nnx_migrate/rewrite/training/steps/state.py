"""The train state: `TrainState.create(...)` -> the helper's `create(model, tx)`,
`state.apply_gradients(grads=g)` -> `optimizer.update(model, g)`, `state.replace(...)`."""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite.edits import NNX, Place
from nnx_migrate.rewrite.names import dotted
from nnx_migrate.rewrite.nodes import names_in
from nnx_migrate.rewrite.training.steps.common import _subscript_key, code_of
from nnx_migrate.rewrite.visitors import nodes_of_type


class StateUpdates:
    """Part of `TrainingTransformer`: create, apply_gradients, replace."""

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
                held = names_in(arg.value) & (set(self._init_results) | set(self._init_results.values()) | self._model_values)
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
        self.edits.add_import(NNX, Place.AFTER_IMPORTS)
        self.used_helper = self.changed = True
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
                self.edits.add_import(NNX, Place.AFTER_IMPORTS)
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
        held = {plan.model_name, plan.optimizer_name} & set().union(*(names_in(a.value) for a in carried)) if carried else set()
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
