"""Qualified names without scope analysis: which dotted name an expression refers to.

The rewrite only needs to know what `nn.Dense`, `linen.Conv` or `Dense` mean in one
file, and Linen code imports its names at module level. Reading the module's import
statements answers that in one pass over the top-level statements; LibCST's
`QualifiedNameProvider` would answer it too but computes full scope metadata for the
whole file first, which alone costs more than parsing it (see benchmarks/rewrite_speed.py).
"""

from __future__ import annotations

import libcst as cst

LINEN = "flax.linen"


def dotted(node: cst.BaseExpression) -> str | None:
    """`a.b.c` -> "a.b.c"; None for anything that is not a plain dotted name."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = dotted(node.value)
        return None if base is None else f"{base}.{node.attr.value}"
    return None


def _module_name(node: cst.BaseExpression) -> str:
    return dotted(node) or ""


class ImportMap:
    """Local name -> qualified name, from the module's import statements (any depth of
    `if`/`try` at top level)."""

    def __init__(self, module: cst.Module) -> None:
        self.aliases: dict[str, str] = {}
        self._scan(module.body)

    def _scan(self, body) -> None:
        for stmt in body:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, cst.Import):
                        for alias in small.names:
                            full = _module_name(alias.name)
                            if alias.asname is not None:
                                self.aliases[alias.asname.name.value] = full
                            else:
                                top = full.split(".")[0]
                                self.aliases[top] = top
                    elif isinstance(small, cst.ImportFrom) and not small.relative:
                        mod = _module_name(small.module) if small.module else ""
                        if isinstance(small.names, cst.ImportStar):
                            continue
                        for alias in small.names:
                            name = alias.name.value if isinstance(alias.name, cst.Name) else dotted(alias.name)
                            local = alias.asname.name.value if alias.asname else name
                            self.aliases[local] = f"{mod}.{name}"
                    elif isinstance(small, cst.ImportFrom) and small.relative:
                        if isinstance(small.names, cst.ImportStar):
                            continue
                        mod = _module_name(small.module) if small.module else ""
                        for alias in small.names:
                            name = alias.name.value if isinstance(alias.name, cst.Name) else dotted(alias.name)
                            local = alias.asname.name.value if alias.asname else name
                            self.aliases[local] = f"{'.' * len(small.relative)}{mod}.{name}"
            elif isinstance(stmt, (cst.If, cst.Try)):
                self._scan(stmt.body.body)
                if isinstance(stmt, cst.Try):
                    for handler in stmt.handlers:
                        self._scan(handler.body.body)
                elif stmt.orelse is not None and isinstance(stmt.orelse, cst.Else):
                    self._scan(stmt.orelse.body.body)

    def qualify(self, node: cst.BaseExpression) -> str | None:
        name = dotted(node)
        if name is None:
            return None
        head, _, rest = name.partition(".")
        if head not in self.aliases:
            return None
        full = self.aliases[head]
        return f"{full}.{rest}" if rest else full

    def linen_aliases(self) -> set[str]:
        """Local names bound to flax.linen or to something inside it."""
        return {
            local
            for local, full in self.aliases.items()
            if full == LINEN or full.startswith(LINEN + ".") or full == "flax"
        }


def normalize_linen(qualified: str | None, known: set[str] | dict) -> str | None:
    """`flax.linen.linear.Dense` -> `flax.linen.Dense` when the short form is known."""
    if qualified is None or not qualified.startswith(LINEN + "."):
        return qualified
    if qualified in known:
        return qualified
    short = f"{LINEN}.{qualified.rsplit('.', 1)[1]}"
    return short if short in known else qualified
