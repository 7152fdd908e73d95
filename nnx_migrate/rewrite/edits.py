"""Imports and helpers the passes over a file ask for, added and removed in one step.

A pass never edits import statements itself: where it writes code that needs `nnx`,
`functools` or a helper function, it asks its `FileEdits` (`add_import`, `add_helper`),
and at its end it asks for the imports it made unused to go (`remove_unused_linen`, ...).
`FileEdits.apply(module)` then makes every change, in a fixed order, touching only
import statements and the inserted helpers; every other byte stays.

Where an import goes (`Place`) is part of the request: next to the file's Linen import
(the class pass swaps one for the other), before the first import (`functools`, which
generated code uses before the reader meets it), or after the last import.
"""

from __future__ import annotations

import enum

import libcst as cst

from nnx_migrate.rewrite import templates
from nnx_migrate.rewrite.helpers import HELPER_IMPORTS, add_helpers, with_needs
from nnx_migrate.rewrite.names import LINEN, ImportMap, dotted
from nnx_migrate.rewrite.nodes import names_in
from nnx_migrate.rewrite.visitors import FastTransformer

NNX = "from flax import nnx\n"
JAX = "import jax\n"
FUNCTOOLS = "import functools\n"
RE = "import re\n"
STRUCT = "from flax import struct\n"

# import line -> (the local name it binds, the module that name must already stand for)
_BINDS = {
    NNX: ("nnx", "flax.nnx"),
    JAX: ("jax", "jax"),
    FUNCTOOLS: ("functools", "functools"),
    RE: ("re", "re"),
    STRUCT: ("struct", "flax.struct"),
}
# the order of imports added after the last one, whatever order they were asked in
_AFTER_IMPORTS_ORDER = (FUNCTOOLS, JAX, NNX, STRUCT)


class Place(enum.Enum):
    BESIDE_LINEN = "where the first Linen import was"
    FIRST = "before the first import (after `from __future__` ones)"
    AFTER_IMPORTS = "after the last top-level import"


class FileEdits:
    """What the passes over one file asked for (see the module docstring)."""

    def __init__(self) -> None:
        self.imports: dict[str, Place] = {}  # import line -> where, in the order asked
        self.helpers: set[str] = set()  # helpers.HELPER_SOURCES names
        self.helpers_before: int | None = None  # index of the statement they go before
        self._linen_used: set[str] | None = None
        self._unused_training = False
        self._unused_linen_anywhere = False

    def add_import(self, line: str, place: Place) -> None:
        """`line` (one of NNX, JAX, FUNCTOOLS, RE) is written at `place`, unless the file
        already binds its name to that module."""
        self.imports.setdefault(line, place)

    def add_helper(self, name: str) -> None:
        self.helpers.add(name)
        for needed in with_needs({name}):
            for line in HELPER_IMPORTS.get(needed, ()):
                self.add_import(line, Place.AFTER_IMPORTS)

    def remove_unused_linen(self, used: set[str]) -> None:
        """Top-level Linen imports binding none of `used` (the names the converted code
        still reads) go; `Place.BESIDE_LINEN` imports take the first one's place."""
        self._linen_used = used

    def remove_unused_training_imports(self) -> None:
        """Names of `from flax.training import ...` that the code no longer reads go."""
        self._unused_training = True

    def remove_linen_if_unused(self) -> None:
        """Linen imports go where no Linen alias is read anywhere in the code."""
        self._unused_linen_anywhere = True

    def apply(self, module: cst.Module) -> cst.Module:
        """The one step: helpers, then removals, then additions."""
        if self.helpers:
            module = add_helpers(module, self.helpers, self.helpers_before)
        if self._linen_used is not None:
            beside = [line for line, place in self.imports.items() if place is Place.BESIDE_LINEN]
            module = _prune_linen(module, self._linen_used, beside)
        for line, place in self.imports.items():
            if place is Place.FIRST and not _binds(ImportMap(module), line):
                module = _import_first(module, line)
        if self._unused_training:
            module = _prune_training_imports(module)
        after = [line for line in _AFTER_IMPORTS_ORDER if self.imports.get(line) is Place.AFTER_IMPORTS]
        if after:
            module = _import_after_last(module, after)
        if self._unused_linen_anywhere:
            module = _drop_unused_linen(module)
        return module


def _binds(imports: ImportMap, line: str) -> bool:
    local, full = _BINDS[line]
    return imports.aliases.get(local) == full


def _is_linen(full: str) -> bool:
    return full == LINEN or full.startswith(LINEN + ".")


def _is_import_line(stmt) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and isinstance(stmt.body[0], (cst.Import, cst.ImportFrom))


def _all_imports(stmt) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and all(isinstance(x, (cst.Import, cst.ImportFrom)) for x in stmt.body)


