"""One Linen module class -> one NNX module class.

The class is read in three steps:
1. discovery (`ClassShape`): dataclass fields, `setup`, the `@nn.compact` method, other
   methods, and the converted base class if it subclasses one;
2. analysis (`BodyWalker`, one per method, in execution order): every submodule built
   (in `setup` or inline in a compact body), the name Linen gives it, the input size of its
   first call (`sizes.SizeOf`), parameters and variables, and every construct the tool
   cannot convert (a TODO site);
3. generation: an `__init__` (fields, setup body, the submodules and parameters hoisted
   out of the compact body) and the methods with submodule constructions replaced by the
   attributes (`MethodRewriter`).
"""

from __future__ import annotations

import ast
import keyword
import re
from dataclasses import dataclass, field, replace as _replace

import libcst as cst

from nnx_migrate.naming import nnx_attribute_name, snake_case
from nnx_migrate.rewrite import recurrent, templates
from nnx_migrate.rewrite.edits import FUNCTOOLS, FileEdits, Place
from nnx_migrate.rewrite.names import ImportMap, normalize_linen
from nnx_migrate.rewrite.report import TODO_MARK, TodoSite
from nnx_migrate.rewrite.rules import LayerRule, Rules
from nnx_migrate.rewrite.nodes import bound_names as _bound_names, is_docstring, self_attr as _self_attr, self_method_call as _self_method_call, statements as _statements, string_value as _string_value, targets as _targets
from nnx_migrate.rewrite.rewriters import CARRIED, MODE_ATTRIBUTE, MethodRewriter, SetupRewriter
from nnx_migrate.rewrite.sizes import NotStatic, Scope, SizeOf, code, none_test, portable_size, scalar, size_param_name, substitute_names, translate_static, try_static
from nnx_migrate.rewrite.scan_axes import scan_axes
from nnx_migrate.rewrite.visitors import FastTransformer, FastVisitor, children_in_order

LINEN_MODULE = "flax.linen.Module"
_REMAT = {"flax.linen.remat", "flax.linen.checkpoint", "flax.linen.transforms.checkpoint"}
_SCAN = {"flax.linen.scan", "flax.linen.transforms.scan"}
_NON_FIELD_NAMES = {"parent", "name"}


@dataclass
class Field:
    name: str
    annotation: str
    default_code: str | None  # the default as source; None when required
    comments: tuple = ()  # the field line's own comments (leading lines, trailing comment)
    factory: str | None = None  # dataclasses.field(default_factory=...): called when not given
    problem: str | None = None  # a field declaration the tool does not convert

    @property
    def has_default(self) -> bool:
        return self.default_code is not None


@dataclass
class ClassSummary:
    """What other classes in the file need to know about a converted class."""

    name: str
    fields: list[Field]
    size_params: list[str]  # input-size parameters of __init__, in order
    size_param_args: dict[str, int]  # size parameter -> index of the __call__ argument
    out_size: str | None  # in the class's own __init__ scope
    has_todos: bool = False
    # input sizes of `__call__` arguments that default to None: `__init__` takes None
    # (the default) when the argument is not given
    optional_size_params: tuple[str, ...] = ()
    # fields holding a module the class calls -> the constructor parameter (default None)
    # that gives that module's output size
    field_out_params: dict[str, str] = field(default_factory=dict)
    size_param_names: dict[str, str] = field(default_factory=dict)  # size parameter -> __call__ argument
    # the class (or a submodule) tells training from evaluation by its mode attribute
    # (Linen's `is_mutable_collection('batch_stats')`), not by a call argument
    decides_mode: bool = False
    # other methods' return sizes in the class's own terms (`initial_state` returning
    # `jnp.zeros((batch, self.hidden))`): a parent's `cell.initial_state(n)` has that size
    method_out_sizes: dict[str, object] = field(default_factory=dict)
    # factory fields without a default whose layers take call-time arguments the parent's
    # partial set from its call arguments: field -> {Linen keyword -> `__call__` parameter}
    call_time_params: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class Sub:
    """A submodule: one construction site."""

    attr: str | None
    kind: str  # "layer" | "local" | "sequential"
    ctor: cst.Call
    line: int
    origin: str  # "setup" | "compact"
    rule: LayerRule | None = None
    child: ClassSummary | None = None
    in_sizes: dict[str, str | None] | None = None  # set at the first call
    guards: list[str] = field(default_factory=list)
    hoist: list[tuple[str, str]] = field(default_factory=list)  # static locals the args need
    arg_code: dict[str, str] = field(default_factory=dict)  # linen kw -> __init__ source
    elements: list["Sub"] = field(default_factory=list)  # nn.Sequential members
    call_kwargs: dict[str, str] = field(default_factory=dict)  # moved to the call site
    loop: "LoopContext | None" = None  # built in a loop: one element of an nnx.List
    sizes_loop: "LoopContext | None" = None  # built in a loop, left a plain attribute (TODO): the loop's carried sizes still replayed
    carried: dict[str, tuple[str, str]] = field(default_factory=dict)  # size before / along the loop
    # input sizes at its call in terms of the loop's carried size variables (`x_size`),
    # from the loop's symbolic pass (BodyWalker._symbolic_pass)
    symbolic_in_sizes: dict[str, str | None] | None = None
    remat: bool = False  # built through nn.remat / nn.checkpoint: called through nnx.remat
    scan: dict | None = None  # scan over layers: length (source), in_axes, out_axes (ScanAxes); over time: {"time": TimeScan}
    auto_class: str | None = None  # Linen auto-named (`Dense_<n>`): the class part
    list_index: str | None = None  # element of an nnx.List named after the class: its index
    comp_attr: str | None = None  # element of a setup list comprehension `self.<attr> = [...]`
    chain: "AppendChain | None" = None  # kind "chain": any element of a setup list run as a chain
    args_unsure: bool = False  # an argument's __init__ source could not be written
    alternatives: list["Sub"] = field(default_factory=list)  # setup binds the same attribute under other conditions
    factory: Factory | None = None  # built through a layer factory (field or local partial)
    conditional: bool = False  # auto-named in a compact body under a condition
    either: tuple[str, "Sub", "Sub"] | None = None  # kind "either": (field condition, if-branch, else-branch)
    field_name: str | None = None  # kind "field": a module held in a field
    field_sizes: dict[str, str | None] = field(default_factory=dict)  # child's field-module size parameter -> size
    foreign_carry: bool = False  # a recurrent cell called with a carry its `features` did not make

    @property
    def members(self) -> list["Sub"]:
        """The layers among an nn.Sequential's elements (the rest are functions)."""
        return [m for m in self.elements if isinstance(m, Sub)]
    problems: list[str] = field(default_factory=list)


@dataclass
class Factory:
    """A layer built through a factory: a field whose default is a Linen layer class or a
    `functools.partial` of one (`conv: ModuleDef = nn.Conv`), or a local `partial` of such
    a class or field in the compact body. `callee` builds it in `__init__`: the field
    itself (whatever class the caller gave) or the NNX class."""

    callee: str
    rule: LayerRule | None  # a Linen layer, or
    args: list[cst.Arg]  # the local partial's arguments, merged before the call's
    preset: dict[str, str]  # the field default's keywords (for sizes only: not repeated)
    field: str | None = None
    child: "ClassSummary | None" = None  # a module class converted in this run


@dataclass
class AppendChain:
    """A list built in setup by appending submodules (`blocks = []`, `blocks.append(b)` in
    loops too, `self.blocks = blocks`) that a method runs as a chain (`for block in
    self.blocks: x = block(x)`): each element's input size is the previous element's
    output size. `__init__` (the setup body) carries that size in a variable, set after
    `blocks = []` and updated after each append."""

    local: str
    init_stmt: cst.CSTNode  # the `<local> = []` statement
    appends: list[tuple["Sub", cst.CSTNode]] = field(default_factory=list)  # element, append statement
    attr: str | None = None
    var: str = ""
    first: str | None = None  # the size the chain starts from, in __init__ terms
    used: bool = False
    problem: str | None = None
    outs: dict[int, str] = field(default_factory=dict)  # id(append statement) -> size after it

    @property
    def ok(self) -> bool:
        return self.used and self.problem is None


@dataclass
class LoopContext:
    """A `for` loop of a compact body that builds submodules: `__init__` replays its header
    and appends to an `nnx.List` per construction site."""

    node: cst.For
    index_var: str | None  # the loop variable counting 0, 1, ... (range / enumerate)
    header: str  # `for <target> in <iter>:` as __init__ source
    line: int
    hoist: list[tuple[str, str]] = field(default_factory=list)
    iter_src: str = ""  # the iterable as __init__ source
    counter: str | None = None  # the counter __call__ gets (enumerate) when it has none
    carried_vars: dict = field(default_factory=dict)  # array local -> (before, end of body, variable)
    # the ends are written in the carried variables themselves (`x_size = (w) if (i == 0)
    # else (x_size)`): __init__ updates them together, at the end of each iteration
    symbolic: bool = False


@dataclass
class VarDef:
    """A `self.param` / `self.variable` site."""

    attr: str
    collection: str
    init_code: str  # NNX construction source
    line: int
    guards: list[str] = field(default_factory=list)
    hoist: list[tuple[str, str]] = field(default_factory=list)


class FileContext:
    def __init__(self, module: cst.Module, imports: ImportMap, rules: Rules, path: str, positions, external=None):
        self.external = external  # ModuleIndex of the other files' converted classes
        self.module = module
        self.imports = imports
        self.rules = rules
        self.path = path
        self.positions = positions  # node -> line
        self.summaries: dict[str, ClassSummary] = {}
        self.todos: list[TodoSite] = []
        self.variable_types: dict[str, str] = {}  # collection -> generated class name
        self.module_names: set[str] = set()
        self.functions: dict[str, cst.FunctionDef] = {}  # module-level helper functions
        self.renamer = None  # renames.RenameLinen shared by every pass over this file
        self.fallbacks: dict[int, int] = {}  # line placeholder -> placeholder to use if unresolved
        self.edits = FileEdits()  # imports and helpers the file's conversion asks for
        self.source: str | None = None  # the file's text (see python_tree)
        self.field_values = None  # field_values.FieldValues: what constructions pass to fields without a default
        self._python_tree = False

    def python_tree(self):
        """The file as a Python `ast` (parsed once, on demand): a cheap, exact view of
        who reads which attribute. None if Python cannot parse it."""
        if self._python_tree is False:
            try:
                self._python_tree = ast.parse(self.source) if self.source is not None else None
            except (SyntaxError, ValueError, RecursionError):
                self._python_tree = None
        return self._python_tree

    def partial_name(self) -> str:
        """How the output names `functools.partial`: the file's own import of it, or
        `functools.partial` (then imported)."""
        for local, qual in self.imports.aliases.items():
            if qual == "functools.partial":
                return local
        for local, qual in self.imports.aliases.items():
            if qual == "functools":
                return f"{local}.partial"
        self.edits.add_import(FUNCTOOLS, Place.FIRST)
        return "functools.partial"

    def module_class(self, func: cst.BaseExpression) -> "ClassSummary | None":
        """The converted module class `func` names: one of this file (converted above) or,
        through the imports, one of another file of the run (`external`)."""
        if isinstance(func, cst.Name) and func.value in self.summaries and func.value not in self.imports.aliases:
            return self.summaries[func.value]
        qual = self.imports.qualify(func)
        if qual is None or qual.startswith("flax.") or not self.external:
            return None
        return self.external.lookup(qual)

    def line(self, node: cst.CSTNode) -> int:
        """A line placeholder, resolved with every other one when the file is done."""
        return self.positions.ref(node)

    def line_or(self, node: cst.CSTNode, fallback: cst.CSTNode) -> int:
        """As `line`, for a node that may be generated code (not in the file): then the
        fallback's line."""
        placeholder = self.positions.ref(node)
        self.fallbacks[placeholder] = self.positions.ref(fallback)
        return placeholder

    def variable_type(self, collection: str) -> str:
        known = self.rules.collections.get(collection)
        if known:
            return "nnx." + known.rsplit(".", 1)[1]
        name = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", collection) if part) or "Collection"
        if not name[0].isalpha():
            name = "V" + name
        self.variable_types.setdefault(collection, name)
        return self.variable_types[collection]


def _qual_layer(ctx: FileContext, func: cst.BaseExpression) -> str | None:
    return normalize_linen(ctx.imports.qualify(func), ctx.rules.layers)


# Linen base classes of a module class -> the NNX base of the converted class.
_LINEN_BASES = {
    LINEN_MODULE: "nnx.Module",
    "flax.linen.module.Module": "nnx.Module",
    "flax.linen.RNNCellBase": "nnx.RNNCellBase",
    "flax.linen.recurrent.RNNCellBase": "nnx.RNNCellBase",
}


def is_linen_module_base(ctx: FileContext, base: cst.BaseExpression) -> bool:
    return ctx.imports.qualify(base) in _LINEN_BASES


class ClassShape:
    """Discovery: the parts of a Linen module class."""

    def __init__(self, node: cst.ClassDef, ctx: FileContext, base: ClassSummary | None):
        self.node = node
        self.base = base
        self.docstring: cst.BaseStatement | None = None
        self.own_fields: list[Field] = []
        self.class_level: list[cst.BaseStatement] = []  # other class-level statements
        self.setup: cst.FunctionDef | None = None
        self.compact: cst.FunctionDef | None = None
        self.methods: list[cst.FunctionDef] = []
        body = list(node.body.body) if isinstance(node.body, cst.IndentedBlock) else []
        for i, stmt in enumerate(body):
            if i == 0 and is_docstring(stmt):
                self.docstring = stmt
                continue
            if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.AnnAssign) and isinstance(stmt.body[0].target, cst.Name):
                ann = stmt.body[0]
                ann_code = code(ann.annotation.annotation)
                if "ClassVar" in ann_code or ann.target.value in _NON_FIELD_NAMES:
                    self.class_level.append(stmt)
                    continue
                leading = tuple(line for line in stmt.leading_lines if line.comment is not None)
                trailing = stmt.trailing_whitespace
                default_code, factory, problem = _field_default(ann.value, ctx)
                if problem == "init=False":
                    continue  # set by setup, not a constructor argument
                self.own_fields.append(Field(ann.target.value, ann_code, default_code, (leading, trailing if trailing.comment is not None else None), factory, problem))
                continue
            if isinstance(stmt, cst.FunctionDef):
                decos = {normalize_linen(ctx.imports.qualify(d.decorator), {}) for d in stmt.decorators}
                if stmt.name.value == "setup":
                    self.setup = stmt
                elif decos & {"flax.linen.compact", "flax.linen.module.compact"}:
                    self.compact = stmt
                else:
                    self.methods.append(stmt)
                continue
            self.class_level.append(stmt)

    @property
    def fields(self) -> list[Field]:
        if self.base is None:
            return list(self.own_fields)
        merged = list(self.base.fields)
        for f in self.own_fields:
            for i, existing in enumerate(merged):
                if existing.name == f.name:
                    merged[i] = f
                    break
            else:
                merged.append(f)
        return merged


_OWN_SCOPES = frozenset({cst.Lambda, cst.ListComp, cst.GeneratorExp, cst.SetComp, cst.DictComp})


