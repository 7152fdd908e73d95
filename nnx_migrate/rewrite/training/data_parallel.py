"""`rewrite --pmap jit`: a `jax.pmap` data-parallel program becomes a `jax.jit` one over
a one-axis device mesh (`("data",)`) with `NamedSharding`, after the training pass.

What changes (each only where the pmap axis is a string the file names):
- `jax.pmap(f, axis_name=A)` and `@functools.partial(jax.pmap, axis_name=A)` -> `jax.jit`
  (`nnx.jit` in the nnx-jit style); `static_broadcasted_argnums` -> `static_argnums`.
- `jax.lax.pmean(x, A)` -> `x`: jit computes the step over the whole batch, so a mean
  over the per-device batch averaged across devices is the mean over the whole batch
  (equal-sized shards). An `nnx.update(model, nnx.state(model, ...))` left by that is dropped.
- `nnx.BatchNorm(..., axis_name=A)` -> without `axis_name`: pmap's BatchNorm averaged its
  statistics across devices, i.e. it used the whole batch's, as BatchNorm under jit does.
- `jax_utils.replicate(s)` / `jax.device_put_replicated(s, ...)` ->
  `jax.device_put(s, REPLICATED)`; `common_utils.shard(b)` -> `jax.device_put(b,
  BATCH_SHARDED)`; `jax_utils.unreplicate(x)` -> `x`; `out[0]` of a pmapped call's result
  -> `out`; `common_utils.get_metrics(ms)` -> `common_utils.stack_forest(jax.device_get(ms))`;
  `x.reshape((n_devices, -1) + x.shape[1:])` -> `x`.
- The mesh and the two shardings are defined once after the imports.

What keeps the program as `jax.pmap` (one TODO at each pmap site, saying why): a step
that updates a state but averages nothing across devices (each device trains its own
copy; jit would train one), a pmapped step returning a value that is not averaged across
devices (it has a value per device; jit returns one), BatchNorm without the pmap axis
(per-device statistics: jit normalizes over the whole batch), other collectives
(`psum`, `all_gather`, `axis_index`, ...), per-device keys (`shard_prng_key`), batches
split by device by hand, a division by a value the step computes (a weighted mean per
device), or a pmap option jit has no counterpart for. No jax or flax here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import libcst as cst

from nnx_migrate.rewrite.lines import render, start_lines
from nnx_migrate.rewrite.names import ImportMap, dotted
from nnx_migrate.rewrite.nodes import is_docstring, string_value, with_todo_comments
from nnx_migrate.rewrite.report import TODO_MARK, TodoSite
from nnx_migrate.rewrite.training.pmapped import pmapped_functions
from nnx_migrate.rewrite.visitors import FastVisitor

PMAP_MODES = ("keep", "jit")
DEFAULT_PMAP = "keep"

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

MESH_COMMENT = (
    "# Data parallelism with jax.jit: each batch is split along the mesh axis \"data\", the train",
    "# state is replicated on every device, and jit computes the step over the whole batch.",
)
MESH_SOURCE = '''\
DATA_MESH = jax.sharding.Mesh(jax.devices(), ("data",))
REPLICATED = jax.sharding.NamedSharding(DATA_MESH, jax.sharding.PartitionSpec())
BATCH_SHARDED = jax.sharding.NamedSharding(DATA_MESH, jax.sharding.PartitionSpec("data"))
'''
MESH_NAMES = ("DATA_MESH", "REPLICATED", "BATCH_SHARDED")
# The training pass's TODOs (nnx-jit style) that this conversion settles.
SETTLED_CONSTRUCTS = ("jax.pmap", "flax.jax_utils.replicate", "flax.jax_utils.unreplicate", "flax.training.common_utils.shard")


@dataclass
class _Site:
    node: cst.CSTNode  # the decorator or the `jax.pmap(...)` call
    call: cst.Call | None  # None: bare `@jax.pmap`
    function: str | None  # the name of the function it runs, where one is named
    options: dict[str, cst.BaseExpression] = field(default_factory=dict)


@dataclass
class _Plan:
    sites: list[_Site] = field(default_factory=list)
    axes: set[str] = field(default_factory=set)
    reasons: list[tuple[cst.CSTNode, str]] = field(default_factory=list)
    pmapped: set[str] = field(default_factory=set)  # names of functions run under pmap
    callables: dict[str, str | None] = field(default_factory=dict)  # dotted name bound to a pmapped function -> its name
    tuples: set[str] = field(default_factory=set)  # callables whose function returns a tuple
    device_counts: set[str] = field(default_factory=set)  # dotted names bound to device counts


def to_jit_data_parallel(text: str, style: str, path: str, original_line, read_module=None) -> tuple[str, list[TodoSite], bool]:
    """`text`: the training pass's output. Returns the new text, the TODO sites added and
    whether the program was converted (then the training pass's pmap TODOs are settled).
    `original_line` maps a line of `text` to the line of the file the user wrote;
    `read_module(qualified name)` gives (file, text) of a module of the program, or None."""
    if "pmap" not in text:
        return text, [], False
    module = cst.parse_module(text)
    imports = ImportMap(module)
    plan = _plan(module, imports)
    if not plan.sites:
        return text, [], False
    if plan.reasons:
        return _mark_kept(module, plan, path, original_line)
    todos = []
    elsewhere = _synced_batch_norms_elsewhere(imports, plan, read_module)
    if elsewhere:  # jit has no device axis: those layers fail loudly until it goes
        why = (f"drop axis_name={', '.join(map(repr, sorted(plan.axes)))} from the BatchNorm layers of {', '.join(elsewhere)}: "
               "under jax.jit they normalize over the whole batch, as pmap's synced statistics did")
        module, todos = _mark_sites(module, plan.sites[:1], why, path, original_line)
        plan = _plan(module, imports)  # the same program, its nodes now those of the marked tree
    new = module.visit(_ToJit(plan, imports, style))
    return render(_with_mesh(_without_unused_imports(new))), todos, True


def _synced_batch_norms_elsewhere(imports: ImportMap, plan: _Plan, read_module) -> list[str]:
    """Files of the program this one imports whose BatchNorm layers average over a pmap
    axis (this pass converts only the file that runs pmap)."""
    if read_module is None or not plan.axes:
        return []
    found = []
    for qualified in sorted(set(imports.aliases.values())):
        if qualified.split(".")[0] in ("jax", "flax", "optax", "numpy", "functools", "typing"):
            continue
        got = read_module(qualified) or (read_module(qualified.rpartition(".")[0]) if "." in qualified else None)
        if got is None:  # `from models import Net`: the module is the name's parent
            continue
        file, text = got
        if "BatchNorm" in text and any(f"axis_name={q}{a}{q}" in text for a in plan.axes for q in "'\""):
            found.append(file.rpartition("/")[2])
    return sorted(set(found))


def settle_training_todos(text: str, todos: list[TodoSite], rules_unsupported: dict[str, str]) -> tuple[str, list[TodoSite]]:
    """Removes the training pass's "convert by hand" marks of the pmap constructs that
    the conversion replaced (the nnx-jit style reports them)."""
    whys = {rules_unsupported[c] for c in SETTLED_CONSTRUCTS if c in rules_unsupported}
    comments = {f"# {TODO_MARK}: {why}" for why in whys}
    lines = [line for line in text.splitlines(keepends=True) if line.strip() not in comments]
    return "".join(lines), [t for t in todos if t.why not in whys]


# ---- the plan: what the program does with devices ---------------------------------------


def _plan(module: cst.Module, imports: ImportMap) -> _Plan:
    plan = _Plan()
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
                    plan.sites.append(_Site(dec, None, node.name.value))
                    plan.callables[node.name.value] = node.name.value
                elif is_partial_pmap(dec.decorator):
                    plan.sites.append(_Site(dec, dec.decorator, node.name.value, _options(dec.decorator.args[1:], ())))
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
                plan.sites.append(_Site(node, node, _function_of(node), _options(node.args[1:], ("axis_name",))))
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
    taken = {n.value for n in _all_names(module)}
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


def _check_site(site: _Site, plan: _Plan) -> None:
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


def _check_axis_uses(module: cst.Module, imports: ImportMap, plan: _Plan) -> None:
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
            elif axis is not None and string_value(axis) in plan.axes and not _averaging_grad(node):
                plan.reasons.append((node, f"`{dotted(node.func) or 'a call'}(axis_name=...)` averaging across devices"))

    Find().walk(module)


def _averaging_grad(call: cst.Call) -> bool:
    """`dynamic_scale.value_and_grad(f, axis_name=A)`: gradients averaged across devices
    (flax's DynamicScale), which under jit are the whole batch's without the axis."""
    return isinstance(call.func, cst.Attribute) and call.func.attr.value == "value_and_grad"


def _check_steps(defs: dict[str, cst.FunctionDef], imports: ImportMap, plan: _Plan) -> None:
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


def _averaging_lambda(site: _Site, imports: ImportMap) -> bool:
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
    source = render(func)
    return any(f".{m}(" in source for m in ("apply_gradients", "updated", "update"))


def _check_ratios(func: cst.FunctionDef, plan: _Plan) -> None:
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


def _check_device_reshapes(module: cst.Module, plan: _Plan) -> None:
    class Find(FastVisitor):
        def visit_Call(self, node):
            if not (isinstance(node.func, cst.Attribute) and node.func.attr.value == "reshape"):
                return
            if _device_split(node, plan) is not None:
                return
            if any(dotted(n) in plan.device_counts or (isinstance(n, cst.Attribute) and dotted(n) in plan.device_counts) for n in _all_exprs(node.args)):
                plan.reasons.append((node, "a batch split by device by hand (reshape to devices): under jax.jit a batch is one array sharded along 'data'"))

    Find().walk(module)


def _device_split(node: cst.Call, plan: _Plan) -> cst.BaseExpression | None:
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


def _all_names(node: cst.CSTNode) -> list[cst.Name]:
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


# ---- the conversion -----------------------------------------------------------------------


class _ToJit(cst.CSTTransformer):
    def __init__(self, plan: _Plan, imports: ImportMap, style: str) -> None:
        super().__init__()
        self.plan, self.imports, self.style = plan, imports, style
        self.sites = {id(site.node): site for site in plan.sites}
        self.outputs: list[set[str]] = [set()]  # per function: names bound to pmapped results

    def _jit(self, pmap_func: cst.BaseExpression) -> cst.BaseExpression:
        if self.style == "nnx-jit":
            return cst.Attribute(cst.Name("nnx"), cst.Name("jit"))
        if isinstance(pmap_func, cst.Attribute):
            return pmap_func.with_changes(attr=cst.Name("jit"))
        return cst.Attribute(cst.Name("jax"), cst.Name("jit"))

    def _jit_args(self, args) -> list[cst.Arg]:
        kept = []
        for arg in args:
            key = arg.keyword.value if arg.keyword is not None else None
            if key in RENAMED:
                kept.append(arg.with_changes(keyword=cst.Name(RENAMED[key])))
            elif key is None and not kept and not arg.star:
                kept.append(arg)  # the function itself
        return _ending_like(kept, args)

    def visit_FunctionDef(self, node):
        self.outputs.append(set())
        return True

    def leave_FunctionDef(self, original, updated):
        self.outputs.pop()
        return _without_unread_device_counts(updated, self.imports)

    def visit_SimpleStatementLine(self, node):
        self.split_here = False
        return True

    def leave_Decorator(self, original, updated):
        site = self.sites.get(id(original))
        if site is None:
            return updated
        if site.call is None:
            return updated.with_changes(decorator=self._jit(original.decorator))
        pmap_func = site.call.args[0].value
        rest = self._jit_args(updated.decorator.args[1:])
        if not rest:
            return updated.with_changes(decorator=self._jit(pmap_func))
        first = updated.decorator.args[0].with_changes(value=self._jit(pmap_func))
        return updated.with_changes(decorator=updated.decorator.with_changes(args=[first, *rest]))

    def leave_Assign(self, original, updated):
        value = original.value
        if isinstance(value, cst.Call) and dotted(value.func) in self.plan.callables:
            for target in original.targets:
                if isinstance(target.target, cst.Name) and dotted(value.func) in self.plan.tuples:
                    continue  # `out[0]` of a tuple of results is its first result, not a device's
                self.outputs[-1].update(n for n in _target_names(target.target))
        return updated

    def leave_Subscript(self, original, updated):
        """`out[0]` of a pmapped call's result: under jit there is no device axis."""
        if not (len(updated.slice) == 1 and isinstance(updated.slice[0].slice, cst.Index)):
            return updated
        index = updated.slice[0].slice.value
        if not (isinstance(index, cst.Integer) and index.value == "0"):
            return updated
        base = original.value
        if (isinstance(base, cst.Name) and base.value in self.outputs[-1]) or (
                isinstance(base, cst.Call) and dotted(base.func) in self.plan.callables and dotted(base.func) not in self.plan.tuples):
            return updated.value
        return updated

    def leave_Call(self, original, updated):
        name = self.imports.qualify(original.func)
        if id(original) in self.sites:
            return updated.with_changes(func=self._jit(original.func), args=self._jit_args(updated.args))
        if name in PMEAN and updated.args and _axis_of(original) in self.plan.axes:
            return updated.args[0].value
        if name in REPLICATE and updated.args:
            return _device_put(updated.args[0].value, "REPLICATED")
        if name in SHARD and updated.args:
            return _device_put(updated.args[0].value, "BATCH_SHARDED")
        if name in UNREPLICATE and updated.args:
            return updated.args[0].value
        if name in GET_METRICS and updated.args and isinstance(updated.func, cst.Attribute):
            device_get = cst.Call(cst.Attribute(cst.Name("jax"), cst.Name("device_get")), [cst.Arg(updated.args[0].value)])
            return updated.with_changes(func=updated.func.with_changes(attr=cst.Name("stack_forest")), args=[cst.Arg(device_get)])
        if isinstance(original.func, cst.Attribute) and original.func.attr.value == "reshape":
            split = _device_split(original, self.plan)
            if split is not None:
                self.split_here = True
                return updated.func.value
        if isinstance(original.func, cst.Attribute) and _averaging_grad(original) and _axis_keyword(original) in self.plan.axes:
            return _without_keyword(updated, "axis_name")
        if name in PREFETCH and len(updated.args) == 2 and all(a.keyword is None for a in updated.args):
            return _placed_each(updated.args[0].value)
        if (name or "").endswith(".BatchNorm") or (name in PARTIALS and original.args and (self.imports.qualify(original.args[0].value) or "").endswith(".BatchNorm")):
            return _without_keyword(updated, "axis_name")
        return updated

    def leave_SimpleStatementLine(self, original, updated):
        """`grads = grads` and `nnx.update(model, nnx.state(model, ...))`, what removing an
        average across devices leaves: they change nothing."""
        if updated is original or len(updated.body) != 1:
            return updated
        if getattr(self, "split_here", False):  # its comments tell of the split by device
            updated = updated.with_changes(leading_lines=[line for line in updated.leading_lines if line.comment is None])
        small = updated.body[0]
        if (isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.value, cst.Name)
                and isinstance(small.targets[0].target, cst.Name) and small.targets[0].target.value == small.value.value):
            return cst.RemoveFromParent()
        if isinstance(small, cst.Expr):
            call = small.value
            if (isinstance(call, cst.Call) and dotted(call.func) == "nnx.update" and len(call.args) == 2
                    and isinstance(call.args[1].value, cst.Call) and dotted(call.args[1].value.func) == "nnx.state"
                    and call.args[1].value.args and render(call.args[1].value.args[0].value) == render(call.args[0].value)):
                return cst.RemoveFromParent()
        return updated


# Imports the conversion can leave unread: (module, name) of `from module import name`.
_MAYBE_UNUSED = {("flax", "jax_utils"), ("flax.training", "common_utils"), ("functools", "partial")}


def _without_unused_imports(module: cst.Module) -> cst.Module:
    read = {n.value for stmt in module.body if not _is_import(stmt) for n in _all_names(stmt)}
    body, carried = [], []
    for old, stmt in zip(module.body, _kept_imports(module.body, read), strict=True):
        if stmt is None:  # a removed line's blank lines and comments stay
            carried.extend(old.leading_lines)
            continue
        if carried:
            stmt, carried = stmt.with_changes(leading_lines=[*carried, *stmt.leading_lines]), []
        body.append(stmt)
    return module.with_changes(body=body)


def _kept_imports(statements, read: set[str]):
    """Each statement, an import without its unread names, or None for one to drop."""
    for stmt in statements:
        if _is_import(stmt) and isinstance(stmt.body[0], cst.ImportFrom) and not isinstance(stmt.body[0].names, cst.ImportStar):
            imp = stmt.body[0]
            source = dotted(imp.module) if imp.module is not None and not imp.relative else None
            names = [a for a in imp.names if (source, dotted(a.name)) not in _MAYBE_UNUSED or (a.asname.name.value if a.asname else dotted(a.name)) in read]
            if not names:
                yield None
                continue
            if len(names) != len(imp.names):
                names[-1] = names[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
                stmt = stmt.with_changes(body=[imp.with_changes(names=names)])
        elif _is_import(stmt) and isinstance(stmt.body[0], cst.Import) and [dotted(a.name) for a in stmt.body[0].names] == ["functools"] and "functools" not in read:
            yield None
            continue
        yield stmt


def _is_import(stmt) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], (cst.Import, cst.ImportFrom))


