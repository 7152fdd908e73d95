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
