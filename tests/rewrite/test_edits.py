"""`edits.FileEdits`: passes ask for imports and helpers; `apply` adds and removes them in
one step, touching only import lines and the inserted helpers."""

from __future__ import annotations

import libcst as cst
import pytest

from nnx_migrate.rewrite.edits import FUNCTOOLS, JAX, NNX, FileEdits, Place


def _apply(text: str, ask) -> str:
    edits = FileEdits()
    ask(edits)
    return edits.apply(cst.parse_module(text)).code


def test_imports_after_the_last_one_come_in_one_order_whatever_order_they_were_asked_in():
    text = "import optax\n\n\ndef f():\n    pass\n"

    def one_way(e):
        e.add_import(NNX, Place.AFTER_IMPORTS)
        e.add_import(FUNCTOOLS, Place.AFTER_IMPORTS)
        e.add_import(JAX, Place.AFTER_IMPORTS)
        e.add_import(NNX, Place.AFTER_IMPORTS)  # asked twice: written once

    def other_way(e):
        e.add_import(JAX, Place.AFTER_IMPORTS)
        e.add_import(NNX, Place.AFTER_IMPORTS)
        e.add_import(FUNCTOOLS, Place.AFTER_IMPORTS)

    expected = "import optax\nimport functools\nimport jax\nfrom flax import nnx\n\n\ndef f():\n    pass\n"
    assert _apply(text, one_way) == _apply(text, other_way) == expected


@pytest.mark.parametrize("line, text", [
    (NNX, "from flax import nnx\nx = nnx.Linear\n"),
    (JAX, "import jax\nx = jax.jit\n"),
    (FUNCTOOLS, "import functools\nx = functools.partial\n"),
])
def test_an_import_the_file_has_is_not_added_again(line, text):
    for place in Place:
        assert _apply(text, lambda e: e.add_import(line, place)) == text  # noqa: B023 (called at once)


def test_nnx_takes_the_place_of_the_linen_import_that_went_away():
    text = "# models\nimport flax.linen as nn\nimport jax\n\nx = nnx.Linear\n"

    def ask(e):
        e.remove_unused_linen({"nnx", "jax"})
        e.add_import(NNX, Place.BESIDE_LINEN)

    assert _apply(text, ask) == "# models\nfrom flax import nnx\nimport jax\n\nx = nnx.Linear\n"


def test_a_linen_import_still_used_stays_and_nnx_goes_after_it():
    text = "import flax.linen as nn\nimport jax\n\nx = nn.Module, nnx.Linear\n"

    def ask(e):
        e.remove_unused_linen({"nn", "nnx", "jax"})
        e.add_import(NNX, Place.BESIDE_LINEN)

    assert _apply(text, ask) == "import flax.linen as nn\nfrom flax import nnx\nimport jax\n\nx = nn.Module, nnx.Linear\n"


def test_functools_goes_before_the_first_import_after_future_ones():
    text = "from __future__ import annotations\n\n# deps\nimport jax\n"
    assert _apply(text, lambda e: e.add_import(FUNCTOOLS, Place.FIRST)) == "from __future__ import annotations\n\n# deps\nimport functools\nimport jax\n"


def test_unused_training_imports_and_unused_linen_go_only_when_asked():
    text = "import flax.linen as nn\nfrom flax.training import train_state, checkpoints\n\nx = checkpoints.save\n"
    assert _apply(text, lambda e: None) == text

    def ask(e):
        e.remove_unused_training_imports()
        e.remove_linen_if_unused()

    assert _apply(text, ask) == "from flax.training import checkpoints\n\nx = checkpoints.save\n"


def test_a_helper_asked_for_is_written_once_before_the_given_statement():
    text = "import flax\n\n\nclass A:\n    pass\n"

    def ask(e):
        e.add_helper("merge_param")
        e.add_helper("merge_param")
        e.helpers_before = 1

    out = _apply(text, ask)
    assert out.count("def merge_param(") == 1 and out.index("def merge_param(") < out.index("class A")
    assert out.startswith("import flax\n") and cst.parse_module(out).code == out
