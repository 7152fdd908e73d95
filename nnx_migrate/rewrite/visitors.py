"""Bases for the rewrite's LibCST visitors and transformers: LibCST's callbacks, less work.

LibCST's `node.visit(visitor)` rebuilds and validates every node it passes, even for a
`CSTVisitor` that changes nothing, and finds each callback with a `getattr` of a freshly
formatted name per node, and twice more per child attribute for `visit_<Node>_<attr>`
hooks. Over the rewrite that was most of the time spent outside our own callbacks. Here:

- `FastVisitor` / `FastTransformer`: callbacks looked up once per (class, node type),
  LibCST's no-op stubs skipped, no attribute hooks (no visitor of the rewrite defines
  one; tests/rewrite/test_visitors.py checks that);
- `FastVisitor.walk(node)`: `node.visit(self)` without rebuilding anything;
- `FastTransformer.transform(node)`: `node.visit(self)`, rebuilding a node only when one
  of its children changed;
- walks pass over trivia (whitespace, comments, punctuation, operators: two thirds of
  the nodes of a file) for a visitor none of whose callbacks can see them (`TRIVIA`);
- `children_in_order(node)`: `node.children` without rebuilding `node`;
- `nodes_of_type(node, kind)`: `matchers.findall(node, m.Kind())` without a visit.

Field orders and how each field treats a removed or flattened child are learnt from
LibCST's own traversal of the first node of each type, and each type gets its own
children and children-transforming functions, written for its fields (no per-value type
tests or per-field dispatch at run time); the tests compare every function with the
LibCST call it stands for.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from collections.abc import Callable

import libcst as cst
from libcst._nodes import op as _op

# `isinstance(x, cst.CSTNode)` goes through ABCMeta (nodes are abstract-base dataclasses):
# a cached answer per concrete type is several times cheaper on hot paths.
_NODE_TYPES: dict[type, bool] = {}


def _is_node(value) -> bool:
    kind = type(value)
    known = _NODE_TYPES.get(kind)
    if known is None:
        known = _NODE_TYPES[kind] = issubclass(kind, cst.CSTNode)
    return known


def _find_callback(visitor_class: type, prefix: str, node_type: type, table: dict) -> Callable | None:
    found = getattr(visitor_class, f"{prefix}_{node_type.__name__}", None)
    if getattr(found, "_is_no_op", False):  # LibCST's typed stubs do nothing
        found = None
    table[node_type] = found
    return found


class _Tables:
    """Each visitor class gets its own callback tables (node type -> function or None);
    on the class itself, so the classes some functions define for one walk take their
    tables with them when they go."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._visit_table = {}
        cls._leave_table = {}
        cls._mode = None  # (plain hooks?, children table, transform table): see _mode


_UNKNOWN = object()  # (a node type not yet in a callback table)


def _mode(cls: type, base: type) -> tuple:
    """Whether the class keeps the base's `on_visit`/`on_leave` (then they are inlined),
    and the tables of children / children-transforming functions its walks use: without
    trivia (see `TRIVIA`) where no callback of the class can see a trivia node."""
    mode = cls._mode
    if mode is None:
        plain = cls.on_visit is base.on_visit and cls.on_leave is base.on_leave
        skip = _ignores_trivia(cls, base)
        mode = cls._mode = (plain, _BRANCHES if skip else _SOURCE_ORDER, _TRANSFORM_BRANCHES if skip else _TRANSFORMS)
    return mode


class FastVisitor(_Tables, cst.CSTVisitor):
    def walk(self, node: cst.CSTNode) -> None:
        """`node.visit(self)`: the same callbacks in the same order, without rebuilding
        every node passed (which LibCST does even for a visitor that changes nothing)."""
        cls = type(self)
        plain, children, _ = _mode(cls, FastVisitor)
        if plain:  # the same calls as below, with the hooks inlined
            _walk_plain(self, node, cls, cls._visit_table, cls._leave_table, children)
            return
        if self.on_visit(node):
            for child in _children(children, node):
                self.walk(child)
        self.on_leave(node)

    def on_visit(self, node: cst.CSTNode) -> bool:
        kind = type(node)
        try:
            visit = self._visit_table[kind]
        except KeyError:
            visit = _find_callback(type(self), "visit", kind, self._visit_table)
        return visit is None or visit(self, node) is not False

    def on_leave(self, original_node: cst.CSTNode) -> None:
        kind = type(original_node)
        try:
            leave = self._leave_table[kind]
        except KeyError:
            leave = _find_callback(type(self), "leave", kind, self._leave_table)
        if leave is not None:
            leave(self, original_node)

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        pass

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        pass


