"""The helpers the rewrite writes into converted files behave exactly like the Linen
functions they replace, error messages included."""

from __future__ import annotations

import pytest
from flax import linen as nn

from nnx_migrate.rewrite.helpers import HELPER_SOURCES
from nnx_migrate.rewrite.rules import load_rules


def helper(name):
    namespace: dict = {}
    exec(HELPER_SOURCES[name], namespace)  # noqa: S102 - our own source text
    return namespace[name]


def test_every_helper_rule_has_a_source():
    assert set(load_rules().helpers.values()) <= set(HELPER_SOURCES)


@pytest.mark.parametrize("a,b", [(1, None), (None, 2), (0, None), (None, False)])
def test_merge_param_returns_the_value_that_is_set(a, b):
    assert helper("merge_param")("flag", a, b) == nn.merge_param("flag", a, b)


@pytest.mark.parametrize("a,b", [(None, None), (1, 2)])
def test_merge_param_raises_as_linen_does(a, b):
    with pytest.raises(ValueError) as linen_error:
        nn.merge_param("flag", a, b)
    with pytest.raises(ValueError) as our_error:
        helper("merge_param")("flag", a, b)
    assert str(our_error.value) == str(linen_error.value)


TWO_USES = '''
import flax.linen as nn


class A(nn.Module):
  train: bool | None = None

  def __call__(self, x, train=None):
    return x if nn.merge_param('train', self.train, train) else -x


def flag(a, b):
  return nn.module.merge_param('flag', a, b)
'''


def test_merge_param_helper_is_written_once_and_used_everywhere():
    from nnx_migrate.rewrite.transform import rewrite_source

    result = rewrite_source(TWO_USES, "two.py")
    text = result.new_text
    assert text.count("def merge_param(") == 1
    assert "merge_param('train', self.train, train)" in text and "merge_param('flag', a, b)" in text
    assert "flax.linen" not in text and "nn.module" not in text and "import flax.linen" not in text
    namespace: dict = {}
    exec(compile(text, "two.py", "exec"), namespace)  # noqa: S102
    assert namespace["flag"](None, 3) == 3
    assert rewrite_source(text, "two.py").new_text == text


def test_a_file_that_binds_the_name_keeps_linen_and_reports_it():
    from nnx_migrate.rewrite.transform import rewrite_source

    source = TWO_USES + "\n\ndef merge_param():\n  pass\n"
    result = rewrite_source(source, "own.py")
    assert "nn.merge_param('train'" in result.new_text
    assert any("merge_param" in t.construct for t in result.todos)
