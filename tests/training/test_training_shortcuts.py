"""The training pass's shortcuts give what the plain passes give: `lines.start_lines` is
LibCST's PositionProvider start line for every node, and visiting only the statements
that mention a trigger name (`run._visit_statements`) converts and reports exactly what
one full-tree visit does, in both train styles."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from nnx_migrate.rewrite import transform
from nnx_migrate.rewrite.lines import LineResolver, start_lines, statement_spans, statement_starts
from nnx_migrate.rewrite.training import run

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for p in (ROOT / "fixtures").rglob("*.py"))


@pytest.mark.parametrize("text", [
    *(p.read_text(encoding="utf-8") for p in SOURCES[:40]),
    "x = 1\r\ny = (1,\r\n 2)\r\n",
    "a = 1\rb = [\r2]\r",
    "@dec\r\n# c\r\ndef f():\r\n    '''a\r\nb'''\r\n    return 1\r\n",
])
def test_start_lines_are_position_provider_start_lines(text):
    module = cst.parse_module(text)
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    mine = start_lines(module)
    assert {id(node): r.start.line for node, r in positions.items()} == mine


@pytest.mark.parametrize("text", [
    *(p.read_text(encoding="utf-8") for p in SOURCES[:40]),
    "# header\n\nx = 1\n\n# c\n@d\n\n# e\n@g(\n  1)\ndef f(): pass\n# tail\n\nclass A:\n    x = 1\n    # inner\n# outer\n\ny = 2; z = '''a\nb'''\n",
    "x = 1\r\n\r\n# c\r\ny = (1,\r\n 2)\r\nif y:\r\n    pass\r\n",
])
def test_start_lines_of_some_statements_are_those_of_the_whole_module(text):
    module = cst.parse_module(text)
    spans = statement_spans(ast.parse(text).body, module.body)
    starts = statement_starts(module.body, spans)
    full = start_lines(module)
    for index in range(len(module.body)):
        part = start_lines(module, {index: starts[index]})
        assert part and all(full[key] == line for key, line in part.items()), index


def test_statement_visits_equal_full_visits(monkeypatch):
    files = [p for p in SOURCES if not p.name.endswith(".out.py")]
    assert files
    for style in run.TRAIN_STYLES:
        for path in files:
            text = path.read_text(encoding="utf-8")
            fast = transform.rewrite_source(text, str(path), None, style)
            with monkeypatch.context() as patch:
                patch.setattr(run, "_visit_statements", lambda module, text, transformer, triggers, context: (module.visit(transformer), None, []))
                patch.setattr(run, "_trigger_pattern", lambda *args: re.compile(""))
                full = transform.rewrite_source(text, str(path), None, style)
            assert (fast.status, fast.new_text, fast.todos) == (full.status, full.new_text, full.todos), (style, path)


@pytest.mark.parametrize("text", [
    *(p.read_text(encoding="utf-8") for p in SOURCES[:40]),
    "# header\n\nx = 1\n\n# c\n@d\n\n# e\n@g(\n  1)\ndef f(): pass\n# tail\n\nclass A:\n    x = 1\n    # inner\n# outer\n\ny = 2; z = '''a\nb'''\n",
])
def test_line_resolver_rendering_some_statements_gives_every_line(text):
    """`lines.LineResolver` with statement starts renders only statements holding the
    nodes asked for, whatever the owner hints say (right, wrong or missing), and answers
    0 for a node not in the file, as one rendering of the whole file does."""
    module = cst.parse_module(text)
    nodes = [n for stmt in module.body for n in (stmt, *stmt.children)][::3]
    stranger = cst.Name("generated")
    whole = LineResolver(module)
    some = LineResolver(module)
    some.starts = statement_starts(module.body, statement_spans(ast.parse(text).body, module.body))
    refs = []
    for i, node in enumerate(nodes + [stranger]):
        some.owner = (i * 7) % len(module.body) if i % 2 else None
        refs.append((whole.ref(node), some.ref(node)))
    assert [whole.line(a) for a, _ in refs] == [some.line(b) for _, b in refs]
    assert whole.line(refs[-1][0]) == 0 and len(refs) > 2