def _walk_plain(self, node, cls, visits: dict, leaves: dict, table: dict) -> None:
    """`FastVisitor.walk` for a class that keeps the base's `on_visit`/`on_leave` (most):
    the same callbacks in the same order, two method calls per node fewer."""
    kind = type(node)
    visit = visits.get(kind, _UNKNOWN)
    if visit is _UNKNOWN:
        visit = _find_callback(cls, "visit", kind, visits)
    if visit is None or visit(self, node) is not False:
        children = table.get(kind)  # (`_children`, inlined)
        if children is None:
            children = table[kind] = _learn_order(node, table is _BRANCHES)
        for child in children(node):
            _walk_plain(self, child, cls, visits, leaves, table)
    leave = leaves.get(kind, _UNKNOWN)
    if leave is _UNKNOWN:
        leave = _find_callback(cls, "leave", kind, leaves)
    if leave is not None:
        leave(self, node)


class FastTransformer(_Tables, cst.CSTTransformer):
    def transform(self, node: cst.CSTNode):
        """`node.visit(self)`: the same callbacks in the same order and the same result,
        except that a node none of whose children changed is kept (LibCST rebuilds and
        validates every node it passes). So `updated_node is original_node` in `leave_`
        callbacks where nothing below changed."""
        cls = type(self)
        plain, _, table = _mode(cls, FastTransformer)
        if plain:  # on_visit / on_leave below, inlined
            kind = type(node)
            visits = cls._visit_table
            visit = visits.get(kind, _UNKNOWN)
            if visit is _UNKNOWN:
                visit = _find_callback(cls, "visit", kind, visits)
            if visit is None or visit(self, node) is not False:
                children = table.get(kind)  # (`_transform_children`, inlined)
                if children is None:
                    children = table[kind] = _learn_transform(node, table is _TRANSFORM_BRANCHES)
                updated = children(self, node)
            else:
                updated = node
            leaves = cls._leave_table
            leave = leaves.get(kind, _UNKNOWN)
            if leave is _UNKNOWN:
                leave = _find_callback(cls, "leave", kind, leaves)
            result = updated if leave is None else leave(self, node, updated)
        else:
            updated = _transform_children(self, node, table) if self.on_visit(node) else node
            result = self.on_leave(node, updated)
        if not (_is_node(result) or result is cst.RemovalSentinel.REMOVE or type(result) is cst.FlattenSentinel):
            return node.visit(_Raise(result))  # LibCST's own error for a bad return value
        return result

    def on_visit(self, node: cst.CSTNode) -> bool:
        kind = type(node)
        try:
            visit = self._visit_table[kind]
        except KeyError:
            visit = _find_callback(type(self), "visit", kind, self._visit_table)
        return visit is None or visit(self, node) is not False

    def on_leave(self, original_node, updated_node):
        kind = type(original_node)
        try:
            leave = self._leave_table[kind]
        except KeyError:
            leave = _find_callback(type(self), "leave", kind, self._leave_table)
        return updated_node if leave is None else leave(self, original_node, updated_node)

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        pass

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        pass


class _FieldOrder(cst.CSTVisitor):
    """Records the attributes LibCST's own traversal visits, in its (source) order."""

    def __init__(self) -> None:
        self.fields: list[str] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        return False

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        self.fields.append(attribute)


_SOURCE_ORDER: dict[type, Callable[[cst.CSTNode], list]] = {}  # node type -> its children function
_BRANCHES: dict[type, Callable[[cst.CSTNode], list]] = {}  # the same without trivia fields