class BodyWalker:
    """Walks one method body in execution order (analysis only, no rewriting)."""

    def __init__(self, conv: "ClassConverter", method: cst.FunctionDef, origin: str):
        self.conv = conv
        self.ctx = conv.ctx
        self.origin = origin
        self.method = method
        self.scope = Scope(
            imports=self.ctx.imports,
            fields={f.name for f in conv.shape.fields},
            method_locals=_bound_names(method),
            module_names=self.ctx.module_names,
            extra_static_attrs=set(),
        )
        self.size_of = SizeOf(self.scope, self.ctx.rules.keep_last_dim, self.ctx.rules.keep_last_dim_methods, self._call_size)
        self.local_layers: dict[str, Sub] = {}
        self.variable_locals: set[str] = set()
        self.list_locals: set[str] = set()  # setup locals holding lists (of submodules)
        self.in_loop = 0
        self.loops: list[LoopContext] = []
        self.loop_pass = 1
        self.dynamic_guard = 0
        self.guards: list[str] = []
        # the static locals each condition in `guards` uses: `__init__` recomputes them
        # before the guarded construction (`use = self.n > 2` for `if use:`)
        self.guard_hoists: list[list[tuple[str, str]]] = []
        # the static locals conditional sizes use (`(wide) if (use) else (in_features)`
        # after `if use: x = nn.Dense(wide)(x)`): whatever is built later may need them
        self.size_hoists: list[tuple[str, str]] = []
        self.return_sizes: dict[int, object] = {}  # id(return statement) -> size of its value where it runs
        self.loop_static_names: set[str] = set()  # static locals of the replayed loop's body

    # ---- sizes -------------------------------------------------------------------
    def _call_size(self, call: cst.Call, scope: Scope):
        method = _self_attr(call.func)
        if method is None and isinstance(call.func, cst.Attribute):
            size = self._child_method_size(call.func)
            if size is not None:
                return size
        if id(call) in self.conv.call_returns:
            return self.conv.call_returns[id(call)]
        if method is not None and method in self.conv.method_returns and method not in self.conv.walking and self.conv.method_named(method) is None:
            return self.conv.method_returns[method]
        if method is not None and call.args and call.args[0].keyword is None and self.conv.keeps_last_dim_field(method):
            # `self.activation(h)` with `activation: Callable = nn.tanh`: as its default
            # does (another function that changed the size would fail loudly at the next layer)
            return scalar(self.size_of(call.args[0].value))
        if isinstance(call.func, cst.Name) and call.func.value in self.ctx.functions and call.func.value not in self.scope.method_locals:
            return self.conv.function_return_size(self.ctx.functions[call.func.value], call, self)
        sub = self._sub_called_by(call)
        if sub is None:
            return None
        return self.conv.out_size(sub, call, self)

    def _child_method_size(self, func: cst.Attribute):
        """`cell.initial_state(n)` of a converted user submodule: the size that method
        returns, in this class's terms (None when unknown)."""
        receiver = func.value
        sub = self.conv.sub_by_node.get(id(receiver)) if isinstance(receiver, cst.Call) else self._sub_called_by(cst.Call(func=receiver))
        if sub is None or sub.kind != "local" or sub.child is None:
            return None
        out = sub.child.method_out_sizes.get(func.attr.value)
        if out is None:
            return None
        try:
            return self.conv._child_size(sub, out, None)
        except NotStatic:
            return None

    def _sub_called_by(self, call: cst.Call) -> Sub | None:
        func = call.func
        if isinstance(func, cst.Call):
            return self.conv.sub_by_node.get(id(func))
        attr = _self_attr(func)
        if attr is not None:
            return self.conv.subs_by_attr.get(attr)
        if isinstance(func, cst.Name):
            return self.local_layers.get(func.value)
        return None

    # ---- statements --------------------------------------------------------------
    def walk(self) -> None:
        params = [p for p in self.method.params.params if p.name.value != "self"]
        if (self.method.name.value == "__call__" or self.method is self.conv.shape.compact) and not self.scope.env:
            for i, p in enumerate(params):
                self.scope.env[p.name.value] = size_param_name(i, p.name.value)
                if isinstance(p.default, cst.Name) and p.default.value == "None":
                    self.scope.optional_params[p.name.value] = size_param_name(i, p.name.value)
        self.block(self.method.body.body)

    def block(self, stmts) -> None:
        for stmt in stmts:
            self.statement(stmt)

    def statement(self, stmt: cst.CSTNode) -> None:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                self.small(small, stmt)
        elif isinstance(stmt, cst.If):
            self.expr(stmt.test)
            cond, cond_hoist = self.static_test(stmt.test)
            # `if context is None: context = x`: sizes follow the optional argument's size
            size_cond = cond if cond is not None else none_test(stmt.test, self.scope)
            layers_before = dict(self.local_layers)
            before = self.scope.env.copy()
            self._guarded(cond, stmt.body.body, cond_hoist)
            after_body = self.scope.env
            layers_body = dict(self.local_layers)
            self.scope.env = before.copy()
            self.local_layers = dict(layers_before)
            if stmt.orelse is not None:
                neg = None if cond is None else f"not ({cond})"
                if isinstance(stmt.orelse, cst.If):
                    self._guarded(neg, [stmt.orelse], cond_hoist)
                else:
                    self._guarded(neg, stmt.orelse.body.body, cond_hoist)
            self._merge(after_body, size_cond, cond_hoist)
            layers_else = self.local_layers
            self.local_layers = dict(layers_before)
            for name in set(layers_before) | set(layers_body) | set(layers_else):
                a, b = layers_body.get(name), layers_else.get(name)
                if a is b:
                    if a is None:
                        self.local_layers.pop(name, None)
                    else:
                        self.local_layers[name] = a
                elif a is not None and b is not None and cond is not None and self.in_loop == 0 and a.kind != "chain" and b.kind != "chain":
                    # `embed = nn.Embed(...) if <field test> else self.shared_embedding`:
                    # whichever one the field test picks
                    self.local_layers[name] = Sub(attr=None, kind="either", ctor=stmt.test, line=self.ctx.line(stmt), origin=self.origin, either=(cond, a, b), hoist=list(cond_hoist))
                else:
                    # bound differently depending on the branch: no single submodule
                    self.local_layers.pop(name, None)
        elif isinstance(stmt, (cst.For, cst.While)):
            if isinstance(stmt, cst.For):
                self.expr(stmt.iter)
            else:
                self.expr(stmt.test)
            loop = self._loop_context(stmt)
            chained = None
            if isinstance(stmt, cst.For):
                chained = self._chain_over_list(stmt)  # binds a planned list's element to the loop variable
            targets: set[str] = set()
            if isinstance(stmt, cst.For):
                bound_here: set[str] = set()
                _targets(stmt.target, bound_here)
                for name in bound_here:
                    self.scope.literals.pop(name, None)
            if loop is not None:
                _targets(stmt.target, targets)
                self.loops.append(loop)
                self.scope.loop_vars |= targets
            before = self.scope.env.copy()
            self.in_loop += 1
            self.block(stmt.body.body)
            self.loop_pass = 2
            self.block(stmt.body.body)  # a second pass sees sizes from the previous iteration
            self.loop_pass = 1
            carried = {}
            if loop is not None and any(s.loop is loop for s in self.conv.subs):
                # __init__ replays this loop: sizes that change along it are carried in a
                # variable there, which also gives their size after the loop.
                changed = {name: first for name, first in before.items()
                           if isinstance(first, str) and isinstance(self.scope.env.get(name), str) and self.scope.env[name] != first}
                ends = self._symbolic_pass(stmt, loop, changed) if changed else None
                for name, first in changed.items():
                    carried[name] = (first, ends[name] if ends is not None else self.scope.env[name], f"{name}_size")
                loop.carried_vars = carried
            self.in_loop -= 1
            if loop is not None:
                self.loops.pop()
                self.scope.loop_vars -= targets
                for name in self.loop_static_names:
                    self.scope.static.pop(name, None)  # (its source reads the loop's variables)
                self.loop_static_names.clear()
            end_of_body = dict(self.scope.env)
            self._merge(before)
            for name, (_, _, var) in carried.items():
                self.scope.env[name] = var
            if isinstance(chained, Sub) and chained.kind == "chain" and chained.chain.problem is None:
                chain = chained.chain
                for name, size in end_of_body.items():
                    if size == chain.var and before.get(name) == chain.first:
                        # after the list (none or all of its elements): the carried size
                        self.scope.env[name] = chain.var
            if stmt.orelse is not None:
                self.block(stmt.orelse.body.body)
        elif isinstance(stmt, cst.With):
            for item in stmt.items:
                self.expr(item.item)
            self.block(stmt.body.body)
        elif isinstance(stmt, cst.Try):
            self.block(stmt.body.body)
            for handler in stmt.handlers:
                self.block(handler.body.body)
            for extra in (stmt.orelse, stmt.finalbody):
                if extra is not None:
                    self.block(extra.body.body)
        elif isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            self.conv.nested_defs.append(stmt)
        else:
            for child in children_in_order(stmt):
                self.expr(child)

    def _symbolic_pass(self, stmt: cst.For, loop: LoopContext, changed: dict[str, str]) -> dict[str, str] | None:
        """A third walk of a loop `__init__` replays, with each size that changes along it
        named by the variable `__init__` carries it in (`x_size`): every size then reads in
        terms of the iteration's own start. The second pass assumed each iteration starts
        from the first one's sizes, which holds only while the ends do not depend on the
        start (a chain of Dense layers); a residual block's output keeps its input's size,
        so a stack of them needs the carried variable in its update. Returns the ends in
        that case (and gives the loop's submodules their input sizes in those terms), else
        None: the second pass's sizes stand."""
        saved = dict(self.scope.env)
        self.scope.env.update({name: f"{name}_size" for name in changed})
        self.loop_pass = 3
        self.block(stmt.body.body)
        self.loop_pass = 1
        ends = {name: self.scope.env.get(name) for name in changed}
        self.scope.env.clear()
        self.scope.env.update(saved)
        pattern = re.compile(r"\b(?:" + "|".join(re.escape(f"{name}_size") for name in changed) + r")\b")
        if not all(isinstance(end, str) for end in ends.values()) or not any(pattern.search(end) for end in ends.values()):
            return None
        loop.symbolic = True
        for sub in self.conv.subs:
            if sub.loop is loop and sub.symbolic_in_sizes is not None:
                sub.in_sizes = dict(sub.symbolic_in_sizes)
                sub.carried.clear()
        return ends

    def hoist_list(self, names: list[str]) -> list[tuple[str, str]]:
        """The static locals `names` need, dependencies first, as (name, source); with
        those the enclosing conditions and the conditional sizes so far need (a size
        `x.shape[-1]` may be written in terms of them)."""
        out: list[tuple[str, str]] = self.context_hoists()
        for name in names:
            entry = self.scope.static.get(name)
            if entry is None:
                continue
            src, deps = entry
            for dep in [*deps, (name, src)]:
                if dep not in out:
                    out.append(dep)
        return out

    def _chain_over_list(self, stmt: cst.For):
        """`for layer in self.layers:` / `for i, layer in enumerate(self.layers):` over a
        planned setup list: binds the element submodule to the loop variable."""
        it, target = stmt.iter, stmt.target
        if isinstance(it, cst.Call) and isinstance(it.func, cst.Name) and it.func.value == "enumerate" and len(it.args) == 1 and isinstance(target, cst.Tuple) and len(target.elements) == 2:
            it, target = it.args[0].value, target.elements[1].value
        attr = _self_attr(it)
        plan = self.conv.comp_plans.get(attr) if attr is not None else None
        chain = self.conv.chain_by_attr.get(attr) if attr is not None else None
        if plan is None and chain is not None and isinstance(target, cst.Name) and not self.in_loop:
            # any element of the list: its calls set every element's input sizes
            element = Sub(attr=None, kind="chain", ctor=stmt.iter, line=self.ctx.line(stmt), origin=self.origin, chain=chain)
            self.local_layers[target.value] = element
            return element
        if plan is None or not isinstance(target, cst.Name) or self.in_loop:
            return None
        plan["chained"] = True
        self.local_layers[target.value] = plan["sub"]
        return plan

    def _loop_context(self, stmt) -> LoopContext | None:
        """A loop `__init__` can replay: a `for` over something fields determine, not
        nested in another loop or under a condition on call arguments."""
        if not isinstance(stmt, cst.For) or self.in_loop or self.dynamic_guard or stmt.asynchronous is not None:
            return None
        if _exits_early(stmt.body):
            return None  # `continue`/`break`: some iterations build nothing, which __init__ cannot replay
        used: list[str] = []
        iter_src = try_static(stmt.iter, self.scope, used)
        if iter_src is None:
            return None
        index_var = None
        it = stmt.iter
        if isinstance(it, cst.Call) and isinstance(it.func, cst.Name):
            args = [a for a in it.args if a.keyword is None]
            if it.func.value == "range" and isinstance(stmt.target, cst.Name):
                if len(args) == 1 or (len(args) == 2 and code(args[0].value).strip() == "0"):
                    index_var = stmt.target.value
            elif it.func.value == "enumerate" and len(it.args) == 1 and isinstance(stmt.target, cst.Tuple):
                first = stmt.target.elements[0].value
                if isinstance(first, cst.Name):
                    index_var = first.value
        header = f"for {code(stmt.target)} in {iter_src}:"
        return LoopContext(stmt, index_var, header, self.ctx.line(stmt), self.hoist_list(used), iter_src)

    def static_test(self, test: cst.BaseExpression) -> tuple[str | None, list[tuple[str, str]]]:
        """A condition as `__init__` source (None when it depends on call arguments) and
        the static locals `__init__` must recompute before it."""
        used: list[str] = []
        cond = try_static(test, self.scope, used)
        return cond, (self.hoist_list(used) if cond is not None else [])

    def context_hoists(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for pair in [*self.size_hoists, *(p for hoist in self.guard_hoists for p in hoist)]:
            if pair not in out:
                out.append(pair)
        return out

    def note_size_hoists(self, pairs) -> None:
        for pair in pairs:
            if pair not in self.size_hoists:
                self.size_hoists.append(pair)

    def _guarded(self, cond: str | None, body, hoist=()) -> None:
        if cond is None:
            self.dynamic_guard += 1
            self.block(body)
            self.dynamic_guard -= 1
        else:
            self.guards.append(cond)
            self.guard_hoists.append(list(hoist))
            self.block(body)
            self.guard_hoists.pop()
            self.guards.pop()

    def _merge(self, taken: dict, cond: str | None = None, hoist=()) -> None:
        """Sizes after a branch: `taken` is the environment where the branch ran. Under a
        condition on fields a differing size becomes a conditional expression."""
        for name in set(self.scope.env) | set(taken):
            mine, theirs = self.scope.env.get(name), taken.get(name)
            if mine == theirs:
                continue
            if cond is not None and isinstance(mine, str) and isinstance(theirs, str) and self.in_loop == 0:
                self.scope.env[name] = f"({theirs}) if ({cond}) else ({mine})"
                self.note_size_hoists(hoist)
            else:
                self.scope.env[name] = None

    def small(self, small: cst.CSTNode, line_node) -> None:
        if self.origin == "setup":
            self.conv.note_append_chain(self, small, line_node)
        if self.origin == "setup" and isinstance(small, cst.Assign) and self.conv.setup_assignment(self, small):
            return
        if isinstance(small, (cst.Assign, cst.AnnAssign)):
            value = small.value
            if value is None:
                return
            self.expr(value)
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
            for target in targets:
                if isinstance(target, cst.Name) and isinstance(value, cst.Call) and self.ctx.imports.qualify(value.func) in _SCAN and self.origin == "compact":
                    self.conv.scan_bindings[target.value] = value
                    self.conv.scan_statements.add(id(line_node))
                    self.conv._keyed_nodes.append(line_node)
                    continue
                if isinstance(target, cst.Name):
                    name = target.value
                    if self.origin == "setup" and self.in_loop == 0 and not self.guards and not self.dynamic_guard:
                        self.conv.setup_local_sources[name] = code(value)
                    self.conv.partials.pop(name, None)
                    if self.origin == "compact" and self.in_loop == 0 and not self.guards and not self.dynamic_guard and isinstance(value, cst.Call) and self.ctx.imports.qualify(value.func) == "functools.partial" and self.conv.factory_base(value) is not None:
                        self.conv.partials[name] = value
                        self.conv.partial_statements[name] = line_node
                        self.conv._keyed_nodes.extend([value, line_node])
                    bound = self._module_value(value)
                    if bound is not None:
                        self.local_layers[name] = bound
                    else:
                        self.local_layers.pop(name, None)
                    self.scope.aliases.pop(name, None)
                    if _may_be_literal(value) and _is_literal(code(value)):
                        self.scope.literals[name] = value
                    else:
                        self.scope.literals.pop(name, None)
                    last_dim = _last_dim_of(value)
                    if last_dim is not None and isinstance(self.scope.env.get(last_dim), str):
                        # `features = x.shape[-1]`: a size __init__ knows
                        self.scope.aliases[name] = self.scope.env[last_dim]
                    if _self_method_call(value, "variable"):
                        self.variable_locals.add(name)
                    self.scope.env[name] = self.size_of(value)
                    deps: list[str] = []
                    # directly in the body of a loop __init__ replays (`strides = (2, 2) if i == 0
                    # else (1, 1)`): recomputed there, inside the replayed loop
                    in_replayed_loop = bool(self.loops) and self.in_loop == len(self.loops) == 1 and not self.guards
                    src = try_static(value, self.scope, deps) if (self.in_loop == 0 or in_replayed_loop) and self.dynamic_guard == 0 and self.origin == "compact" else None
                    if src is not None and self.in_loop:
                        self.conv.loop_statics.add((name, src))
                        self.loop_static_names.add(name)
                    if src is not None and self.guards:
                        # assigned under conditions on fields: __init__ computes it at its top,
                        # so it takes this value only where the conditions hold, and keeps the
                        # one it had before elsewhere (None: Linen never read it there)
                        previous = self.scope.static.get(name)
                        test = self.guards[0] if len(self.guards) == 1 else " and ".join(f"({g})" for g in self.guards)
                        src = f"({src}) if {test} else {f'({previous[0]})' if previous else 'None'}"
                        deps = [*deps, *(d for d, _ in (previous[1] if previous else []))]
                    if src is not None:
                        # __init__ recomputes it: its source as of this line, and what it needs
                        self.scope.static[name] = (src, self.hoist_list(deps))
                    else:
                        self.scope.static.pop(name, None)
                else:
                    names: set[str] = set()
                    _targets(target, names)
                    for name in names:
                        self.scope.env[name] = None
                        self.scope.static.pop(name, None)
                    for name in names:
                        self.local_layers.pop(name, None)
                        self.scope.aliases.pop(name, None)
                        self.scope.literals.pop(name, None)
                    if (
                        isinstance(target, (cst.Tuple, cst.List)) and target.elements
                        and isinstance(target.elements[-1].value, cst.Name)
                        and isinstance(value, cst.Attribute) and value.attr.value == "shape"
                        and isinstance(value.value, cst.Name)
                        and isinstance(self.scope.env.get(value.value.value), str)
                    ):
                        # `batch, height, width, channels = x.shape`
                        self.scope.aliases[target.elements[-1].value.value] = self.scope.env[value.value.value]
                    size = self.size_of(value)
                    if isinstance(target, (cst.Tuple, cst.List)) and isinstance(size, tuple) and len(size) == len(target.elements):
                        for el, el_size in zip(target.elements, size):
                            if isinstance(el.value, cst.Name):
                                self.scope.env[el.value.value] = el_size
                    self.expr(target)
        elif isinstance(small, cst.Return) and small.value is not None:
            self.expr(small.value)
            self.return_sizes[id(small)] = self.size_of(small.value)
        elif isinstance(small, cst.AugAssign):
            self.expr(small.value)
            if isinstance(small.target, cst.Name):
                name = small.target.value
                self.scope.static.pop(name, None)
                self.scope.literals.pop(name, None)
                if isinstance(small.operator, cst.MatrixMultiplyAssign):
                    self.scope.env[name] = None
        else:
            for child in children_in_order(small):
                self.expr(child)

    def _module_value(self, value: cst.BaseExpression) -> Sub | None:
        """The submodule an expression names: a construction, a module held in a field
        (`self.shared_embedding`, which the caller passed), or either of two under a field
        test (`nn.Embed(...) if self.shared is None else self.shared`)."""
        sub = self.conv.sub_by_node.get(id(value))
        if sub is not None:
            return sub
        field_attr = _self_attr(value)
        if field_attr is not None and field_attr in self.scope.fields and field_attr not in self.conv.subs_by_attr:
            return Sub(attr=None, kind="field", ctor=value, line=self.ctx.line(value), origin=self.origin, field_name=field_attr)
        if isinstance(value, cst.IfExp) and self.in_loop == 0:
            cond, cond_hoist = self.static_test(value.test)
            a, b = self._module_value(value.body), self._module_value(value.orelse)
            if cond is not None and a is not None and b is not None:
                return Sub(attr=None, kind="either", ctor=value, line=self.ctx.line(value), origin=self.origin, either=(cond, a, b), hoist=cond_hoist)
        return None

    # ---- expressions -------------------------------------------------------------
    def expr(self, node: cst.CSTNode) -> None:
        # (exact type tests: these classes have no subclasses, and `isinstance` against
        # LibCST's abstract node classes is slow on this per-node path)
        if type(node) is cst.Call:
            self.call(node)
            return
        if type(node) is cst.IfExp:
            # `nn.Dense(4)(x) if self.flag else x`: Linen builds what the taken branch builds
            self.expr(node.test)
            cond, cond_hoist = self.static_test(node.test)
            for branch, guard in ((node.body, cond), (node.orelse, None if cond is None else f"not ({cond})")):
                if guard is None:
                    self.dynamic_guard += 1
                    self.expr(branch)
                    self.dynamic_guard -= 1
                else:
                    self.guards.append(guard)
                    self.guard_hoists.append(cond_hoist)
                    self.expr(branch)
                    self.guard_hoists.pop()
                    self.guards.pop()
            return
        if type(node) in _OWN_SCOPES:
            self.in_loop += 1
            for child in children_in_order(node):
                self.expr(child)
            self.in_loop -= 1
            return
        for child in children_in_order(node):
            self.expr(child)

    def call(self, node: cst.Call) -> None:
        conv = self.conv
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "initialize_carry" and self._initialize_carry(node):
            return
        if isinstance(func, cst.Call) and conv.construction_kind(func) is not None:
            sub = self.construction(func)
            for arg in node.args:
                self.expr(arg.value)
            self.called(sub, node)
            return
        if conv.construction_kind(node) is not None:
            self.construction(node)
            return
        if isinstance(func, cst.Call) and self._looks_like_foreign_module(func):
            why = "built and called like a Linen submodule, but its class is not a Linen module converted in this run: build it in __init__ by hand"
            held = _self_attr(func.func)
            fld = next((f for f in conv.shape.fields if f.name == held), None) if held is not None else None
            if fld is not None and fld.default_code is None and self.ctx.field_values is not None and self.ctx.field_values.infer(conv.name, held) is None:
                # a factory field without a default: say what the file's constructions pass
                why += f" (the field '{held}' has no default and {self.ctx.field_values.why_unknown(conv.name, held)})"
            conv.todo(node, code(func.func), why)
        method = _self_attr(func)
        callee = self.conv.method_named(method)
        if callee is not None and callee.name.value not in self.conv.walking:
            for arg in node.args:
                self.expr(arg.value)
            positional = [a.value for a in node.args if a.keyword is None and not a.star]
            walker = BodyWalker(self.conv, callee, "method")
            params = [p for p in callee.params.params if p.name.value != "self"]
            for p, value in zip(params, positional):
                walker.scope.env[p.name.value] = self.size_of(value)
            names = {p.name.value for p in [*callee.params.params, *callee.params.kwonly_params]}
            for arg in node.args:
                if arg.keyword is not None and arg.keyword.value in names:
                    walker.scope.env[arg.keyword.value] = self.size_of(arg.value)
            # the size it returns for these arguments (another call may pass other sizes)
            self.conv.call_returns[id(node)] = self.conv.walk_method(walker)
            self.conv._keyed_nodes.append(node)
            return
        if method in ("param", "variable"):
            for arg in node.args:
                self.expr(arg.value)
            conv.var_site(node, method, self)
            return
        if method in ("make_rng",):
            conv.needs_rngs_attr = True
        if method == "has_variable" and len(node.args) == 2 and all(a.keyword is None and _string_value(a.value) is not None for a in node.args):
            # decided once every variable site is known (ClassConverter._has_variable_sites)
            conv.has_variable_calls.append(node)
            conv._keyed_nodes.append(node)
            return
        if method == "sow" and len(node.args) >= 2 and (name := _string_value(node.args[1].value)) is not None:
            conv.sow_names.add(name)
        if method == "sow" and len(node.args) >= 2 and (name := _string_value(node.args[1].value)) in {f.name for f in conv.shape.fields}:
            # Linen keeps sown values in a collection apart; NNX sets an attribute of that name
            conv.todo(node, f"self.sow(..., {name!r}, ...)", f"NNX stores sown values as the attribute '{name}', which is also a field of the module: rename the sown value (and whoever reads it)")
        if method == "is_mutable_collection":
            if len(node.args) == 1 and node.args[0].keyword is None and _string_value(node.args[0].value) == "batch_stats" \
                    and MODE_ATTRIBUTE not in {f.name for f in conv.shape.fields}:
                # Linen: batch statistics are mutable in init and in a training apply
                # (mutable=['batch_stats']), not in an evaluation apply. NNX: the module's
                # mode, the attribute model.train() / model.eval() set on every module that has it.
                conv.mode_calls.add(id(node))
                conv._keyed_nodes.append(node)
                return
            conv.todo(node, "self.is_mutable_collection()", "NNX has no mutable collections: training vs evaluation is the module's mode (model.train() / model.eval(), BatchNorm's use_running_average); decide it by hand")
            return
        # (is_mutable_collection returned above; sow, make_rng and is_initializing convert)
        if method in ("has_rng", "has_variable", "get_variable", "put_variable", "scope", "bind", "apply", "init", "perturb", "lazy_init", "module_paths", "path", "variables", "clone", "copy"):
            conv.todo(node, f"self.{method}()", "no NNX counterpart is generated for this Module method")
        for child in children_in_order(node):
            self.expr(child)
        sub = self._sub_called_by(node)
        if sub is not None:
            if isinstance(node.func, cst.Name):
                # `bn = nn.BatchNorm(...)` then `bn(x)`: the rewrite of this call must know
                # it calls that submodule (call-time arguments, scan, remat), as for
                # `nn.BatchNorm(...)(x)` and `self.bn(x)`
                holds = self._same_values_here(sub)
                self.conv.local_calls[id(node)] = (sub, holds)
                self.conv._keyed_nodes.append(node)
                if not holds:
                    self.conv.todo(node, f"{node.func.value}(...)", f"Linen set {', '.join(sub.call_kwargs)} when building the layer, from names bound again before this call; pass it at this call by hand")
            self.called(sub, node)

    def _same_values_here(self, sub: Sub) -> bool:
        """Whether the call-time arguments Linen gave `sub` where it was built (`not train`)
        mean the same at a later call of the local holding it: each name they read is bound
        once in the method (a parameter, or one assignment before the construction)."""
        if not sub.call_kwargs:
            return True
        counts = self.conv.binding_counts(self.method)
        try:
            names = {n.id for src in sub.call_kwargs.values() for n in ast.walk(ast.parse(f"({src})", mode="eval")) if isinstance(n, ast.Name)}
        except SyntaxError:
            return False  # (then reported: pass it at the call by hand)
        return all(counts.get(name, 0) <= 1 for name in names)

    def _initialize_carry(self, node: cst.Call) -> bool:
        """Linen's `cell.initialize_carry(rng, shape)` of a recurrent cell the rules know:
        a throwaway `Cell(..., parent=None)` or a converted submodule. True when handled."""
        receiver = node.func.value
        plain = len(node.args) == 2 and all(a.keyword is None and not a.star for a in node.args)
        if isinstance(receiver, cst.Call) and recurrent.is_parent_none(receiver) and self.conv.construction_kind(receiver) == "layer":
            rule = self.ctx.rules.layers[_qual_layer(self.ctx, receiver.func)]
            if not rule.initialize_carry or not plain or receiver.func is not self.conv.class_expr(receiver):
                return False
            for arg in [*receiver.args, *node.args]:
                self.expr(arg.value)
            src, problems = recurrent.throwaway_cell(rule, receiver, code(node.args[0].value), node.args[1].value)
            for why in problems:
                self.conv.todo(node, f"{rule.linen}(parent=None).initialize_carry(...)", why)
            if src is not None:
                self.conv.carry_inits[id(node)] = src
                self.conv._keyed_nodes.append(node)
            return True
        sub = self._sub_called_by(cst.Call(func=receiver)) if not isinstance(receiver, cst.Call) else self.conv.sub_by_node.get(id(receiver))
        if sub is not None and sub.kind == "layer" and sub.rule.initialize_carry:
            if plain:
                self.conv.carry_swaps.add(id(node))
                self.conv._keyed_nodes.append(node)
            else:
                self.conv.todo(node, f"{code(receiver)}.initialize_carry(...)", "NNX takes initialize_carry(input_shape, rngs): reorder the arguments by hand")
        return False

    def _looks_like_foreign_module(self, ctor: cst.Call) -> bool:
        """`Imported(...)(x)`: a class from outside the run (or a Linen transform) used the
        way Linen submodules are; the tool cannot tell what it needs."""
        qual = self.ctx.imports.qualify(ctor.func)
        if qual is None:
            # `self.block_cls(...)(x)`, `cls(...)(x)` with `cls = partial(self.conv_cls, ...)`:
            # a class held in a field or a local may well be a Linen module. Only helpers
            # of this file are known not to be.
            func = ctor.func
            if isinstance(func, cst.Name) and func.value in self.ctx.functions and func.value not in self.scope.method_locals:
                return False
            return isinstance(func, (cst.Name, cst.Attribute))
        if qual.split(".")[0] in ("jax", "numpy", "math", "functools", "builtins", "operator", "einops", "optax"):
            return False
        return qual.rsplit(".", 1)[-1][:1].isupper() or qual.startswith("flax.linen.")

    def construction(self, ctor: cst.Call) -> Sub:
        for arg in ctor.args:
            self.expr(arg.value)
        return self.conv.new_sub(ctor, self)

    def called(self, sub: Sub, call: cst.Call) -> None:
        if self.loop_pass == 3:
            if sub.loop is not None and sub.kind not in ("chain", "either", "field"):
                sub.symbolic_in_sizes = self.conv.call_in_sizes(sub, call, self)
            return
        if sub.kind == "chain":
            self.conv.chain_called(sub.chain, call, self)
            return
        if sub.kind == "either":
            for branch in sub.either[1:]:
                self.called(branch, call)
            return
        if sub.kind == "field":
            return
        for other in sub.alternatives:
            if other.in_sizes is None:
                other.in_sizes = self.conv.call_in_sizes(other, call, self)
        if sub.in_sizes is not None:
            if (sub.loop is not None or sub.comp_attr is not None) and self.loop_pass == 2:
                again = self.conv.call_in_sizes(sub, call, self)
                for param, first in list(sub.in_sizes.items()):
                    later = again.get(param)
                    if later == first or param in sub.carried:
                        continue
                    if first is not None and later is not None and sub.comp_attr is not None and param == self.conv._primary_size_param(sub):
                        later = self._next_element_size(sub, first, later)
                    if first is not None and later is not None:
                        # The size changes along the loop: __init__ carries it in a variable
                        # updated at the end of each iteration, as the data does.
                        sub.carried[param] = (first, later)
                    else:
                        sub.problems.append("the input size changes from one iteration to the next")
                        sub.in_sizes[param] = None
            return
        sub.in_sizes = self.conv.call_in_sizes(sub, call, self)


    def _next_element_size(self, sub: Sub, first: str, later: str) -> str | None:
        """The next element's input size of a setup list run as a chain, written in the
        carried variable (CARRIED) where it depends on this element's input: a residual
        block keeps its input's size, so `later` (computed from the first element's input)
        is right for the second element only. None when the tool cannot follow it."""
        template = self.conv.out_size(sub, None, self, in_size=CARRIED)
        if not isinstance(template, str) or not re.search(rf"\b{CARRIED}\b", template):
            return later  # the next input does not depend on this one's
        if later != self.conv.out_size(sub, None, self, in_size=first):
            return None  # something between the elements changes the size
        return template


class ClassConverter:
    def __init__(self, node: cst.ClassDef, ctx: FileContext, base: ClassSummary | None):
        self.node = node
        self.ctx = ctx
        self.shape = ClassShape(node, ctx, base)
        self.name = node.name.value
        self.subs: list[Sub] = []
        self.sub_by_node: dict[int, Sub] = {}
        self.subs_by_attr: dict[str, Sub] = {}
        self.vars: list[VarDef] = []
        self.var_by_node: dict[int, VarDef] = {}
        self.var_attrs: dict[str, VarDef] = {}
        self.auto_counts: dict[str, int] = {}
        self.todos: list[TodoSite] = []
        self.needs_rngs_attr = False
        # ids of `self.is_mutable_collection('batch_stats')` calls: the class gets a mode attribute
        self.mode_calls: set[int] = set()
        self.nested_defs: list = []
        self.extra_size_params: list[str] = []  # unknown sizes turned into parameters
        self.setup_walker: BodyWalker | None = None
        self.call_walker: BodyWalker | None = None
        self.return_size: str | None = None
        self.list_attrs: set[str] = set()
        self.dict_attrs: set[str] = set()  # setup attributes holding a dict of submodules
        self.comp_plans: dict[str, dict] = {}  # setup list comprehensions of submodules
        self._anonymous: dict[int, str] = {}
        self._order: dict[int, int] = {}  # creation order of submodules and variables
        self.todo_nodes: dict[int, tuple[cst.CSTNode, list[str]]] = {}  # node -> why, for markers
        self.scan_bindings: dict[str, cst.Call] = {}  # `ScanBlock = nn.scan(Block, ...)`
        self.scan_statements: set[int] = set()  # those binding statements (dropped)
        # methods Linen scans over time (`@partial(nn.scan, variable_broadcast='params')`)
        self.time_scans: dict[str, tuple[cst.Decorator, recurrent.TimeScan]] = {}
        self.carry_inits: dict[int, str] = {}  # `Cell(parent=None).initialize_carry(...)` -> NNX source
        self.carry_swaps: set[int] = set()  # `cell.initialize_carry(rng, shape)` of a converted cell
        # id(`name(...)`) -> (the submodule the local `name` holds, whether the call-time
        # arguments Linen gave it where it was built still mean the same at this call)
        self.local_calls: dict[int, tuple[Sub, bool]] = {}
        self._binding_counts: dict[int, dict[str, int]] = {}
        self.sow_names: set[str] = set()  # NNX keeps each sown value in an attribute of its name
        self.has_variable_calls: list[cst.Call] = []  # `self.has_variable('cache', 'name')`
        self.has_variable_attrs: dict[int, str] = {}  # those with an NNX attribute: its name
        # The tables above are keyed by id(node); holding the nodes here keeps a freed
        # node's id from being reused by a new node (which made output nondeterministic).
        self._keyed_nodes: list[cst.CSTNode] = []
        self.method_returns: dict[str, object] = {}
        self.call_returns: dict[int, object] = {}  # id(call of a helper method) -> size it returns there
        self.walking: set[str] = set()
        self.walked: set[str] = set()
        self.setup_var_attrs: dict[str, VarDef] = {}
        # setup locals bound once, at the top level: name -> source (for output sizes)
        self.setup_local_sources: dict[str, str] = {}
        self.append_chains: dict[str, AppendChain] = {}  # setup local list -> chain
        self.partials: dict[str, cst.Call] = {}  # compact locals bound to functools.partial(...)
        self.field_out_params: dict[str, str] = {}  # field holding a called module -> its output-size parameter
        self.partial_statements: dict[str, cst.CSTNode] = {}  # their binding statements
        self.factory_fields: dict[str, str] = {}  # factory field -> its default as NNX source
        # factory fields without a default whose layers take call-time arguments from the
        # caller's call: field -> {Linen keyword -> `__call__` parameter}
        self.call_time_params: dict[str, dict[str, str]] = {}
        self.multi_class_fields: dict[str, tuple[str, ...]] = {}  # class field bound to several classes
        self.loop_statics: set[tuple[str, str]] = set()  # (local, source) recomputed inside a replayed loop
        self.partial_passes: dict[str, int] = {}  # local partial -> times passed to a child as an NNX partial
        self.chain_by_attr: dict[str, AppendChain] = {}
        # `self.query = nn.Dense(..., name='to_q')` in setup: (sub, attribute, name, name node, in a loop)
        self.setup_names: list[tuple[Sub, str, str | None, cst.BaseExpression, bool]] = []
        self.setup_var_names: list[tuple[str, str, cst.CSTNode]] = []  # `self.w = self.param('kernel', ...)`: (Linen name, attribute, node)
        self.attr_renames: dict[str, str] = {}  # setup attribute -> its Linen name, the NNX attribute

    # ---- bookkeeping ------------------------------------------------------------
    def todo(self, node: cst.CSTNode, construct: str, why: str) -> None:
        self.todos.append(TodoSite(self.ctx.path, self.ctx.line(node), construct, why))
        # MethodRewriter marks the statement holding the node with a TODO comment.
        self.todo_nodes.setdefault(id(node), (node, []))[1].append(why)

    def scan_of(self, call: cst.Call) -> cst.Call | None:
        """The `nn.scan(Block, ...)` call behind `nn.scan(Block, ...)(...)` or behind
        `ScanBlock(...)` with `ScanBlock = nn.scan(Block, ...)` earlier in the method."""
        func = call.func
        if isinstance(func, cst.Name) and func.value in self.scan_bindings:
            return self.scan_bindings[func.value]
        if isinstance(func, cst.Call) and self.ctx.imports.qualify(func.func) in _SCAN:
            return func
        return None

    def class_expr(self, call: cst.Call) -> cst.BaseExpression:
        """The class a construction builds: `Block` for `Block(...)`, for
        `nn.remat(Block)(...)` (remat a block: built as is, called through nnx.remat) and
        for a scan over layers of Block."""
        scan = self.scan_of(call)
        if scan is not None and scan.args and scan.args[0].keyword is None:
            return scan.args[0].value
        func = call.func
        if isinstance(func, cst.Call) and self.ctx.imports.qualify(func.func) in _REMAT and len(func.args) == 1 and func.args[0].keyword is None:
            return func.args[0].value
        return func

    def is_remat(self, call: cst.Call) -> bool:
        return self.scan_of(call) is None and self.class_expr(call) is not call.func

    def construction_kind(self, call: cst.Call) -> str | None:
        factory = self.factory_of(call.func)
        if factory is not None:
            return "layer" if factory.rule is not None else "local"
        func = self.class_expr(call)
        qual = _qual_layer(self.ctx, func)
        if isinstance(func, cst.Call):
            return None
        if qual in self.ctx.rules.layers:
            return "layer"
        if qual == "flax.linen.Sequential":
            return "sequential"
        if self.ctx.module_class(func) is not None:
            return "local"
        if qual is not None and qual.startswith("flax.linen.") and qual.rsplit(".", 1)[1][:1].isupper() and qual not in ("flax.linen.Module",):
            return "unknown-linen"
        return None

    def new_sub(self, ctor: cst.Call, walker: BodyWalker) -> Sub:
        if id(ctor) in self.sub_by_node:
            return self.sub_by_node[id(ctor)]
        kind = self.construction_kind(ctor)
        sub = Sub(attr=None, kind=kind, ctor=ctor, line=self.ctx.line(ctor), origin=walker.origin, guards=list(walker.guards))
        if walker.origin == "compact":
            sub.hoist = walker.context_hoists()  # what its guards and input sizes use
        sub.remat = self.is_remat(ctor)
        cls_expr = self.class_expr(ctor)
        if kind == "layer":
            sub.factory = self.factory_of(ctor.func)
            sub.rule = sub.factory.rule if sub.factory is not None else self.ctx.rules.layers[_qual_layer(self.ctx, cls_expr)]
            linen_class = sub.rule.linen
        elif kind == "local":
            sub.factory = self.factory_of(ctor.func)
            sub.child = sub.factory.child if sub.factory is not None else self.ctx.module_class(cls_expr)
            linen_class = sub.child.name
            if sub.child.has_todos:
                sub.problems.append(f"{sub.child.name} has TODO sites of its own")
            several = self.multi_class_fields.get(sub.factory.field) if sub.factory is not None else None
            if several and not any(a.keyword is not None and a.keyword.value == "name" for a in ctor.args):
                sub.problems.append(f"the field '{sub.factory.field}' holds {' or '.join(several)} (the file binds both): Linen names the submodule after the class it holds; give it name= or build it by hand")
            if several and sub.child.out_size is None:
                sub.problems.append(f"{' and '.join(several)} give different output sizes: the size after it is not known")
        elif kind == "sequential":
            linen_class = "Sequential"
            seq = ctor.args[0].value if ctor.args else None
            if isinstance(seq, (cst.List, cst.Tuple)):
                for el in seq.elements:
                    if isinstance(el.value, cst.Call) and self.construction_kind(el.value) in ("layer", "local"):
                        sub.elements.append(self.sub_by_node[id(el.value)])
                    elif self.ctx.imports.qualify(el.value) in self.ctx.rules.renames or self.ctx.imports.qualify(el.value) in self.ctx.rules.keep_last_dim:
                        sub.elements.append(el.value)  # a function: nnx.Sequential calls it as is
                    else:
                        sub.problems.append("an nn.Sequential member is not a layer the tool knows")
            else:
                sub.problems.append("nn.Sequential takes a list the tool cannot read")
        else:
            linen_class = (self.ctx.imports.qualify(ctor.func) or "?").rsplit(".", 1)[1]
            why = self.ctx.rules.unconverted.get(normalize_linen(self.ctx.imports.qualify(ctor.func), self.ctx.rules.unconverted))
            sub.problems.append(f"Linen layer '{linen_class}' is not converted: {why}" if why else f"no NNX rule for Linen layer '{linen_class}' in rules/linen_layers.toml")
        if kind == "layer" and sub.factory is not None and sub.factory.field in self.call_time_params:
            # Linen: the caller's partial set it from the caller's call arguments; NNX: the
            # caller passes it to this module's call, which passes it on (None: as built)
            for key, param in self.call_time_params[sub.factory.field].items():
                sub.call_kwargs[key] = param
        if kind == "layer" and sub.rule.cell_arg:
            self._cell_member(sub)
        if sub.remat:
            linen_class = "Checkpoint" + linen_class  # the class nn.remat makes
        scan = self.scan_of(ctor)
        if scan is not None:
            linen_class = "Scan" + linen_class  # the class nn.scan makes
            self._scan_options(sub, scan, walker)
        explicit = None
        name_arg = None
        for arg in ctor.args:
            if arg.keyword is not None and arg.keyword.value == "name":
                name_arg = arg.value
                explicit = _string_value(arg.value)
        loop = walker.loops[-1] if walker.loops and walker.in_loop == len(walker.loops) else None
        list_name = _list_element_name(name_arg, loop.index_var) if loop is not None and name_arg is not None else None
        if name_arg is not None and explicit is None and list_name is None:
            why = "name= is not a string literal" + (" or an f-string '<list>_{i}' over the loop counter" if walker.in_loop else "")
            if walker is self.setup_walker:
                sub.problems.append(why)  # reported with the setup attribute it is bound to
            else:
                # reported at once: a compact submodule left without an attribute is never
                # listed with the others
                self.todo(ctor, f"{code(ctor.func)}(..., name=...)", f"{why}: the NNX attribute name is unknown; build it in __init__ by hand")
        if walker.origin == "compact" or walker is not self.setup_walker:
            if walker.in_loop and list_name is not None:
                # Linen's names list_0, list_1, ... are the elements of the nnx.List `list`.
                sub.attr = list_name
                sub.loop = loop
            elif explicit is None and name_arg is None:
                # Linen names unnamed compact submodules in call order, per class.
                count = self.auto_counts.get(linen_class, 0)
                self.auto_counts[linen_class] = count + 1
                sub.attr = nnx_attribute_name(f"{linen_class}_{count}")
                if walker.origin == "compact":
                    sub.auto_class = linen_class
                    sub.conditional = bool(walker.guards or walker.dynamic_guard)
                if walker.in_loop and loop is not None and walker.origin == "compact":
                    # Dense_0, Dense_1, ... depend on the iteration: see _auto_named_lists
                    sub.loop = loop
            else:
                sub.attr = explicit if explicit is None or explicit.isidentifier() and not keyword.iskeyword(explicit) else nnx_attribute_name(explicit)
            if walker.in_loop and sub.loop is None:
                sub.problems.append("submodule built in a loop without name=f'<list>_{i}' (i counting from 0): Linen's names depend on the iteration; build an nnx.List in __init__ by hand")
            if walker.dynamic_guard:
                sub.problems.append("submodule built under a condition on call arguments; built unconditionally in __init__, check that Linen's init took this branch")
            if walker.origin != "compact":
                sub.problems.append("submodule built outside setup and outside a compact method")
        self.sub_by_node[id(ctor)] = sub
        self._keyed_nodes.append(ctor)
        self._order[id(sub)] = len(self._order)
        # Members of an nn.Sequential built in setup are Sequential's (`body/layers_0`); in a
        # compact body Linen names them as this module's own submodules (`Dense_1`), so
        # they stay attributes here and the NNX Sequential refers to them.
        for member in sub.members if walker.origin != "compact" else ():
            if member.attr is not None and member in self.subs:
                self.subs.remove(member)
                self.subs_by_attr.pop(member.attr, None)
                count = self.auto_counts.get(self._linen_class(member), 1)
                if member.attr == nnx_attribute_name(f"{self._linen_class(member)}_{count - 1}"):
                    self.auto_counts[self._linen_class(member)] = count - 1
            member.attr = None
        if sub.attr is not None:
            if sub.attr in self.subs_by_attr or sub.attr in {f.name for f in self.shape.fields}:
                sub.problems.append(f"attribute name '{sub.attr}' is used twice")
            self.subs_by_attr[sub.attr] = sub
        self.subs.append(sub)
        # Arguments as __init__ source.
        if walker.origin == "compact":
            for key, value in self._linen_kwargs(sub).items():
                if sub.rule is not None and key == sub.rule.cell_arg:
                    continue  # ctor_source refers to the member
                if sub.kind == "local" and self._layer_partial(value) is not None:
                    src = self._nnx_partial_arg(sub, key, value, walker)
                    if src is not None:
                        sub.arg_code[key] = src
                        continue
                if sub.kind == "local" and sub.child is not None and sub.child.call_time_params.get(key) and _self_attr(value) is not None:
                    self._pass_call_time_on(sub, key, _self_attr(value))
                used: list[str] = []
                try:
                    sub.arg_code[key] = translate_static(value, walker.scope, used)
                except NotStatic as exc:
                    if sub.rule is not None and key in sub.rule.call_time:
                        # NNX takes it at call time too: keep Linen's value, evaluated where
                        # Linen evaluated it.
                        sub.call_kwargs[key] = code(value)
                        continue
                    sub.problems.append(f"argument '{key}' {exc}")
                    sub.args_unsure = True
                    sub.arg_code[key] = code(value)
                for pair in walker.hoist_list(used):
                    if pair not in sub.hoist:
                        sub.hoist.append(pair)
        else:
            for key, value in self._linen_kwargs(sub).items():
                if sub.rule is None or key != sub.rule.cell_arg:
                    sub.arg_code[key] = code(value)
        return sub

    def keeps_last_dim_field(self, name: str) -> bool:
        """A field whose default is a function that keeps the last axis (`nn.tanh`)."""
        fld = next((f for f in self.shape.fields if f.name == name), None)
        if fld is not None and fld.default_code is None and name not in self.subs_by_attr:
            # no default: the function every construction in the file passes
            inferred = self.inferred_value(name)
            return inferred is not None and inferred.kind == "function" and inferred.key_in(self.ctx.rules.keep_last_dim)
        if fld is None or fld.default_code is None or name in self.subs_by_attr:
            return False
        try:
            default = cst.parse_expression(fld.default_code)
        except cst.ParserSyntaxError:
            return False
        return isinstance(default, (cst.Name, cst.Attribute)) and self.ctx.imports.qualify(default) in self.ctx.rules.keep_last_dim

    # ---- layer factories (the "ModuleDef" pattern) -----------------------------------
    def factory_of(self, func: cst.BaseExpression) -> Factory | None:
        """`self.conv` (a field defaulting to a Linen layer or a partial of one) or a
        compact local `conv = partial(<such a field or Linen layer>, ...)`."""
        if isinstance(func, cst.Name) and func.value in self.partials:
            partial = self.partials[func.value]
            base = self.factory_base(partial)
            if base is None:
                return None
            return Factory(base.callee, base.rule, [*base.args, *partial.args[1:]], base.preset, base.field, base.child)
        attr = _self_attr(func)
        if attr is not None:
            return self._field_factory(attr)
        return None

    def _layer_partial(self, value: cst.BaseExpression) -> cst.Call | None:
        """`conv` (a compact local `partial(<Linen layer or factory field>, ...)`) or such a
        partial written in place: the partial call."""
        if isinstance(value, cst.Name) and value.value in self.partials:
            call = self.partials[value.value]
        elif isinstance(value, cst.Call) and self.ctx.imports.qualify(value.func) == "functools.partial":
            call = value
        elif isinstance(value, (cst.Name, cst.Attribute)) and _qual_layer(self.ctx, value) in self.ctx.rules.layers:
            # a Linen layer class passed as is: the partial of nothing
            return cst.Call(func=cst.Name("partial"), args=[cst.Arg(value)])
        else:
            return None
        base = self.factory_base(call)
        return call if base is not None and base.rule is not None and not base.args else None

    def _nnx_partial_arg(self, sub: Sub, key: str, value: cst.BaseExpression, walker: "BodyWalker") -> str | None:
        """A layer partial passed to a child module (`Block(norm=norm)` with `norm =
        partial(nn.BatchNorm, use_running_average=not train)`) as `__init__` source: the
        NNX partial. Keywords the layer also takes at call time that come from call
        arguments go to the child's call, through the parameter the child takes for them.
        None (with a problem noted) when that cannot be done."""
        call = self._layer_partial(value)
        base = self.factory_base(call)
        rule = base.rule
        child_params = sub.child.call_time_params.get(key, {}) if sub.child is not None else {}
        parts = [base.callee]
        given: set[str] = set()
        moved: dict[str, str] = {}
        counts = None
        for arg in call.args[1:]:
            if arg.star or arg.keyword is None:
                sub.problems.append(f"argument '{key}': a partial with positional or * arguments")
                return None
            k = arg.keyword.value
            if k in rule.unsupported:
                sub.problems.append(f"argument '{key}': {rule.linen}'s '{k}' has no NNX counterpart")
                return None
            used: list[str] = []
            try:
                v = translate_static(arg.value, walker.scope, used)
            except NotStatic as exc:
                if counts is None:
                    counts = _binding_counts(self.shape.compact) if self.shape.compact is not None else {}
                free = _free_names(arg.value)
                params = {p.name.value for p in self.shape.compact.params.params} if self.shape.compact is not None else set()
                steady = all(n in params and counts.get(n, 0) == 1 for n in free)
                if k in rule.call_time and k in child_params and steady:
                    moved[child_params[k]] = code(arg.value)  # the same value at the child's call
                    continue
                why = ""
                if k in rule.call_time:
                    why = f"; {sub.child.name} takes no '{k}' at call time" if k not in child_params else "; it reads names other than call arguments never rebound"
                sub.problems.append(f"argument '{key}': the partial's '{k}' {exc}{why}")
                return None
            for pair in walker.hoist_list(used):
                if pair not in sub.hoist:
                    sub.hoist.append(pair)
            parts.append(f"{rule.rename.get(k, k)}={v}")
            given |= {k, rule.rename.get(k, k)}
        if base.field is None:
            # a direct construction's explicit defaults (the field's default carries its own)
            parts += [f"{k}={v}" for k, v in rule.defaults.items() if k not in given]
        sub.call_kwargs.update(moved)
        if isinstance(value, cst.Name) and value.value in self.partials:
            self.partial_passes[value.value] = self.partial_passes.get(value.value, 0) + 1
        if len(parts) == 1:
            return parts[0]
        return f"{self.ctx.partial_name()}({', '.join(parts)})"

    def _pass_call_time_on(self, sub: Sub, key: str, attr: str) -> None:
        """`Block(norm=self.norm)` where this class's own `norm` (no default) gets its
        call-time values from its caller's call: they go on to the child's call."""
        if self._field_factory(attr) is None and attr not in self.call_time_params:
            return
        mine = self.call_time_params.get(attr, {})
        for k, child_param in sub.child.call_time_params[key].items():
            if k in mine:
                sub.call_kwargs[child_param] = mine[k]

    def _drop_partials_used_only_to_build(self) -> None:
        """`conv = partial(nn.Conv, ...)` whose every use builds a layer (now built in
        __init__): the binding goes. Otherwise it stays, and so does its Linen class."""
        if not self.partials or self.shape.compact is None:
            return
        uses: dict[str, int] = {}

        class Uses(FastVisitor):
            def visit_Attribute(self, node: cst.Attribute):
                self.walk(node.value)
                return False

            def visit_Arg(self, node: cst.Arg):
                self.walk(node.value)  # (not the keyword: `conv=conv` uses `conv` once)
                return False

            def visit_Name(self, node: cst.Name):
                uses[node.value] = uses.get(node.value, 0) + 1

        Uses().walk(self.shape.compact.body)
        for name, stmt in self.partial_statements.items():
            builds = sum(1 for sub in self.subs if isinstance(sub.ctor.func, cst.Name) and sub.ctor.func.value == name)
            builds += self.partial_passes.get(name, 0)  # passed to a child as an NNX partial
            if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and uses.get(name, 0) == 1 + builds:
                self.scan_statements.add(id(stmt))  # statements MethodRewriter drops

    def factory_base(self, partial: cst.Call) -> Factory | None:
        """What `partial(X, ...)` wraps: a Linen layer class (built inline) or a factory field."""
        if not partial.args or partial.args[0].keyword is not None or partial.args[0].star:
            return None
        base = partial.args[0].value
        attr = _self_attr(base)
        if attr is not None:
            return self._field_factory(attr)
        if isinstance(base, cst.Call):
            return None
        child = self.ctx.module_class(base)
        if child is not None:
            return Factory(code(base), None, [], {}, child=child)
        qual = _qual_layer(self.ctx, base)
        if qual in self.ctx.rules.layers:
            rule = self.ctx.rules.layers[qual]
            return Factory(f"nnx.{rule.nnx_name}", rule, [], {})
        return None

    def inferred_value(self, attr: str):
        """What every construction in the file passes to a field without a default
        (`field_values.Inferred`), or None."""
        fld = next((f for f in self.shape.fields if f.name == attr), None)
        if fld is None or fld.default_code is not None or self.ctx.field_values is None:
            return None
        return self.ctx.field_values.infer(self.name, attr)

    def _inferred_factory(self, attr: str) -> Factory | None:
        """A factory field without a default that every construction sets alike: a Linen
        layer (or partials of it) converts as if it were the default (the signature keeps
        the field required); module classes of the run when their constructors agree."""
        inferred = self.inferred_value(attr)
        if inferred is None:
            return None
        if inferred.kind == "class":
            summaries = [self.ctx.module_class(cst.Name(c)) for c in inferred.classes]
            if any(s is None for s in summaries):
                return None
            first = summaries[0]
            shape = lambda s: ([f.name for f in s.fields], s.size_params, s.size_param_args, s.optional_size_params, s.field_out_params, s.call_time_params)  # noqa: E731
            if any(shape(s) != shape(first) for s in summaries[1:]):
                return None
            out_sizes = {repr(s.out_size) for s in summaries}
            merged = _replace(
                first,
                out_size=first.out_size if len(out_sizes) == 1 else None,
                has_todos=any(s.has_todos for s in summaries),
                decides_mode=any(s.decides_mode for s in summaries),
            )
            if len(summaries) > 1:
                self.multi_class_fields[attr] = tuple(inferred.classes)
            return Factory(f"self.{attr}", None, [], {}, field=attr, child=merged)
        if inferred.kind != "layer":
            return None
        cls = cst.parse_expression(inferred.base)
        rule = self.ctx.rules.layers.get(_qual_layer(self.ctx, cls))
        if rule is None or any(k not in rule.linen_args or k in rule.unsupported for k in inferred.presets):
            return None
        if inferred.call_time:
            method = self.shape.compact
            if method is None or method.name.value != "__call__" or isinstance(method.params.star_kwarg, cst.Param):
                return None  # the caller's call-time values would have no parameter to come through
            params = self.call_time_params.setdefault(attr, {})
            taken = {p.name.value for p in [*method.params.params, *method.params.kwonly_params]} if method is not None else set()
            taken |= {p for others in self.call_time_params.values() for p in others.values()}
            for key in sorted(inferred.call_time):
                if key not in params:
                    params[key] = key if key not in taken else f"{attr}_{key}"
                    taken.add(params[key])
        return Factory(f"self.{attr}", rule, [], dict(inferred.presets), field=attr)

    def _field_factory(self, attr: str) -> Factory | None:
        fld = next((f for f in self.shape.fields if f.name == attr), None)
        if fld is None:
            return None
        if fld.default_code is None:
            return self._inferred_factory(attr)
        try:
            default = cst.parse_expression(fld.default_code)
        except cst.ParserSyntaxError:
            return None
        keywords: dict[str, str] = {}
        cls = default
        if isinstance(default, cst.Call) and self.ctx.imports.qualify(default.func) == "functools.partial" and default.args:
            if any(a.keyword is None or a.star for a in default.args[1:]) or default.args[0].keyword is not None:
                return None  # positional presets would shift NNX's (in_features first) arguments
            cls = default.args[0].value
            keywords = {a.keyword.value: code(a.value) for a in default.args[1:]}
        if isinstance(cls, cst.Call):
            return None
        child = self.ctx.module_class(cls)
        if child is not None:
            if any(k not in {f.name for f in child.fields} for k in keywords):
                return None
            return Factory(f"self.{attr}", None, [], keywords, field=attr, child=child)
        qual = _qual_layer(self.ctx, cls)
        if qual not in self.ctx.rules.layers:
            return None
        rule = self.ctx.rules.layers[qual]
        if any(k not in rule.linen_args or k in rule.unsupported for k in keywords):
            return None
        nnx_cls = f"nnx.{rule.nnx_name}"
        # The default builds what a direct construction builds: with the rule's explicit
        # defaults where the libraries differ (LSTMCell's recurrent_kernel_init=orthogonal(),
        # BatchNorm's use_running_average=None), since __init__ calls the field without them.
        given = {rule.rename.get(k, k) for k in keywords} | set(keywords)
        kw = "".join(f", {rule.rename.get(k, k)}={v}" for k, v in keywords.items())
        kw += "".join(f", {k}={v}" for k, v in rule.defaults.items() if k not in given)
        if isinstance(default, cst.Call):
            self.factory_fields[attr] = f"{code(default.func)}({nnx_cls}{kw})"
        elif kw:
            self.factory_fields[attr] = f"{self.ctx.partial_name()}({nnx_cls}{kw})"
        else:
            self.factory_fields[attr] = nnx_cls
        return Factory(f"self.{attr}", rule, [], keywords, field=attr)

    def _cell_member(self, sub: Sub) -> None:
        """nn.RNN(cell, ...): the cell, built in the same expression, is converted as a
        member (like an nn.Sequential's); its input size is the RNN's."""
        arguments = self._linen_kwargs(sub)
        cell = arguments.get(sub.rule.cell_arg)
        member = self.sub_by_node.get(id(cell)) if isinstance(cell, cst.Call) else None
        if member is None:
            sub.problems.append(f"the {sub.rule.linen}'s cell is not built in its arguments: convert by hand")
        else:
            sub.elements.append(member)
        sub.problems += recurrent.rnn_problems(arguments)

    def _scan_options(self, sub: Sub, scan: cst.Call, walker: BodyWalker) -> None:
        """The scan-over-layers form NNX builds with vmap and runs with scan: parameters
        stacked on axis 0, one init key per layer, a static length. (A scan over time,
        parameters broadcast, is recurrent.py's.)"""
        options = {a.keyword.value: a.value for a in scan.args[1:] if a.keyword is not None}
        if recurrent.is_time_scan(options):
            over_time = recurrent.time_scan(self.ctx.imports, options)
            sub.scan = {"time": over_time}
            sub.problems += over_time.problems
            return
        compact = lambda node: code(node).replace(" ", "").replace('"', "'")  # noqa: E731
        sub.scan = {}
        if compact(options.get("variable_axes", cst.Name("None"))) != "{'params':0}":
            sub.problems.append("nn.scan with variable_axes other than {'params': 0}: convert by hand (nnx.vmap to build, nnx.scan to run)")
        split = compact(options.get("split_rngs", cst.Name("None")))
        if split not in ("{'params':True}", "{'params':True,'dropout':True}"):
            sub.problems.append("nn.scan with split_rngs other than {'params': True}: convert by hand")
        for key in options:
            if key not in ("variable_axes", "split_rngs", "length", "in_axes", "out_axes"):
                sub.problems.append(f"nn.scan option '{key}' is not converted")
        if "length" not in options:
            sub.problems.append("nn.scan without length=: convert by hand")
        else:
            try:
                sub.scan["length"] = translate_static(options["length"], walker.scope)
            except NotStatic as exc:
                sub.problems.append(f"nn.scan length {exc}")
        for key in ("in_axes", "out_axes"):
            sub.scan[key] = scan_axes(self.ctx.imports, options.get(key), key)
            sub.problems += sub.scan[key].problems

    def _linen_class(self, sub: Sub) -> str:
        return sub.rule.linen if sub.rule else sub.child.name if sub.child else "Sequential"

    def _linen_kwargs(self, sub: Sub) -> dict[str, cst.BaseExpression]:
        """The construction's arguments by Linen parameter name (positional resolved)."""
        out: dict[str, cst.BaseExpression] = {}
        if sub.kind == "layer":
            names = sub.rule.linen_args
        elif sub.kind == "local":
            names = tuple(f.name for f in sub.child.fields)
        else:
            return out
        pos = 0
        args = list(sub.ctor.args)
        if sub.factory is not None:
            args = [*sub.factory.args, *args]
        for arg in args:
            if arg.star:
                sub.problems.append("*args/**kwargs in a submodule construction")
                sub.args_unsure = True
                continue
            if arg.keyword is None:
                if pos < len(names):
                    out[names[pos]] = arg.value
                else:
                    sub.problems.append("more positional arguments than the layer takes")
                    sub.args_unsure = True
                pos += 1
            elif arg.keyword.value not in ("name",):
                out[arg.keyword.value] = arg.value
        return out

    def var_site(self, node: cst.Call, method: str, walker: BodyWalker) -> None:
        args = list(node.args)
        if method == "param":
            name = _string_value(args[0].value) if args else None
            rest = args[1:]
            collection = "params"
        else:
            collection = _string_value(args[0].value) if args else None
            name = _string_value(args[1].value) if len(args) > 1 else None
            rest = args[2:]
        if name is None or (method == "variable" and collection is None) or not rest or any(a.keyword is not None or a.star for a in rest):
            self.todo(node, f"self.{method}(...)", "name, collection or init function is not a literal the tool can read")
            return
        init, init_args = rest[0].value, [a.value for a in rest[1:]]
        used: list[str] = []
        hoist: list[str] = []
        try:
            if walker.origin == "compact":
                init_src = translate_static(init, walker.scope, used)
                arg_src = [translate_static(a, walker.scope, used) for a in init_args]
            else:
                init_src, arg_src = code(init), [code(a) for a in init_args]
        except NotStatic as exc:
            self.todo(node, f"self.{method}('{name}')", f"its initializer {exc}")
            return
        hoist = walker.hoist_list(used) if walker.origin == "compact" else []
        if not isinstance(init, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)):
            init_src = f"({init_src})"  # a lambda is called as Linen calls it
        vtype = self.ctx.variable_type(collection)
        if method == "param":
            call_src = f"{init_src}({', '.join(['rngs.params()', *arg_src])})"
        else:
            if isinstance(init, cst.Name) and init.value == "None":
                self.todo(node, f"self.variable('{collection}', '{name}')", "no init function")
                return
            call_src = f"{init_src}({', '.join(arg_src)})"
        site = VarDef(attr=name, collection=collection, init_code=f"{vtype}({call_src})", line=self.ctx.line(node), guards=list(walker.guards), hoist=hoist)
        if walker.in_loop or walker.dynamic_guard:
            self.todo(node, f"self.{method}('{name}')", "created in a loop or under a condition on call arguments")
        if name in self.var_attrs and walker.origin == "compact":
            self.var_by_node[id(node)] = self.var_attrs[name]
            self._keyed_nodes.append(node)
            return
        if name in self.subs_by_attr or name in {f.name for f in self.shape.fields}:
            self.todo(node, f"self.{method}('{name}')", f"attribute name '{name}' is used twice")
        self.var_by_node[id(node)] = site
        self._keyed_nodes.append(node)
        self._order[id(site)] = len(self._order)
        self.var_attrs[name] = site
        self.vars.append(site)

    # ---- sizes ------------------------------------------------------------------
    def call_in_sizes(self, sub: Sub, call: cst.Call, walker: BodyWalker) -> dict[str, str | None]:
        positional = [a.value for a in call.args if a.keyword is None and not a.star]
        if sub.kind == "layer" and sub.rule.cell_arg:
            # the cell's step input is a time slice of the sequence: the same last dimension;
            # its carry is `initial_carry=` when given
            size = scalar(walker.size_of(positional[0])) if positional else None
            carry = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == "initial_carry"), None)
            carry_size = scalar(walker.size_of(carry)) if carry is not None else None
            for member in sub.members:
                if member.kind == "layer":
                    member.in_sizes = {member.rule.in_size: size} if member.rule.in_size else {}
                    if (carry is not None and member.rule.initialize_carry and not member.foreign_carry
                            and not self._own_carry(member, member.ctor, carry, walker)):
                        member.foreign_carry = True
                        member.problems.append(recurrent.FOREIGN_CARRY.format(cell=member.rule.linen, carry=code(carry)))
                elif member.kind == "local":
                    member.in_sizes = {p: {0: carry_size, 1: size}.get(member.child.size_param_args.get(p)) for p in member.child.size_params}
            return {}
        if sub.kind == "layer":
            if sub.rule.initialize_carry and positional and not sub.foreign_carry and not self._own_carry(sub, call, positional[0], walker):
                sub.foreign_carry = True
                sub.problems.append(recurrent.FOREIGN_CARRY.format(cell=sub.rule.linen, carry=code(positional[0])))
            if not sub.rule.in_size:
                return {}
            idx = sub.rule.input_arg
            size = scalar(walker.size_of(positional[idx])) if idx < len(positional) else None
            return {sub.rule.in_size: size}
        if sub.kind == "local":
            sizes = {}
            keywords = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
            for param in sub.child.size_params:
                idx = sub.child.size_param_args.get(param)
                name = sub.child.size_param_names.get(param)
                arg = positional[idx] if idx is not None and idx < len(positional) else keywords.get(name) if name else None
                if param in sub.child.optional_size_params and (arg is None or (isinstance(arg, cst.Name) and arg.value == "None")):
                    sizes[param] = "None"  # the argument is not given: the child's default
                    continue
                sizes[param] = scalar(walker.size_of(arg)) if arg is not None else None
            return sizes
        if sub.kind == "sequential":
            size = scalar(walker.size_of(positional[0])) if positional else None
            for member in sub.elements:
                if not isinstance(member, Sub):
                    size = self._function_size(member, size)
                    continue
                if member.kind == "layer" and member.rule.in_size:
                    member.in_sizes = {member.rule.in_size: size}
                elif member.kind == "local":
                    member.in_sizes = {p: (size if member.child.size_param_args.get(p) == 0 else None) for p in member.child.size_params}
                else:
                    member.in_sizes = {}
                size = self.out_size(member, None, walker, in_size=size)
            return {}
        return {}

    def _own_carry(self, sub: Sub, call: cst.Call, carry: cst.BaseExpression, walker: BodyWalker) -> bool:
        linen = _qual_layer(self.ctx, self.class_expr(sub.ctor))  # also through nn.scan(Cell, ...)
        return recurrent.carry_made_by_features(
            sub.ctor, call.func, sub.rule, carry, walker.method, self.shape.methods,
            lambda func: _qual_layer(self.ctx, func) == linen)

    def out_size(self, sub: Sub, call: cst.Call | None, walker: BodyWalker, in_size: str | None = None) -> str | None:
        if sub.alternatives:
            sizes = [self._own_out_size(s, call, walker, in_size) for s in [sub, *sub.alternatives]]
            return sizes[0] if all(size == sizes[0] for size in sizes) else None
        return self._own_out_size(sub, call, walker, in_size)

    def _own_out_size(self, sub: Sub, call: cst.Call | None, walker: BodyWalker, in_size: str | None = None) -> str | None:
        if call is not None:
            positional = [a.value for a in call.args if a.keyword is None and not a.star]
            if sub.kind == "layer":
                idx = sub.rule.input_arg
                in_size = scalar(walker.size_of(positional[idx])) if idx < len(positional) else None
            elif positional:
                in_size = scalar(walker.size_of(positional[0]))
        if sub.kind == "layer" and sub.rule.cell_arg:
            return self._rnn_out_size(sub, call, in_size)
        if sub.kind == "layer" and sub.rule.initialize_carry:
            # a recurrent cell returns (carry, output); the output has the carry's size
            return (None, None if sub.foreign_carry else self._layer_out_size(sub, in_size))
        if sub.kind == "layer":
            return self._layer_out_size(sub, in_size)
        if sub.kind == "local":
            out = sub.child.out_size
            if isinstance(out, tuple):
                return tuple(self._child_size(sub, o, in_size) for o in out)
            return self._child_size(sub, out, in_size)
        if sub.kind == "chain":
            return sub.chain.var
        if sub.kind == "either":
            cond, a, b = sub.either
            size_a, size_b = self.out_size(a, call, walker, in_size), self.out_size(b, call, walker, in_size)
            if isinstance(size_a, str) and isinstance(size_b, str):
                if size_a == size_b:
                    return size_a
                walker.note_size_hoists(sub.hoist)
                return f"({size_a}) if ({cond}) else ({size_b})"
            return None
        if sub.kind == "field":
            # what the caller passed: its output size is the caller's to give
            return self.field_out_params.setdefault(sub.field_name, f"{sub.field_name}_out_features")
        if sub.kind == "sequential":
            size = in_size
            for member in sub.elements:
                size = self.out_size(member, None, walker, in_size=size) if isinstance(member, Sub) else self._function_size(member, size)
            return size
        return None

    def _layer_out_size(self, sub: Sub, in_size):
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

    def _rnn_out_size(self, sub: Sub, call: cst.Call | None, in_size):
        """nn.RNN: the cell's step output size; `(carry, outputs)` with return_carry."""
        member = sub.members[0] if sub.members else None
        step = None
        if member is not None and not member.problems and member.kind == "layer" and member.rule.initialize_carry:
            step = member.arg_code.get("features")  # Linen's cells output their hidden state
        elif member is not None and member.kind == "local" and isinstance(member.child.out_size, tuple) and len(member.child.out_size) == 2:
            step = self._child_size(member, member.child.out_size[1], in_size)
        flag = sub.arg_code.get("return_carry", "False").strip()
        if call is not None:
            flag = next((code(a.value).strip() for a in call.args if a.keyword is not None and a.keyword.value == "return_carry"), flag)
        if flag == "True":
            return (None, step)
        return step if flag == "False" else None

    def _function_size(self, node: cst.BaseExpression, size: str | None) -> str | None:
        return size if self.ctx.imports.qualify(node) in self.ctx.rules.keep_last_dim else None

    def _child_size(self, sub: Sub, out, in_size):
        """A user module's output size (in its own terms: fields, input sizes, literals)
        in the parent's terms: each `self.<field>` becomes the argument this construction
        passes (or the field's literal default), each input size the size this call gives."""
        if isinstance(out, tuple):
            return tuple(self._child_size(sub, o, in_size) for o in out)
        if out is None:
            return None
        if out == "in_features":
            return in_size
        defaults = {f.name: f.default_code for f in sub.child.fields}

        def on_self_attr(fname: str) -> str:
            if fname in sub.arg_code:
                if sub.args_unsure:
                    raise NotStatic("the construction's arguments are not known in __init__")
                return sub.arg_code[fname]
            if sub.factory is not None and fname in sub.factory.preset:
                return sub.factory.preset[fname]
            if _is_literal(defaults.get(fname)):
                return defaults[fname]
            raise NotStatic(f"no value for the field '{fname}'")

        def on_name(name: str) -> str:
            size = in_size if name == "in_features" else (sub.in_sizes or {}).get(name)
            if name in sub.child.size_params and size is not None:
                return size
            raise NotStatic(f"the size '{name}' is not known here")

        return substitute_names(out, on_name, on_self_attr)

    # ---- driver -----------------------------------------------------------------
    def analyse(self) -> None:
        for method in [m for m in (self.shape.compact, *self.shape.methods) if m is not None]:
            found = recurrent.scan_decorator(self.ctx.imports, method)
            if found is not None and recurrent.is_time_scan(found[1]):
                over_time = recurrent.time_scan(self.ctx.imports, found[1])
                if over_time.problems:
                    for why in over_time.problems:
                        self.todo(found[0], f"@nn.scan on {method.name.value}", why)
                else:
                    self.time_scans[method.name.value] = (found[0], over_time)
        if self.shape.setup is not None:
            self.setup_walker = BodyWalker(self, self.shape.setup, "setup")
            self._collect_setup(self.shape.setup)
        methods = []
        if self.shape.compact is not None:
            methods.append(self.shape.compact)
        methods += [m for m in self.shape.methods if m.name.value == "__call__"]
        methods += [m for m in self.shape.methods if m.name.value != "__call__"]
        for method in methods:
            if method.name.value in self.walked:
                continue
            walker = BodyWalker(self, method, "compact" if method is self.shape.compact else "method")
            if method.name.value == "__call__":
                self.call_walker = walker
            self.walk_method(walker)
        self._honour_setup_names()
        self._auto_named_lists()
        self._names_after_conditional_ones()
        self._finish_chains()
        self._drop_partials_used_only_to_build()
        self._has_variable_sites()
        for sub in self.subs:
            self._check_sizes(sub)
        for nested in self.nested_defs:
            if _constructs_inside(nested, self):
                self.todo(nested, f"def {getattr(nested.name, 'value', '?')}", "a nested function or class builds submodules or parameters")

    def _honour_setup_names(self) -> None:
        """`self.query = nn.Dense(..., name='to_q')`, `self.w = self.param('kernel', ...)`:
        Linen stores the layer or variable (and its checkpoint keys) under the Linen name.
        The NNX attribute takes that name too, and the class's own `self.query` uses
        follow, when that cannot change what any code reads (see _linen_name_blocker).
        Otherwise the attribute keeps its name and the key difference is reported."""
        for sub, attr, chosen, name_node, in_loop in self.setup_names:
            why = self._linen_name_blocker(attr, chosen)
            if why is None and (in_loop or sub.alternatives or self.subs_by_attr.get(attr) is not sub):
                why = "the attribute is assigned more than once"
            if why is None:
                self.attr_renames[attr] = chosen
                sub.attr = chosen
                self.subs_by_attr[chosen] = sub
            else:
                sub.problems.append(f"Linen names it {code(name_node)} (name=), the NNX attribute is '{attr}' ({why}): checkpoint keys need renaming")
        for linen_name, attr, node in self.setup_var_names:
            why = self._linen_name_blocker(attr, linen_name)
            if why is None:
                self.attr_renames[attr] = linen_name
            else:
                self.todo(node, f"self.{attr} = self.param/variable('{linen_name}')", f"Linen stores it as '{linen_name}', the NNX attribute is '{attr}' ({why}): checkpoints need a key rename")

    def _linen_name_blocker(self, attr: str, chosen: str | None) -> str | None:
        """Why the setup attribute `attr` cannot be renamed to its Linen name `chosen`
        (None when it can): the name must be a free identifier in the class, the
        attribute assigned once, and no code in the file but this class's own methods may
        read `.<attr>` (another object's `.attr`, or a subclass's `self.attr`)."""
        if chosen is None or not chosen.isidentifier() or keyword.iskeyword(chosen):
            return "it is not a plain identifier"
        taken = {f.name for f in self.shape.fields} | {m.name.value for m in self.shape.methods}
        taken |= _class_level_names(self.node.body.body) | set(self.var_attrs) | self.list_attrs | set(self.subs_by_attr)
        if self.shape.base is not None:
            taken |= {f.name for f in self.shape.base.fields}
        if chosen in taken or chosen in self.attr_renames.values():
            return f"'{chosen}' is already a name in the class"
        tree = self.ctx.python_tree()
        if tree is None:
            return "the file's other reads of it cannot be checked"
        own = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == self.name), None)
        if own is None:
            return "the class is not at the top level of the file"
        own_nodes = {id(n) for n in ast.walk(own)}
        stores = 0
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node is not own and any(isinstance(b, ast.Name) and b.id == self.name for b in node.bases):
                return f"{node.name} subclasses it in the file"
            if not isinstance(node, ast.Attribute) or node.attr not in (attr, chosen):
                continue
            on_self = isinstance(node.value, ast.Name) and node.value.id == "self"
            if id(node) in own_nodes and on_self:
                if node.attr == chosen:
                    return f"'{chosen}' is already a name in the class"
                stores += isinstance(node.ctx, ast.Store)
            elif node.attr == attr and (id(node) in own_nodes or not on_self):
                return f"other code in the file reads `.{attr}`"
        if stores > 1:
            return "the attribute is assigned more than once"
        return None

    def _has_variable_sites(self) -> None:
        """`self.has_variable(col, name)` of a variable this class creates: NNX builds it in
        __init__ (under the same conditions on fields), so the question is whether the
        attribute exists - what Linen answers after `init`. (NNX has no init pass, where
        Linen answers False.)"""
        for node in self.has_variable_calls:
            collection, name = (_string_value(a.value) for a in node.args)
            site = self.var_attrs.get(name)
            if site is None or site.collection != collection:
                self.todo(node, "self.has_variable()", f"no '{collection}' variable '{name}' is created in this class: no NNX counterpart is generated")
                continue
            self.has_variable_attrs[id(node)] = site.attr

    def function_return_size(self, func: cst.FunctionDef, call: cst.Call, caller: BodyWalker):
        """The size a module-level helper function returns, for these argument sizes
        (`reparameterize(rng, mean, logvar)` -> the size of `mean`)."""
        name = func.name.value
        if name in self.walking or _constructs_inside(func, self) or any(a.keyword is not None or a.star for a in call.args):
            return None
        walker = BodyWalker(self, func, "function")
        params = [p for p in func.params.params]
        for p, arg in zip(params, call.args):
            walker.scope.env[p.name.value] = caller.size_of(arg.value)
        self.walking.add(name)
        try:
            walker.block(func.body.body)
        finally:
            self.walking.discard(name)
        return self._return_size(func, walker)

    def _auto_named_lists(self) -> None:
        """Unnamed submodules of one class built in a loop: Linen calls them `Dense_0`,
        `Dense_1`, ... in creation order, across the loop and the code around it. They
        become the elements of one nnx.List named after the class (`self.Dense`, Linen's
        `Dense_<k>` is its element k), indexed in __call__ by a count that follows the
        same order."""
        by_class: dict[str, list[Sub]] = {}
        for sub in sorted(self.subs, key=lambda s: self._order[id(s)]):
            if sub.auto_class is not None:
                by_class.setdefault(sub.auto_class, []).append(sub)
        for cls, subs in by_class.items():
            if not any(s.loop is not None for s in subs):
                continue
            loops_seen: list[LoopContext] = []
            taken = None if any(s.guards for s in subs) else self._attribute_taken(cls, subs)
            if taken is not None or any(s.guards for s in subs):
                why = "next to conditional ones of its class" if taken is None else f"and the nnx.List for Linen's {cls}_<k> would be the attribute '{cls}', already {taken}"
                for sub in subs:
                    if sub.loop is not None:
                        # Built as a plain attribute, marked TODO; the sizes the loop
                        # carries (`x_size`, what later layers' sizes are written in)
                        # are still replayed in __init__.
                        sub.sizes_loop = sub.loop
                        sub.loop = None
                        sub.problems.append(f"submodule built in a loop without name=f'<list>_{{i}}', {why}: Linen's names depend on the iteration; build an nnx.List in __init__ by hand")
                continue
            index = "0"
            i = 0
            while i < len(subs):
                sub = subs[i]
                if sub.loop is None:
                    sub.list_index = index
                    index = _plus(index, "1")
                    i += 1
                    continue
                loop = sub.loop
                group = [s for s in subs[i:] if s.loop is loop]
                if loop.counter is None:
                    loop.counter = loop.index_var or f"_{cls.lower()}_count"
                for j, member in enumerate(group):
                    member.list_index = _plus(index, _times(loop.counter, len(group)), str(j))
                index = _plus(index, _times(f"len({loop.iter_src})", len(group)))
                i += len(group)
                loops_seen.append(loop)
            for sub in subs:
                self.subs_by_attr.pop(sub.attr, None)
                sub.attr = cls
            self.subs_by_attr[cls] = subs[0]

    def _names_after_conditional_ones(self) -> None:
        """Linen numbers the submodules of a class it builds (`Dense_0`, `Dense_1`, ...):
        after one built under a condition, the names of the next ones depend on it, while
        the NNX attributes are fixed."""
        conditional_seen: set[str] = set()
        for sub in sorted(self.subs, key=lambda s: self._order[id(s)]):
            if sub.auto_class is None or sub.loop is not None:
                continue
            if sub.auto_class in conditional_seen:
                sub.problems.append(f"Linen's name for it counts the {sub.auto_class} built under a condition before it: when that one is not built, the Linen name is one lower than the NNX attribute '{sub.attr}' (checkpoint keys); give both a name= to fix it")
            if sub.conditional:
                conditional_seen.add(sub.auto_class)

    def _attribute_taken(self, name: str, group: list[Sub]) -> str | None:
        """What else of the NNX class would be the attribute `name` (the nnx.List of the
        unnamed submodules `group`): None when nothing is."""
        if name in {f.name for f in self.shape.fields}:
            return "a field"
        if name in self.shape_method_names or (self.shape.compact is not None and self.shape.compact.name.value == name):
            return "a method"
        if name in _class_level_names(self.shape.class_level):
            return "a class attribute"
        if any(s.attr == name for s in self.subs if s not in group):
            return "a submodule's name"
        if name in self.var_attrs:
            return "a parameter or variable"
        if name in self.sow_names:
            return "the attribute NNX keeps a sown value in"
        return None

    @property
    def shape_method_names(self) -> set[str]:
        return {m.name.value for m in self.shape.methods}

    def binding_counts(self, method: cst.FunctionDef) -> dict[str, int]:
        counts = self._binding_counts.get(id(method))
        if counts is None:
            counts = self._binding_counts[id(method)] = _binding_counts(method)
            self._keyed_nodes.append(method)
        return counts

    def method_named(self, name: str | None) -> cst.FunctionDef | None:
        if name is None:
            return None
        for m in self.shape.methods:
            if m.name.value == name and m.name.value != "__call__":
                return m
        return None

    def walk_method(self, walker: BodyWalker):
        name = walker.method.name.value
        self.walking.add(name)
        walker.walk()
        self.walking.discard(name)
        self.walked.add(name)
        size = self._return_size(walker.method, walker)
        self.method_returns.setdefault(name, size)
        if name == "__call__":
            self.return_size = size
        return size

    def _return_size(self, method: cst.FunctionDef, walker: BodyWalker):
        returns = [
            small
            for stmt in _statements(method.body.body)
            if isinstance(stmt, cst.SimpleStatementLine)
            for small in stmt.body
            if isinstance(small, cst.Return)
        ]
        if len(returns) == 1 and returns[0].value is not None:
            # The walker's final environment holds the sizes at the end of the method.
            return walker.size_of(returns[0].value)
        if len(returns) > 1 and all(id(r) in walker.return_sizes for r in returns):
            # several returns: the size each gives where it runs, when they all agree
            sizes = [walker.return_sizes[id(r)] for r in returns]
            if sizes[0] is not None and all(size == sizes[0] for size in sizes):
                return sizes[0]
        return None

    def _collect_setup(self, setup: cst.FunctionDef) -> None:
        # Assignments `self.x = ...` are recognised at any depth (under `if`, in loops)
        # by BodyWalker.setup_assignment.
        self.setup_walker.block(setup.body.body)
        self._check_chain_uses(setup)
        # A local's definition stands for it only where nothing else binds it.
        counts = _binding_counts(setup)
        self.setup_local_sources = {n: src for n, src in self.setup_local_sources.items() if counts.get(n) == 1}

    def setup_assignment(self, walker: "BodyWalker", assign: cst.Assign) -> bool:
        """`self.attr = <submodule | list | self.param | self.variable>` in setup: the
        attribute names the submodule (Linen's name too). True when handled."""
        target = assign.targets[0].target if len(assign.targets) == 1 else None
        attr = _self_attr(target) if target is not None else None
        value = assign.value
        if target is not None and isinstance(target, cst.Name) and isinstance(value, (cst.List, cst.ListComp)):
            walker.list_locals.add(target.value)
        if attr is None:
            return False
        plan = self._list_comp_plan(attr, value, walker) if walker.in_loop == 0 and not walker.guards and not walker.dynamic_guard else None
        if plan is not None:
            self.comp_plans[attr] = plan
            self.list_attrs.add(attr)
            return True
        if isinstance(value, cst.Call) and self.construction_kind(value) is not None:
            for arg in value.args:
                walker.expr(arg.value)
            sub = self.new_sub(value, walker)
            sub.attr = attr
            earlier = self.subs_by_attr.get(attr)
            if earlier is not None and earlier is not sub and earlier.origin == "setup" and earlier.attr == attr and (walker.guards or earlier.guards):
                # `if <field>: self.proj = A(...) else: self.proj = B(...)`: a call of
                # self.proj sizes whichever one setup builds
                group = [earlier, *earlier.alternatives]
                for other in group:
                    other.alternatives = [s for s in [*group, sub] if s is not other]
                sub.alternatives = group
            if walker.in_loop:
                sub.problems.append("submodule assigned in a loop in setup: only the last one is kept, check this is meant")
            self.subs_by_attr[attr] = sub
            for arg in value.args:
                if arg.keyword is not None and arg.keyword.value == "name":
                    chosen = _string_value(arg.value)
                    if chosen != attr:
                        # decided when the whole class is known (_honour_setup_names)
                        self.setup_names.append((sub, attr, chosen, arg.value, walker.in_loop > 0))
            return True
        if isinstance(value, (cst.Dict, cst.DictComp)) and any(
            isinstance(v, cst.Call) and self.construction_kind(v) is not None
            for v in ([value.value] if isinstance(value, cst.DictComp) else [e.value for e in value.elements if isinstance(e, cst.DictElement)])
        ):
            self.dict_attrs.add(attr)  # `self.heads = {'cls': nn.Dense(...)}`: an nnx.Dict
            return False
        if isinstance(value, (cst.List, cst.Tuple, cst.ListComp)) or (isinstance(value, cst.Name) and value.value in walker.list_locals):
            self.list_attrs.add(attr)  # `self.blocks = [...]` / `self.blocks = blocks`
            chain = self.append_chains.get(value.value) if isinstance(value, cst.Name) else None
            if chain is not None:
                if chain.attr is not None or attr in self.chain_by_attr or walker.in_loop or walker.guards or walker.dynamic_guard:
                    chain.problem = "the list is stored more than once or conditionally"
                chain.attr = chain.attr or attr
                self.chain_by_attr[attr] = chain
            return False
        if _self_method_call(value, "param") or _self_method_call(value, "variable"):
            walker.expr(value)
            site = self.var_by_node.get(id(value))
            if site is not None:
                self._setup_var_attr(site, attr, value)
            return True
        return False

    def _list_comp_plan(self, attr: str, value, walker: "BodyWalker"):
        """`self.layers = [nn.Dense(f) for f in self.features]`: one construction per
        element of something fields determine. When a method runs the elements as a chain
        (`for layer in self.layers: x = layer(x)`), each element's input size is the
        previous one's output, and __init__ builds the list with that loop."""
        if not isinstance(value, cst.ListComp) or not isinstance(value.elt, cst.Call):
            return None
        comp = value.for_in
        if comp.inner_for_in is not None or comp.ifs or comp.asynchronous is not None:
            return None
        if self.construction_kind(value.elt) not in ("layer", "local") or try_static(comp.iter, walker.scope, []) is None:
            return None
        walker.in_loop += 1
        try:
            for arg in value.elt.args:
                walker.expr(arg.value)
            sub = self.new_sub(value.elt, walker)
        finally:
            walker.in_loop -= 1
        sub.comp_attr = attr
        return {"sub": sub, "target": code(comp.target), "iter": code(comp.iter), "chained": False}

    # ---- setup lists run as chains ---------------------------------------------------
    def note_append_chain(self, walker: "BodyWalker", small: cst.CSTNode, line_node) -> None:
        """`<local> = []` at the top of setup starts a chain; `<local>.append(<submodule>)`
        adds an element (after the walker has seen the construction)."""
        if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
            name = small.targets[0].target.value
            old = self.append_chains.get(name)
            if old is not None:
                old.problem = "the list variable is bound twice"
            elif isinstance(small.value, cst.List) and not small.value.elements and walker.in_loop == 0 and not walker.guards and not walker.dynamic_guard:
                self.append_chains[name] = AppendChain(name, line_node)
            return
        if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
            call = small.value
            func = call.func
            if isinstance(func, cst.Attribute) and func.attr.value == "append" and isinstance(func.value, cst.Name) and func.value.value in self.append_chains:
                chain = self.append_chains[func.value.value]
                if any(stmt is line_node for _, stmt in chain.appends):
                    return  # a loop body walked again
                for child in children_in_order(small):
                    walker.expr(child)  # the construction inside, if any, first
                value = call.args[0].value if len(call.args) == 1 and call.args[0].keyword is None else None
                element = None
                if isinstance(value, cst.Call):
                    element = self.sub_by_node.get(id(value))
                elif isinstance(value, cst.Name):
                    element = walker.local_layers.get(value.value)
                if element is None or element.attr is not None or element.kind not in ("layer", "local") or any(e is element for e, _ in chain.appends):
                    chain.problem = "an appended element is not a submodule built for this list"
                else:
                    chain.appends.append((element, line_node))

    def _check_chain_uses(self, setup: cst.FunctionDef) -> None:
        """A chain's list is only created, appended to and stored (no insert, extend, ...)."""
        counts: dict[str, int] = {}

        class Uses(FastVisitor):
            def visit_Attribute(self, node: cst.Attribute):
                self.walk(node.value)
                return False

            def visit_Name(self, node: cst.Name):
                counts[node.value] = counts.get(node.value, 0) + 1

        Uses().walk(setup.body)
        bound = _binding_counts(setup)
        for chain in self.append_chains.values():
            if counts.get(chain.local, 0) != 1 + len(chain.appends) + (chain.attr is not None):
                chain.problem = chain.problem or "the list is used other than by append"
            var = f"{chain.local}_size"
            while var in bound or var in {c.var for c in self.append_chains.values()}:
                var = "_" + var
            chain.var = var
        self._setup_bound = bound

    def chain_called(self, chain: AppendChain, call: cst.Call, walker: "BodyWalker") -> None:
        positional = [a.value for a in call.args if a.keyword is None and not a.star]
        size = scalar(walker.size_of(positional[0])) if positional else None
        if walker.loop_pass == 3:
            return
        if walker.loop_pass == 2:
            if size != chain.var:
                chain.problem = chain.problem or "the loop over the list does not pass each element's output to the next one"
            return
        first = self._chain_start(size)
        if size is None:
            chain.problem = chain.problem or "the input size of the list's first element is not known"
        elif first is None:
            chain.problem = chain.problem or "the input size of the list's first element is not known where setup builds the list"
        elif chain.used and first != chain.first:
            chain.problem = chain.problem or "the list is run from inputs of different sizes"
        chain.first, chain.used = first, True
        for element, _ in chain.appends:
            sizes = self.call_in_sizes(element, call, walker)
            primary = self._primary_size_param(element)
            if primary is not None:
                sizes[primary] = chain.var
            if element.in_sizes is not None and element.in_sizes != sizes:
                chain.problem = chain.problem or "the list's elements are called with inputs of different sizes"
            element.in_sizes = sizes

    def _chain_start(self, size: str | None) -> str | None:
        """The chain's first input size, if it is valid where the list is created: input
        sizes, fields, literals and module-level names only (no setup locals)."""
        if size is None:
            return None
        fields = {f.name for f in self.shape.fields}
        bound = getattr(self, "_setup_bound", {})

        def on_name(name: str, depth: int = 0) -> str:
            if name in self.setup_local_sources and depth < 8:
                # a setup local bound once from fields: its definition holds anywhere
                inner = substitute_names(self.setup_local_sources[name], lambda n: on_name(n, depth + 1), on_self_attr)
                if inner is not None:
                    return inner
            if name in bound:
                raise NotStatic(f"'{name}' is a setup local")
            return name

        def on_self_attr(attr: str) -> str:
            if attr in fields:
                return f"self.{attr}"
            raise NotStatic(f"'self.{attr}' is not a field")

        return substitute_names(size, on_name, on_self_attr)

    @staticmethod
    def _primary_size_param(sub: Sub) -> str | None:
        if sub.kind == "layer":
            return sub.rule.in_size or None
        if sub.kind == "local":
            return next((p for p, i in sub.child.size_param_args.items() if i == 0), None)
        return None

    def _finish_chains(self) -> None:
        """Each element's output size after its append; a chain with a problem leaves its
        elements' sizes unknown (constructor arguments, reported)."""
        for chain in self.append_chains.values():
            if not chain.used:
                continue
            if chain.problem is None:
                for element, stmt in chain.appends:
                    out = self.out_size(element, None, self.setup_walker, in_size=chain.var)
                    if not isinstance(out, str):
                        chain.problem = "the output size of an element is not known"
                        break
                    chain.outs[id(stmt)] = out
                    self._keyed_nodes.append(stmt)
            if chain.problem is not None:
                chain.outs.clear()
                for element, _ in chain.appends:
                    primary = self._primary_size_param(element)
                    if primary is not None and element.in_sizes is not None:
                        element.in_sizes[primary] = None
                    element.problems.append(f"input sizes along self.{chain.attr}: {chain.problem}")
                continue
            last = max(self._order[id(e)] for e, _ in chain.appends) if chain.appends else -1
            pattern = re.compile(rf"\b{re.escape(chain.var)}\b")
            for sub in self.subs:
                if any(sub is e for e, _ in chain.appends):
                    continue
                for param, size in (sub.in_sizes or {}).items():
                    if isinstance(size, str) and pattern.search(size) and (sub.origin != "setup" or self._order[id(sub)] < last):
                        # built before the list is complete: the carried size is not there yet
                        sub.in_sizes[param] = None

    def _setup_var_attr(self, site: VarDef, attr: str, node) -> None:
        if site.attr != attr:
            self.setup_var_names.append((site.attr, attr, node))  # see _honour_setup_names
            self.var_attrs.pop(site.attr, None)
            site.attr = attr
            self.var_attrs[attr] = site
        self.setup_var_attrs[attr] = site

    def _field_module_sizes(self, sub: Sub) -> None:
        """A child that calls a module held in one of its fields takes that module's
        output size: known when this class passes one of its own submodules (built before
        the child) or a module it holds in a field itself; None when it passes none."""
        defaults = {f.name: f.default_code for f in sub.child.fields}
        kwargs = self._linen_kwargs(sub)
        for fname, param in sub.child.field_out_params.items():
            node = kwargs.get(fname)
            if node is None and (defaults.get(fname) or "").strip() == "None":
                continue  # the child's default: no module
            if isinstance(node, cst.Name) and node.value == "None":
                continue
            size = None
            attr = _self_attr(node) if node is not None else None
            mine = self.subs_by_attr.get(attr) if attr is not None else None
            if mine is not None and self._order.get(id(mine), 1 << 30) < self._order.get(id(sub), -1):
                size = self.out_size(mine, None, self.setup_walker or self.call_walker, in_size=None)
            elif attr is not None and attr in {f.name for f in self.shape.fields}:
                size = self.field_out_params.setdefault(attr, f"{attr}_out_features")
            sub.field_sizes[param] = size if isinstance(size, str) else None
            if sub.field_sizes[param] is None:
                sub.problems.append(f"'{param}': the output size of the module passed as '{fname}' is not known; it became a constructor argument")

    def _check_sizes(self, sub: Sub) -> None:
        if sub.kind == "local" and sub.child.field_out_params:
            self._field_module_sizes(sub)
        if sub.kind == "sequential" or sub.origin == "setup":
            for member in sub.members:  # (compact members are subs of their own)
                self._check_sizes(member)
        if sub.kind == "sequential":
            return
        needed: list[str] = []
        if sub.kind == "layer" and sub.rule.in_size:
            needed = [sub.rule.in_size]
        elif sub.kind == "local":
            needed = list(sub.child.size_params)
        sizes = sub.in_sizes or {}
        if sub.comp_attr is not None and needed and not self.comp_plans[sub.comp_attr]["chained"]:
            sub.problems.append(f"the elements of self.{sub.comp_attr} may need different input sizes: no method runs them one after the other")
        for param in needed:
            if sizes.get(param) is None:
                if sub.in_sizes is None and sub.attr is not None:
                    why = "the submodule is never called in a way the tool can follow"
                else:
                    why = "the input size cannot be derived from fields or call arguments"
                sub.problems.append(f"'{param}': {why}; it became a constructor argument")

    # ---- generation -------------------------------------------------------------
    def unknown_size_param(self, sub: Sub, param: str) -> str:
        if sub.attr is None:
            # An unnamed element (of a list or nn.Sequential): one parameter per site.
            key = id(sub)
            if key not in self._anonymous:
                cls = snake_case(self._linen_class(sub))
                self._anonymous[key] = f"{cls}_{sum(1 for v in self._anonymous.values() if v.startswith(cls + '_'))}"
            base = self._anonymous[key]
        else:
            base = sub.attr
        name = f"{base}_{param}"
        if name not in self.extra_size_params:
            self.extra_size_params.append(name)
        return name

    def ctor_source(self, sub: Sub) -> str:
        sizes = sub.in_sizes or {}
        if sub.kind == "sequential":
            members = ", ".join(
                (f"self.{m.attr}" if m.attr is not None else self.ctor_source(m)) if isinstance(m, Sub) else code(m)
                for m in sub.elements
            )
            return f"nnx.Sequential({members})"
        parts: list[str] = []
        if sub.kind == "layer":
            rule = sub.rule
            if rule.in_size:
                size = sizes.get(rule.in_size)
                parts.append(f"{rule.in_size}={size if size is not None else self.unknown_size_param(sub, rule.in_size)}")
            if rule.cell_arg:
                member = sub.members[0] if sub.members else None
                parts.append(f"self.{member.attr}" if member is not None and member.attr is not None else self.ctor_source(member) if member is not None else "None")
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
            parts.append("rngs=rngs")
            callee = sub.factory.callee if sub.factory is not None else f"nnx.{rule.nnx_name}"
            return f"{callee}({', '.join(parts)})"
        if sub.kind == "local":
            child = sub.child
            for key, value in sub.arg_code.items():
                parts.append(f"{key}={value}")
            for param in child.size_params:
                size = sizes.get(param)
                parts.append(f"{param}={size if size is not None else self.unknown_size_param(sub, param)}")
            for param, size in sub.field_sizes.items():
                parts.append(f"{param}={size if size is not None else self.unknown_size_param(sub, param)}")
            parts.append("rngs=rngs")
            callee = sub.factory.callee if sub.factory is not None else child.name
            built = f"{callee}({', '.join(parts)})"
            if sub.scan is not None and "length" in sub.scan:
                # one layer per key: nnx.vmap stacks the parameters on axis 0, as nn.scan does
                return f"nnx.split_rngs(splits={sub.scan['length']})(nnx.vmap(lambda rngs: {built}, in_axes=0, out_axes=0))(rngs)"
            return built
        return code(sub.ctor)

    def _todo_comments(self, problems: list[str]) -> str:
        return "".join(f"# {TODO_MARK}: {p}\n" for p in dict.fromkeys(problems))

    def build(self) -> tuple[cst.ClassDef, ClassSummary]:
        self._leftovers_before = len(self.ctx.renamer.leftover_nodes)
        self.analyse()
        cfg = self.ctx.module.config_for_parsing
        fields = self.shape.fields
        init_lines: list[cst.BaseStatement] = []

        def stmt(src: str) -> cst.BaseStatement:
            return templates.parse_statement(src, config=cfg)

        base = self.shape.base
        own_builder = self.shape.setup is not None or self.shape.compact is not None or base is None
        inherited = set() if own_builder else {f.name for f in base.fields}
        for f in fields:
            if f.name not in inherited:  # the base class's __init__ stores its own fields
                if f.factory is not None:
                    line = stmt(f"self.{f.name} = {f.factory}() if {f.name} is None else {f.name}\n")
                else:
                    line = stmt(f"self.{f.name} = {f.name}\n")
                if f.problem is not None:
                    self.todo(self.node, f"field {f.name}", f.problem)
                    line = line.with_changes(leading_lines=[cst.EmptyLine(comment=cst.Comment(f"# {TODO_MARK}: {f.problem}"))])
                if f.comments:  # the field's comments move with it
                    leading, trailing = f.comments
                    line = line.with_changes(leading_lines=[*leading], **({"trailing_whitespace": trailing} if trailing is not None else {}))
                init_lines.append(line)
        if self.needs_rngs_attr:
            init_lines.append(stmt("self.rngs = rngs\n"))
        if self.mode_calls:
            # NNX's convention (nnx.BatchNorm's default): built in training mode.
            init_lines.append(stmt(f"self.{MODE_ATTRIBUTE} = False  # model.train() / model.eval() set it\n"))
        if not own_builder:
            args = [f"{f.name}={f.name}" for f in base.fields] + [f"{p}={p}" for p in base.size_params] + ["rngs=rngs"]
            init_lines.insert(0, stmt(f"super().__init__({', '.join(args)})\n"))
        # setup body
        if self.shape.setup is not None:
            setup_body = SetupRewriter(self).transform(self.shape.setup.body)
            init_lines.extend(setup_body.body)
        # compact constructions, parameters and variables, in order of appearance
        hoisted: set[tuple[str, str]] = set()
        # In the order the compact body creates them (the analysis walks it in execution order).
        items: list[tuple[int, object]] = [(self._order[id(s)], s) for s in self.subs if s.origin != "setup" and s.attr is not None]
        items += [(self._order[id(v)], v) for v in self.vars if v not in self.setup_var_attrs.values()]
        items.sort(key=lambda item: item[0])
        emitted_loops: set[int] = set()
        created_lists: set[str] = set()

        def hoist_statics(pairs) -> None:
            for name, src in pairs:
                if (name, src) not in hoisted:
                    hoisted.add((name, src))
                    init_lines.append(stmt(f"{name} = {src}\n"))

        def guarded(src: str, guards: list[str], indent: str = "") -> str:
            if not guards:
                return indent + src
            cond = " and ".join(f"({g})" for g in guards) if len(guards) > 1 else guards[0]
            return f"{indent}if {cond}:\n{indent}    {src}"

        for _, item in items:
            if isinstance(item, Sub) and item.loop is not None:
                loop = item.loop
                if id(loop.node) in emitted_loops:
                    continue
                emitted_loops.add(id(loop.node))
                members = [s for s in self.subs if s.loop is loop and s.attr is not None]
                members.sort(key=lambda m: self._order[id(m)])
                hoist_statics([*loop.hoist, *(n for m in members for n in m.hoist if n not in self.loop_statics)])
                inside = list(dict.fromkeys(n for m in members for n in m.hoist if n in self.loop_statics))
                carried_src = " ".join(end for _, end, _ in loop.carried_vars.values()) + " " + " ".join(later for m in members for _, later in m.carried.values())
                used_words = set(re.findall(r"[A-Za-z_]\w*", carried_src))
                inside += [n for n in sorted(self.loop_statics) if n[0] in used_words and n not in inside]
                problems = [p for m in members for p in [*m.problems, *(q for x in m.members for q in x.problems)]]
                src = ""
                for attr in dict.fromkeys(m.attr for m in members):
                    if attr not in created_lists:
                        created_lists.add(attr)
                        src += f"self.{attr} = nnx.List()\n"
                updates = []
                for _, (first, end, var) in loop.carried_vars.items():
                    src += f"{var} = {first}\n"
                    updates.append(f"    {var} = {end}\n")
                if loop.symbolic and len(updates) > 1:
                    # each end reads the others' values at the start of the iteration
                    ends = list(loop.carried_vars.values())
                    updates = [f"    {', '.join(v for _, _, v in ends)} = {', '.join(f'({e})' for _, e, _ in ends)}\n"]
                for m in members:
                    for param, (first, later) in m.carried.items():
                        var = f"{m.attr}_{param}"
                        src += f"{var} = {first}\n"
                        m.in_sizes[param] = var
                        updates.append(f"    {var} = {later}\n")
                src += loop.header + "\n"
                src += "".join(f"    {name} = {value}\n" for name, value in inside)
                src += "".join(guarded(f"self.{m.attr}.append({self.ctor_source(m)})\n", m.guards, "    ") for m in members)
                src += "".join(updates)
                for line_stmt in cst.parse_module(self._todo_comments(problems) + src, config=cfg).body:
                    init_lines.append(line_stmt)
                for m in members:
                    for p in dict.fromkeys(m.problems):
                        self.todo(m.ctor, f"{m.attr}[...]", p)
                continue
            hoist_statics(item.hoist)
            if isinstance(item, Sub) and item.list_index is not None:
                src = "" if item.attr in created_lists else f"self.{item.attr} = nnx.List()\n"
                created_lists.add(item.attr)
                init_lines.extend(cst.parse_module(src + f"self.{item.attr}.append({self.ctor_source(item)})\n", config=cfg).body)
                for p in dict.fromkeys(item.problems):
                    self.todo(item.ctor, f"{item.attr}[{item.list_index}]", p)
                continue
            if isinstance(item, Sub):
                src = f"self.{item.attr} = {self.ctor_source(item)}\n"
                problems = item.problems + [p for m in item.members for p in m.problems]
            else:
                src = f"self.{item.attr} = {item.init_code}\n"
                problems = []
            init_lines.append(stmt(self._todo_comments(problems) + guarded(src, item.guards)))
            for p in dict.fromkeys(problems):
                self.todo(item.ctor if isinstance(item, Sub) else self.node, f"{item.attr}", p)
            if isinstance(item, Sub) and item.sizes_loop is not None and id(item.sizes_loop.node) not in emitted_loops:
                loop = item.sizes_loop
                emitted_loops.add(id(loop.node))
                if loop.carried_vars:
                    hoist_statics([*loop.hoist, *(n for s in self.subs if s.sizes_loop is loop for n in s.hoist)])
                    before = "".join(f"{var} = {first}\n" for first, _, var in loop.carried_vars.values())
                    along = "".join(f"    {var} = {end}\n" for _, end, var in loop.carried_vars.values())
                    init_lines.extend(cst.parse_module(before + loop.header + "\n" + along, config=cfg).body)
        for sub in self.subs:
            if sub.origin == "setup":
                for p in dict.fromkeys(sub.problems + [q for m in sub.members for q in m.problems]):
                    self.todo(sub.ctor, f"self.{sub.attr}" if sub.attr else code(sub.ctor.func), p)
        # signature
        size_params = self._size_params()
        params_src = []
        keyword_only = False
        seen_default = False
        for f in fields:
            ann = f": {f.annotation}" if f.annotation else ""
            default = f" = {self.factory_fields.get(f.name, f.default_code)}" if f.has_default else ""
            if not f.has_default and seen_default and not keyword_only:
                # a required field after defaulted ones (Linen's kw_only dataclasses,
                # subclasses): keyword-only from here, as Python requires
                params_src.append("*")
                keyword_only = True
            seen_default = seen_default or f.has_default
            params_src.append(f"{f.name}{ann}{default}")
        optional_sizes = self._optional_size_params(size_params)
        sizes_src = [f"{p}: int" for p in size_params if p not in optional_sizes]
        if sizes_src and not seen_default:
            params_src += sizes_src
            params_src.append("*")
        else:
            if not keyword_only:
                params_src.append("*")
            params_src += sizes_src
        if not keyword_only and "*" not in params_src:
            params_src.append("*")
        params_src += [f"{p}: int | None = None" for p in optional_sizes]
        params_src += [f"{p}: int | None = None" for p in self.field_out_params.values()]
        params_src.append("rngs: nnx.Rngs")
        if not init_lines:
            init_lines.append(stmt("pass\n"))
        header = f"def __init__(self, {', '.join(params_src)}):\n    pass\n"
        init_def = templates.parse_statement(header, config=cfg)
        init_def = init_def.with_changes(body=init_def.body.with_changes(body=init_lines))
        # Generated code carries Linen names (initializers, activations): rename them.
        init_def = self.ctx.renamer.transform(init_def)
        # methods
        body: list[cst.BaseStatement] = []
        if self.shape.docstring is not None:
            body.append(self.shape.docstring)
        body += [self.ctx.renamer.transform(stmt) for stmt in self.shape.class_level]
        # A blank line after the docstring or fields, as between methods.
        spacing = [cst.EmptyLine(indent=False)] if len(body) > 0 else []
        body.append(init_def.with_changes(leading_lines=spacing))
        rewriter = MethodRewriter(self)
        for method in self._methods_in_order():
            if method is self.shape.setup:
                continue
            scanned = self.time_scans.get(method.name.value)
            if scanned is not None:
                method = method.with_changes(decorators=[d for d in method.decorators if d is not scanned[0]])
            new = rewriter.transform(method)
            if method is self.shape.compact and self.call_time_params and isinstance(new, cst.FunctionDef):
                new = _with_call_time_params(new, [p for params in self.call_time_params.values() for p in params.values()])
            if isinstance(new, cst.FunctionDef) and isinstance(new.body, cst.IndentedBlock) and new.body.body and isinstance(method.body, cst.IndentedBlock) \
                    and method.body.body and id(method.body.body[0]) in self.scan_statements:
                # the body's first statements went to __init__: no blank line opens it now
                first = new.body.body[0]
                kept = list(first.leading_lines)
                while kept and kept[0].comment is None:
                    kept.pop(0)
                new = new.with_changes(body=new.body.with_changes(body=[first.with_changes(leading_lines=kept), *new.body.body[1:]]))
            if isinstance(new, cst.FunctionDef) and not new.leading_lines:
                new = new.with_changes(leading_lines=[cst.EmptyLine(indent=False)])
            if scanned is not None:
                split = recurrent.split_scanned_method(new, scanned[1], cfg)
                if split is None:
                    self.todo(scanned[0], f"@nn.scan on {method.name.value}", "the scanned method does not take (self, carry, *xs) as plain parameters, or in_axes do not match them: convert by hand")
                    new = new.with_changes(decorators=[scanned[0], *new.decorators])
                else:
                    body.append(split[0])
                    new = split[1]
            body.append(new)
        # Linen API left in this class (no NNX rule): each use is a site to finish.
        for name, node in self.ctx.renamer.leftover_nodes[self._leftovers_before:]:
            self.todos.append(TodoSite(self.ctx.path, self.ctx.line_or(node, self.node), name, self.ctx.renamer.why_left(node)))
        if base is not None and base.has_todos:
            self.todo(self.node, f"class {self.name}({base.name})", f"inherits the TODO sites of {base.name}")
        self.todos = list(dict.fromkeys(self.todos))  # loops are walked twice
        todo_count = len(self.todos)
        if self.attr_renames:  # the class's own uses follow the honoured Linen names
            renamer = _SelfAttributeRenamer(self.attr_renames)
            body = [renamer.transform(stmt) for stmt in body]
        new_bases = [b for b in self.node.bases]
        if base is None:
            new_bases = [cst.Arg(value=templates.parse_expression(_LINEN_BASES[self.ctx.imports.qualify(b.value)])) if is_linen_module_base(self.ctx, b.value) else b for b in self.node.bases]
        new_bases = [self.ctx.renamer.transform(b) for b in new_bases]
        decorators = [self.ctx.renamer.transform(d) for d in self.node.decorators]
        new_class = self.node.with_changes(bases=new_bases, decorators=decorators, body=self.node.body.with_changes(body=body))
        summary = ClassSummary(
            name=self.name,
            fields=fields,
            size_params=size_params,
            size_param_args=self._size_param_args(size_params),
            optional_size_params=tuple(self._optional_size_params(size_params)),
            field_out_params=dict(self.field_out_params),
            size_param_names=self._size_param_names(size_params),
            out_size=self._portable_out_size(self.return_size, size_params),
            has_todos=bool(todo_count),
            decides_mode=bool(self.mode_calls) or any(sub.child is not None and sub.child.decides_mode for sub in self.subs),
            method_out_sizes=self._method_out_sizes(size_params),
            call_time_params={k: dict(v) for k, v in self.call_time_params.items()},
        )
        self.ctx.todos.extend(self.todos)
        return new_class, summary

    def _method_out_sizes(self, size_params: list[str]) -> dict[str, str]:
        """Other methods' return sizes that depend on fields and literals only: a method
        walked from `__call__` may have been sized by `__call__`'s inputs, which a parent
        calling the method with other arguments does not give it."""
        inputs = re.compile(r"\b(?:" + "|".join(map(re.escape, ["in_features", *size_params])) + r")\b")
        out = {}
        for name, size in self.method_returns.items():
            portable = self._portable_out_size(size, size_params) if name != "__call__" else None
            if isinstance(portable, str) and not inputs.search(portable):
                out[name] = portable
        return out

    def _portable_out_size(self, size, size_params: list[str]):
        """The return size in terms a parent can translate (see sizes.portable_size)."""
        if isinstance(size, tuple):
            return tuple(self._portable_out_size(s, size_params) for s in size)
        local_sources = dict(self.setup_local_sources)
        if self.call_walker is not None:
            local_sources.update({name: src for name, (src, _) in self.call_walker.scope.static.items()})
        return portable_size(size, {f.name for f in self.shape.fields}, set(size_params), local_sources)

    def _methods_in_order(self):
        body = list(self.node.body.body)
        return [s for s in body if isinstance(s, cst.FunctionDef)]

    def _size_params(self) -> list[str]:
        """Input-size parameters the generated __init__ needs, in __call__ order."""
        base = self.shape.base
        own_builder = self.shape.setup is not None or self.shape.compact is not None or base is None
        if not own_builder:
            return list(base.size_params)
        call = self.shape.compact if self.shape.compact is not None and self.shape.compact.name.value == "__call__" else next((m for m in self.shape.methods if m.name.value == "__call__"), None)
        if call is None and self.shape.compact is not None:
            call = self.shape.compact
        names: list[str] = []
        source = "\n".join(self._all_size_sources())
        if call is not None:
            params = [p for p in call.params.params if p.name.value != "self"]
            for i, p in enumerate(params):
                pname = size_param_name(i, p.name.value)
                if re.search(rf"\b{re.escape(pname)}\b", source):
                    names.append(pname)
        return names + [p for p in self.extra_size_params if p not in names]

    def _call_method(self) -> cst.FunctionDef | None:
        return self.shape.compact if self.shape.compact is not None else next((m for m in self.shape.methods if m.name.value == "__call__"), None)

    def _size_param_names(self, size_params: list[str]) -> dict[str, str]:
        if self.shape.base is not None and not (self.shape.setup is not None or self.shape.compact is not None):
            return dict(self.shape.base.size_param_names)
        call = self._call_method()
        params = [p for p in call.params.params if p.name.value != "self"] if call is not None else []
        names = {size_param_name(i, p.name.value): p.name.value for i, p in enumerate(params)}
        return {p: names[p] for p in size_params if p in names}

    def _optional_size_params(self, size_params: list[str]) -> list[str]:
        """Input sizes of arguments that default to None (the parent passes None when it
        leaves the argument out)."""
        if self.shape.base is not None and not (self.shape.setup is not None or self.shape.compact is not None):
            return [p for p in size_params if p in self.shape.base.optional_size_params]
        call = self._call_method()
        params = [p for p in call.params.params if p.name.value != "self"] if call is not None else []
        optional = {size_param_name(i, p.name.value) for i, p in enumerate(params) if isinstance(p.default, cst.Name) and p.default.value == "None"}
        return [p for p in size_params if p in optional]

    def _size_param_args(self, size_params: list[str]) -> dict[str, int]:
        call = self.shape.compact if self.shape.compact is not None else next((m for m in self.shape.methods if m.name.value == "__call__"), None)
        mapping = {}
        if call is not None:
            params = [p for p in call.params.params if p.name.value != "self"]
            for i, p in enumerate(params):
                mapping[size_param_name(i, p.name.value)] = i
        if self.shape.base is not None:
            mapping.update(self.shape.base.size_param_args)
        return {p: mapping[p] for p in size_params if p in mapping}

    def _all_size_sources(self) -> list[str]:
        out = []
        for sub in self.subs:
            for member in [sub, *sub.members]:
                out += [v for v in (member.in_sizes or {}).values() if v]
                out += [v for pair in member.carried.values() for v in pair]
                out += list(member.arg_code.values())
        loops = {id(loop): loop for sub in self.subs for loop in (sub.loop, sub.sizes_loop) if loop is not None}
        for loop in loops.values():
            out += [v for first, end, _ in loop.carried_vars.values() for v in (first, end) if v]
        for var in self.vars:
            out.append(var.init_code)
        for chain in self.append_chains.values():
            if chain.ok:
                out += [chain.first, *chain.outs.values()]
        if self.shape.compact is not None and self.call_walker is not None:
            scope = self.call_walker.scope
            out += [src for src, _ in scope.static.values()]
        return out


