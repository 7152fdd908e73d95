"""Where the notebook rule (training/notebook.py) applies and where it leaves a model to be
reported: placement of the constructor, the forms of `apply`, and what stops it."""

from __future__ import annotations

import pytest

from nnx_migrate.rewrite import rewrite_source

HEAD = """\
import jax, jax.numpy as jnp, optax
import flax.linen as nn
from flax.training import train_state


class MLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(2)(x)


"""
CREATE = "state = train_state.TrainState.create(apply_fn=model.apply, params=variables['params'], tx=optax.sgd(0.1))\n"


def _rewrite(body: str, style: str = "flat-state"):
    result = rewrite_source(HEAD + body, "notebook.py", train_style=style)
    return result.new_text.split("return self.linear_0(x)\n" if "linear_0" in result.new_text else "return self.dense_0(x)\n", 1)[1], result.todos


@pytest.mark.parametrize("style", ["flat-state", "nnx-jit"])
def test_built_at_the_init_where_nothing_uses_it_before(style):
    text, todos = _rewrite("model = MLP()\nparams = jax.jit(model.init)(jax.random.key(0), jnp.ones((1, 3)))['params']\n"
                           "state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=optax.sgd(0.1))\n", style)
    assert todos == []
    assert "model = MLP(in_features=3, rngs=nnx.Rngs(jax.random.key(0)))\n" in text
    assert "state = TrainState.create(model, optax.sgd(0.1))\n" in text
    assert ".init(" not in text and "params" not in text.split("state = TrainState.create")[1]


def test_built_before_a_tabulate_where_inits_arguments_are_bound_there():
    text, todos = _rewrite("x = jnp.ones((1, 3))\nmodel = MLP()\nprint(model.tabulate(jax.random.key(0), x))\n"
                           "variables = model.init(jax.random.key(0), x)\n" + CREATE + "print(model.apply(variables, x))\n")
    assert todos == []
    assert "model = MLP(in_features=x.shape[-1], rngs=nnx.Rngs(jax.random.key(0)))\nprint(nnx.tabulate(model, x))\n" in text
    assert "print(model(x))\n" in text


def test_a_key_bound_after_the_tabulate_leaves_the_model_to_the_report():
    text, todos = _rewrite("model = MLP()\nx = jnp.ones((1, 3))\nprint(model.tabulate(jax.random.key(0), x))\n"
                           "key = jax.random.key(1)\nvariables = model.init(key, x)\n" + CREATE)
    assert {t.construct for t in todos} >= {"MLP(...)", "model.tabulate(...)", "model.init(...)"}
    assert "model = MLP()\n" in text


def test_variables_used_another_way_leave_the_model_to_the_report():
    text, todos = _rewrite("model = MLP()\nvariables = model.init(jax.random.key(0), jnp.ones((1, 3)))\n"
                           "print(jax.tree_util.tree_map(jnp.shape, variables))\n" + CREATE)
    assert {t.construct for t in todos} >= {"MLP(...)", "model.init(...)"}


def test_apply_forms_after_training():
    text, todos = _rewrite("model = MLP()\nvariables = model.init(jax.random.key(0), jnp.ones((1, 3)))\n" + CREATE +
                           "def evaluate(p, x):\n  return model.apply({'params': p}, x)\n\n"
                           "print(evaluate(state.params, jnp.ones((1, 3))))\n"
                           "print(model.apply({'params': state.params}, jnp.ones((1, 3)), rngs={'dropout': jax.random.key(2)}))\n")
    assert todos == []
    assert "  return p(x)\n" in text
    assert "print(evaluate(state.model, jnp.ones((1, 3))))\n" in text
    assert "print(state.model(jnp.ones((1, 3))))\n" in text


def test_nnx_jit_keeps_initial_variables_apart_from_the_state_it_trains_in_place():
    """nnx-jit's state holds the model itself: after `create`, the model no longer holds
    `init`'s variables, so `apply` with them there is not the model's call."""
    body = "model = MLP()\nvariables = model.init(jax.random.key(0), jnp.ones((1, 3)))\n" + CREATE + "print(model.apply(variables, jnp.ones((1, 3))))\n"
    flat, flat_todos = _rewrite(body, "flat-state")
    assert flat_todos == [] and "print(model(jnp.ones((1, 3))))\n" in flat
    _, todos = _rewrite(body, "nnx-jit")
    assert todos  # left to the report
    before = "model = MLP()\nvariables = model.init(jax.random.key(0), jnp.ones((1, 3)))\nprint(model.apply(variables, jnp.ones((1, 3))))\n" + CREATE
    text, todos = _rewrite(before, "nnx-jit")
    assert todos == [] and text.index("print(model(jnp.ones((1, 3))))\n") < text.index("\n\n\nstate = TrainState.create(model, optax.sgd(0.1))\n")


def test_mutable_apply_leaves_the_model_to_the_report():
    _, todos = _rewrite("model = MLP()\nvariables = model.init(jax.random.key(0), jnp.ones((1, 3)))\n" + CREATE +
                        "y, upd = model.apply(variables, jnp.ones((1, 3)), mutable=['intermediates'])\n")
    assert {t.construct for t in todos} >= {"MLP(...)", "model.init(...)"}
