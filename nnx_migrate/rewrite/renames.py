"""Linen names outside layers: `nn.relu` -> `nnx.relu`, `nn.initializers.x` ->
`nnx.initializers.x`, `nn.Module` (in annotations) -> `nnx.Module`; and the Linen names that
are left over once everything convertible is converted."""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite.names import LINEN, ImportMap, dotted, normalize_linen
from nnx_migrate.rewrite.rules import Rules

# Type-level renames: used in annotations, isinstance checks.
_TYPES = {"flax.linen.Module": "flax.nnx.Module", "flax.linen.module.Module": "flax.nnx.Module"}


def _nnx_source(qualified: str) -> str:
    assert qualified.startswith("flax.nnx")
    return "nnx" + qualified[len("flax.nnx"):]


class _SkipImports(cst.CSTTransformer):
    def visit_Import(self, node) -> bool:
        return False

    def visit_ImportFrom(self, node) -> bool:
        return False


class RenameLinen(_SkipImports):
    def __init__(self, imports: ImportMap, rules: Rules):
        self.imports = imports
        self.table = {**rules.renames, **_TYPES}
        self.changed = False
        self._attr_names: set[int] = set()

    def _target(self, node) -> str | None:
        qual = self.imports.qualify(node)
        if qual is None or not qual.startswith(LINEN):
            return None
        qual = normalize_linen(qual, self.table)
        for key, new in self.table.items():
            if qual == key:
                return _nnx_source(new)
            if qual.startswith(key + "."):
                return _nnx_source(new) + qual[len(key):]
        return None

    def visit_Attribute(self, node: cst.Attribute):
        self._attr_names.add(id(node.attr))
        return True

    def leave_Attribute(self, original, updated):
        target = self._target(original)
        if target is not None:
            self.changed = True
            return cst.parse_expression(target)
        return updated

    def leave_Name(self, original, updated):
        if id(original) in self._attr_names:
            return updated
        target = self._target(original)
        if target is not None:
            self.changed = True
            return cst.parse_expression(target)
        return updated

    def visit_Arg(self, node: cst.Arg):
        if node.keyword is not None:
            self._attr_names.add(id(node.keyword))
        return True

    def visit_Param(self, node: cst.Param):
        self._attr_names.add(id(node.name))
        return True


class LeftoverLinen(cst.CSTVisitor):
    """Collects references to flax.linen that remain (outside import statements)."""

    def __init__(self, imports: ImportMap):
        self.imports = imports
        self.aliases = {a for a, full in imports.aliases.items() if full == LINEN or full.startswith(LINEN + ".")}
        self.flax_aliases = {a for a, full in imports.aliases.items() if full == "flax"}
        self.names: set[str] = set()
        self._attr_names: set[int] = set()

    def visit_Import(self, node) -> bool:
        return False

    def visit_ImportFrom(self, node) -> bool:
        return False

    def visit_Attribute(self, node: cst.Attribute):
        self._attr_names.add(id(node.attr))
        name = dotted(node)
        if name is not None:
            qual = self.imports.qualify(node)
            if qual is not None and qual.startswith(LINEN + "."):
                self.names.add(name)
                return False
        return True

    def visit_Arg(self, node: cst.Arg):
        if node.keyword is not None:
            self._attr_names.add(id(node.keyword))

    def visit_Name(self, node: cst.Name):
        if id(node) in self._attr_names:
            return
        if node.value in self.aliases:
            self.names.add(node.value)
