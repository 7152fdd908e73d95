"""Suppression comments: `# nnx-migrate: ignore[NNX001]` or `# nnx-migrate: ignore`.

A trailing comment silences findings that start or end on its line; a comment alone on a
line silences the line below it. Comments are found with `tokenize`, so the same text
inside a string does not count.
"""

from __future__ import annotations

import io
import re
import tokenize

_PATTERN = re.compile(r"#\s*nnx-migrate:\s*ignore(?:\[(?P<codes>[^\]]*)\])?")
MARKER = "nnx-migrate:"


def suppressed_codes_by_line(source: str) -> dict[int, set[str] | None]:
    """Line number -> codes suppressed there (None: every code)."""
    if MARKER not in source:
        return {}
    result: dict[int, set[str] | None] = {}
    lines = source.splitlines()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return {}
    for token in tokens:
        if token.type != tokenize.COMMENT:
            continue
        match = _PATTERN.search(token.string)
        if match is None:
            continue
        codes = None
        if match["codes"] is not None:
            codes = {c.strip() for c in match["codes"].split(",") if c.strip()}
        line = token.start[0]
        standalone = lines[line - 1][: token.start[1]].strip() == ""
        target = line + 1 if standalone else line
        previous = result.get(target, set())
        result[target] = None if codes is None or previous is None else previous | codes
    return result