_DATACLASS_FIELD = {"dataclasses.field", "flax.struct.field", "flax.linen.module.field"}


class _SelfAttributeRenamer(FastTransformer):
    """`self.old` -> `self.new` (attribute reads and writes of the class itself)."""

    def __init__(self, renames: dict[str, str]):
        self.renames = renames

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute):
        if isinstance(updated.value, cst.Name) and updated.value.value == "self" and updated.attr.value in self.renames:
            return updated.with_changes(attr=cst.Name(self.renames[updated.attr.value]))
        return updated


def _field_default(value, ctx: "FileContext") -> tuple[str | None, str | None, str | None]:
    """(default source, default factory source, problem) of a dataclass field's value:
    `= 3`, `= field(default=3)`, `= field(default_factory=list)` (the __init__ default
    becomes None and the factory is called), anything else a TODO."""
    if value is None:
        return None, None, None
    if isinstance(value, cst.Call) and ctx.imports.qualify(value.func) in _DATACLASS_FIELD:
        options = {a.keyword.value: a.value for a in value.args if a.keyword is not None}
        if "init" in options and code(options["init"]).strip() == "False":
            return None, None, "init=False"
        others = sorted(set(options) - {"default", "default_factory"})
        problem = f"dataclasses.field({', '.join(others)}=...) is not converted" if others or any(a.keyword is None for a in value.args) else None
        if "default_factory" in options:
            factory = options["default_factory"]
            factory_src = code(factory) if isinstance(factory, (cst.Name, cst.Attribute)) else f"({code(factory)})"
            return "None", factory_src, problem
        if "default" in options:
            return code(options["default"]), None, problem
        return None, None, problem
    return code(value), None, None


