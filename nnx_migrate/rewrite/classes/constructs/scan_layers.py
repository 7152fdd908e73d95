"""Scan over layers: `nn.scan(Block, variable_axes={'params': 0}, split_rngs={'params': True}, length=n)`.

What: the `n` layers are built in `__init__` with `nnx.vmap` (one init key per layer, the
parameters stacked on axis 0, as Linen stacks them) and each call runs them with
`nnx.scan`, the carry going through the layers and the other outputs stacked. A stack
built in `setup()` (`self.stack = nn.scan(Block, ...)(features)`, or through a local bound
once there) is built the same way, and every call `self.stack(carry, ...)` runs through
`nnx.scan`.

Why: Linen's scan over layers is a new module class that holds every layer's parameters
in one stacked array. NNX builds the stacked module with `nnx.vmap` and runs it with
`nnx.scan` over the module's layer axis: the same parameters and the same numbers.

Before:
    ScanBlock = nn.scan(Block, variable_axes={'params': 0}, split_rngs={'params': True}, length=self.num_layers)
    y, _ = ScanBlock(self.features)(x, None)

After:
    # __init__
    self.scan_block_0 = nnx.split_rngs(splits=self.num_layers)(nnx.vmap(
        lambda rngs: Block(features=self.features, in_features=in_features, rngs=rngs), in_axes=0, out_axes=0))(rngs)
    # __call__
    y, _ = nnx.scan(lambda carry, module, *xs: module(carry, *xs), in_axes=(nnx.Carry, 0, 0),
                    out_axes=(nnx.Carry, 0))(x, self.scan_block_0, None)

Reported: `variable_axes` other than `{'params': 0}`, `split_rngs` other than
`{'params': True}` (dropout may be split too), other options, no `length=` or a length
that call arguments decide, axes that are not ints or `nn.broadcast` (and a broadcast
output), and a call with keywords, without a carry or with in_axes that do not match its
arguments. A scan that is not converted is reported at its construction and at each
call (a direct call would run a single layer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from nnx_migrate.rewrite import recurrent
from nnx_migrate.rewrite.classes.constructs.base import ModuleTransform
from nnx_migrate.rewrite.scan_axes import ScanAxes, scan_axes
from nnx_migrate.rewrite.sizes import NotStatic, code, translate_static


@dataclass
class LayerScan:
    in_axes: ScanAxes
    out_axes: ScanAxes
    length: str | None = None  # as `__init__` source
    # what keeps this scan from being built and run in NNX terms; the submodule's other
    # problems (an input size that became a constructor argument) leave the scan convertible
    problems: list[str] = field(default_factory=list)


class ScanLayers(ModuleTransform):
    title = "Scan over layers (`nn.scan` with `variable_axes={'params': 0}`)"
    linen = frozenset({"flax.linen.scan", "flax.linen.transforms.scan"})
    prefix = "Scan"
    bindable = True

    def matches(self, imports, transform: cst.Call) -> bool:
        return not recurrent.is_time_scan(_options(transform))

    def analyse(self, conv, sub, transform, walker) -> None:
        # The form NNX builds with vmap and runs with scan: parameters stacked on axis 0,
        # one init key per layer, a static length.
        options = _options(transform)
        problems: list[str] = []
        compact = lambda node: code(node).replace(" ", "").replace('"', "'")  # noqa: E731
        if compact(options.get("variable_axes", cst.Name("None"))) != "{'params':0}":
            problems.append("nn.scan with variable_axes other than {'params': 0}: convert by hand (nnx.vmap to build, nnx.scan to run)")
        split = compact(options.get("split_rngs", cst.Name("None")))
        if split not in ("{'params':True}", "{'params':True,'dropout':True}"):
            problems.append("nn.scan with split_rngs other than {'params': True}: convert by hand")
        for key in options:
            if key not in ("variable_axes", "split_rngs", "length", "in_axes", "out_axes"):
                problems.append(f"nn.scan option '{key}' is not converted")
        length = None
        if "length" not in options:
            problems.append("nn.scan without length=: convert by hand")
        else:
            try:
                length = translate_static(options["length"], walker.scope)
            except NotStatic as exc:
                problems.append(f"nn.scan length {exc}")
        axes = {key: scan_axes(conv.ctx.imports, options.get(key), key) for key in ("in_axes", "out_axes")}
        for found in axes.values():
            problems += found.problems
        sub.transform_options = LayerScan(axes["in_axes"], axes["out_axes"], length, problems)
        sub.problems += problems

    def init_source(self, sub, built: str) -> str:
        length = sub.transform_options.length
        if length is None:
            return built
        # one layer per key: nnx.vmap stacks the parameters on axis 0, as nn.scan does
        return f"nnx.split_rngs(splits={length})(nnx.vmap(lambda rngs: {built}, in_axes=0, out_axes=0))(rngs)"

    def call_source(self, rewriter, original, updated, sub):
        scan: LayerScan = sub.transform_options
        if scan.problems:
            # built without the stack (reported at the construction): a direct call would
            # run a single layer, so the call site is reported too
            rewriter.conv.todo(original, f"{sub.attr}(...)", "the nn.scan over layers is not converted (see its construction): run it with nnx.scan by hand")
            return updated
        args = list(updated.args)
        if not args or any(a.keyword is not None or a.star for a in args):
            rewriter.conv.todo(original, f"{sub.attr}(...)", "a scanned module called with keywords or without a carry: convert by hand")
            return updated
        xs = [code(a.value) for a in args[1:]]
        axes = scan.in_axes.for_arguments(len(xs))
        if axes is None:
            rewriter.conv.todo(original, f"{sub.attr}(...)", "nn.scan in_axes do not match the call's arguments")
            return updated
        in_spec = ", ".join(["nnx.Carry", "0", *axes])
        call_args = ", ".join([code(args[0].value), code(updated.func), *xs])
        # Linen's scan over layers: carry through the stacked layers, outputs stacked.
        return rewriter.generated(
            f"nnx.scan(lambda carry, module, *xs: module(carry, *xs), in_axes=({in_spec}), out_axes=(nnx.Carry, {scan.out_axes.source}))({call_args})"
        )


def _options(transform: cst.Call) -> dict[str, cst.BaseExpression]:
    return {a.keyword.value: a.value for a in transform.args[1:] if a.keyword is not None}
