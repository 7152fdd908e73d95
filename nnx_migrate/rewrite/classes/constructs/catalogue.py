"""The catalogue of what the class conversion converts, written from the constructs' docstrings.

    python -m nnx_migrate.rewrite.classes.constructs.catalogue docs/constructs.md

Each construct module's docstring has a one-line summary and the sections What, Why,
Before, After and Reported (Before/After hold indented code). tests/rewrite/test_constructs.py
keeps docs/constructs.md in sync with them.
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

from nnx_migrate.rewrite.classes.constructs import constructs

SECTIONS = ("What", "Why", "Before", "After", "Reported")
_SECTION = re.compile(rf"^({'|'.join(SECTIONS)}):[ \t]*(.*)$")
COMMAND = "python -m nnx_migrate.rewrite.classes.constructs.catalogue docs/constructs.md"


def sections(doc: str) -> tuple[str, dict[str, str]]:
    """A construct's docstring -> (summary line, {section: text}); raises ValueError when a
    section is missing."""
    summary, _, rest = doc.strip().partition("\n\n")
    found: dict[str, list[str]] = {}
    current = None
    for line in rest.splitlines():
        match = _SECTION.match(line)
        if match:
            current = match[1]
            found[current] = [match[2]] if match[2] else []
        elif current is not None:
            found[current].append(line)
    missing = [s for s in SECTIONS if s not in found]
    if missing:
        raise ValueError(f"no {', '.join(missing)} section")
    return " ".join(summary.split()), {k: textwrap.dedent("\n".join(v)).strip() for k, v in found.items()}


def render() -> str:
    out = [
        "# What the class conversion converts",
        "",
        "One section per construct of `nnx_migrate/rewrite/classes/constructs/`, written from its",
        f"docstring by `{COMMAND}` (do not edit by hand).",
        "",
    ]
    for construct in constructs():
        module = sys.modules[type(construct).__module__]
        summary, parts = sections(module.__doc__ or "")
        name = module.__name__.rsplit(".", 1)[1]
        out += [f"## {construct.title}", "", f"`constructs/{name}.py`: {summary}", ""]
        for key in SECTIONS:
            if key in ("Before", "After"):
                out += [f"**{key}:**", "", "```python", parts[key], "```", ""]
            else:
                out += [f"**{key}:** {parts[key]}", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if args:
        Path(args[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