def _plus(*terms: str) -> str:
    """Sum of index terms as source, without `0 + ...` noise."""
    kept = [t for t in terms if t != "0"]
    return " + ".join(kept) if kept else "0"


def _times(term: str, factor: int) -> str:
    return term if factor == 1 else f"{term} * {factor}"


def _last_dim_of(node) -> str | None:
    """`x.shape[-1]` -> "x"."""
    if (
        isinstance(node, cst.Subscript) and len(node.slice) == 1
        and isinstance(node.slice[0].slice, cst.Index)
        and code(node.slice[0].slice.value).replace(" ", "") == "-1"
        and isinstance(node.value, cst.Attribute) and node.value.attr.value == "shape"
        and isinstance(node.value.value, cst.Name)
    ):
        return node.value.value.value
    return None


def _list_element_name(name_arg, index_var: str | None) -> str | None:
    """`f'blocks_{i}'` or `f'conv{i}'` with `i` the loop counter -> "blocks", "conv" (the
    naming convention maps Linen's `conv3` and `blocks_3` to element 3 of the list)."""
    if index_var is None or not isinstance(name_arg, cst.FormattedString) or len(name_arg.parts) != 2:
        return None
    text, expr = name_arg.parts
    if not isinstance(text, cst.FormattedStringText) or not isinstance(expr, cst.FormattedStringExpression):
        return None
    base = text.value[:-1] if text.value.endswith("_") else text.value
    if not base.isidentifier() or base[-1].isdigit():
        return None  # (`f'conv2{i}'`: Linen's conv21 would read as element 21 of conv)
    if not isinstance(expr.expression, cst.Name) or expr.expression.value != index_var or expr.format_spec or expr.conversion:
        return None
    return base


