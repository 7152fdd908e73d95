"""`templates`: the rewrite's own code texts parsed once per run; every call returns a
tree equal to a fresh parse that shares no node with any other call's tree (the rewrite
keys tables on node identity)."""

from __future__ import annotations

import libcst as cst
import pytest

from nnx_migrate.rewrite import templates


def _nodes(node: cst.CSTNode) -> list[cst.CSTNode]:
    out = [node]
    for child in node.children:
        out.extend(_nodes(child))
    return out


TEXTS = [
    (templates.parse_statement, cst.parse_statement, "self.conv = nnx.Conv(in_features, 3, kernel_size=(3, 3), rngs=rngs)  # c\n"),
    (templates.parse_statement, cst.parse_statement, "def __init__(self, *, rngs: nnx.Rngs):\n    super().__init__()\n    pass\n"),
    (templates.parse_statement, cst.parse_statement, "from . import *\n"),
    (templates.parse_expression, cst.parse_expression, 'f"{a!r:>{w}} {b=}" + nnx.List([x for x in y if x])'),
    (templates.parse_expression, cst.parse_expression, "lambda module, *args: module(*args)"),
    (templates.parse_module, cst.parse_module, "# head\n\nx = 1\nif x:\n    y = x\n"),
]


@pytest.mark.parametrize("mine, libcsts, text", TEXTS)
def test_every_call_is_a_fresh_parse(mine, libcsts, text):
    templates.forget()
    trees = [mine(text) for _ in range(3)]
    parsed = libcsts(text)
    seen: set[int] = set()
    for tree in trees:
        assert tree.deep_equals(parsed) and type(tree) is type(parsed)
        ids = {id(n) for n in _nodes(tree)}
        assert not ids & seen  # no node shared between calls
        seen |= ids
        code = cst.Module(body=[]).code_for_node(tree)
        assert code == cst.Module(body=[]).code_for_node(parsed)


def test_config_is_part_of_the_key():
    templates.forget()
    tabs = cst.parse_module("if x:\n\ty = 1\n").config_for_parsing
    spaces = cst.parse_module("if x:\n    y = 1\n").config_for_parsing
    text = "if a:\n    b = 1\n"
    for config in (tabs, spaces, tabs):
        mine = cst.Module(body=[templates.parse_statement(text, config=config)], default_indent=config.default_indent)
        theirs = cst.Module(body=[cst.parse_statement(text, config=config)], default_indent=config.default_indent)
        assert mine.code == theirs.code


def test_errors_are_libcsts():
    with pytest.raises(cst.ParserSyntaxError):
        templates.parse_expression("f(")
    with pytest.raises(cst.ParserSyntaxError):
        templates.parse_expression("f(")