def _without_unread_device_counts(func: cst.FunctionDef, imports: ImportMap) -> cst.FunctionDef:
    """`n = jax.local_device_count()` goes from a function that no longer reads `n`."""
    if not isinstance(func.body, cst.IndentedBlock):
        return func
    counts = Counter(n.value for n in _all_names(func.body))
    body = []
    for stmt in func.body.body:
        if (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign)
                and isinstance(stmt.body[0].value, cst.Call) and imports.qualify(stmt.body[0].value.func) in DEVICE_COUNTS
                and len(stmt.body[0].targets) == 1 and isinstance(stmt.body[0].targets[0].target, cst.Name)
                and counts[stmt.body[0].targets[0].target.value] == 1):
            continue
        body.append(stmt)
    return func.with_changes(body=func.body.with_changes(body=body)) if len(body) != len(func.body.body) else func


def _axis_keyword(call: cst.Call) -> str | None:
    return next((string_value(a.value) for a in call.args if a.keyword and a.keyword.value == "axis_name"), None)


def _without_keyword(call: cst.Call, keyword: str) -> cst.Call:
    args = [a for a in call.args if not (a.keyword and a.keyword.value == keyword)]
    return call.with_changes(args=_ending_like(args, call.args))


def _ending_like(kept: list[cst.Arg], args) -> list[cst.Arg]:
    """`kept`, its last argument ending as the last of `args` did (a call written one
    argument a line keeps its closing parenthesis on its own line)."""
    if kept and args and kept[-1] is not args[-1]:
        kept[-1] = kept[-1].with_changes(comma=args[-1].comma, whitespace_after_arg=args[-1].whitespace_after_arg)
    return kept


