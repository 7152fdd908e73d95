"""One Linen module class -> one NNX module class: the converter that drives the analysis and the generation."""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite.classes.attribute_names import AttributeNames
from nnx_migrate.rewrite.classes.constructs import module_transforms, self_call_constructs
from nnx_migrate.rewrite.classes.context import FileContext
from nnx_migrate.rewrite.classes.factories import FactoryAnalysis
from nnx_migrate.rewrite.classes.generate.build import ClassBuilder
from nnx_migrate.rewrite.classes.generate.init_body import InitGenerator
from nnx_migrate.rewrite.classes.generate.signature import SignatureGenerator
from nnx_migrate.rewrite.classes.helpers import binding_counts, constructs_inside
from nnx_migrate.rewrite.classes.model import ClassAnalysis, ClassSummary
from nnx_migrate.rewrite.classes.out_sizes import SizeAnalysis
from nnx_migrate.rewrite.classes.setup import SetupAnalysis
from nnx_migrate.rewrite.classes.shape import ClassShape
from nnx_migrate.rewrite.classes.submodules import SubmoduleAnalysis
from nnx_migrate.rewrite.classes.walker import BodyWalker
from nnx_migrate.rewrite.nodes import statements as _statements
from nnx_migrate.rewrite.report import TodoSite


class ClassConverter(ClassAnalysis, SubmoduleAnalysis, FactoryAnalysis, SizeAnalysis, AttributeNames, SetupAnalysis, InitGenerator, SignatureGenerator, ClassBuilder):
    """One class: its analysis state, the walk's driver, and the generation (through its parts)."""

    def __init__(self, node: cst.ClassDef, ctx: FileContext, base: ClassSummary | None):
        self.node = node
        self.ctx = ctx
        self.shape = ClassShape(node, ctx, base)
        self.name = node.name.value
        ClassAnalysis.__init__(self)
        self.called_classes: set[int] = set()  # ids of class expressions built and called at once: `Backbone(...)(x)`

    # ---- bookkeeping ------------------------------------------------------------
    def todo(self, node: cst.CSTNode, construct: str, why: str) -> None:
        self.todos.append(TodoSite(self.ctx.path, self.ctx.line(node), construct, why))
        # MethodRewriter marks the statement holding the node with a TODO comment.
        self.todo_nodes.setdefault(node, (node, []))[1].append(why)

    # ---- driver -----------------------------------------------------------------
    def analyse(self) -> None:
        for method in [m for m in (self.shape.compact, *self.shape.methods) if m is not None]:
            for construct in module_transforms():
                construct.analyse_method(self, method)
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
        for construct in self_call_constructs():
            construct.finish(self)
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
        for p, arg in zip(params, call.args, strict=False):
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
        counts = self.method_binding_counts.get(method)
        if counts is None:
            counts = self.method_binding_counts[method] = binding_counts(method)
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
        if len(returns) > 1 and all(r in walker.return_sizes for r in returns):
            # several returns: the size each gives where it runs, when they all agree
            sizes = [walker.return_sizes[r] for r in returns]
            if sizes[0] is not None and all(size == sizes[0] for size in sizes):
                return sizes[0]
        return None
