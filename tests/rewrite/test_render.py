"""`lines.render` is LibCST's `code`/`code_for_node`, text for text."""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest

from nnx_migrate.rewrite.lines import render

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "fixtures").rglob("*.py"))[:30]


@pytest.mark.parametrize("text", [
    *(p.read_text(encoding="utf-8") for p in SOURCES),
    "x = 1\r\ny = (1,\r\n 2)\r\n",
    "if a:\n\tb = f'{c!r:>{d}}'  # e\n\n\n# f\n",
])
def test_render_is_libcst_code(text):
    module = cst.parse_module(text)
    assert render(module) == module.code == text
    for stmt in module.body:
        assert render(stmt, module) == module.code_for_node(stmt)
        for child in stmt.children:
            assert render(child) == cst.Module(body=[]).code_for_node(child)


def test_module_render_reuses_statement_code_and_gives_the_same_text():
    # `render(module)` takes a top-level statement's code from an earlier render or from
    # the source it was parsed from (`remember_source_statements`), by node identity.
    import libcst as cst

    from nnx_migrate.rewrite import lines
    from nnx_migrate.rewrite.transform import _statement_spans

    text = "# head\n\nimport a\n\n\n@dec  # c\n# between\n@dec2\nclass A:\n    x = 1\n    # footer of A\n\n# before f\ndef f():\n    '''doc\n    more'''\n    return 1\nx = 1; y = 2\n\n# tail\n"
    module = cst.parse_module(text)
    lines.forget_statement_texts()
    lines.remember_source_statements(module, text, lines.statement_starts(module.body, _statement_spans(text, module)))
    assert [lines._STATEMENT_TEXTS[id(s)][3] for s in module.body] == [module.code_for_node(s) for s in module.body]
    assert lines.render(module) == text
    changed = module.with_changes(body=[module.body[0], module.body[1].with_changes(name=cst.Name("B")), *module.body[2:]])
    assert lines.render(changed) == changed.code
    again = changed.with_changes(body=[*changed.body[:2], cst.parse_statement("z = 3\n")])
    assert lines.render(again) == again.code
    assert lines.render(cst.parse_module("")) == "" and lines.render(cst.parse_module("x = 1")) == "x = 1"
    lines.forget_statement_texts()
