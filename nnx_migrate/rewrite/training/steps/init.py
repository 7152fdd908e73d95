"""`variables = model.init(key, x)` -> `model = Model(..., in_features=..., rngs=nnx.Rngs(key))`,
and a model built in one function and initialized in another made a factory."""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite.edits import FUNCTOOLS, NNX, Place
from nnx_migrate.rewrite.training.dataflow import init_receiver
from nnx_migrate.rewrite.training.foreign import lazily_initialised
from nnx_migrate.rewrite.training.steps.common import (
    FunctionPlan,
    _dict_entries,
    _static_last_dim,
    _subscript_key,
    code_of,
)


class InitSites:
    """Part of `TrainingTransformer`: the `init` sites."""

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
        new_ctor = cst.parse_expression(lazily_initialised(f"{code_of(ctor.func)}({', '.join(args)})", summary, value))
        self._init_results[assign.targets[0].target.value] = model_var
        self._init_foreign[assign.targets[0].target.value] = getattr(summary, "foreign", ())
        self.edits.add_import(NNX, Place.AFTER_IMPORTS)
        self.changed = True
        return cst.Assign(targets=[cst.AssignTarget(target=cst.Name(model_var))], value=new_ctor)

    def _factory_site(self, assign: cst.Assign) -> cst.Assign | None:
        """`model = Net(f)` whose model is initialized in another function ->
        `model = functools.partial(Net, f)` (dataflow.py)."""
        target = assign.targets[0].target if len(assign.targets) == 1 else None
        if not (isinstance(target, cst.Name) and self.flow.is_factory_site(self._top, target.value) and isinstance(assign.value, cst.Call)):
            return None
        call = assign.value
        first = cst.Arg(value=call.func, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")) if call.args else cst.MaybeSentinel.DEFAULT)
        self.edits.add_import(FUNCTOOLS, Place.AFTER_IMPORTS)
        self.changed = True
        return assign.with_changes(value=call.with_changes(func=cst.parse_expression("functools.partial"), args=[first, *call.args]))