def _learn_order(node: cst.CSTNode, skip_trivia: bool = False) -> Callable[[cst.CSTNode], list]:
    """A function returning the children of a node of this type in source order, written
    for the type: its child attributes in the order LibCST's traversal visits them, each
    read directly (no per-value type tests; `None`, `MaybeSentinel` and sequences are
    told apart by exact type). Fields LibCST did not visit on this instance (plain values
    such as a name's text, or a field visited only when it is set, such as an f-string's
    format spec, that this instance lacked) are checked first: set on a later instance,
    LibCST's own `children` answers. `skip_trivia`: without the fields that hold only
    whitespace and punctuation (`trivia_fields`)."""
    order = _FieldOrder()
    node._visit_and_replace_children(order)
    names = tuple(dict.fromkeys(order.fields))
    unset = tuple(f.name for f in dataclasses.fields(node) if f.name not in names and (getattr(node, f.name) is None or type(getattr(node, f.name)) in (list, tuple)))
    skipped = trivia_fields(type(node)) if skip_trivia else ()
    lines = ["def children(node):"]
    for name in unset:
        lines += [f"    v = node.{name}", "    if v is not None and (type(v) not in (list, tuple) or v):",
                  f"        return {'_branches(node)' if skip_trivia else 'list(node.children)'}"]
    lines.append("    out = []")
    for name in names:
        if name in skipped:
            continue
        # a sequence, a node, or an unset optional (None / MaybeSentinel.DEFAULT)
        lines += [f"    v = node.{name}", "    t = type(v)", "    if t is tuple or t is list:", "        out += v",
                  "    elif v is not None and t is not _MaybeSentinel:", "        out.append(v)"]
    lines.append("    return out")
    scope = {"_MaybeSentinel": cst.MaybeSentinel, "_branches": _libcst_branches}
    exec("\n".join(lines), scope)  # (generated from the field names above only)
    return scope["children"]


def _libcst_branches(node: cst.CSTNode) -> list[cst.CSTNode]:
    return [child for child in node.children if not isinstance(child, TRIVIA)]


def _children(table: dict, node: cst.CSTNode) -> list[cst.CSTNode]:
    children = table.get(type(node))
    if children is None:
        children = table[type(node)] = _learn_order(node, table is _BRANCHES)
    return children(node)


def children_in_order(node: cst.CSTNode) -> list[cst.CSTNode]:
    """`node.children` (the direct children in source order) without rebuilding the node:
    the attribute order is learnt once per node type from LibCST's own traversal."""
    children = _SOURCE_ORDER.get(type(node))
    if children is None:
        children = _SOURCE_ORDER[type(node)] = _learn_order(node)
    return children(node)


def branches_in_order(node: cst.CSTNode) -> list[cst.CSTNode]:
    """`children_in_order(node)` without the children that are trivia by their field's
    type (whitespace, comments, punctuation, operators: see `TRIVIA`)."""
    return _children(_BRANCHES, node)


# Trivia: the nodes of whitespace, comments, newlines, punctuation and operators. A trivia
# node holds only trivia, and about two thirds of the nodes of a parsed file are trivia.
# No visitor of the rewrite has a callback for one, so its walks skip them (`_mode`):
# the same callbacks in the same order, a third of the nodes to pass.
TRIVIA: tuple[type, ...] = (
    *(kind for kind in vars(_op).values() if isinstance(kind, type) and issubclass(kind, cst.CSTNode) and kind.__module__ == _op.__name__),
    cst.BaseParenthesizableWhitespace, cst.TrailingWhitespace, cst.EmptyLine, cst.Newline, cst.Comment,
    cst.LeftParen, cst.RightParen, cst.LeftSquareBracket, cst.RightSquareBracket, cst.LeftCurlyBrace, cst.RightCurlyBrace,
)


def _subclasses(kind: type) -> list[type]:
    out = [kind]
    for sub in kind.__subclasses__():
        out.extend(_subclasses(sub))
    return out


_TRIVIA_NAMES = tuple(dict.fromkeys(sub.__name__ for kind in TRIVIA for sub in _subclasses(kind)))


def _node_classes(annotation) -> list[type]:
    """The node classes a field's annotation admits (through Optional, Union, Sequence)."""
    if isinstance(annotation, type):
        return [annotation] if issubclass(annotation, cst.CSTNode) else []
    if typing.get_origin(annotation) is typing.Literal:
        return []
    return [kind for arg in typing.get_args(annotation) for kind in _node_classes(arg)]


