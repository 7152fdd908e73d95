"""What a `jax.pmap` program does with devices, for `--pmap jit` (data_parallel.py):
its pmap sites and axis names, the functions they run, and every reason the program
cannot become a `jax.jit` program with the same numbers (`Plan.reasons`). No jax or flax."""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from nnx_migrate.rewrite.lines import render
from nnx_migrate.rewrite.names import ImportMap, dotted
from nnx_migrate.rewrite.nodes import string_value
from nnx_migrate.rewrite.training.pmapped import pmapped_functions
from nnx_migrate.rewrite.visitors import FastVisitor

PMAP = "jax.pmap"
PARTIALS = ("functools.partial",)
PMEAN = ("jax.lax.pmean",)
COLLECTIVES = ("psum", "pmax", "pmin", "all_gather", "axis_index", "ppermute", "all_to_all", "psum_scatter", "pshuffle", "pswapaxes", "pbroadcast", "axis_size")
REPLICATE = ("flax.jax_utils.replicate", "jax.device_put_replicated")
UNREPLICATE = ("flax.jax_utils.unreplicate",)
SHARD = ("flax.training.common_utils.shard",)
GET_METRICS = ("flax.training.common_utils.get_metrics",)
PREFETCH = ("flax.jax_utils.prefetch_to_device",)
PER_DEVICE = {
    "flax.training.common_utils.shard_prng_key": "per-device keys (shard_prng_key)",
    "flax.jax_utils.pad_shard_unpad": "pad_shard_unpad",
    "jax.device_put_sharded": "arrays placed per device (device_put_sharded)",
}
DEVICE_COUNTS = ("jax.local_device_count", "jax.device_count")
# pmap options a jit step keeps (renamed), and those that make the axis mean nothing to jit
# (`in_axes`/`out_axes` of 0 and None both become the whole array under jit).
RENAMED = {"static_broadcasted_argnums": "static_argnums", "donate_argnums": "donate_argnums"}
DROPPED = ("axis_name", "in_axes", "out_axes")
STATE_METHODS = ("updated", "apply_gradients", "replace")

MESH_NAMES = ("DATA_MESH", "REPLICATED", "BATCH_SHARDED")


@dataclass
class Site:
    node: cst.CSTNode  # the decorator or the `jax.pmap(...)` call
    call: cst.Call | None  # None: bare `@jax.pmap`
    function: str | None  # the name of the function it runs, where one is named
    options: dict[str, cst.BaseExpression] = field(default_factory=dict)


@dataclass
class Plan:
    sites: list[Site] = field(default_factory=list)
    axes: set[str] = field(default_factory=set)
    reasons: list[tuple[cst.CSTNode, str]] = field(default_factory=list)
    pmapped: set[str] = field(default_factory=set)  # names of functions run under pmap
    callables: dict[str, str | None] = field(default_factory=dict)  # dotted name bound to a pmapped function -> its name
    tuples: set[str] = field(default_factory=set)  # callables whose function returns a tuple
    device_counts: set[str] = field(default_factory=set)  # dotted names bound to device counts