class _PruneLinenImports(FastTransformer):
    def __init__(self, used: set[str]):
        self.used = used

    def leave_Import(self, original, updated):
        keep = []
        for alias in updated.names:
            full = dotted(alias.name) or ""
            local = alias.asname.name.value if alias.asname else full.split(".")[0]
            if _is_linen(full) and local not in self.used:
                continue
            keep.append(alias)
        return self._rebuild(updated, keep)

    def leave_ImportFrom(self, original, updated):
        if updated.relative or isinstance(updated.names, cst.ImportStar) or updated.module is None:
            return updated
        mod = dotted(updated.module) or ""
        keep = []
        for alias in updated.names:
            name = alias.name.value if isinstance(alias.name, cst.Name) else dotted(alias.name)
            local = alias.asname.name.value if alias.asname else name
            if _is_linen(f"{mod}.{name}") and local not in self.used:
                continue
            keep.append(alias)
        return self._rebuild(updated, keep)

    def _rebuild(self, node, keep):
        if len(keep) == len(node.names):
            return node
        if not keep:
            return cst.RemoveFromParent()
        keep[-1] = keep[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return node.with_changes(names=keep)


def _prune_linen(module: cst.Module, used: set[str], beside: list[str]) -> cst.Module:
    """Prunes top-level Linen imports whose names are not in `used`; each of `beside`
    goes where the first Linen import was (after it, or in its place if it went), else
    after the last import."""
    pruner = _PruneLinenImports(used)
    body = []
    anchor = None  # index in the new body where the first Linen import was
    for stmt in module.body:
        if _imports_linen(stmt):
            if anchor is None:
                anchor = len(body)
            new = pruner.transform(stmt)
            if isinstance(new, cst.RemovalSentinel) or (isinstance(new, cst.SimpleStatementLine) and not new.body):
                if anchor == len(body):
                    leading = stmt.leading_lines
                    anchor = (len(body), leading)
                continue
            body.append(new)
        else:
            body.append(stmt)
    pruned = module.with_changes(body=body)
    for line in beside:
        if _binds(ImportMap(pruned), line):
            continue
        new_stmt = templates.parse_statement(line, config=module.config_for_parsing)
        if isinstance(anchor, tuple):  # the first Linen import line went away: take its place
            index, leading = anchor
            body.insert(index, new_stmt.with_changes(leading_lines=leading))
        elif anchor is not None:
            body.insert(anchor + 1, new_stmt)
        else:
            last_import = -1
            for i, stmt in enumerate(body):
                if _all_imports(stmt):
                    last_import = i
            body.insert(last_import + 1, new_stmt)
        pruned = module.with_changes(body=body)
    return pruned


def _import_first(module: cst.Module, line: str) -> cst.Module:
    """`line` before the first import after any `from __future__` ones; that import's
    leading comments stay above the new line."""
    body = list(module.body)
    new_stmt = templates.parse_statement(line, config=module.config_for_parsing)
    for i, stmt in enumerate(body):
        if _all_imports(stmt):
            if any(isinstance(x, cst.ImportFrom) and dotted(x.module) == "__future__" for x in stmt.body if isinstance(x, cst.ImportFrom) and x.module is not None):
                continue
            body[i] = stmt.with_changes(leading_lines=[])
            body.insert(i, new_stmt.with_changes(leading_lines=stmt.leading_lines))
            return module.with_changes(body=body)
    body.insert(0, new_stmt)
    return module.with_changes(body=body)


def _imports_linen(stmt) -> bool:
    if not isinstance(stmt, cst.SimpleStatementLine):
        return False
    for small in stmt.body:
        if isinstance(small, cst.Import):
            if any(_is_linen(dotted(a.name) or "") for a in small.names):
                return True
        elif isinstance(small, cst.ImportFrom) and small.module is not None and not small.relative and not isinstance(small.names, cst.ImportStar):
            mod = dotted(small.module) or ""
            for a in small.names:
                name = a.name.value if isinstance(a.name, cst.Name) else dotted(a.name)
                if _is_linen(f"{mod}.{name}"):
                    return True
    return False


def _names_read(module: cst.Module) -> set[str]:
    """The names the code outside import lines reads or binds."""
    return names_in(module.with_changes(body=[s for s in module.body if not _is_import_line(s)]))


def _prune_training_imports(module: cst.Module) -> cst.Module:
    used = None  # names the code uses, only needed (a full-tree visit) for a flax.training import
    body = []
    for stmt in module.body:
        if _is_import_line(stmt) and isinstance(stmt.body[0], cst.ImportFrom) and dotted(stmt.body[0].module) == "flax.training" and not isinstance(stmt.body[0].names, cst.ImportStar):
            if used is None:
                used = _names_read(module)
            names = [a for a in stmt.body[0].names if (a.asname.name.value if a.asname else a.name.value) in used]
            if not names:
                continue
            if len(names) != len(stmt.body[0].names):
                names[-1] = names[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
                stmt = stmt.with_changes(body=[stmt.body[0].with_changes(names=names)])
        body.append(stmt)
    return module.with_changes(body=body)


def _import_after_last(module: cst.Module, lines: list[str]) -> cst.Module:
    imports = ImportMap(module)
    body = list(module.body)
    last_import = max((i for i, s in enumerate(body) if _is_import_line(s)), default=-1)
    additions = [line for line in lines if not _binds(imports, line)]
    for i, line in enumerate(additions):
        body.insert(last_import + 1 + i, cst.parse_statement(line))
    return module.with_changes(body=body)


def _drop_unused_linen(module: cst.Module) -> cst.Module:
    imports = ImportMap(module)
    linen = imports.linen_aliases() - {"flax"}
    if not linen or linen & _names_read(module):
        return module
    body = []
    for stmt in module.body:
        if _is_import_line(stmt) and not isinstance(stmt.body[0].names, cst.ImportStar):
            names = [a for a in stmt.body[0].names if (a.asname.name.value if a.asname else dotted(a.name).split(".")[0]) not in linen]
            if not names:
                continue
        body.append(stmt)
    return module.with_changes(body=body)
