"""`nn.Sequential([...])` of layers, submodules and functions.

What: `nnx.Sequential(...)` of the same members, built in `__init__`; each layer member is
sized by the previous member's output (functions that keep the last axis, `nn.relu`, pass
the size on). Built in `setup`, the members are Sequential's own (`body/layers_0`); built in
a compact body, Linen names them as the class's own submodules (`Dense_0`), so they stay
attributes and the `nnx.Sequential` is built where Linen calls it, from those attributes
(`x = nnx.Sequential(self.dense_0, nnx.relu)(x)`; an attribute holding it would hold each
layer twice, which NNX's tree mode rejects).

Why: NNX has the same container; only the members' input sizes, which Linen infers at the
first call, must be written out in `__init__`.

Before:
    self.body = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(2)])

After:
    self.body = nnx.Sequential(nnx.Linear(in_features=in_features, out_features=8, rngs=rngs), nnx.relu,
                               nnx.Linear(in_features=8, out_features=2, rngs=rngs))

Reported: a member that is neither a layer the tool converts nor a function it knows, and
an argument that is not a literal list or tuple.
"""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite.classes.constructs.base import SubmoduleConstruct
from nnx_migrate.rewrite.classes.model import Sub, SubKind
from nnx_migrate.rewrite.sizes import code, scalar


class Sequential(SubmoduleConstruct):
    title = "`nn.Sequential`"
    linen = frozenset({"flax.linen.Sequential"})
    kind = SubKind.SEQUENTIAL
    order = 20
    checks_members = True

    def analyse(self, conv, sub, ctor, walker) -> str:
        seq = ctor.args[0].value if ctor.args else None
        if isinstance(seq, (cst.List, cst.Tuple)):
            for el in seq.elements:
                if isinstance(el.value, cst.Call) and conv.construction_kind(el.value) in (SubKind.LAYER, SubKind.CHILD):
                    sub.elements.append(conv.sub_by_node[el.value])
                elif conv.ctx.imports.qualify(el.value) in conv.ctx.rules.renames or conv.ctx.imports.qualify(el.value) in conv.ctx.rules.keep_last_dim:
                    sub.elements.append(el.value)  # a function: nnx.Sequential calls it as is
                else:
                    sub.problems.append("an nn.Sequential member is not a layer the tool knows")
        else:
            sub.problems.append("nn.Sequential takes a list the tool cannot read")
        return "Sequential"

    def in_sizes(self, conv, sub, call, walker, positional) -> dict:
        size = scalar(walker.size_of(positional[0])) if positional else None
        for member in sub.elements:
            if not isinstance(member, Sub):
                size = conv._function_size(member, size)
                continue
            if member.kind == SubKind.LAYER and member.rule.in_size:
                member.in_sizes = {member.rule.in_size: size}
            elif member.kind == SubKind.CHILD:
                member.in_sizes = {p: (size if member.child.size_param_args.get(p) == 0 else None) for p in member.child.size_params}
            else:
                member.in_sizes = {}
            size = conv.out_size(member, None, walker, in_size=size)
        return {}

    def out_size(self, conv, sub, call, walker, in_size):
        size = self.first_input_size(call, walker, in_size)
        for member in sub.elements:
            size = conv.out_size(member, None, walker, in_size=size) if isinstance(member, Sub) else conv._function_size(member, size)
        return size

    def built_at_call(self, conv, sub, walker) -> bool:
        return walker.origin == "compact"

    def init_source(self, conv, sub) -> str:
        members = ", ".join(
            (conv.member_source(m) if m.attr is not None else conv.ctor_source(m)) if isinstance(m, Sub) else code(m)
            for m in sub.elements
        )
        return f"nnx.Sequential({members})"
