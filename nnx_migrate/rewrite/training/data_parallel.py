"""`rewrite --pmap jit`: a `jax.pmap` data-parallel program becomes a `jax.jit` one over
a one-axis device mesh (`("data",)`) with `NamedSharding`, after the training pass.

What changes (each only where the pmap axis is a string the file names):
- `jax.pmap(f, axis_name=A)` and `@functools.partial(jax.pmap, axis_name=A)` -> `jax.jit`
  (`nnx.jit` in the nnx-jit style); `static_broadcasted_argnums` -> `static_argnums`.
- `jax.lax.pmean(x, A)` -> `x`: jit computes the step over the whole batch, so a mean
  over the per-device batch averaged across devices is the mean over the whole batch
  (equal-sized shards). What that leaves (`x = x`, `nnx.update(model, nnx.state(model,
  ...))`) is dropped.
- `nnx.BatchNorm(..., axis_name=A)` and `dynamic_scale.value_and_grad(..., axis_name=A)`
  -> without `axis_name`: they averaged across devices, i.e. used the whole batch, as
  they do under jit. A model file of the run whose BatchNorm averages over A gets a TODO
  at the converted step (this pass edits the file that runs pmap only).
- `jax_utils.replicate(s)` / `jax.device_put_replicated(s, ...)` ->
  `jax.device_put(s, REPLICATED)`; `common_utils.shard(b)` -> `jax.device_put(b,
  BATCH_SHARDED)`; `jax_utils.prefetch_to_device(it, n)` -> each batch put with
  BATCH_SHARDED; `jax_utils.unreplicate(x)` -> `x`; `out[0]` of a pmapped call's single
  result -> `out`; `common_utils.get_metrics(ms)` ->
  `common_utils.stack_forest(jax.device_get(ms))`; `x.reshape((n_devices, -1) +
  x.shape[1:])` -> `x`.
- The mesh and the two shardings are defined once after the imports.

A program data_parallel_plan.py finds a reason for (results per device, no average of
the gradients, per-device BatchNorm, other collectives, weighted means, ...) keeps
`jax.pmap`, with one TODO at each pmap site saying why. No jax or flax here.
"""

from __future__ import annotations

from collections import Counter

import libcst as cst

from nnx_migrate.rewrite.lines import render, start_lines
from nnx_migrate.rewrite.names import ImportMap, dotted
from nnx_migrate.rewrite.nodes import is_docstring, string_value, with_todo_comments
from nnx_migrate.rewrite.report import TODO_MARK, TodoSite
from nnx_migrate.rewrite.training.data_parallel_plan import (
    DEVICE_COUNTS,
    GET_METRICS,
    PARTIALS,
    PMEAN,
    PREFETCH,
    RENAMED,
    REPLICATE,
    SHARD,
    UNREPLICATE,
    Plan,
    Site,
    all_names,
    averaging_grad,
    device_split,
    plan_of,
)
from nnx_migrate.rewrite.visitors import FastTransformer, FastVisitor

PMAP_MODES = ("keep", "jit")
DEFAULT_PMAP = "keep"

MESH_COMMENT = (
    "# Data parallelism with jax.jit: each batch is split along the mesh axis \"data\", the train",
    "# state is replicated on every device, and jit computes the step over the whole batch.",
)
MESH_SOURCE = '''\
DATA_MESH = jax.sharding.Mesh(jax.devices(), ("data",))
REPLICATED = jax.sharding.NamedSharding(DATA_MESH, jax.sharding.PartitionSpec())
BATCH_SHARDED = jax.sharding.NamedSharding(DATA_MESH, jax.sharding.PartitionSpec("data"))
'''
# The training pass's TODOs (nnx-jit style) that this conversion settles.
SETTLED_CONSTRUCTS = ("jax.pmap", "flax.jax_utils.replicate", "flax.jax_utils.unreplicate", "flax.training.common_utils.shard")


def to_jit_data_parallel(text: str, style: str, path: str, original_line, read_module=None, tree: cst.Module | None = None) -> tuple[str, list[TodoSite], bool]:
    """`text`: the training pass's output. Returns the new text, the TODO sites added and
    whether the program was converted (then the training pass's pmap TODOs are settled).
    `original_line` maps a line of `text` to the line of the file the user wrote;
    `read_module(qualified name)` gives (file, text) of a module of the program, or None;
    `tree`: `text` parsed, where the caller has it."""
    if "pmap" not in text:
        return text, [], False
    module = tree if tree is not None else cst.parse_module(text)
    imports = ImportMap(module)
    plan = plan_of(module, imports)
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
        plan = plan_of(module, imports)  # the same program, its nodes now those of the marked tree
    new = _ToJit(plan, imports, style).transform(module)
    return render(_with_mesh(_without_unused_imports(new))), todos, True


def _synced_batch_norms_elsewhere(imports: ImportMap, plan: Plan, read_module) -> list[str]:
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



# ---- the conversion -----------------------------------------------------------------------


class _ToJit(FastTransformer):
    def __init__(self, plan: Plan, imports: ImportMap, style: str) -> None:
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
            split = device_split(original, self.plan)
            if split is not None:
                self.split_here = True
                return updated.func.value
        if isinstance(original.func, cst.Attribute) and averaging_grad(original) and _axis_keyword(original) in self.plan.axes:
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
    read = {n.value for stmt in module.body if not _is_import(stmt) for n in all_names(stmt)}
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
    counts = Counter(n.value for n in all_names(func.body))
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


def _mark_kept(module: cst.Module, plan: Plan, path: str, original_line) -> tuple[str, list[TodoSite], bool]:
    """One TODO at each pmap site: the program stays a pmap program, and why."""
    lines = start_lines(module)
    first, why = plan.reasons[0]
    where = original_line(lines.get(id(first), 0))
    more = f" (and {len(plan.reasons) - 1} more)" if len(plan.reasons) > 1 else ""
    note = f"kept as jax.pmap (--pmap jit): {why}{f' (line {where})' if where else ''}{more}"
    marked, todos = _mark_sites(module, plan.sites, note, path, original_line, lines)
    return render(marked), todos, False


def _mark_sites(module: cst.Module, sites: list[Site], note: str, path: str, original_line, lines=None) -> tuple[cst.Module, list[TodoSite]]:
    """`note` as a TODO above the statement (or decorated function) of each site;
    `lines`: `start_lines(module)` where the caller has it."""
    lines = start_lines(module) if lines is None else lines
    site_ids = {id(s.node) for s in sites}
    statements: dict[int, cst.CSTNode] = {}  # id(statement) -> the site it holds
    stack: list[cst.CSTNode] = []

    class FindStatements(FastVisitor):
        def visit_SimpleStatementLine(self, node):
            stack.append(node)

        def leave_SimpleStatementLine(self, node):
            stack.pop()

        def visit_FunctionDef(self, node):
            stack.append(node)

        def leave_FunctionDef(self, node):
            stack.pop()

        def visit_Decorator(self, node):
            if id(node) in site_ids:
                statements.setdefault(id(stack[-1]), node)

        def visit_Call(self, node):
            if id(node) in site_ids and stack:
                statements.setdefault(id(stack[-1]), node)

    FindStatements().walk(module)

    class Mark(FastTransformer):
        def leave_SimpleStatementLine(self, original, updated):
            return with_todo_comments(updated, [note]) if id(original) in statements else updated

        def leave_FunctionDef(self, original, updated):
            return with_todo_comments(updated, [note]) if id(original) in statements else updated

    todos = [TodoSite(path, original_line(lines.get(id(site), 0)), "jax.pmap", note) for site in statements.values()]
    return Mark().transform(module), todos
