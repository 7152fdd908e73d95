"""Bases for the rewrite's LibCST visitors and transformers: same callbacks, cheaper dispatch.

LibCST finds a visitor's `visit_<Node>`/`leave_<Node>` with a `getattr` of a freshly
formatted name on every node, and does the same twice more per child attribute of every
node for `visit_<Node>_<attribute>` hooks. Over a visit that is a third of the time spent
outside our own callbacks. These bases look each callback up once per (visitor class,
node type), skip LibCST's no-op stubs, and make attribute hooks a no-op: no visitor of
the rewrite defines one (tests/rewrite/test_visitors.py checks that).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import libcst as cst


def _callback(visitor_class: type, prefix: str, node_type: type) -> Callable | None:
    # The table lives on the class itself (not a global keyed by class), so the classes
    # some functions define for one walk take their tables with them when they go.
    table = visitor_class.__dict__.get("_callback_table")
    if table is None:
        table = {}
        visitor_class._callback_table = table
    key = (prefix, node_type)
    try:
        return table[key]
    except KeyError:
        found = getattr(visitor_class, f"{prefix}_{node_type.__name__}", None)
        if getattr(found, "_is_no_op", False):  # LibCST's typed stubs do nothing
            found = None
        table[key] = found
        return found


class FastVisitor(cst.CSTVisitor):
    def walk(self, node: cst.CSTNode) -> None:
        """`node.visit(self)`: the same callbacks in the same order, without rebuilding
        every node passed (which LibCST does even for a visitor that changes nothing)."""
        if self.on_visit(node):
            for child in children_in_order(node):
                self.walk(child)
        self.on_leave(node)

    def on_visit(self, node: cst.CSTNode) -> bool:
        visit = _callback(type(self), "visit", type(node))
        return visit is None or visit(self, node) is not False

    def on_leave(self, original_node: cst.CSTNode) -> None:
        leave = _callback(type(self), "leave", type(original_node))
        if leave is not None:
            leave(self, original_node)

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        pass

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        pass


class FastTransformer(cst.CSTTransformer):
    def on_visit(self, node: cst.CSTNode) -> bool:
        visit = _callback(type(self), "visit", type(node))
        return visit is None or visit(self, node) is not False

    def on_leave(self, original_node, updated_node):
        leave = _callback(type(self), "leave", type(original_node))
        return updated_node if leave is None else leave(self, original_node, updated_node)

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        pass

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        pass


# A read-only walk needs no visitor: LibCST's `visit` (and `children`) rebuild every node
# they pass, a copy and a validation per node, even for a `CSTVisitor`.
class _FieldOrder(cst.CSTVisitor):
    """Records the attributes LibCST's own traversal visits, in its (source) order."""

    def __init__(self) -> None:
        self.fields: list[str] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        return False

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        self.fields.append(attribute)


_SOURCE_ORDER: dict[type, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def children_in_order(node: cst.CSTNode) -> list[cst.CSTNode]:
    """`node.children` (the direct children in source order) without rebuilding the node:
    the attribute order is learnt once per node type from LibCST's own traversal."""
    entry = _SOURCE_ORDER.get(type(node))
    if entry is None:
        order = _FieldOrder()
        node._visit_and_replace_children(order)
        names = tuple(dict.fromkeys(order.fields))
        entry = _SOURCE_ORDER[type(node)] = (names, tuple(f.name for f in dataclasses.fields(node) if f.name not in names))
    names, unlearnt = entry
    for name in unlearnt:
        # A few types visit a field only when it is set (an f-string's format spec):
        # where the instance the order was learnt from lacked it, LibCST answers.
        value = getattr(node, name)
        if isinstance(value, cst.CSTNode) or (isinstance(value, (list, tuple)) and value):
            return list(node.children)
    out = []
    for name in names:
        value = getattr(node, name)
        if isinstance(value, (list, tuple)):
            out.extend(value)
        elif isinstance(value, cst.CSTNode):
            out.append(value)
    return out
