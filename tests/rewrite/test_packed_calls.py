"""rules/linen_functions.toml [packed_calls]: Linen functions taking the arrays as `*args`
whose NNX counterpart takes one tuple. The rewritten call gives what Linen's gives."""

from __future__ import annotations

import inspect
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest

from nnx_migrate.rewrite import rewrite_source
from nnx_migrate.rewrite.rules import load_rules

RULES = load_rules()


def _resolve(qualified: str):
    module, _, name = qualified.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


@pytest.mark.parametrize("linen_name", sorted(RULES.packed_calls))
def test_linen_takes_star_args_and_nnx_one_positional(linen_name):
    linen = inspect.signature(_resolve(linen_name)).parameters
    ours = inspect.signature(_resolve(RULES.packed_calls[linen_name])).parameters
    assert [p.kind for p in linen.values()][0] is inspect.Parameter.VAR_POSITIONAL
    assert [p.kind for p in ours.values()][0] is inspect.Parameter.POSITIONAL_ONLY
    assert {k for k, p in linen.items() if p.kind is inspect.Parameter.KEYWORD_ONLY} == {k for k, p in ours.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


SOURCE = textwrap.dedent("""\
    import flax.linen as nn
    from flax.linen.dtypes import promote_dtype
    import jax.numpy as jnp


    def promote(x, y, xs):
      a, b = nn.dtypes.promote_dtype(x, y, dtype=jnp.float32)
      c, = promote_dtype(x, dtype=jnp.bfloat16)
      d = promote_dtype(*xs, dtype=None)
      return a, b, c, d[1], nn.linear.default_kernel_init
    """)


def _run(text: str):
    namespace: dict = {}
    exec(compile(text, "<case>", "exec"), namespace)
    x = jnp.ones((2,), jnp.int32)
    y = jnp.ones((2,), jnp.float16)
    return namespace["promote"](x, y, [x, y])


def test_the_packed_call_gives_what_linen_gives():
    result = rewrite_source(SOURCE, "case.py")
    assert "flax.linen" not in result.new_text and "linen" not in result.new_text
    assert "nnx.nn.dtypes.promote_dtype((x, y), dtype=jnp.float32)" in result.new_text
    assert result.todos == []
    linen, ours = _run(SOURCE), _run(result.new_text)
    for a, b in zip(linen[:4], ours[:4], strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))
    import jax

    key = jax.random.key(0)
    np.testing.assert_array_equal(linen[4](key, (3, 4)), ours[4](key, (3, 4)))  # default_kernel_init
