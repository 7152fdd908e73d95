"""Small pure helpers over nodes and source text used by the analysis and the generation."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

import libcst as cst

from nnx_migrate.rewrite.nodes import self_attr as _self_attr
from nnx_migrate.rewrite.nodes import targets as _targets
from nnx_migrate.rewrite.sizes import code
from nnx_migrate.rewrite.visitors import FastVisitor, children_in_order

if TYPE_CHECKING:
    from nnx_migrate.rewrite.classes.converter import ClassConverter


def plus(*terms: str) -> str:
    """Sum of index terms as source, without `0 + ...` noise."""
    kept = [t for t in terms if t != "0"]
    return " + ".join(kept) if kept else "0"


def times(term: str, factor: int) -> str:
    return term if factor == 1 else f"{term} * {factor}"


def last_dim_of(node) -> str | None:
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


def list_element_name(name_arg, index_var: str | None) -> str | None:
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
NEVER_LITERAL = (cst.Call, cst.Attribute, cst.Subscript, cst.Lambda, cst.IfExp, cst.Comparison, cst.BooleanOperation,
                  cst.GeneratorExp, cst.ListComp, cst.SetComp, cst.DictComp, cst.Await, cst.FormattedString, cst.NamedExpr)


def may_be_literal(node: cst.BaseExpression) -> bool:
    if type(node) is cst.Name:
        return node.value in ("True", "False", "None")
    return not isinstance(node, NEVER_LITERAL)


def is_literal(src: str | None) -> bool:
    """A field default a parent can copy into its own size expressions."""
    if src is None:
        return False
    try:
        ast.literal_eval(src)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return True


def constructs_inside(node, conv: ClassConverter) -> bool:
    found = []

    class Find(FastVisitor):
        def visit_Call(self, call):
            if conv.construction_kind(call) is not None or _self_attr(call.func) in ("param", "variable"):
                found.append(call)

    Find().walk(node)
    return bool(found)


def free_names(node: cst.CSTNode) -> set[str]:
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


def with_call_time_params(method: cst.FunctionDef, names: list[str]) -> cst.FunctionDef:
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


def binding_counts(func: cst.FunctionDef) -> dict[str, int]:
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


def exits_early(body) -> bool:
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


def class_level_names(stmts) -> set[str]:
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


def assigned_self_attrs(node: cst.CSTNode) -> set[str]:
    """The attributes `self.<name> = ...` sets anywhere under `node`."""
    names: set[str] = set()

    class Stores(FastVisitor):
        def visit_AssignTarget(self, target: cst.AssignTarget):
            attr = _self_attr(target.target)
            if attr is not None:
                names.add(attr)

        def visit_AnnAssign(self, assign: cst.AnnAssign):
            attr = _self_attr(assign.target)
            if attr is not None:
                names.add(attr)

    Stores().walk(node)
    return names