def _placed_each(iterator: cst.BaseExpression) -> cst.BaseExpression:
    """`(jax.device_put(batch, BATCH_SHARDED) for batch in it)`"""
    return cst.parse_expression(f"(jax.device_put(batch, BATCH_SHARDED) for batch in {render(iterator).strip()})")


def _axis_of(call: cst.Call) -> str | None:
    for i, arg in enumerate(call.args):
        if (arg.keyword is not None and arg.keyword.value == "axis_name") or (arg.keyword is None and i == 1):
            return string_value(arg.value)
    return None


def _target_names(target: cst.BaseExpression) -> list[str]:
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for e in target.elements for n in _target_names(e.value)]
    name = dotted(target)
    return [name] if name and "." not in name else []


def _device_put(value: cst.BaseExpression, sharding: str) -> cst.Call:
    return cst.Call(cst.Attribute(cst.Name("jax"), cst.Name("device_put")), [cst.Arg(value), cst.Arg(cst.Name(sharding))])


def _with_mesh(module: cst.Module) -> cst.Module:
    """The mesh and shardings after the last top-level import (after the docstring)."""
    body = list(module.body)
    at = 0
    for i, stmt in enumerate(body):
        if is_docstring(stmt) and i == 0:
            at = 1
        elif isinstance(stmt, cst.SimpleStatementLine) and all(isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body):
            at = i + 1
    mesh = list(cst.parse_module(MESH_SOURCE).body)
    comments = [cst.EmptyLine(comment=cst.Comment(line)) for line in MESH_COMMENT]
    mesh[0] = mesh[0].with_changes(leading_lines=[cst.EmptyLine(), *comments])
    if at < len(body):
        body[at] = body[at].with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine(), *[line for line in body[at].leading_lines if line.comment is not None]])
    return module.with_changes(body=[*body[:at], *mesh, *body[at:]])