_TRIVIA_FIELDS: dict[type, frozenset[str]] = {}


def trivia_fields(kind: type) -> frozenset[str]:
    """The fields of a node type whose annotation admits trivia nodes only."""
    fields = _TRIVIA_FIELDS.get(kind)
    if fields is None:
        hints = typing.get_type_hints(kind)
        fields = set()
        for field in dataclasses.fields(kind):
            classes = _node_classes(hints[field.name])
            if classes and all(issubclass(c, TRIVIA) for c in classes):
                fields.add(field.name)
        fields = _TRIVIA_FIELDS[kind] = frozenset(fields)
    return fields


def _ignores_trivia(cls: type, base: type) -> bool:
    """Whether no callback of the visitor class can see a trivia node: it has no
    `visit_`/`leave_` callback for a trivia type, and its `on_visit`/`on_leave` are the
    base's or were declared to ignore trivia (`hooks_ignore_trivia = True` in the class
    that defines them)."""
    for hook in ("on_visit", "on_leave"):
        owner = next(k for k in cls.__mro__ if hook in vars(k))
        if owner is not base and not vars(owner).get("hooks_ignore_trivia", False):
            return False
    for name in _TRIVIA_NAMES:
        for prefix in ("visit", "leave"):
            found = getattr(cls, f"{prefix}_{name}", None)
            if found is not None and not getattr(found, "_is_no_op", False):
                return False
    return True


# How LibCST's traversal treats each child attribute: the helper of libcst/_nodes/internal.py
# that visits it decides what a removed or flattened child becomes.
_REQUIRED, _OPTIONAL, _SENTINEL, _SEQUENCE, _BODY = "visit_required", "visit_optional", "visit_sentinel", "visit_iterable", "visit_body_iterable"


class _FieldKinds(cst.CSTVisitor):
    def __init__(self) -> None:
        self.fields: list[tuple[str, str]] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        return False

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        self.fields.append((attribute, sys._getframe(1).f_code.co_name))


_KINDS: dict[type, tuple[tuple[tuple[str, str], ...], tuple[str, ...]] | None] = {}


def _field_kinds(node: cst.CSTNode):
    kinds = _KINDS.get(type(node), False)
    if kinds is False:
        order = _FieldKinds()
        node._visit_and_replace_children(order)
        fields = tuple(dict.fromkeys(order.fields))
        known = {_REQUIRED, _OPTIONAL, _SENTINEL, _SEQUENCE, _BODY}
        names = {name for name, _ in fields}
        # a helper we do not know, or a field visited twice: leave that type to LibCST
        kinds = None if any(kind not in known for _, kind in fields) or len(names) != len(fields) else (
            fields, tuple(f.name for f in dataclasses.fields(node) if f.name not in names))
        _KINDS[type(node)] = kinds
    return kinds


_TRANSFORMS: dict[type, Callable] = {}  # node type -> its children-transforming function
_TRANSFORM_BRANCHES: dict[type, Callable] = {}  # the same, leaving trivia fields alone


def _transform_children(transformer: FastTransformer, node: cst.CSTNode, table: dict | None = None) -> cst.CSTNode:
    """`node._visit_and_replace_children(transformer)`, keeping `node` where no child
    changed (see `FastTransformer.transform`)."""
    table = _TRANSFORMS if table is None else table
    function = table.get(type(node))
    if function is None:
        function = table[type(node)] = _learn_transform(node, table is _TRANSFORM_BRANCHES)
    return function(transformer, node)


def _by_libcst(transformer: FastTransformer, node: cst.CSTNode) -> cst.CSTNode:
    return node._visit_and_replace_children(transformer)


