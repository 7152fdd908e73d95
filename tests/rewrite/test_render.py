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
    from nnx_migrate.rewrite.class_pass import _statement_spans
    from nnx_migrate.rewrite.run_context import RunContext

    text = "# head\n\nimport a\n\n\n@dec  # c\n# between\n@dec2\nclass A:\n    x = 1\n    # footer of A\n\n# before f\ndef f():\n    '''doc\n    more'''\n    return 1\nx = 1; y = 2\n\n# tail\n"
    module = cst.parse_module(text)
    texts = lines.StatementTexts()
    texts.remember_source(module, text, lines.statement_starts(module.body, _statement_spans(text, module, RunContext())))
    assert [texts.get(s, module.default_indent, module.default_newline) for s in module.body] == [module.code_for_node(s) for s in module.body]
    assert lines.render(module, texts=texts) == text
    changed = module.with_changes(body=[module.body[0], module.body[1].with_changes(name=cst.Name("B")), *module.body[2:]])
    assert lines.render(changed, texts=texts) == changed.code
    again = changed.with_changes(body=[*changed.body[:2], cst.parse_statement("z = 3\n")])
    assert lines.render(again, texts=texts) == again.code
    assert lines.render(cst.parse_module(""), texts=texts) == "" and lines.render(cst.parse_module("x = 1"), texts=texts) == "x = 1"


def test_report_lines_counted_without_rendering_are_the_rendered_ones():
    # `LineResolver` counts the line breaks of a statement's nodes (lines._count_lines)
    # instead of generating its code: every node must get the line the code generation
    # gives it, the node types written out of traversal order included.
    import libcst as cst

    from nnx_migrate.rewrite import lines
    from nnx_migrate.rewrite.class_pass import _statement_spans
    from nnx_migrate.rewrite.run_context import RunContext
    from nnx_migrate.rewrite.visitors import children_in_order

    text = (
        "import a  # c\n\n\n@dec(\n    x)\n# between\n@dec2\nclass A(\n    B):\n    '''doc\n\n    more'''\n"
        "    def f(self, a, /, b: int = (\n            1), *c, d, **e) -> (\n            int):\n"
        "        del a[\n            b], c\n        x = f'{a!r:>{w}}' '''s\n        t''' \\\n            + (\n            '''u\n'''\n        )\n"
        "        return [x for x in (y\n            ) if x]\n\n    # footer\n\n"
        "def g(p, /,\n      q):\n    try:\n        pass\n    except (A,\n            B) as e:\n        raise C(\n            1) from e\n"
        "    finally:\n        pass\n    with (open(a) as b,\n          open(c) as d):\n        pass\n    lambda p, /, q: (p,\n        q)\n"
        "match x:\n    case [a,\n          b] if a:\n        pass\n    case {'k': v,\n          **r}:\n        pass\n    case A(b=c) | D():\n        pass\n"
    )
    module = cst.parse_module(text)
    starts = lines.statement_starts(module.body, _statement_spans(text, module, RunContext()))
    for index, statement in enumerate(module.body):
        targets, stack = {}, [statement]
        while stack:
            node = stack.pop()
            targets[id(node)] = node
            stack.extend(children_in_order(node))
        rendered, counted = lines._Counting(module, targets), lines._Counting(module, targets)
        rendered.line = counted.line = starts[index]
        statement._codegen(rendered)
        lines._count_lines(statement, counted)
        assert counted.start == rendered.start and counted.line == rendered.line, index