def _mark_kept(module: cst.Module, plan: _Plan, path: str, original_line) -> tuple[str, list[TodoSite], bool]:
    """One TODO at each pmap site: the program stays a pmap program, and why."""
    first, why = plan.reasons[0]
    where = original_line(start_lines(module).get(id(first), 0))
    more = f" (and {len(plan.reasons) - 1} more)" if len(plan.reasons) > 1 else ""
    note = f"kept as jax.pmap (--pmap jit): {why}{f' (line {where})' if where else ''}{more}"
    marked, todos = _mark_sites(module, plan.sites, note, path, original_line)
    return render(marked), todos, False


def _mark_sites(module: cst.Module, sites: list[_Site], note: str, path: str, original_line) -> tuple[cst.Module, list[TodoSite]]:
    """`note` as a TODO above the statement (or decorated function) of each site."""
    lines = start_lines(module)
    site_ids = {id(s.node) for s in sites}
    statements: dict[int, cst.CSTNode] = {}
    stack: list[cst.CSTNode] = []

    class FindStatements(cst.CSTVisitor):
        def on_visit(self, node):
            if isinstance(node, (cst.SimpleStatementLine, cst.FunctionDef)):
                stack.append(node)
            if id(node) in site_ids and stack:
                statements.setdefault(id(stack[-1]), node)
            return True

        def on_leave(self, node):
            if stack and stack[-1] is node:
                stack.pop()

    module.visit(FindStatements())

    class Mark(cst.CSTTransformer):
        def leave_SimpleStatementLine(self, original, updated):
            return with_todo_comments(updated, [note]) if id(original) in statements else updated

        def leave_FunctionDef(self, original, updated):
            return with_todo_comments(updated, [note]) if id(original) in statements else updated

    todos = [TodoSite(path, original_line(lines.get(id(site), 0)), "jax.pmap", note) for site in statements.values()]
    return module.visit(Mark()), todos
