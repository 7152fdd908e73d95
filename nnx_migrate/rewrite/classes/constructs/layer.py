"""A Linen layer the API map converts (`rules/*.toml`): `nn.Dense(4)`, `nn.Conv(...)`, `nn.RNN(cell)`.

What: the layer is built in `__init__` as its NNX class with the arguments renamed as the
rule says, Linen's defaults where the libraries differ, and its input size (Linen infers
it at the first call; NNX takes it in the constructor: `in_features=`, `num_features=`),
written in terms of the class's fields and its own `__init__` size parameters. A compact
body's unnamed layer gets Linen's name in snake_case (`Dense_0` -> `self.dense_0`). A
layer built through a factory (a field `conv: ModuleDef = nn.Conv`, a local
`partial(nn.Conv, ...)`) is built by that factory. `nn.RNN(cell)` builds its cell as a
member; a recurrent cell's output size is its `features`. In a compact body Linen names
the cell as the class's own (`LSTMCell_0`): the cell is an attribute and the `nnx.RNN`,
which holds no parameters, is built where Linen calls it (`nnx.RNN(self.lstm_cell_0)(xs)`;
an attribute holding it would hold the cell twice, which NNX's tree mode rejects).

Why: NNX modules are built eagerly with every shape known; Linen builds them lazily at the
first call.

Before:
    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.features)(x)

After:
    def __init__(self, features: int, *, in_features: int, rngs: nnx.Rngs):
        self.features = features
        self.dense_0 = nnx.Linear(in_features=in_features, out_features=self.features, rngs=rngs)

    def __call__(self, x):
        return self.dense_0(x)

Reported: an argument with no NNX counterpart, `parent=`, an input size the tool cannot
derive from fields or call arguments (it becomes a constructor argument), arguments it
cannot write in `__init__` terms, and a recurrent cell called with a carry its `features`
did not make.
"""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite import recurrent
from nnx_migrate.rewrite.classes.constructs.base import SubmoduleConstruct
from nnx_migrate.rewrite.classes.context import qual_layer
from nnx_migrate.rewrite.classes.model import SubKind
from nnx_migrate.rewrite.sizes import code, scalar


