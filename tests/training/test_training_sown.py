"""Reads of sown values (`training/steps/sown.py`): what converts to `nnx.capture` and
what is reported instead. The converted form is proven by running it in the fixture
program `sown_intermediates` (both train styles, both NNX modes); these cases check the
edges the program does not take."""

from __future__ import annotations

import pytest

from nnx_migrate.rewrite import rewrite_source

PROGRAM = '''
import jax
import jax.numpy as jnp
import optax
from flax import linen as nn
from flax.training import train_state


class MLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    h = nn.Dense(4)(x)
    self.sow('intermediates', 'h', h)
    return nn.Dense(1)(h)


def create_train_state(key):
  model = MLP()
  params = model.init(key, jnp.ones((1, 3)))['params']
  return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=optax.sgd(0.1))


@jax.jit
def probe(state, x):
  {body}
'''


def _convert(body: str):
    result = rewrite_source(PROGRAM.format(body=body), "program.py")
    assert result.error is None
    probe = result.new_text[result.new_text.index("def probe"):]
    return probe, [t.why for t in result.todos]


def test_sown_values_read_by_name_convert_to_capture():
    probe, todos = _convert("y, out = state.apply_fn({'params': state.params}, x, mutable=('intermediates',))\n"
                            "  return y, out['intermediates']['h'][0], out['intermediates']['Dense_0']")
    assert "y, out = nnx.capture(model, nnx.Intermediate)(x)" in probe
    assert "out['h'][0], out['dense_0']" in probe
    assert "mutable" not in probe and not todos


def test_capture_intermediates_records_method_outputs():
    probe, todos = _convert("_, out = state.apply_fn({'params': state.params}, x, capture_intermediates=True)\n"
                            "  return out['intermediates']['Dense_1']['__call__'][0]")
    assert "nnx.capture(model, nnx.Intermediate, method_outputs=nnx.Intermediate)(x)" in probe
    assert "out['dense_1']['__call__'][0]" in probe and "capture_intermediates" not in probe
    assert not todos


@pytest.mark.parametrize("body,why", [
    ("y, out = state.apply_fn({'params': state.params}, x, mutable=['intermediates', 'batch_stats'])\n  return out",
     "along with other collections"),
    ("y, out = state.apply_fn({'params': state.params}, x, capture_intermediates=lambda m, n: True)\n  return out",
     "a filter of the outputs"),
    ("y, out = state.apply_fn({'params': state.params}, x, mutable=['intermediates'])\n  return y, out",
     "without that level"),
    ("result = state.apply_fn({'params': state.params}, x, mutable=['intermediates'])\n  return result",
     "unpack it by hand"),
])
def test_what_it_cannot_read_is_reported(body, why):
    _, todos = _convert(body)
    assert any(why in t for t in todos), todos
