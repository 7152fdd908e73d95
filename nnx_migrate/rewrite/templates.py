"""LibCST parses of the code the rewrite writes (constructor calls, `__init__` headers,
`from flax import nnx`): each text parsed once, every call a fresh tree.

Within one run the same generated texts come back again and again (`super().__init__()`,
a layer's constructor in every file that builds it, every file of a later round), and a
LibCST parse costs about ten times a copy of the tree it builds. The trees are not shared:
the rewrite keys some of its tables on node identity (`id(node)`), so every call returns
nodes no other call returned, exactly as a parse would. So the table is a memo of a pure
function (text -> tree) that hands none of its entries out: no run can see another's
state through it, and it is bounded (`_LIMIT`), which is why it is not part of the run
context (run_context.py) that the file's code would otherwise have to be threaded through.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import libcst as cst

from nnx_migrate.rewrite.visitors import _field_kinds, _is_node

_PARSED: dict[tuple, cst.CSTNode] = {}
_LIMIT = 4096  # texts kept at a time (a run writes a few hundred)


def parse_statement(text: str, config: cst.PartialParserConfig | None = None):
    """`cst.parse_statement(text, config)`."""
    return _parse(cst.parse_statement, text, config)


def parse_expression(text: str, config: cst.PartialParserConfig | None = None) -> cst.BaseExpression:
    """`cst.parse_expression(text, config)`."""
    return _parse(cst.parse_expression, text, config)


def parse_module(text: str, config: cst.PartialParserConfig | None = None) -> cst.Module:
    """`cst.parse_module(text, config)`."""
    return _parse(cst.parse_module, text, config)


def forget() -> None:
    _PARSED.clear()


def _parse(parse: Callable, text: str, config):
    key = (parse, text, config)
    tree = _PARSED.get(key)
    if tree is not None:
        return fresh_copy(tree)
    tree = parse(text) if config is None else parse(text, config)  # (errors are not kept)
    if len(_PARSED) >= _LIMIT:
        _PARSED.clear()
    _PARSED[key] = tree
    return tree  # the first caller gets the parsed tree itself; later ones copies


_COPIERS: dict[type, Callable] = {}


def fresh_copy(node: cst.CSTNode) -> cst.CSTNode:
    """A deep copy of `node`: equal fields, every node a new object (`node.deep_clone()`
    without re-running each node's constructor and validation: the copied nodes were
    validated when parsed)."""
    copier = _COPIERS.get(type(node))
    if copier is None:
        copier = _COPIERS[type(node)] = _learn_copier(node)
    return copier(node)


def _learn_copier(node: cst.CSTNode) -> Callable:
    """A copy function written for the node's type: the child fields LibCST's traversal
    visits (learnt as `visitors` learns them) copied as a node, a sequence of nodes, or
    an unset optional taken as it is; other fields (text, numbers, a field visited only
    when set) copied whatever they hold."""
    kind = type(node)
    kinds = _field_kinds(node)
    children = {name for name, _ in kinds[0]} if kinds is not None else set()
    lines = ["def copy(node):", "    new = _new(_kind)"]
    for field in dataclasses.fields(kind):
        name = field.name
        lines += [f"    v = node.{name}", "    t = type(v)"]
        if name in children:
            lines += [
                "    if t is tuple or t is list:",
                "        v = t([_copy(c) for c in v])",
                "    elif v is not None and t is not _MaybeSentinel:",
                "        v = _copy(v)",
            ]
        else:
            lines += [
                "    if t is tuple or t is list:",
                "        v = t([_copy(c) if _is_node(c) else c for c in v])",
                "    elif _is_node(v):",
                "        v = _copy(v)",
            ]
        lines.append(f"    _set(new, {name!r}, v)")
    lines.append("    return new")
    scope = {"_new": object.__new__, "_kind": kind, "_set": object.__setattr__, "_copy": fresh_copy, "_is_node": _is_node, "_MaybeSentinel": cst.MaybeSentinel}
    exec("\n".join(lines), scope)  # (generated from the type's field names only)
    return scope["copy"]
