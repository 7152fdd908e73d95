"""Discovery: the parts of a Linen module class (fields, setup, the compact method, other methods)."""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite.classes.context import FileContext
from nnx_migrate.rewrite.classes.model import ClassSummary, Field
from nnx_migrate.rewrite.names import normalize_linen
from nnx_migrate.rewrite.nodes import is_docstring
from nnx_migrate.rewrite.sizes import code
from nnx_migrate.rewrite.visitors import FastTransformer

NON_FIELD_NAMES = {"parent", "name"}

# `@typing.overload` stubs: signatures only, kept as they are; the real method is the one read.
OVERLOAD = {"typing.overload", "typing_extensions.overload"}

DATACLASS_FIELD = {"dataclasses.field", "flax.struct.field", "flax.linen.module.field"}


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
                if "ClassVar" in ann_code or ann.target.value in NON_FIELD_NAMES:
                    self.class_level.append(stmt)
                    continue
                leading = tuple(line for line in stmt.leading_lines if line.comment is not None)
                trailing = stmt.trailing_whitespace
                default_code, factory, problem = field_default(ann.value, ctx)
                if problem == "init=False":
                    continue  # set by setup, not a constructor argument
                default_code = inline_field_names(default_code, {f.name: f.default_code for f in self.own_fields})
                self.own_fields.append(Field(ann.target.value, ann_code, default_code, (leading, trailing if trailing.comment is not None else None), factory, problem))
                continue
            if isinstance(stmt, cst.FunctionDef):
                decos = {normalize_linen(ctx.imports.qualify(d.decorator), {}) for d in stmt.decorators}
                if decos & OVERLOAD:
                    continue
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


class _InlineNames(FastTransformer):
    def __init__(self, values: dict[str, str]):
        self.values = values

    def leave_Name(self, original, updated):
        value = self.values.get(updated.value)
        if value is None:
            return updated
        expression = cst.parse_expression(value)
        atomic = isinstance(expression, (cst.Name, cst.Attribute, cst.Integer, cst.Float, cst.SimpleString, cst.Call, cst.List, cst.Dict, cst.Subscript))
        return expression if atomic else cst.parse_expression(f"({value})")

    def leave_Attribute(self, original, updated):
        return updated.with_changes(attr=original.attr)  # `a.groups` is not the field

    def leave_Arg(self, original, updated):
        return updated.with_changes(keyword=original.keyword)  # nor is `f(groups=...)`

    def visit_Lambda(self, node):
        return False  # evaluated at call time, where the field name means nothing either


def inline_field_names(default: str | None, earlier: dict[str, str | None]) -> str | None:
    """A field default that names an earlier field (`cardinality: int = groups`): in the
    Linen class body the name is that field's default; in `__init__`'s signature no such
    name exists, so the earlier default is written in its place."""
    values = {name: value for name, value in earlier.items() if value is not None}
    if default is None or not values or not any(name in default for name in values):
        return default
    expression = cst.parse_expression(default)
    names = {n.value for n in _iter_names(expression)}
    if not names & set(values):
        return default
    return code(_InlineNames(values).transform(expression))


def _iter_names(node):
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, cst.Name):
            yield current
        stack.extend(current.children)


def field_default(value, ctx: FileContext) -> tuple[str | None, str | None, str | None]:
    """(default source, default factory source, problem) of a dataclass field's value:
    `= 3`, `= field(default=3)`, `= field(default_factory=list)` (the __init__ default
    becomes None and the factory is called), anything else a TODO."""
    if value is None:
        return None, None, None
    if isinstance(value, cst.Call) and ctx.imports.qualify(value.func) in DATACLASS_FIELD:
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
