"""Recurrence in NNX terms: Linen's scan over time and recurrent cells' carry.

Scan over time: `nn.scan` with `variable_broadcast='params'` (the same parameters at
every step; Linen's RNN idiom, as opposed to the scan over layers, which stacks them with
`variable_axes={'params': 0}`) runs one step function along an axis of the inputs. Two
forms:
- a decorated method, `@functools.partial(nn.scan, variable_broadcast='params', ...)` on
  `def __call__(self, carry, x)`: the method body becomes the step method
  `_call_step(self, carry, x)` and `__call__` runs it with `nnx.scan`;
- a scanned class, `nn.scan(nn.LSTMCell, variable_broadcast='params', ...)(features)`: the
  cell is built once in `__init__` and every call runs it with `nnx.scan`.
Both pass the module as `nnx.StateAxes({...: nnx.Carry})` to `nnx.compat.scan`, what
`nnx.RNN` does: its state goes through the steps unchanged (Linen's broadcast), gradients
sum over the steps, and an RNG stream it holds gives each step new keys. `nnx.compat.scan`
(graph mode whatever the default) because tree mode (`NNX_GRAPH_MODE=false`, Flax's planned
default) rejects `StateAxes`, and its own spelling, the module broadcast (`None`), does not
carry the module's state changes in graph mode; the one form right in both modes, the module
inside the carry tuple, would change the call's result from `(carry, ys)` to
`((module, carry), ys)`.

Carry: Linen's `cell.initialize_carry(rng, input_shape)` is NNX's
`cell.initialize_carry(input_shape, rngs)`. The Linen idiom
`nn.LSTMCell(f, parent=None).initialize_carry(rng, shape)` builds a throwaway cell only for
its carry; the NNX cell needs its input size, which is `shape[-1]`.

Fix safety: the options this module does not know, a stream split `False` (Linen gives
every step the same key, NNX new ones) and `carry_init` (NNX draws its random numbers
differently) are reported, not guessed. Pure: no jax or flax import.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from nnx_migrate.rewrite import templates
from nnx_migrate.rewrite.rules import LayerRule
from nnx_migrate.rewrite.scan_axes import ScanAxes, scan_axes
from nnx_migrate.rewrite.sizes import code
from nnx_migrate.rewrite.visitors import FastVisitor

SCAN = {"flax.linen.scan", "flax.linen.transforms.scan"}
_PARTIAL = {"functools.partial"}
_KNOWN = {"variable_broadcast", "variable_axes", "split_rngs", "in_axes", "out_axes", "length", "reverse", "unroll"}
_PASSED_ON = ("length", "reverse", "unroll")  # same name and meaning in nnx.scan


@dataclass
class TimeScan:
    """How one scan over time runs: axes and nnx.scan options as source."""

    in_axes: ScanAxes = field(default_factory=ScanAxes)
    out_axes: ScanAxes = field(default_factory=ScanAxes)
    extra: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def call_source(self, step: str, module: str, carry: str, xs: list[str]) -> str | None:
        """`nnx.compat.scan(step, ...)(module, carry, *xs)`; None when the axes do not fit."""
        axes = self.in_axes.for_arguments(len(xs))
        if axes is None:
            return None
        in_axes = ", ".join(["nnx.StateAxes({...: nnx.Carry})", "nnx.Carry", *axes])
        extra = "".join(f", {k}={v}" for k, v in self.extra.items())
        args = ", ".join([module, carry, *xs])
        return f"nnx.compat.scan({step}, in_axes=({in_axes}), out_axes=(nnx.Carry, {self.out_axes.source}){extra})({args})"


def _compact(node: cst.BaseExpression) -> str:
    return code(node).replace(" ", "").replace('"', "'")


def _split_problems(split: cst.BaseExpression | None, where: str) -> list[str]:
    """A `split_rngs` NNX's carried RNG state matches: every stream but 'params' split."""
    if split is None:
        return []
    if not isinstance(split, cst.Dict) or any(not isinstance(e, cst.DictElement) for e in split.elements):
        return [f"{where} split_rngs is not a dict literal: convert by hand"]
    problems = []
    for element in split.elements:
        stream = _compact(element.key).strip("'")
        if stream == "params":
            continue  # NNX builds the parameters in __init__, outside the scan
        if _compact(element.value) != "True":
            problems.append(f"{where} gives every step the same '{stream}' key; NNX draws new keys per step: convert by hand")
    return problems


