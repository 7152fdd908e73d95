"""nn.scan in_axes / out_axes -> nnx.scan's: ints kept, nn.broadcast (any alias) -> None on
inputs, anything else reported. The numbers are proven by fixtures/modules/scan_broadcast;
these cases pin the parser and the reported forms in all three scan forms."""

from __future__ import annotations

import ast
import textwrap

import libcst as cst
import pytest

from nnx_migrate.rewrite import rewrite_source
from nnx_migrate.rewrite.names import ImportMap
from nnx_migrate.rewrite.scan_axes import scan_axes


def _axes(imports_src: str, expr: str, option: str = "in_axes"):
    return scan_axes(ImportMap(cst.parse_module(imports_src)), cst.parse_expression(expr), option)


@pytest.mark.parametrize(
    "imports_src, expr, expected",
    [
        ("import flax.linen as nn\n", "(1, nn.broadcast)", ["1", "None"]),
        ("from flax import linen\n", "(linen.broadcast, -1)", ["None", "-1"]),
        ("from flax.linen import broadcast as fixed\n", "(fixed,)", ["None"]),
        ("import flax\n", "(flax.linen.broadcast, 0)", ["None", "0"]),
        ("from flax.core import broadcast\n", "(broadcast, 2)", ["None", "2"]),
    ],
    ids=["nn", "linen-module", "from-import-alias", "dotted", "flax-core"],
)
def test_scan_in_axes_broadcast_is_none_whatever_the_alias(imports_src, expr, expected):
    axes = _axes(imports_src, expr)
    assert axes.problems == ()
    assert axes.for_arguments(len(expected)) == expected
    assert axes.for_arguments(len(expected) + 1) is None  # a tuple fixes the count


def test_scan_single_entry_applies_to_every_argument():
    assert _axes("import flax.linen as nn\n", "nn.broadcast").for_arguments(3) == ["None"] * 3
    assert _axes("", "1").for_arguments(2) == ["1", "1"]
    assert scan_axes(ImportMap(cst.parse_module("")), None, "in_axes").for_arguments(2) == ["0", "0"]


@pytest.mark.parametrize(
    "imports_src, expr, option, why",
    [
        ("", "(AXIS, 0)", "in_axes", "entry 'AXIS' is not an int or nn.broadcast"),
        ("", "self.axis", "in_axes", "entry 'self.axis' is not an int"),
        ("import flax.linen as nn\n", "((0, nn.broadcast), 1)", "in_axes", "entry '(0, nn.broadcast)'"),
        ("", "(*axes,)", "in_axes", "starred entry"),
        ("import numpy as nn\n", "(nn.broadcast,)", "in_axes", "entry 'nn.broadcast' is not an int"),  # not Linen's
        ("import flax.linen as nn\n", "nn.broadcast", "out_axes", "broadcasts an output"),
    ],
    ids=["name", "attribute", "nested", "starred", "other-module-broadcast", "out-broadcast"],
)
def test_scan_axes_it_cannot_read_are_reported(imports_src, expr, option, why):
    axes = _axes(imports_src, expr, option)
    assert len(axes.problems) == 1 and why in axes.problems[0], axes.problems


def test_scan_out_axes_ints_keep_their_tuple_form():
    assert _axes("", "1", "out_axes").source == "1"
    assert _axes("", "(0,)", "out_axes").source == "(0,)"
    assert _axes("", "(0, 1)", "out_axes").source == "(0, 1)"


SCAN_TODO_CASES = [
    pytest.param(
        """
        import functools
        import flax.linen as nn

        AXIS = 1

        class Step(nn.Module):
          @functools.partial(nn.scan, variable_broadcast='params', split_rngs={'params': False}, in_axes=(AXIS, nn.broadcast), out_axes=1)
          @nn.compact
          def __call__(self, carry, x, m):
            carry = nn.Dense(4)(x) * m + carry
            return carry, carry
        """,
        "entry 'AXIS' is not an int or nn.broadcast",
        id="time-decorator-unknown-entry",
    ),
    pytest.param(
        """
        import flax.linen as nn

        class Cell(nn.Module):
          @nn.compact
          def __call__(self, carry, x):
            return carry, nn.Dense(4)(x)

        class Outer(nn.Module):
          @nn.compact
          def __call__(self, carry, xs):
            return nn.scan(Cell, variable_broadcast='params', split_rngs={'params': False}, in_axes=1, out_axes=nn.broadcast)()(carry, xs)
        """,
        "out_axes broadcasts an output",
        id="time-class-broadcast-output",
    ),
    pytest.param(
        """
        import flax.linen as nn

        class Block(nn.Module):
          @nn.compact
          def __call__(self, x, c):
            return nn.Dense(4)(x) + c, None

        class Stack(nn.Module):
          @nn.compact
          def __call__(self, x, c):
            y, _ = nn.scan(Block, variable_axes={'params': 0}, split_rngs={'params': True}, in_axes=((0, nn.broadcast),), length=2)()(x, c)
            return y
        """,
        "entry '(0, nn.broadcast)' is not an int or nn.broadcast",
        id="layers-nested-entry",
    ),
]


@pytest.mark.parametrize("source, why", SCAN_TODO_CASES)
def test_scan_with_unreadable_axes_is_marked_and_reported_never_given_a_made_up_axis(source, why):
    result = rewrite_source(textwrap.dedent(source), "case.py")
    assert result.error is None
    ast.parse(result.new_text)
    assert any(why in t.why for t in result.todos), [t.render() for t in result.todos]
    assert "# TODO(nnx-migrate): nn.scan" in result.new_text or "@functools.partial(nn.scan" in result.new_text
    # No NNX call gets an axis the Linen code did not give.
    assert "nnx.Carry, 0))" not in result.new_text