# Expressions ast.literal_eval never accepts: most assigned values, tested without rendering them.
_NEVER_LITERAL = (cst.Call, cst.Attribute, cst.Subscript, cst.Lambda, cst.IfExp, cst.Comparison, cst.BooleanOperation,
                  cst.GeneratorExp, cst.ListComp, cst.SetComp, cst.DictComp, cst.Await, cst.FormattedString, cst.NamedExpr)


def _may_be_literal(node: cst.BaseExpression) -> bool:
    if type(node) is cst.Name:
        return node.value in ("True", "False", "None")
    return not isinstance(node, _NEVER_LITERAL)


def _is_literal(src: str | None) -> bool:
    """A field default a parent can copy into its own size expressions."""
    if src is None:
        return False
    try:
        ast.literal_eval(src)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return True


def _constructs_inside(node, conv: ClassConverter) -> bool:
    found = []

    class Find(FastVisitor):
        def visit_Call(self, call):
            if conv.construction_kind(call) is not None or _self_attr(call.func) in ("param", "variable"):
                found.append(call)

    Find().walk(node)
    return bool(found)


def _free_names(node: cst.CSTNode) -> set[str]:
    """The plain names an expression reads (not attribute names)."""
    names: set[str] = set()

    class Names(FastVisitor):
        def visit_Attribute(self, n: cst.Attribute):
            self.walk(n.value)
            return False

        def visit_Name(self, n: cst.Name):
            names.add(n.value)

    Names().walk(node)
    return names