def rnn_problems(arguments: dict[str, cst.BaseExpression]) -> list[str]:
    """What of nn.RNN's Linen-only arguments (rules: `checked`) nnx.RNN does not do."""
    problems = []
    broadcast = arguments.get("variable_broadcast")
    if broadcast is not None and _compact(broadcast) not in ("'params'", "['params']", "('params',)"):
        problems.append("nn.RNN broadcasts collections other than 'params': convert by hand")
    return problems + _split_problems(arguments.get("split_rngs"), "nn.RNN")


def is_time_scan(options: dict[str, cst.BaseExpression]) -> bool:
    """Parameters broadcast (shared by the steps), not stacked per layer."""
    return "variable_broadcast" in options and _compact(options.get("variable_axes", templates.parse_expression("{}"))) == "{}"


def time_scan(imports, options: dict[str, cst.BaseExpression]) -> TimeScan:
    """The NNX form of `nn.scan(..., **options)` over time, with what it cannot keep."""
    scan = TimeScan()
    if _compact(options["variable_broadcast"]) not in ("'params'", "['params']", "('params',)"):
        scan.problems.append("nn.scan broadcasts collections other than 'params': convert by hand")
    scan.problems += _split_problems(options.get("split_rngs"), "nn.scan")
    for key in options:
        if key not in _KNOWN:
            scan.problems.append(f"nn.scan option '{key}' is not converted")
    scan.in_axes = scan_axes(imports, options.get("in_axes"), "in_axes")
    scan.out_axes = scan_axes(imports, options.get("out_axes"), "out_axes")
    scan.problems += [*scan.in_axes.problems, *scan.out_axes.problems]
    for key in _PASSED_ON:
        if key in options:
            scan.extra[key] = code(options[key])
    return scan


def scan_decorator(imports, method: cst.FunctionDef) -> tuple[cst.Decorator, dict[str, cst.BaseExpression]] | None:
    """`@functools.partial(nn.scan, **options)` on a method: the decorator and its options."""
    for decorator in method.decorators:
        call = decorator.decorator
        if (
            isinstance(call, cst.Call) and imports.qualify(call.func) in _PARTIAL
            and call.args and call.args[0].keyword is None and imports.qualify(call.args[0].value) in SCAN
        ):
            options = {a.keyword.value: a.value for a in call.args[1:] if a.keyword is not None}
            if any(a.keyword is None for a in call.args[1:]):
                options["<positional>"] = call.args[1].value
            return decorator, options
    return None


def step_name(method: str) -> str:
    return f"_{method.strip('_')}_step"


def split_scanned_method(method: cst.FunctionDef, scan: TimeScan, config) -> tuple[cst.FunctionDef, cst.FunctionDef] | None:
    """The converted step method -> (`name` running the steps with nnx.scan, `_name_step`).
    None when the signature is not `(self, carry, *xs)` with plain parameters."""
    params = method.params
    if params.star_arg is not cst.MaybeSentinel.DEFAULT or params.kwonly_params or params.star_kwarg or params.posonly_params:
        return None
    names = [p.name.value for p in params.params]
    if len(names) < 3 or names[0] != "self" or any(p.default is not None for p in params.params):
        return None
    carry, xs = names[1], names[2:]
    step = step_name(method.name.value)
    lambda_src = f"lambda module, {', '.join([carry, *xs])}: module.{step}({', '.join([carry, *xs])})"
    call = scan.call_source(lambda_src, "self", carry, xs)
    if call is None:
        return None
    body = cst.parse_module(f"def f():\n    return {call}\n", config=config).body[0].body
    wrapper = method.with_changes(body=body)
    step_def = method.with_changes(
        name=cst.Name(step), decorators=[], returns=None,
        leading_lines=[cst.EmptyLine(indent=False)],
    )
    return wrapper, step_def


def is_parent_none(ctor: cst.Call) -> bool:
    return any(a.keyword is not None and a.keyword.value == "parent" and code(a.value).strip() == "None" for a in ctor.args)


