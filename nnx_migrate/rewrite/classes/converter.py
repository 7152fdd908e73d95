"""One Linen module class -> one NNX module class: the converter that drives the analysis and the generation."""

from __future__ import annotations


import libcst as cst

from nnx_migrate.rewrite import recurrent
from nnx_migrate.rewrite.report import TodoSite
from nnx_migrate.rewrite.nodes import statements as _statements
from nnx_migrate.rewrite.classes.submodules import SubmoduleAnalysis
from nnx_migrate.rewrite.classes.factories import FactoryAnalysis
from nnx_migrate.rewrite.classes.variables import VariableAnalysis
from nnx_migrate.rewrite.classes.out_sizes import SizeAnalysis
from nnx_migrate.rewrite.classes.attribute_names import AttributeNames
from nnx_migrate.rewrite.classes.setup import SetupAnalysis
from nnx_migrate.rewrite.classes.generate.init_body import InitGenerator
from nnx_migrate.rewrite.classes.generate.signature import SignatureGenerator
from nnx_migrate.rewrite.classes.generate.build import ClassBuilder
from nnx_migrate.rewrite.classes.model import AppendChain, ClassSummary, Sub, VarDef
from nnx_migrate.rewrite.classes.context import FileContext
from nnx_migrate.rewrite.classes.helpers import binding_counts, constructs_inside
from nnx_migrate.rewrite.classes.shape import ClassShape
from nnx_migrate.rewrite.classes.walker import BodyWalker



class ClassConverter(SubmoduleAnalysis, FactoryAnalysis, VariableAnalysis, SizeAnalysis, AttributeNames, SetupAnalysis, InitGenerator, SignatureGenerator, ClassBuilder):
    """One class: its analysis state, the walk's driver, and the generation (through its parts)."""

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
            if constructs_inside(nested, self):
                self.todo(nested, f"def {getattr(nested.name, 'value', '?')}", "a nested function or class builds submodules or parameters")

    def function_return_size(self, func: cst.FunctionDef, call: cst.Call, caller: BodyWalker):
        """The size a module-level helper function returns, for these argument sizes
        (`reparameterize(rng, mean, logvar)` -> the size of `mean`)."""
        name = func.name.value
        if name in self.walking or constructs_inside(func, self) or any(a.keyword is not None or a.star for a in call.args):
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

    @property
    def shape_method_names(self) -> set[str]:
        return {m.name.value for m in self.shape.methods}

    def binding_counts(self, method: cst.FunctionDef) -> dict[str, int]:
        counts = self._binding_counts.get(id(method))
        if counts is None:
            counts = self._binding_counts[id(method)] = binding_counts(method)
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