def plan_of(module: cst.Module, imports: ImportMap) -> Plan:
    plan = Plan()
    plan.pmapped = pmapped_functions(module, imports)
    defs: dict[str, cst.FunctionDef] = {}

    def is_partial_pmap(node) -> bool:
        return (isinstance(node, cst.Call) and imports.qualify(node.func) in PARTIALS and bool(node.args)
                and imports.qualify(node.args[0].value) == PMAP)

    class Find(FastVisitor):
        def visit_FunctionDef(self, node):
            defs.setdefault(node.name.value, node)
            for dec in node.decorators:
                if imports.qualify(dec.decorator) == PMAP:
                    plan.sites.append(Site(dec, None, node.name.value))
                    plan.callables[node.name.value] = node.name.value
                elif is_partial_pmap(dec.decorator):
                    plan.sites.append(Site(dec, dec.decorator, node.name.value, _options(dec.decorator.args[1:], ())))
                    plan.callables[node.name.value] = node.name.value

        def visit_Assign(self, node):
            value = node.value
            if isinstance(value, cst.Call) and imports.qualify(value.func) == PMAP:
                plan.callables.update({n: _function_of(value) for t in node.targets if (n := dotted(t.target))})
            if isinstance(value, cst.Call) and imports.qualify(value.func) in DEVICE_COUNTS:
                plan.device_counts.update(n for t in node.targets if (n := dotted(t.target)))

        def visit_Call(self, node):
            name = imports.qualify(node.func)
            if name == PMAP:
                plan.sites.append(Site(node, node, _function_of(node), _options(node.args[1:], ("axis_name",))))
            elif name in PER_DEVICE:
                plan.reasons.append((node, PER_DEVICE[name]))
            elif name in PREFETCH and not (len(node.args) == 2 and all(a.keyword is None for a in node.args)):
                plan.reasons.append((node, "prefetch_to_device onto chosen devices"))
            elif name is not None and name.startswith("jax.lax.") and name.rpartition(".")[2] in COLLECTIVES:
                plan.reasons.append((node, f"`{name}` (a collective jit has no axis for)"))
            elif name is not None and name.endswith(("tree.map", "tree_map")) and any(_device_index(a.value) for a in node.args):
                plan.reasons.append((node, "`lambda x: x[0]` over a tree (a hand-written unreplicate, or another first element?)"))
            elif name is not None and name.endswith(".vmap") and any(a.keyword and a.keyword.value in ("axis_name", "spmd_axis_name") for a in node.args):
                plan.reasons.append((node, "a vmap with a named axis beside the pmap axis"))

    Find().walk(module)
    for site in plan.sites:
        _check_site(site, plan)
    _check_axis_uses(module, imports, plan)
    _check_steps(defs, imports, plan)
    _check_device_reshapes(module, plan)
    for name in sorted(plan.pmapped | {site.function for site in plan.sites} - {None}):
        if name in defs:
            _check_ratios(defs[name], plan)
    taken = {n.value for n in all_names(module)}
    if taken & set(MESH_NAMES):
        plan.reasons.append((module, f"the names {', '.join(MESH_NAMES)} are taken"))
    return plan


def _options(args, positional: tuple[str, ...]) -> dict[str, cst.BaseExpression]:
    found = {}
    for i, arg in enumerate(args):
        if arg.keyword is not None:
            found[arg.keyword.value] = arg.value
        elif arg.star:
            found["*"] = arg.value
        elif i < len(positional):
            found[positional[i]] = arg.value
        else:
            found[f"#{i}"] = arg.value
    return found


def _check_site(site: Site, plan: Plan) -> None:
    if site.call is not None and site.call is site.node and not (site.call.args and site.call.args[0].keyword is None):
        plan.reasons.append((site.node, "jax.pmap without the function as its first argument"))
    axis = site.options.get("axis_name")
    if axis is None:
        pass  # no named axis: no collective in the step to replace
    elif string_value(axis) is None:
        plan.reasons.append((site.node, "an axis_name that is not a string literal"))
    else:
        plan.axes.add(string_value(axis))
    for key, value in site.options.items():
        if key in DROPPED or key in RENAMED:
            if key in ("in_axes", "out_axes") and not _zero_or_none(value):
                plan.reasons.append((site.node, f"pmap's {key}={render(value).strip()} (only 0 and None map to a jit step)"))
            continue
        plan.reasons.append((site.node, f"pmap option `{key}` (no jax.jit counterpart)"))


def _zero_or_none(node: cst.BaseExpression) -> bool:
    if isinstance(node, (cst.Tuple, cst.List)):
        return all(_zero_or_none(e.value) for e in node.elements)
    return (isinstance(node, cst.Integer) and node.value == "0") or (isinstance(node, cst.Name) and node.value == "None")


def _check_axis_uses(module: cst.Module, imports: ImportMap, plan: Plan) -> None:
    """`axis_name=A` outside pmap and BatchNorm (a DynamicScale's averaging, a layer's
    cross-device reduction) and BatchNorm without it (per-device statistics)."""

    class Find(FastVisitor):
        def visit_Call(self, node):
            name = imports.qualify(node.func) or ""
            target = node
            if name in PARTIALS and node.args:
                target_name = imports.qualify(node.args[0].value) or ""
                if target_name.endswith(".BatchNorm") or target_name == PMAP:
                    name = target_name
            if name == PMAP or name.startswith("jax.lax."):
                return
            axis = next((a.value for a in target.args if a.keyword and a.keyword.value == "axis_name"), None)
            if name.endswith(".BatchNorm"):
                if axis is None or string_value(axis) not in plan.axes:
                    plan.reasons.append((node, "BatchNorm with per-device statistics (no axis_name of the pmap axis): under jax.jit it normalizes over the whole batch"))
            elif axis is not None and string_value(axis) in plan.axes and not averaging_grad(node):
                plan.reasons.append((node, f"`{dotted(node.func) or 'a call'}(axis_name=...)` averaging across devices"))

    Find().walk(module)