def throwaway_cell(rule: LayerRule, ctor: cst.Call, rng: str, shape_node: cst.BaseExpression) -> tuple[str | None, list[str]]:
    """`Cell(f, parent=None).initialize_carry(rng, shape)` -> NNX source, and problems."""
    shape = code(shape_node)
    shape_is_atom = isinstance(shape_node, (cst.Name, cst.Attribute, cst.Subscript, cst.Call)) or bool(getattr(shape_node, "lpar", None))
    problems: list[str] = []
    values: dict[str, str] = {}
    positional = 0
    for arg in ctor.args:
        if arg.star:
            return None, ["*args/**kwargs in a cell construction"]
        if arg.keyword is None:
            if positional >= len(rule.linen_args):
                return None, ["more positional arguments than the cell takes"]
            values[rule.linen_args[positional]] = code(arg.value)
            positional += 1
        elif arg.keyword.value not in ("parent", "name"):
            values[arg.keyword.value] = code(arg.value)
    if "carry_init" in values:
        problems.append("carry_init: NNX draws the carry's random numbers differently from Linen (equal only for constant initializers)")
    parts = [f"{rule.in_size}={shape if shape_is_atom else f'({shape})'}[-1]"] if rule.in_size else []
    for key, value in values.items():
        if key in rule.unsupported:
            problems.append(f"Linen argument '{key}' has no NNX counterpart")
            continue
        parts.append(f"{rule.rename.get(key, key)}={value}")
    parts += [f"{k}={v}" for k, v in rule.defaults.items() if k not in values]
    # The throwaway cell's parameters are never used: any key builds it.
    parts.append("rngs=nnx.Rngs(0)")
    return f"nnx.{rule.nnx_name}({', '.join(parts)}).initialize_carry({shape}, nnx.Rngs({rng}))", problems


# Linen's recurrent cells take their hidden size from the carry they are called with
# (`hidden_features = h.shape[-1]` in `LSTMCell.__call__`): `features` only sizes
# `initialize_carry`. NNX cells fix `hidden_features` in the constructor. The two agree
# only when the carry is one the cell's `features` made.
FOREIGN_CARRY = ("Linen's {cell} takes its hidden size from the carry it is called with, not from `features`; "
                 "this carry ({carry}) comes from outside the cell: set hidden_features to the carry's size by hand "
                 "(the output size after the cell is left to you too)")


def carry_made_by_features(ctor: cst.Call, callee: cst.BaseExpression, rule: LayerRule, carry: cst.BaseExpression,
                           method: cst.FunctionDef, class_methods, same_layer) -> bool:
    """Whether the carry a directly called cell `ctor` gets is one its own `features` made:
    a local bound to `initialize_carry` of this cell (`callee`, what the call calls), of a
    throwaway cell with the same features, or (the Linen idiom of a cell wrapper) the class defines `initialize_carry`
    with a throwaway cell of the same features, so its callers' carries have that size.
    `same_layer(func)` tells whether a class expression is this cell's Linen class."""
    features = _features_code(ctor, rule)
    if features is None:
        return False

    def made_here(call: cst.BaseExpression) -> bool:
        if not (isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute) and call.func.attr.value == "initialize_carry"):
            return False
        receiver = call.func.value
        if isinstance(receiver, cst.Call) and is_parent_none(receiver):
            return same_layer(receiver.func) and _features_code(receiver, rule) == features
        return False

    if isinstance(carry, cst.Name):
        for stmt in _small_statements(method.body):
            if (isinstance(stmt, cst.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0].target, cst.Name)
                    and stmt.targets[0].target.value == carry.value):
                call = stmt.value
                if made_here(call):
                    return True
                if isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute) and call.func.attr.value == "initialize_carry" \
                        and code(call.func.value).strip() == code(callee).strip():
                    return True
    for other in class_methods:
        if other.name.value == "initialize_carry" and any(made_here(s.value) for s in _returns(other.body)):
            return True
    return False


def _features_code(ctor: cst.Call, rule: LayerRule) -> str | None:
    positional = [a for a in ctor.args if a.keyword is None and not a.star]
    if positional and rule.linen_args and rule.linen_args[0] == "features":
        return code(positional[0].value).strip()
    found = next((a.value for a in ctor.args if a.keyword is not None and a.keyword.value == "features"), None)
    return code(found).strip() if found is not None else None


def _small_statements(node: cst.CSTNode):
    out = []

    class Collect(FastVisitor):
        def visit_SimpleStatementLine(self, line):
            out.extend(line.body)

        def visit_FunctionDef(self, inner):
            return inner is node  # not nested functions

    Collect().walk(node)
    return out


def _returns(node: cst.CSTNode):
    return [s for s in _small_statements(node) if isinstance(s, cst.Return) and s.value is not None]
