"""The Linen halves of Flax's own Linen-to-NNX guide (`flax-docs/linen_to_nnx.rst` of the
development corpus), as Python files the corpus benchmark converts and proves.

    python benchmarks/guide_snippets.py [CORPUS_DIR] OUT_DIR

Each `.. codediff::` of the guide pairs a Linen snippet with Flax's hand-written NNX port.
Code nobody here tuned the tool on: the guide's Linen side is what a user starts from.
One file per guide section, holding the imports and the module classes of every Linen
snippet of that section, in order (a later snippet of a section may use an earlier one's
class, as the guide's RNN uses its RNNCell). Statements outside classes (the guide's
`model.init(...)` lines, fragments with `...`) are left out: the file must import cleanly
for the proof.
"""

from __future__ import annotations

import ast
import re
import sys
import textwrap
from pathlib import Path

HEADER = "import jax\nimport jax.numpy as jnp\nimport flax.linen as nn\n"


def _sections(text: str):
    """(title, body) per section: a line underlined with `=`."""
    parts = re.split(r"\n([^\n]+)\n=+\n", "\n" + text)
    yield "intro", parts[0]
    for i in range(1, len(parts) - 1, 2):
        yield parts[i].strip(), parts[i + 1]


def _linen_halves(body: str):
    """The Linen side (before `---`) of each codediff in a section."""
    for block in body.split("\n.. codediff::\n")[1:]:
        lines = []
        for line in block.split("\n"):
            if line and not line.startswith(" "):
                break  # the directive's indented content ended
            lines.append(line)
        content = textwrap.dedent("\n".join(lines))
        content = re.sub(r"\A(\s*:[a-z]+:[^\n]*\n)+", "", content.lstrip("\n"))  # :title:, :sync:
        yield content.split("\n---\n")[0]


def _classes(snippet: str) -> list[str]:
    """The top-level class definitions of a snippet, as written."""
    try:
        tree = ast.parse(snippet)
    except SyntaxError:
        return []
    lines = snippet.split("\n")
    return ["\n".join(lines[node.lineno - 1 - len(node.decorator_list):node.end_lineno]) for node in tree.body if isinstance(node, ast.ClassDef)]


def extract(guide: Path, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for title, body in _sections(guide.read_text()):
        classes = [c for half in _linen_halves(body) for c in _classes(half)]
        if not classes:
            continue
        slug = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_") or "section"
        path = out_dir / f"{slug}.py"
        path.write_text(f'"""{title} (Flax linen_to_nnx.rst, Linen side)."""\n\n{HEADER}\n\n' + "\n\n\n".join(classes) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    corpus, out = (Path(sys.argv[1]), Path(sys.argv[2])) if len(sys.argv) > 2 else (Path(".corpus"), Path(sys.argv[1]))
    for p in extract(corpus / "flax-docs" / "linen_to_nnx.rst", out):
        print(p)
