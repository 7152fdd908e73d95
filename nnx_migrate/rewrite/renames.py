"""Linen names outside layers: `nn.relu` -> `nnx.relu`, `nn.initializers.x` ->
`nnx.initializers.x`, `nn.Module` (in annotations) -> `nnx.Module`; and the Linen names that
are left over once everything convertible is converted."""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite import templates
from nnx_migrate.rewrite.edits import FileEdits
from nnx_migrate.rewrite.names import LINEN, ImportMap, dotted, normalize_linen
from nnx_migrate.rewrite.nodes import MARKABLE_TYPES, with_todo_comments
from nnx_migrate.rewrite.rules import Rules
from nnx_migrate.rewrite.visitors import FastTransformer, branches_in_order

# Type-level renames: used in annotations, isinstance checks.
_TYPES = {"flax.linen.Module": "flax.nnx.Module", "flax.linen.module.Module": "flax.nnx.Module"}


LEFT_AS_LINEN = "Linen API with no NNX conversion here (left as Linen, so flax.linen stays imported)"
NESTED_CLASS = "a Linen module class inside a function or block is not converted (only module-level classes are)"


def _nnx_source(qualified: str) -> str:
    """`flax.nnx.relu` -> `nnx.relu`."""
    assert qualified.startswith("flax.nnx")
    return "nnx" + qualified[len("flax.nnx"):]


def _mentions(node: cst.CSTNode, names: frozenset[str]) -> bool:
    stack = [node]
    while stack:
        node = stack.pop()
        if type(node) is cst.Name:
            if node.value in names:
                return True
        else:
            stack.extend(branches_in_order(node))
    return False


def names_in(node: cst.CSTNode) -> set[str]:
    names: set[str] = set()
    stack = [node]
    while stack:
        node = stack.pop()
        if type(node) is cst.Name:
            names.add(node.value)
        else:
            stack.extend(branches_in_order(node))
    return names


