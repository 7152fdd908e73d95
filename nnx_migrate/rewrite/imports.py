"""Imports after conversion: `from flax import nnx` added, Linen imports that nothing uses
any more removed. Only import statements change; every other byte stays."""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite.names import LINEN, ImportMap, dotted


class _UsedNames(cst.CSTVisitor):
    def __init__(self) -> None:
        self.names: set[str] = set()
        self._attr: set[int] = set()

    def visit_Import(self, node) -> bool:
        return False

    def visit_ImportFrom(self, node) -> bool:
        return False

    def visit_Attribute(self, node):
        self._attr.add(id(node.attr))

    def visit_Arg(self, node):
        if node.keyword is not None:
            self._attr.add(id(node.keyword))

    def visit_Name(self, node):
        if id(node) not in self._attr:
            self.names.add(node.value)


def _is_linen(full: str) -> bool:
    return full == LINEN or full.startswith(LINEN + ".")


class _PruneLinenImports(cst.CSTTransformer):
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


def fix_imports(module: cst.Module, original_imports: ImportMap) -> cst.Module:
    used = _UsedNames()
    module.visit(used)
    pruned = module.visit(_PruneLinenImports(used.names))
    if "nnx" in used.names and not _has_nnx_import(ImportMap(pruned)):
        pruned = _add_nnx_import(pruned, module)
    return pruned


def _add_nnx_import(module: cst.Module, before: cst.Module) -> cst.Module:
    """Inserts `from flax import nnx` where the first Linen import was, else after the
    last top-level import (after a module docstring and `__future__` imports)."""
    new_stmt = cst.parse_statement("from flax import nnx\n", config=module.config_for_parsing)
    body = list(module.body)
    old_body = list(before.body)
    # the first statement that was a Linen import in the module before pruning
    index = None
    for i, stmt in enumerate(old_body):
        if _imports_linen(stmt):
            index = i
            break
    if index is not None:
        # statements before it are unchanged by pruning except removed ones; find by identity
        anchor = old_body[index]
        for j, stmt in enumerate(body):
            if stmt is anchor or stmt.deep_equals(anchor):
                body.insert(j + 1, new_stmt)
                return module.with_changes(body=body)
        # the anchor line was removed: insert where it was
        kept_before = sum(1 for s in old_body[:index] if any(s is b or s.deep_equals(b) for b in body))
        leading = anchor.leading_lines if isinstance(anchor, cst.SimpleStatementLine) else ()
        body.insert(kept_before, new_stmt.with_changes(leading_lines=leading))
        return module.with_changes(body=body)
    last_import = -1
    for i, stmt in enumerate(body):
        if isinstance(stmt, cst.SimpleStatementLine) and all(isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body):
            last_import = i
    body.insert(last_import + 1, new_stmt)
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