def averaging_grad(call: cst.Call) -> bool:
    """`dynamic_scale.value_and_grad(f, axis_name=A)`: gradients averaged across devices
    (flax's DynamicScale), which under jit are the whole batch's without the axis."""
    return isinstance(call.func, cst.Attribute) and call.func.attr.value == "value_and_grad"


def _check_steps(defs: dict[str, cst.FunctionDef], imports: ImportMap, plan: Plan) -> None:
    """Each function pmap runs directly: it averages across devices if it updates a state,
    and returns only values that are the same on every device."""
    for site in plan.sites:
        if site.function not in defs and not _averaging_lambda(site, imports):
            plan.reasons.append((site.node, "a pmapped function this file does not define (whether its results are the same on every device is not known)"))
    plan.tuples.update(c for c, f in plan.callables.items() if f in defs and any(isinstance(r, cst.Tuple) for r in _returns(defs[f])))
    direct = {site.function for site in plan.sites} - {None}
    for name in sorted(direct & set(defs)):
        func = defs[name]
        averages = any(_calls(defs[f], imports, PMEAN) for f in plan.pmapped if f in defs)
        if not averages and _updates_state(func):  # the reason that matters most: named first
            plan.reasons.insert(0, (func, f"`{name}` updates a state but averages nothing across devices (each device trains its own copy; jax.jit would train one)"))
        for ret in _returns(func):
            for value in _tuple_items(ret):
                if not _replicated(value, func, defs, imports, plan, set()):
                    plan.reasons.append((ret, f"`{name}` returns `{render(value).strip()}` per device (jax.jit returns one value for the whole batch)"))


def _averaging_lambda(site: Site, imports: ImportMap) -> bool:
    """`jax.pmap(lambda x: jax.lax.pmean(x, 'i'), 'i')`, a cross-device average."""
    fun = site.call.args[0].value if site.call is not None and site.call.args else None
    return isinstance(fun, cst.Lambda) and isinstance(fun.body, cst.Call) and imports.qualify(fun.body.func) in PMEAN


def _device_index(node: cst.BaseExpression) -> bool:
    """`lambda x: x[0]`"""
    return (isinstance(node, cst.Lambda) and isinstance(node.body, cst.Subscript) and len(node.body.slice) == 1
            and isinstance(node.body.slice[0].slice, cst.Index) and render(node.body.slice[0].slice.value).strip() == "0")


def _function_of(call: cst.Call) -> str | None:
    """The function `jax.pmap(f, ...)` / `jax.pmap(functools.partial(f, ...), ...)` /
    `jax.pmap(lambda ...: f(...))` runs."""
    fun = call.args[0].value if call.args and call.args[0].keyword is None else None
    if isinstance(fun, cst.Lambda):
        fun = fun.body.func if isinstance(fun.body, cst.Call) else None
    while isinstance(fun, cst.Call) and fun.args:
        fun = fun.args[0].value
    name = dotted(fun) if fun is not None else None
    return name.rpartition(".")[2] if name else None


def _replicated(value, func, defs, imports, plan, seen) -> bool:
    """Whether a returned value is the same on every device: a pmean over the pmap axis,
    the state (a parameter, or what its update methods return), a call of a function
    whose results are, or a name last bound to one of those."""
    if isinstance(value, cst.Call):
        if imports.qualify(value.func) in PMEAN:
            return True
        if isinstance(value.func, cst.Attribute) and value.func.attr.value in STATE_METHODS:
            return True
        callee = dotted(value.func)
        if callee in defs and callee not in seen:
            seen.add(callee)
            return all(_replicated(v, defs[callee], defs, imports, plan, seen) for r in _returns(defs[callee]) for v in _tuple_items(r))
        return False
    if isinstance(value, cst.Name):
        if value.value in {p.name.value for p in func.params.params}:
            return True
        bound = _bindings(func, value.value)
        return bool(bound) and _replicated(bound[-1], func, defs, imports, plan, seen)
    return False


def _bindings(func: cst.FunctionDef, name: str) -> list[cst.BaseExpression]:
    """Values assigned to `name` as a whole in the function's own statements, in order
    (the last one is what a return at the end reads)."""
    found = []

    class Find(FastVisitor):
        def visit_FunctionDef(self, node):
            return node is func

        def visit_Assign(self, node):
            if any(isinstance(t.target, cst.Name) and t.target.value == name for t in node.targets):
                found.append(node.value)
            elif any(isinstance(t.target, cst.Tuple) and name in {dotted(e.value) for e in t.target.elements} for t in node.targets):
                found.append(cst.Name("__unknown__"))

    Find().walk(func)
    return found


