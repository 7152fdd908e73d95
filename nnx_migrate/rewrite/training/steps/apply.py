"""`state.apply_fn({'params': p}, x)` and `Model(...).apply(...)` -> a call of the NNX model."""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite.names import dotted
from nnx_migrate.rewrite.training.steps.common import (
    _PMAPPED_RNGS,
    _TIGHT_EQUAL,
    _UNKNOWN,
    _arguments_text,
    _dict_entries,
    _literal,
    code_of,
)
from nnx_migrate.rewrite.visitors import nodes_of_type


class ApplyCalls:
    """Part of `TrainingTransformer`: Linen's apply."""

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
        capture = self._sown_capture(args)  # sown values read back (sown.py)
        for a in args:
            if a is positional[0]:
                continue
            kw = a.keyword.value if a.keyword is not None else None
            if kw == "capture_intermediates" and capture is not None:
                continue
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
        if capture is not None:
            self._captured_calls.add(id(original))
            return self._captured_call(callee, [a.with_changes(comma=cst.MaybeSentinel.DEFAULT) if i == len(rest) - 1 else a for i, a in enumerate(rest)], capture)
        if mutable:
            self._mutable_calls.add(id(original))
        elif self.models.may_decide_mode():
            # Linen evaluated here (batch statistics immutable); the NNX model is in the mode
            # it was last put in (training, as built)
            self._stmt_stack[-1]["todos"].append(("apply", "Linen ran this call in evaluation mode (no mutable=), and the model decides "
                                                  "train/eval by its mode (is_mutable_collection in Linen): call model.eval() before it and model.train() after"))
        return new
