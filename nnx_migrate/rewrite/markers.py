"""`# TODO(nnx-migrate): why` comments already in a file are sites: a second run over
converted output reports what is left to finish, as the first run did.

Each comment marks the statement below it (the comment block's statement); a site a pass
finds again in that statement with the same reason is the same site, reported once.
"""

from __future__ import annotations

import ast
from dataclasses import replace

from nnx_migrate.rewrite.report import TODO_MARK, TodoSite
from nnx_migrate.rewrite.run_context import RunContext

_PREFIX = f"# {TODO_MARK}:"


def with_marked_sites(result, text: str, context: RunContext):
    """`result` with a site for each TODO comment of the input `text` (what the file
    already says a person must finish)."""
    if TODO_MARK not in text:
        return result
    lines = text.splitlines()
    marks: list[tuple[int, str]] = []  # (line of the statement, why)
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped.startswith(_PREFIX):
            continue
        below = index + 1
        while below < len(lines) and (not lines[below].strip() or lines[below].lstrip().startswith("#")):
            below += 1
        marks.append((below + 1, stripped[len(_PREFIX):].strip()))
    if not marks:
        return result
    ends = _statement_ends(text, context)
    sites = []
    for line, why in marks:
        statement = lines[line - 1].strip() if line <= len(lines) else ""
        construct = statement if len(statement) <= 60 else statement[:57] + "..."
        sites.append(TodoSite(result.path, line, construct or "end of file", why))
    spans = {(s.line, s.why): ends.get(s.line, s.line) for s in sites}
    found_again = [t for t in result.todos if not any(why == t.why and line <= t.line <= end for (line, why), end in spans.items())]
    return replace(result, todos=list(dict.fromkeys([*sites, *found_again])))


def _statement_ends(text: str, context: RunContext) -> dict[int, int]:
    """First line of each statement -> its last line (the longest statement starting there)."""
    try:
        tree = context.parse_ast(text)
    except (SyntaxError, ValueError, RecursionError):
        return {}
    ends: dict[int, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt):
            first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])
            ends[first] = max(ends.get(first, 0), node.end_lineno or node.lineno)
    return ends
