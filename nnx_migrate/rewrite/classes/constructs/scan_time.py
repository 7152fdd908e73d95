"""Scan over time: `nn.scan` with `variable_broadcast='params'`, on a cell class or as a method's decorator.

What: the module is built once in `__init__`; each call runs its step along the sequence
with `nnx.scan`, the module itself carried through the steps (its parameters shared by
every step, as Linen broadcasts them). A decorated method (`@partial(nn.scan, ...)` on
`__call__`) becomes the step method `_call_step` and a `__call__` that scans it.

Why: Linen's scan over time makes a new module class (or method) whose parameters are
broadcast to every step. NNX transforms functions: the step is a plain method or module
call, and `nnx.scan` with `nnx.StateAxes({...: nnx.Carry})` carries the module through.

Before:
    @functools.partial(nn.transforms.scan, variable_broadcast='params', in_axes=1, out_axes=1,
                       split_rngs={'params': False})
    @nn.compact
    def __call__(self, carry, x):
        return nn.OptimizedLSTMCell(self.hidden)(carry, x)

After:
    def __call__(self, carry, x):
        return nnx.scan(lambda module, carry, x: module._call_step(carry, x),
                        in_axes=(nnx.StateAxes({...: nnx.Carry}), nnx.Carry, 1),
                        out_axes=(nnx.Carry, 1))(self, carry, x)

    def _call_step(self, carry, x):
        return self.optimized_lstm_cell_0(carry, x)

Reported: collections broadcast other than 'params', `split_rngs` that splits the
parameters' keys, options NNX does not take, axes that are not ints or `nn.broadcast`,
a scanned method that does not take `(self, carry, *xs)` as plain parameters, and a call
with keywords or without a carry.
"""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite import recurrent
from nnx_migrate.rewrite.classes.constructs.base import ModuleTransform
from nnx_migrate.rewrite.sizes import code


class ScanTime(ModuleTransform):
    title = "Scan over time (`nn.scan` with `variable_broadcast='params'`)"
    linen = frozenset(recurrent.SCAN)
    prefix = "Scan"
    bindable = True

    def matches(self, imports, transform: cst.Call) -> bool:
        return recurrent.is_time_scan(_options(transform))

    def analyse(self, conv, sub, transform, walker) -> None:
        over_time = recurrent.time_scan(conv.ctx.imports, _options(transform))
        sub.transform_options = over_time
        sub.problems += over_time.problems

    def call_source(self, rewriter, original, updated, sub):
        args = list(updated.args)
        positional = len(args) >= 2 and not any(a.keyword is not None or a.star for a in args)
        src = sub.transform_options.call_source("lambda module, carry, *xs: module(carry, *xs)", code(updated.func), code(args[0].value), [code(a.value) for a in args[1:]]) if positional else None
        if src is None:
            rewriter.conv.todo(original, f"{sub.attr}(...)", "a module scanned over time called with keywords, without a carry, or with in_axes that do not match the arguments: convert by hand")
            return updated
        # Linen's scan over time: one module, its state carried through the steps.
        # Renamed like new code: a reported axis keeps its Linen text (`nn.broadcast`
        # in out_axes), which must keep flax.linen imported and be reported there.
        return rewriter.generated(src)

    def analyse_method(self, conv, method: cst.FunctionDef) -> None:
        found = recurrent.scan_decorator(conv.ctx.imports, method)
        if found is None or not recurrent.is_time_scan(found[1]):
            return
        over_time = recurrent.time_scan(conv.ctx.imports, found[1])
        if over_time.problems:
            for why in over_time.problems:
                conv.todo(found[0], f"@nn.scan on {method.name.value}", why)
        else:
            conv.method_transforms[method.name.value] = (self, found[0], over_time)

    def rewrite_method(self, conv, decorator, options, new, config):
        split = recurrent.split_scanned_method(new, options, config)
        if split is None:
            conv.todo(decorator, f"@nn.scan on {new.name.value}", "the scanned method does not take (self, carry, *xs) as plain parameters, or in_axes do not match them: convert by hand")
            return [new.with_changes(decorators=[decorator, *new.decorators])]
        return list(split)


def _options(transform: cst.Call) -> dict[str, cst.BaseExpression]:
    return {a.keyword.value: a.value for a in transform.args[1:] if a.keyword is not None}
