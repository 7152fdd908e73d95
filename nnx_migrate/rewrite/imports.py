"""Imports after conversion: `from flax import nnx` added, Linen imports that nothing uses
any more removed. Only import statements change; every other byte stays."""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite import templates
from nnx_migrate.rewrite.names import LINEN, ImportMap, dotted
from nnx_migrate.rewrite.visitors import FastTransformer


def _is_linen(full: str) -> bool:
    return full == LINEN or full.startswith(LINEN + ".")


class _PruneLinenImports(FastTransformer):
    def __init__(self, used: set[str]):
        self.used = used
        self.removed_any = False

    def leave_Import(self, original, updated):
        keep = []
        for alias in updated.names:
            full = dotted(alias.name) or ""
            local = alias.asname.name.value if alias.asname else full.split(".")[0]
            if alias.asname is not None and _is_linen(full) and local not in self.used:
                self.removed_any = True
                continue
            if alias.asname is None and _is_linen(full) and local not in self.used:
                self.removed_any = True
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
                self.removed_any = True
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


def _has_nnx_import(imports: ImportMap) -> bool:
    return imports.aliases.get("nnx") == "flax.nnx"


def fix_imports(module: cst.Module, used: set[str], needs_functools: bool = False) -> cst.Module:
    """Prunes top-level Linen imports whose names are not in `used`, and adds
    `from flax import nnx` (where the first Linen import was) when `nnx` is used, and
    `import functools` when the output needs it and has no such import."""
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
    if "nnx" in used and not _has_nnx_import(ImportMap(pruned)):
        new_stmt = templates.parse_statement("from flax import nnx\n", config=module.config_for_parsing)
        if isinstance(anchor, tuple):  # the first Linen import line went away: take its place
            index, leading = anchor
            body.insert(index, new_stmt.with_changes(leading_lines=leading))
        elif anchor is not None:
            body.insert(anchor + 1, new_stmt)
        else:
            last_import = -1
            for i, stmt in enumerate(body):
                if isinstance(stmt, cst.SimpleStatementLine) and all(isinstance(x, (cst.Import, cst.ImportFrom)) for x in stmt.body):
                    last_import = i
            body.insert(last_import + 1, new_stmt)
        pruned = module.with_changes(body=body)
    if needs_functools and ImportMap(pruned).aliases.get("functools") != "functools":
        pruned = _import_first(pruned, "import functools\n")
    return pruned


def _import_first(module: cst.Module, line: str) -> cst.Module:
    """`line` before the first import after any `from __future__` ones; that import's
    leading comments stay above the new line."""
    body = list(module.body)
    new_stmt = templates.parse_statement(line, config=module.config_for_parsing)
    for i, stmt in enumerate(body):
        if isinstance(stmt, cst.SimpleStatementLine) and all(isinstance(x, (cst.Import, cst.ImportFrom)) for x in stmt.body):
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