def _with_call_time_params(method: cst.FunctionDef, names: list[str]) -> cst.FunctionDef:
    """`def __call__(self, x)` -> `def __call__(self, x, *, use_running_average=None)`: the
    call-time values a caller passes on to layers built through its factories."""
    params = method.params
    plain = params.params
    laid_out = len(plain) >= 2 and not isinstance(params.star_arg, (cst.Param, cst.ParamStar)) and not params.kwonly_params \
        and isinstance(plain[-1].comma, cst.Comma) and isinstance(plain[-2].comma, cst.Comma)
    equal = cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(""))
    if laid_out:
        # one parameter a line (and a trailing comma): the new ones follow that layout
        inner, last = plain[-2].comma, plain[-1].comma
        new = [cst.Param(name=cst.Name(n), default=cst.Name("None"), equal=equal, comma=inner if i < len(names) - 1 else last) for i, n in enumerate(names)]
        plain = [*plain[:-1], plain[-1].with_changes(comma=inner)]
        return method.with_changes(params=params.with_changes(params=plain, star_arg=cst.ParamStar(comma=inner), kwonly_params=new))
    new = [cst.Param(name=cst.Name(n), default=cst.Name("None"), equal=equal) for n in names]
    star = params.star_arg if isinstance(params.star_arg, (cst.Param, cst.ParamStar)) else cst.ParamStar()
    return method.with_changes(params=params.with_changes(star_arg=star, kwonly_params=[*params.kwonly_params, *new]))