class Layer(SubmoduleConstruct):
    title = "Layers of the API map (`rules/*.toml`), `nn.RNN`"
    linen = frozenset()  # every layer of rules/*.toml
    kind = SubKind.LAYER
    order = 10

    def matches(self, conv, func, qual) -> bool:
        return qual in conv.ctx.rules.layers

    def analyse(self, conv, sub, ctor, walker) -> str:
        sub.factory = conv.factory_of(ctor.func)
        sub.rule = sub.factory.rule if sub.factory is not None else conv.ctx.rules.layers[qual_layer(conv.ctx, conv.class_expr(ctor))]
        if sub.factory is not None and sub.factory.field in conv.call_time_params:
            # Linen: the caller's partial set it from the caller's call arguments; NNX: the
            # caller passes it to this module's call, which passes it on (None: as built)
            for key, param in conv.call_time_params[sub.factory.field].items():
                sub.call_kwargs[key] = param
        if sub.rule.cell_arg:
            _cell_member(conv, sub)
        return sub.rule.linen

    def built_at_call(self, conv, sub, walker) -> bool:
        return walker.origin == "compact" and bool(sub.rule.cell_arg)

    def needed_sizes(self, sub) -> list[str]:
        return [sub.rule.in_size] if sub.rule.in_size else []

    def in_sizes(self, conv, sub, call, walker, positional) -> dict:
        if sub.rule.cell_arg:
            # the cell's step input is a time slice of the sequence: the same last dimension;
            # its carry is `initial_carry=` when given
            size = scalar(walker.size_of(positional[0])) if positional else None
            carry = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == "initial_carry"), None)
            carry_size = scalar(walker.size_of(carry)) if carry is not None else None
            for member in sub.members:
                if member.kind == SubKind.LAYER:
                    member.in_sizes = {member.rule.in_size: size} if member.rule.in_size else {}
                    if (carry is not None and member.rule.initialize_carry and not member.foreign_carry
                            and not conv._own_carry(member, member.ctor, carry, walker)):
                        member.foreign_carry = True
                        member.problems.append(recurrent.FOREIGN_CARRY.format(cell=member.rule.linen, carry=code(carry)))
                elif member.kind == SubKind.CHILD:
                    member.in_sizes = {p: {0: carry_size, 1: size}.get(member.child.size_param_args.get(p)) for p in member.child.size_params}
            return {}
        if sub.rule.initialize_carry and positional and not sub.foreign_carry and not conv._own_carry(sub, call, positional[0], walker):
            sub.foreign_carry = True
            sub.problems.append(recurrent.FOREIGN_CARRY.format(cell=sub.rule.linen, carry=code(positional[0])))
        if not sub.rule.in_size:
            return {}
        idx = sub.rule.input_arg
        size = scalar(walker.size_of(positional[idx])) if idx < len(positional) else None
        return {sub.rule.in_size: size}

    def out_size(self, conv, sub, call, walker, in_size):
        if call is not None:
            positional = [a.value for a in call.args if a.keyword is None and not a.star]
            idx = sub.rule.input_arg
            in_size = scalar(walker.size_of(positional[idx])) if idx < len(positional) else None
        if sub.rule.cell_arg:
            return _rnn_out_size(conv, sub, call, in_size)
        if sub.rule.initialize_carry:
            # a recurrent cell returns (carry, output); the output has the carry's size
            return (None, None if sub.foreign_carry else _layer_out_size(sub, in_size))
        return _layer_out_size(sub, in_size)

    def init_source(self, conv, sub) -> str:
        sizes = sub.in_sizes or {}
        parts: list[str] = []
        rule = sub.rule
        if rule.in_size:
            size = sizes.get(rule.in_size)
            parts.append(f"{rule.in_size}={size if size is not None else conv.unknown_size_param(sub, rule.in_size)}")
        if rule.cell_arg:
            member = sub.members[0] if sub.members else None
            parts.append(conv.member_source(member) if member is not None and member.attr is not None else conv.ctor_source(member) if member is not None else "None")
        for key, value in sub.arg_code.items():
            if key in rule.checked:
                continue  # recurrent.rnn_problems reported what NNX does differently
            if key in rule.unsupported:
                sub.problems.append(f"Linen argument '{key}' has no NNX counterpart")
                continue
            if key == "parent":
                sub.problems.append("parent= is not supported")
                continue
            parts.append(f"{rule.rename.get(key, key)}={value}")
        for key, value in rule.defaults.items():
            if key not in sub.arg_code and not (sub.factory is not None and sub.factory.field is not None):
                # (a field's factory keeps its own presets: Linen's default is not forced on it)
                parts.append(f"{key}={value}")
        if not sub.at_call:
            # (at the call site: nnx.RNN's own carry stream, a fixed key as Linen's `init_key`)
            parts.append("rngs=rngs")
        callee = sub.factory.callee if sub.factory is not None else f"nnx.{rule.nnx_name}"
        return f"{callee}({', '.join(parts)})"


def _cell_member(conv, sub) -> None:
    """nn.RNN(cell, ...): the cell, built in the same expression, is converted as a
    member (like an nn.Sequential's); its input size is the RNN's."""
    arguments = conv._linen_kwargs(sub)
    cell = arguments.get(sub.rule.cell_arg)
    member = conv.sub_by_node.get(cell) if isinstance(cell, cst.Call) else None
    if member is None:
        sub.problems.append(f"the {sub.rule.linen}'s cell is not built in its arguments: convert by hand")
    else:
        sub.elements.append(member)
    sub.problems += recurrent.rnn_problems(arguments)


def _layer_out_size(sub, in_size):
    rule = sub.rule
    if rule.out_size == "input":
        return in_size
    if not rule.out_size:
        return None
    preset = sub.factory.preset if sub.factory is not None else {}
    if rule.out_size not in sub.arg_code and rule.out_size in preset:
        return preset[rule.out_size]
    if rule.out_size in sub.arg_code and not sub.args_unsure:
        value = sub.arg_code[rule.out_size]
        return None if value.strip() == "None" and rule.out_default != "input" else (in_size if value.strip() == "None" else value)
    if rule.out_size not in sub.arg_code and rule.out_default == "input":
        return in_size
    return None


def _rnn_out_size(conv, sub, call, in_size):
    """nn.RNN: the cell's step output size; `(carry, outputs)` with return_carry."""
    member = sub.members[0] if sub.members else None
    step = None
    if member is not None and not member.problems and member.kind == SubKind.LAYER and member.rule.initialize_carry:
        step = member.arg_code.get("features")  # Linen's cells output their hidden state
    elif member is not None and member.kind == SubKind.CHILD and isinstance(member.child.out_size, tuple) and len(member.child.out_size) == 2:
        step = conv._child_size(member, member.child.out_size[1], in_size)
    flag = sub.arg_code.get("return_carry", "False").strip()
    if call is not None:
        flag = next((code(a.value).strip() for a in call.args if a.keyword is not None and a.keyword.value == "return_carry"), flag)
    if flag == "True":
        return (None, step)
    return step if flag == "False" else None