def _learn_transform(node: cst.CSTNode, skip_trivia: bool = False) -> Callable:
    """The children-transforming function of this node's type, written for the type (as
    `_learn_order` writes the children function): each child attribute read directly,
    in LibCST's order, and treated as the LibCST helper that visits it treats it. A
    sequence, a node or an unset optional is told apart by the value's exact type, so a
    field LibCST visits either way (`ImportFrom.names`: `*` or a sequence) works from
    either instance. Types LibCST visits with helpers we do not know (and the module)
    stay LibCST's. `skip_trivia`: trivia fields (`trivia_fields`) are kept as they are,
    unvisited."""
    kinds = _field_kinds(node)
    if kinds is None or type(node) is cst.Module:
        return _by_libcst
    fields, unset = kinds
    if skip_trivia:
        skipped = trivia_fields(type(node))
        fields = tuple((name, kind) for name, kind in fields if name not in skipped)
    lines = ["def transform_children(transformer, node):"]
    for name in unset:  # a field set here but absent where the order was learnt
        lines += [f"    v = node.{name}", "    if v is not None and (_is_node(v) or (type(v) in (list, tuple) and v)):",
                  "        return node._visit_and_replace_children(transformer)"]
    lines.append("    changes = None")
    for name, kind in fields:
        lines += [f"    v = node.{name}", "    t = type(v)", "    if t is tuple or t is list:",
                  f"        new = _sequence(transformer, v, {kind == _BODY})",
                  "        if new is not None:",
                  "            if changes is None:",
                  "                changes = {}",
                  f"            changes[{name!r}] = new",
                  "    elif v is not None and t is not _MaybeSentinel:",
                  "        new = transformer.transform(v)",
                  "        if new is not v:",
                  "            if changes is None:",
                  "                changes = {}",
                  f"            changes[{name!r}] = _single(node, {name!r}, {kind if kind in (_OPTIONAL, _SENTINEL) else _REQUIRED!r}, v, new)"]
    lines.append("    return node if changes is None else node.with_changes(**changes)")
    scope = {"_MaybeSentinel": cst.MaybeSentinel, "_is_node": _is_node, "_sequence": _transform_sequence, "_single": _transformed_child}
    exec("\n".join(lines), scope)  # (generated from the field names above only)
    return scope["transform_children"]


def _transform_sequence(transformer: FastTransformer, value, body: bool):
    """A sequence field transformed as `visit_sequence` (`visit_body_sequence` where
    `body`) does; None where no item changed."""
    new_items = None
    for index, child in enumerate(value):
        new = transformer.transform(child)
        if new is child:
            if new_items is not None:
                new_items.append(new)
            continue
        if new_items is None:
            new_items = list(value[:index])
        if new is cst.RemovalSentinel.REMOVE:
            continue
        items = list(new) if type(new) is cst.FlattenSentinel else [new]
        if body and not child._is_removable():
            items = [item for item in items if not item._is_removable()]
        new_items.extend(items)
    return None if new_items is None else tuple(new_items)


def _transformed_child(node: cst.CSTNode, name: str, kind: str, value, new):
    """What a single child's field becomes when the child was transformed into `new`
    (`visit_required` / `visit_optional` / `visit_sentinel`)."""
    if type(new) is cst.FlattenSentinel or (kind == _REQUIRED and new is cst.RemovalSentinel.REMOVE):
        node._visit_and_replace_children(_Replay(value, new))  # raises LibCST's TypeError
        raise TypeError(f"a {type(node).__name__} cannot take {new!r} for its {name}")
    if new is cst.RemovalSentinel.REMOVE:
        return None if kind == _OPTIONAL else cst.MaybeSentinel.DEFAULT
    return new


class _Replay(cst.CSTTransformer):
    """Makes LibCST raise its own error for a child a parent cannot lose or split."""

    def __init__(self, child, result):
        self.child, self.result = child, result

    def on_visit(self, node):
        return False

    def on_leave(self, original, updated):
        return self.result if original is self.child else updated


class _Raise(cst.CSTTransformer):
    def __init__(self, result):
        self.result = result

    def on_visit(self, node):
        return False

    def on_leave(self, original, updated):
        return self.result


def nodes_of_type(node: cst.CSTNode, kind: type) -> list[cst.CSTNode]:
    """Every node of exactly this type in `node` (itself included), in source order: what
    `libcst.matchers.findall(node, m.Kind())` finds, without its rebuilding visit."""
    children = children_in_order if issubclass(kind, TRIVIA) else branches_in_order
    found = []
    stack = [node]
    while stack:
        node = stack.pop()
        if type(node) is kind:
            found.append(node)
        stack.extend(reversed(children(node)))
    return found