def _returns(func: cst.FunctionDef) -> list[cst.BaseExpression]:
    found = []

    class Find(FastVisitor):
        def visit_FunctionDef(self, node):
            return node is func

        def visit_Lambda(self, node):
            return False

        def visit_Return(self, node):
            if node.value is not None:
                found.append(node.value)

    Find().walk(func)
    return found


def _tuple_items(value: cst.BaseExpression) -> list[cst.BaseExpression]:
    return [e.value for e in value.elements] if isinstance(value, cst.Tuple) else [value]


def _calls(node: cst.CSTNode, imports: ImportMap, names) -> bool:
    hit = []

    class Find(FastVisitor):
        def visit_Call(self, call):
            if imports.qualify(call.func) in names:
                hit.append(call)

    Find().walk(node)
    return bool(hit)


def _updates_state(func: cst.FunctionDef) -> bool:
    """Whether the function calls `.apply_gradients(`, `.updated(` or `.update(` of something."""
    found = []

    class Find(FastVisitor):
        def visit_Call(self, call):
            if isinstance(call.func, cst.Attribute) and call.func.attr.value in ("apply_gradients", "updated", "update"):
                found.append(call)

    Find().walk(func)
    return bool(found)


def _check_ratios(func: cst.FunctionDef, plan: Plan) -> None:
    """A division by a value the step computes (a weighted mean: a sum over the device's
    examples over their weight): pmap averages the devices' ratios, jit would compute
    the whole batch's ratio, a different number where the devices' weights differ."""

    class Find(FastVisitor):
        def visit_BinaryOperation(self, node):
            if isinstance(node.operator, (cst.Divide, cst.FloorDivide)) and not _batch_independent(node.right):
                plan.reasons.append((node, f"a division by `{render(node.right).strip()}` in the step (a weighted mean averaged per device: jax.jit computes the whole batch's ratio)"))

    Find().walk(func)


def _batch_independent(node: cst.BaseExpression) -> bool:
    """A number, or a size read off a shape: the same for a device's batch and the whole."""
    if isinstance(node, (cst.Integer, cst.Float)):
        return True
    if isinstance(node, cst.UnaryOperation):
        return _batch_independent(node.expression)
    source = render(node)
    return ".shape" in source or ".size" in source or "len(" in source


def _check_device_reshapes(module: cst.Module, plan: Plan) -> None:
    class Find(FastVisitor):
        def visit_Call(self, node):
            if not (isinstance(node.func, cst.Attribute) and node.func.attr.value == "reshape"):
                return
            if device_split(node, plan) is not None:
                return
            if any(dotted(n) in plan.device_counts or (isinstance(n, cst.Attribute) and dotted(n) in plan.device_counts) for n in _all_exprs(node.args)):
                plan.reasons.append((node, "a batch split by device by hand (reshape to devices): under jax.jit a batch is one array sharded along 'data'"))

    Find().walk(module)


def device_split(node: cst.Call, plan: Plan) -> cst.BaseExpression | None:
    """`x.reshape((n_devices, -1) + x.shape[1:])` -> `x` (None: another reshape)."""
    if len(node.args) != 1:
        return None
    arg = node.args[0].value
    x = node.func.value
    if not (isinstance(arg, cst.BinaryOperation) and isinstance(arg.operator, cst.Add) and isinstance(arg.left, cst.Tuple)):
        return None
    first = [e.value for e in arg.left.elements]
    expected_rest = f"{render(x).strip()}.shape[1:]"
    if (len(first) == 2 and dotted(first[0]) in plan.device_counts and render(first[1]).strip() == "-1"
            and render(arg.right).strip() == expected_rest):
        return x
    return None


def all_names(node: cst.CSTNode) -> list[cst.Name]:
    found = []

    class Find(FastVisitor):
        def visit_Name(self, n):
            found.append(n)

    Find().walk(node)
    return found


def _all_exprs(node) -> list[cst.BaseExpression]:
    found = []

    class Find(FastVisitor):
        def visit_Name(self, n):
            found.append(n)

        def visit_Attribute(self, n):
            found.append(n)

    for item in node if isinstance(node, (list, tuple)) else [node]:
        Find().walk(item)
    return found
