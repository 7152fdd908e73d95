"""Small questions about LibCST nodes that every part of the class conversion asks."""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite.names import dotted
from nnx_migrate.rewrite.report import todo_comment
from nnx_migrate.rewrite.visitors import children_in_order

# Statements a TODO comment can be put above.
STATEMENTS = (cst.SimpleStatementLine, cst.If, cst.For, cst.While, cst.With, cst.Try)
# The same, for `type(node) in STATEMENT_TYPES`: none has subclasses, and the test is far
# cheaper than `isinstance` against LibCST's abstract node classes in per-node callbacks.
STATEMENT_TYPES = frozenset(STATEMENTS)
# ... and definitions (the comment goes above their decorators).
MARKABLE = (*STATEMENTS, cst.FunctionDef, cst.ClassDef)
MARKABLE_TYPES = frozenset(MARKABLE)


def with_todo_comments(statement, notes: list[str]):
    """The statement with a `# TODO(nnx-migrate): why` line above it per note (none twice,
    none the statement carries already)."""
    if notes and isinstance(statement, cst.FlattenSentinel) and statement.nodes:
        first, *rest = statement.nodes
        return cst.FlattenSentinel([with_todo_comments(first, notes), *rest])
    if not notes or not isinstance(statement, MARKABLE):
        return statement
    present = {line.comment.value for line in statement.leading_lines if line.comment is not None}
    texts = [t for t in dict.fromkeys(todo_comment(why) for why in notes) if t not in present]
    if not texts:
        return statement
    comments = [cst.EmptyLine(comment=cst.Comment(text)) for text in texts]
    return statement.with_changes(leading_lines=[*statement.leading_lines, *comments])


def string_value(node: cst.BaseExpression) -> str | None:
    if isinstance(node, cst.SimpleString):
        return node.evaluated_value if isinstance(node.evaluated_value, str) else None
    return None


def self_attr(node: cst.BaseExpression) -> str | None:
    if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == "self":
        return node.attr.value
    return None


def self_method_call(node: cst.CSTNode, method: str) -> bool:
    return isinstance(node, cst.Call) and self_attr(node.func) == method


def is_docstring(stmt: cst.CSTNode) -> bool:
    """A line that is only a string literal (a docstring where it comes first). A line
    with more on it (`"doc"; x = 1`) is not: code put after it would come after `x = 1`."""
    return (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Expr)
            and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString)))


def bound_names(func: cst.FunctionDef) -> set[str]:
    """Every name a function binds: parameters and the targets of its statements (walked
    statement by statement; expressions are not entered, which keeps this cheap)."""
    names = set()
    for p in [*func.params.posonly_params, *func.params.params, *func.params.kwonly_params]:
        names.add(p.name.value)
    for star in (func.params.star_arg, func.params.star_kwarg):
        if isinstance(star, cst.Param):
            names.add(star.name.value)
    for stmt in statements(func.body.body):
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Assign):
                    for t in small.targets:
                        targets(t.target, names)
                elif isinstance(small, (cst.AnnAssign, cst.AugAssign)):
                    targets(small.target, names)
                elif isinstance(small, (cst.Import, cst.ImportFrom)) and not isinstance(small.names, cst.ImportStar):
                    for alias in small.names:
                        if alias.asname is not None:
                            targets(alias.asname.name, names)
                        else:
                            names.add((dotted(alias.name) or "").split(".")[0])
        elif isinstance(stmt, cst.For):
            targets(stmt.target, names)
        elif isinstance(stmt, cst.With):
            for item in stmt.items:
                if item.asname is not None:
                    targets(item.asname.name, names)
        elif isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            names.add(stmt.name.value)
        elif isinstance(stmt, cst.Try):
            for handler in stmt.handlers:
                if handler.name is not None:
                    targets(handler.name.name, names)
    return names


def statements(body):
    """Statements of a block and of the blocks nested in it (not nested functions)."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            continue
        for attr in ("body", "orelse", "finalbody"):
            block = getattr(stmt, attr, None)
            if block is None:
                continue
            if isinstance(block, cst.If):
                yield from statements([block])
                continue
            inner = getattr(block, "body", None)
            if isinstance(inner, (list, tuple)):
                yield from statements(inner)
            elif isinstance(block, (cst.IndentedBlock, cst.Else, cst.Finally)):
                yield from statements(block.body.body if isinstance(block, (cst.Else, cst.Finally)) else block.body)
        for handler in getattr(stmt, "handlers", ()):
            yield from statements(handler.body.body)


def targets(node, out: set[str]) -> None:
    if isinstance(node, cst.Name):
        out.add(node.value)
    elif isinstance(node, (cst.Tuple, cst.List)):
        for el in node.elements:
            targets(el.value, out)
    elif isinstance(node, cst.StarredElement):
        targets(node.value, out)


def names_in(node) -> set[str]:
    """The names a node's code reads or binds (not attribute names, not keywords)."""
    names = set()
    stack = [node]
    while stack:  # a set: order does not matter, so no (rebuilding) visit
        node = stack.pop()
        kind = type(node)
        if kind is cst.Name:
            names.add(node.value)
        elif kind is cst.Attribute or kind is cst.Arg:
            stack.append(node.value)
        else:
            stack.extend(children_in_order(node))
    return names