def _binding_counts(func: cst.FunctionDef) -> dict[str, int]:
    """How many statements or clauses bind each name in a function (at any depth)."""
    counts: dict[str, int] = {}

    def bind(target) -> None:
        names: set[str] = set()
        _targets(target, names)
        for name in names:
            counts[name] = counts.get(name, 0) + 1

    class Count(FastVisitor):
        def visit_AssignTarget(self, node):
            bind(node.target)

        def visit_AnnAssign(self, node):
            bind(node.target)

        def visit_AugAssign(self, node):
            bind(node.target)

        def visit_For(self, node):
            bind(node.target)

        def visit_CompFor(self, node):
            bind(node.target)

        def visit_NamedExpr(self, node):
            bind(node.target)

        def visit_WithItem(self, node):
            if node.asname is not None:
                bind(node.asname.name)

    Count().walk(func.body)
    for p in func.params.params:
        counts[p.name.value] = counts.get(p.name.value, 0) + 1
    return counts


def _exits_early(body) -> bool:
    """Whether a loop body holds a `continue` or `break` of that loop (not of a nested loop,
    nor inside a nested function)."""
    stack = list(children_in_order(body))
    while stack:
        node = stack.pop()
        if isinstance(node, (cst.Continue, cst.Break)):
            return True
        if isinstance(node, (cst.For, cst.While, cst.FunctionDef, cst.Lambda, cst.ClassDef)):
            continue
        stack.extend(children_in_order(node))
    return False


def _class_level_names(stmts) -> set[str]:
    """The names class-level statements other than fields bind (`Dense = 3`, `def f`)."""
    names: set[str] = set()
    for stmt in stmts:
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            names.add(stmt.name.value)
        elif isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Assign):
                    for t in small.targets:
                        _targets(t.target, names)
                elif isinstance(small, cst.AnnAssign):
                    _targets(small.target, names)
    return names
