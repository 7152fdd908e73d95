"""Facts about one file that several rules need, computed once from LibCST metadata.

Every question is answered from qualified names and scopes, never from the text of a
name: `fx.Optimizer` after `import flax.nnx as fx` is the NNX optimizer; a local class
called `Optimizer` is not.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterator

import libcst as cst
import libcst.helpers
import libcst.matchers as m
from libcst.metadata import (
    Assignment,
    MetadataWrapper,
    ParentNodeProvider,
    Scope,
    ScopeProvider,
)

from nnx_migrate.lint.api_facts import nnx_api
from nnx_migrate.lint.rule import ImportNeeded

NNX_MODULES = ("flax.nnx", "flax.experimental.nnx")


def _nnx_symbol_of(qualified_name: str) -> str | None:
    for prefix in NNX_MODULES:
        if qualified_name.startswith(prefix + "."):
            return qualified_name.rsplit(".", 1)[1]
    return None


class FileAnalysis:
    """Per-file helpers over a resolved MetadataWrapper. Rules share one instance."""

    def __init__(self, wrapper: MetadataWrapper) -> None:
        self.wrapper = wrapper
        self.module = wrapper.module
        self.api = nnx_api()
        self._shared: dict = {}
        self._qualified: dict[cst.CSTNode, set[str]] = {}

    def shared(self, build):
        """`build(self)`, computed once per file: for analyses several rules use."""
        if build not in self._shared:
            self._shared[build] = build(self)
        return self._shared[build]

    # Metadata is resolved on first use: each provider is a walk over the whole tree,
    # and most files never need some of them.
    @functools.cached_property
    def _scopes(self):
        return self.wrapper.resolve(ScopeProvider)

    @functools.cached_property
    def _parents(self):
        return self.wrapper.resolve(ParentNodeProvider)

    # ---- names -------------------------------------------------------------------------
    def qualified_names(self, node: cst.CSTNode) -> set[str]:
        # What QualifiedNameProvider would answer, asked of the node's scope only for the
        # nodes a rule asks about: the provider's own walk over every node costs as much
        # again as the scope analysis it is built on.
        names = self._qualified.get(node)
        if names is None:
            scope = self._scopes.get(node)
            names = {q.name for q in scope.get_qualified_names_for(node)} if scope is not None else set()
            self._qualified[node] = names
        return names

    def nnx_symbol(self, node: cst.CSTNode, among: Collection[str] | None = None) -> str | None:
        """`Optimizer` for any expression that names `flax.nnx.Optimizer` (or a submodule's).

        With `among`, only those symbols are looked for, and an expression whose last name
        is neither one of them nor an import alias is rejected without resolving any
        metadata: most files never pay for scope analysis.
        """
        if among is not None and not self._could_name(node, among):
            return None
        if not self._could_come_from_flax(node):
            return None
        for name in self.qualified_names(node):
            symbol = _nnx_symbol_of(name)
            if symbol is not None and (among is None or symbol in among):
                return symbol
        return None

    @functools.cached_property
    def import_aliases(self) -> dict[str, str]:
        """`{alias: name}` for every `from ... import name as alias` in the file."""
        aliases: dict[str, str] = {}
        for statement in _iter_statements(self.module.body):
            if isinstance(statement, cst.ImportFrom) and not isinstance(statement.names, cst.ImportStar):
                for alias in statement.names:
                    if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                        aliases[alias.asname.name.value] = alias.evaluated_name
        return aliases

    @functools.cached_property
    def _flax_import_names(self) -> frozenset[str] | None:
        """The names any import of flax binds in this file (None after a `*` import from
        flax): only an expression rooted at one of them can be qualified as `flax.nnx.*`."""
        names: set[str] = set()
        for statement in _iter_statements(self.module.body):
            if isinstance(statement, cst.Import):
                for alias in statement.names:
                    if alias.evaluated_name.split(".")[0] == "flax":
                        names.add(alias.evaluated_alias or alias.evaluated_name.split(".")[0])
            elif isinstance(statement, cst.ImportFrom) and not statement.relative and statement.module is not None:
                if cst.helpers.get_full_name_for_node(statement.module).split(".")[0] != "flax":
                    continue
                if isinstance(statement.names, cst.ImportStar):
                    return None
                names.update(alias.evaluated_alias or alias.evaluated_name for alias in statement.names)
        return frozenset(names)

    def _could_come_from_flax(self, node: cst.CSTNode) -> bool:
        flax_names = self._flax_import_names
        if flax_names is None:
            return True
        root = node
        while isinstance(root, cst.Attribute):
            root = root.value
        return isinstance(root, cst.Name) and root.value in flax_names

    def _could_name(self, node: cst.CSTNode, symbols: Collection[str]) -> bool:
        if isinstance(node, cst.Attribute):
            last = node.attr.value
        elif isinstance(node, cst.Name):
            last = node.value
        else:
            return False
        return last in symbols or self.import_aliases.get(last) in symbols

    @functools.cached_property
    def _calls_bound_to_names(self) -> dict[str, list[cst.BaseExpression]]:
        """`{name: [f, ...]}` for every `name = f(...)` in the file. A walk over statements
        only: no metadata."""
        bound: dict[str, list[cst.BaseExpression]] = {}
        for statement in _iter_statements(self.module.body):
            if isinstance(statement, cst.Assign) and len(statement.targets) == 1:
                target, value = statement.targets[0].target, statement.value
            elif isinstance(statement, cst.AnnAssign):
                target, value = statement.target, statement.value
            else:
                continue
            if isinstance(target, cst.Name) and isinstance(value, cst.Call):
                bound.setdefault(target.value, []).append(value.func)
        return bound

    def may_be_bound_to_call_of(self, name: cst.Name, symbols: Collection[str], local: bool = False) -> bool:
        """False only when no `name = f(...)` in the file can call one of the `flax.nnx`
        `symbols` (or, with `local`, a class of this file): decided before any metadata
        is resolved."""
        for func in self._calls_bound_to_names.get(name.value, ()):
            if not isinstance(func, (cst.Name, cst.Attribute)):
                return True
            if self._could_name(func, symbols) and self._could_come_from_flax(func):
                return True
            if local and isinstance(func, cst.Name) and func.value in self.local_classes:
                return True
        return False

    def parent(self, node: cst.CSTNode) -> cst.CSTNode | None:
        return self._parents.get(node)

    def scope(self, node: cst.CSTNode) -> Scope | None:
        return self._scopes.get(node)

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)

    # ---- references to flax.nnx that a fix may insert -----------------------------------
    @functools.cached_property
    def _global_scope(self) -> Scope | None:
        return self._scopes.get(self.module)

    @functools.cached_property
    def _nnx_imports(self) -> tuple[dict[str, str], str | None, bool]:
        """The module-level names bound to flax.nnx: ({symbol: first name binding it},
        the first alias of the module itself, whether any name comes from flax.nnx).
        Computed once per file: every fix asks, and the scan is over every global name."""
        direct: dict[str, str] = {}
        module_alias = None
        imports_names_from_nnx = False
        scope = self._global_scope
        if scope is not None:
            for assignment in sorted(scope.assignments, key=lambda a: a.name):
                qualified = {q.name for q in scope.get_qualified_names_for(assignment.name)}
                for q in qualified:
                    symbol = _nnx_symbol_of(q)
                    if symbol is not None:
                        imports_names_from_nnx = True
                        if q.rsplit(".", 1)[0] in NNX_MODULES:
                            direct.setdefault(symbol, assignment.name)
                if module_alias is None and qualified & set(NNX_MODULES):
                    module_alias = assignment.name
        return direct, module_alias, imports_names_from_nnx

    def nnx_reference(self, symbol: str) -> tuple[cst.BaseExpression, tuple[ImportNeeded, ...]]:
        """An expression naming `flax.nnx.<symbol>` in this file, using the file's own imports.

        Prefers a direct import of the symbol (`from flax.nnx import Param`), then the
        file's alias of the module (`nnx.Param`, `fx.Param`, `flax.nnx.Param`); only if
        there is neither does it ask for a new import.
        """
        direct, module_alias, imports_names_from_nnx = self._nnx_imports
        scope = self._global_scope
        if symbol in direct:
            return cst.Name(direct[symbol]), ()
        if module_alias is not None:
            return cst.parse_expression(f"{module_alias}.{symbol}"), ()
        name_taken = scope is not None and symbol in scope
        if not name_taken and (imports_names_from_nnx or (scope is not None and "nnx" in scope)):
            # The file imports names from flax.nnx (or uses `nnx` for something else):
            # follow its style, `from flax.nnx import Optimizer, Param`.
            return cst.Name(symbol), (ImportNeeded("flax.nnx", symbol),)
        return cst.parse_expression(f"nnx.{symbol}"), (ImportNeeded("flax", "nnx"),)

    # ---- what an expression builds ----------------------------------------------------
    def called_nnx_symbol(self, node: cst.CSTNode, among: Collection[str]) -> str | None:
        return self.nnx_symbol(node.func, among) if isinstance(node, cst.Call) else None

    @functools.cached_property
    def local_classes(self) -> dict[str, cst.ClassDef]:
        return {
            stmt.name.value: stmt
            for stmt in self.module.body
            if isinstance(stmt, cst.ClassDef)
        }

    def _local_class_name(self, node: cst.BaseExpression) -> str | None:
        if isinstance(node, cst.Name) and node.value in self.local_classes:
            # The name must resolve to the module-level class, not a shadowing local.
            if node.value in self.qualified_names(node):
                return node.value
        return None

    def _subclasses_of(self, nnx_bases: frozenset[str]) -> frozenset[str]:
        found: set[str] = set()
        changed = True
        while changed:  # to a fixed point: classes may subclass later-defined classes
            changed = False
            for name, classdef in self.local_classes.items():
                if name in found:
                    continue
                for base in classdef.bases:
                    if base.keyword is not None:
                        continue
                    if self.nnx_symbol(base.value, nnx_bases) or self._local_class_name(base.value) in found:
                        found.add(name)
                        changed = True
                        break
        return frozenset(found)

    @functools.cached_property
    def local_module_classes(self) -> frozenset[str]:
        """Classes in this file that subclass an `nnx.Module` type."""
        return self._subclasses_of(self.api.module_types)

    @functools.cached_property
    def local_variable_classes(self) -> frozenset[str]:
        """Classes in this file that subclass an `nnx.Variable` type."""
        return self._subclasses_of(self.api.variable_types)

    def constructs_module(self, node: cst.CSTNode) -> bool:
        return self._constructs(node, self.api.module_types, self.local_module_classes)

    def constructs_variable(self, node: cst.CSTNode) -> bool:
        return self._constructs(node, self.api.variable_types, self.local_variable_classes)

    def _constructs(self, node: cst.CSTNode, nnx_types: frozenset[str], local_types: frozenset[str]) -> bool:
        """A call of one of the `flax.nnx` classes `nnx_types`, or of a local subclass."""
        if not isinstance(node, cst.Call):
            return False
        return bool(self.nnx_symbol(node.func, nnx_types)) or self._local_class_name(node.func) in local_types

    def constructs_local_class(self, node: cst.CSTNode) -> str | None:
        if isinstance(node, cst.Call):
            return self._local_class_name(node.func)
        return None

    def makes_array(self, node: cst.CSTNode) -> bool:
        """A call of a jax.numpy / numpy / jax.random (...) function: its result is an array."""
        if not isinstance(node, cst.Call):
            return False
        for name in self.qualified_names(node.func):
            if any(name.startswith(mod + ".") for mod in self.api.array_modules):
                return True
        # `init(key, shape)` where `init` came from an initializer factory, e.g.
        # `nnx.initializers.lecun_normal()(key, shape)`.
        if isinstance(node.func, cst.Call):
            return any(
                "initializers" in name.split(".")
                for name in self.qualified_names(node.func.func)
            )
        return False

    # ---- single assignments -------------------------------------------------------------
    def assignments_of(self, name: cst.Name) -> list[Assignment]:
        scope = self.scope(name)
        if scope is None:
            return []
        return [a for a in scope[name.value] if isinstance(a, Assignment)]

    def assigned_value(self, name: cst.Name) -> cst.BaseExpression | None:
        """The value of `name` if it is bound exactly once, by `name = value`, else None."""
        assignments = self.assignments_of(name)
        if len(assignments) != 1:
            return None
        target = assignments[0].node
        parent = self.parent(target)
        if isinstance(parent, cst.AssignTarget):
            assign = self.parent(parent)
            if isinstance(assign, cst.Assign) and len(assign.targets) == 1:
                return assign.value
        if isinstance(parent, cst.AnnAssign) and parent.target is target:
            return parent.value
        return None

    def enclosing(self, node: cst.CSTNode, kind: type) -> cst.CSTNode | None:
        current = self.parent(node)
        while current is not None and not isinstance(current, kind):
            current = self.parent(current)
        return current

    def self_attribute_assignments(self, classdef: cst.ClassDef) -> Iterator[tuple[str, cst.BaseExpression, cst.CSTNode]]:
        """(attribute, value, statement) for every `self.attr = value` in the class's methods."""
        for assign in _iter_assignments(classdef):
            targets = [t.target for t in assign.targets] if isinstance(assign, cst.Assign) else [assign.target]
            if assign.value is None:
                continue
            for target in targets:
                if m.matches(target, m.Attribute(value=m.Name("self"), attr=m.Name())):
                    yield target.attr.value, assign.value, assign

    def variable_attributes(self, classdef: cst.ClassDef) -> dict[str, bool]:
        """Attributes of `self` that only ever hold an NNX Variable.

        Maps the attribute to whether its value is known to be an array (so `[...]` is a
        correct replacement for `.value`); attributes assigned anything else are left out.
        """
        result: dict[str, bool] = {}
        disqualified: set[str] = set()
        for attr, value, _ in self.self_attribute_assignments(classdef):
            if isinstance(value, cst.Name) and value.value == "None":
                continue  # `self.w = None` in another branch: `.value` is only read when set
            if self.constructs_variable(value):
                holds_array = self.variable_holds_array(value)
                result[attr] = result.get(attr, True) and holds_array
            else:
                disqualified.add(attr)
        return {k: v for k, v in result.items() if k not in disqualified}

    def variable_holds_array(self, call: cst.Call) -> bool:
        """Whether `nnx.Variable(value, ...)`'s value is known to be an array."""
        if not call.args or call.args[0].keyword is not None or call.args[0].star:
            return False
        value = call.args[0].value
        if isinstance(value, cst.Name):
            value = self.assigned_value(value) or value
        return self.makes_array(value)


def _iter_statements(body) -> Iterator[cst.CSTNode]:
    """Small statements anywhere in a statement list, without visiting expressions."""
    for statement in body:
        if isinstance(statement, cst.SimpleStatementLine):
            yield from statement.body
        elif isinstance(statement, cst.BaseCompoundStatement):
            yield from _iter_statements(_bodies(statement))


def _bodies(statement: cst.BaseCompoundStatement) -> list[cst.CSTNode]:
    result: list[cst.CSTNode] = []
    for part in (statement, getattr(statement, "orelse", None), getattr(statement, "finalbody", None)):
        if part is None:
            continue
        if part is not statement and isinstance(part, cst.If):  # elif
            result.extend(_bodies(part))
            continue
        body = getattr(part, "body", None)
        if isinstance(body, cst.IndentedBlock):
            result.extend(body.body)
        elif isinstance(body, cst.SimpleStatementSuite):
            result.extend(cst.SimpleStatementLine(body=[s]) for s in body.body)
    for handler in getattr(statement, "handlers", ()):
        result.extend(_bodies(handler))
    return result


def _iter_assignments(node: cst.CSTNode) -> Iterator[cst.Assign | cst.AnnAssign]:
    """Assignments anywhere under `node`, not descending into nested classes."""
    collector = _AssignmentCollector()
    node.visit(collector)
    return iter(collector.found)


class _AssignmentCollector(cst.CSTVisitor):
    def __init__(self) -> None:
        self.found: list[cst.Assign | cst.AnnAssign] = []
        self._depth = 0

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self._depth += 1
        return self._depth == 1

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._depth -= 1

    def visit_Assign(self, node: cst.Assign) -> None:
        self.found.append(node)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self.found.append(node)