def _packed(call: cst.Call) -> cst.Call:
    """`f(x, *ys, dtype=d)` -> `f((x, *ys), dtype=d)`."""
    arrays = [a for a in call.args if a.keyword is None and a.star != "**"]
    elements = [cst.StarredElement(a.value) if a.star == "*" else cst.Element(a.value) for a in arrays]
    if elements:
        elements[-1] = elements[-1].with_changes(comma=cst.Comma() if len(elements) == 1 else cst.MaybeSentinel.DEFAULT)
    packed = cst.Tuple(elements)
    rest = [a for a in call.args if not (a.keyword is None and a.star != "**")]
    first = cst.Arg(packed, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")) if rest else cst.MaybeSentinel.DEFAULT)
    return call.with_changes(args=[first, *rest])


class _SkipImports(FastTransformer):
    def visit_Import(self, node) -> bool:
        return False

    def visit_ImportFrom(self, node) -> bool:
        return False


class RenameLinen(_SkipImports):
    """One pass over the converted module: renames what has an NNX name, and records the
    names still used (for import pruning) and the Linen references left (for the report)."""

    def __init__(self, imports: ImportMap, rules: Rules, edits: FileEdits):
        self.imports = imports
        self.edits = edits  # asked for the helpers the renamed code calls
        self.table = {**rules.renames, **_TYPES}
        self.helpers = rules.helpers  # Linen functions kept as a helper in the file
        self.reserved: set[str] = set()  # names the file binds itself: no helper of that name
        self.unconverted = rules.unconverted
        self.call_renames = rules.call_renames  # renamed only as the function of a call
        self.packed_calls = rules.packed_calls  # ... and given the arrays as one tuple
        self._pack: dict[int, cst.Call] = {}
        self._called: dict[int, cst.CSTNode] = {}  # functions of calls, by id (node kept, as below)
        self._add_keywords: dict[int, tuple[cst.Call, dict[str, str]]] = {}
        self.changed = False
        self.used_names: set[str] = set()
        self.leftovers: set[str] = set()
        self.leftover_nodes: list[tuple[str, cst.CSTNode]] = []  # (name, node as visited)
        # Keyed by id() but holding the node: a node that died could hand its id to a
        # new one, and the renamer lives across many passes over new code.
        self._not_refs: dict[int, cst.CSTNode] = {}  # attribute names, keywords, parameter names
        self._replace: dict[int, tuple[cst.CSTNode, str]] = {}
        self.unconverted_classes: list[cst.ClassDef] = []  # Linen classes not at module level
        # TODO notes of the statements being visited: a Linen name left is marked at the
        # innermost statement (or definition) that holds it
        self.pending: list[list[str]] = []
        self._linen_names = frozenset(imports.linen_aliases())

    def _target(self, node) -> str | None:
        qual = self.imports.qualify(node)
        if qual is None or not qual.startswith(LINEN):
            return None
        helper = self.helpers.get(normalize_linen(qual, self.helpers))
        if helper is not None and helper not in self.reserved:
            self.edits.add_helper(helper)
            return helper
        packed = normalize_linen(qual, self.packed_calls)
        if packed in self.packed_calls:
            return _nnx_source(self.packed_calls[packed]) if self._called.get(id(node)) is node else None
        called = normalize_linen(qual, self.call_renames)
        if called in self.call_renames:
            return _nnx_source(self.call_renames[called][0]) if self._called.get(id(node)) is node else None
        qual = normalize_linen(qual, self.table)
        for key, new in self.table.items():
            if qual == key:
                return _nnx_source(new)
            if qual.startswith(key + "."):
                return _nnx_source(new) + qual[len(key):]
        return None

    def why_left(self, node) -> str:
        """The report's reason for a Linen name left in converted code."""
        qual = self.imports.qualify(node)
        return self.unconverted.get(normalize_linen(qual, self.unconverted), LEFT_AS_LINEN)

    def _is_linen(self, node) -> bool:
        qual = self.imports.qualify(node)
        return qual is not None and (qual == LINEN or qual.startswith(LINEN + "."))

    def visit_Attribute(self, node: cst.Attribute):
        self._not_refs[id(node.attr)] = node.attr
        name = dotted(node)
        if name is None:
            return True
        target = self._target(node)
        if target is not None:
            self._replace[id(node)] = (node, target)
            return False
        if self._is_linen(node):
            self._left(name, node)
            self.used_names.add(name.split(".")[0])
            return False
        return True

    def _left(self, name: str, node: cst.CSTNode) -> None:
        self.leftovers.add(name)
        self.leftover_nodes.append((name, node))
        if self.pending:
            self.pending[-1].append(self.why_left(node))

    def leave_Attribute(self, original, updated):
        entry = self._replace.get(id(original))
        target = entry[1] if entry is not None and entry[0] is original else None
        if target is not None:
            self.changed = True
            self.used_names.add(target.split(".")[0])
            return templates.parse_expression(target)
        return updated

    def leave_Name(self, original, updated):
        if self._not_refs.get(id(original)) is original:
            return updated
        target = self._target(original)
        if target is not None:
            self.changed = True
            self.used_names.add(target.split(".")[0])
            return templates.parse_expression(target)
        self.used_names.add(original.value)
        if self._is_linen(original):
            self._left(original.value, original)
        return updated

    def visit_Call(self, node: cst.Call):
        qual = self.imports.qualify(node.func)
        if qual is not None and qual.startswith(LINEN) and normalize_linen(qual, self.packed_calls) in self.packed_calls:
            self._called[id(node.func)] = node.func
            self._pack[id(node)] = node
        elif qual is not None and qual.startswith(LINEN):
            entry = self.call_renames.get(normalize_linen(qual, self.call_renames))
            if entry is not None and not any(a.keyword is not None and a.keyword.value in entry[2] for a in node.args):
                self._called[id(node.func)] = node.func
                self._add_keywords[id(node)] = (node, entry[1])
        return True

    def leave_Call(self, original, updated):
        if self._pack.get(id(original)) is original:
            return _packed(updated)
        entry = self._add_keywords.get(id(original))
        if entry is None or entry[0] is not original:
            return updated
        present = {arg.keyword.value for arg in updated.args if arg.keyword is not None}
        extra = [cst.Arg(keyword=cst.Name(key), value=templates.parse_expression(value), equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")))
                 for key, value in entry[1].items() if key not in present]
        if not extra:
            return updated
        args = list(updated.args)
        if args:
            args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        return updated.with_changes(args=args + extra)

    def visit_Arg(self, node: cst.Arg):
        if node.keyword is not None:
            self._not_refs[id(node.keyword)] = node.keyword
        return True

    def visit_ClassDef(self, node: cst.ClassDef):
        # A Linen class this pass reaches was not converted (it is nested in a function or
        # a block): it stays Linen as a whole, nothing renamed in it (a Linen class needs
        # Linen's `with_partitioning`, not NNX's), marked and reported once at its line.
        if any(base.keyword is None and normalize_linen(self.imports.qualify(base.value), _TYPES) in _TYPES for base in node.bases):
            self.unconverted_classes.append(node)
            self.leftovers.add(node.name.value)
            self.used_names.update(names_in(node))  # (its imports stay)
            if self.pending:
                self.pending[-1].append(NESTED_CLASS)
            return False
        return True

    hooks_ignore_trivia = True  # (class bases and statement lines only: see visitors.TRIVIA)

    def on_visit(self, node: cst.CSTNode) -> bool:
        if type(node) in MARKABLE_TYPES:
            self.pending.append([])  # (taken in on_leave, whatever this returns)
        # Every Linen reference starts with a name bound by a Linen import, and the pass
        # does nothing else a caller sees (`used_names` matters only for those names).
        # A statement line without such a name is left as it is, unvisited: a cheap walk
        # instead of a visit that rebuilds every node (most generated `__init__` lines).
        if type(node) is cst.SimpleStatementLine and not _mentions(node, self._linen_names):
            return False
        return super().on_visit(node)

    def on_leave(self, original, updated):
        result = super().on_leave(original, updated)
        if type(original) in MARKABLE_TYPES:
            return with_todo_comments(result, self.pending.pop())
        return result

    def visit_Param(self, node: cst.Param):
        self._not_refs[id(node.name)] = node.name
        return True
