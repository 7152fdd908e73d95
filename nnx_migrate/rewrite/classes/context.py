"""What the conversion of one file shares between its classes."""

from __future__ import annotations

import ast
import re

import libcst as cst

from nnx_migrate.rewrite.classes.model import ClassSummary
from nnx_migrate.rewrite.edits import FUNCTOOLS, FileEdits, Place
from nnx_migrate.rewrite.names import ImportMap, normalize_linen
from nnx_migrate.rewrite.report import TodoSite
from nnx_migrate.rewrite.rules import Rules

LINEN_MODULE = "flax.linen.Module"


class FileContext:
    def __init__(self, module: cst.Module, imports: ImportMap, rules: Rules, path: str, positions, external=None):
        self.external = external  # ModuleIndex of the other files' converted classes
        self.module = module
        self.imports = imports
        self.rules = rules
        self.path = path
        self.positions = positions  # node -> line
        self.summaries: dict[str, ClassSummary] = {}
        self.todos: list[TodoSite] = []
        self.variable_types: dict[str, str] = {}  # collection -> generated class name
        self.module_names: set[str] = set()
        self.functions: dict[str, cst.FunctionDef] = {}  # module-level helper functions
        self.renamer = None  # renames.RenameLinen shared by every pass over this file
        self.fallbacks: dict[int, int] = {}  # line placeholder -> placeholder to use if unresolved
        self.edits = FileEdits()  # imports and helpers the file's conversion asks for
        self.source: str | None = None  # the file's text (see python_tree)
        self.field_values = None  # field_values.FieldValues: what constructions pass to fields without a default
        self.run_context = None  # run_context.RunContext, where the class pass has one
        self._python_tree = False

    def python_tree(self):
        """The file as a Python `ast` (parsed once, on demand): a cheap, exact view of
        who reads which attribute. None if Python cannot parse it."""
        if self._python_tree is False:
            try:
                self._python_tree = ast.parse(self.source) if self.source is not None else None
            except (SyntaxError, ValueError, RecursionError):
                self._python_tree = None
        return self._python_tree

    def partial_name(self) -> str:
        """How the output names `functools.partial`: the file's own import of it, or
        `functools.partial` (then imported)."""
        for local, qual in self.imports.aliases.items():
            if qual == "functools.partial":
                return local
        for local, qual in self.imports.aliases.items():
            if qual == "functools":
                return f"{local}.partial"
        self.edits.add_import(FUNCTOOLS, Place.FIRST)
        return "functools.partial"

    def module_class(self, func: cst.BaseExpression) -> ClassSummary | None:
        """The converted module class `func` names: one of this file (converted above) or,
        through the imports, one of another file of the run (`external`)."""
        if isinstance(func, cst.Name) and func.value in self.summaries and func.value not in self.imports.aliases:
            return self.summaries[func.value]
        qual = self.imports.qualify(func)
        if qual is None or qual.startswith("flax.") or not self.external:
            return None
        return self.external.lookup(qual)

    def line(self, node: cst.CSTNode) -> int:
        """A line placeholder, resolved with every other one when the file is done."""
        return self.positions.ref(node)

    def line_or(self, node: cst.CSTNode, fallback: cst.CSTNode) -> int:
        """As `line`, for a node that may be generated code (not in the file): then the
        fallback's line."""
        placeholder = self.positions.ref(node)
        self.fallbacks[placeholder] = self.positions.ref(fallback)
        return placeholder

    def variable_type(self, collection: str) -> str:
        known = self.rules.collections.get(collection)
        if known:
            return "nnx." + known.rsplit(".", 1)[1]
        name = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", collection) if part) or "Collection"
        if not name[0].isalpha():
            name = "V" + name
        self.variable_types.setdefault(collection, name)
        return self.variable_types[collection]


def qual_layer(ctx: FileContext, func: cst.BaseExpression) -> str | None:
    return normalize_linen(ctx.imports.qualify(func), ctx.rules.layers)


# Linen base classes of a module class -> the NNX base of the converted class.
LINEN_BASES = {
    LINEN_MODULE: "nnx.Module",
    "flax.linen.module.Module": "nnx.Module",
    "flax.linen.RNNCellBase": "nnx.RNNCellBase",
    "flax.linen.recurrent.RNNCellBase": "nnx.RNNCellBase",
}


def is_linen_module_base(ctx: FileContext, base: cst.BaseExpression) -> bool:
    return ctx.imports.qualify(base) in LINEN_BASES
