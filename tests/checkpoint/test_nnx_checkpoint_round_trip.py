"""The NNX checkpoint `save_nnx_checkpoint` / `convert-checkpoint` write restores exactly:
typed RNG keys, nnx.List integer keys, BatchNorm statistics and optimizer state."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from nnx_migrate.checkpoint import restore_nnx_checkpoint, save_nnx_checkpoint


class WithDropout(nnx.Module):
    def __init__(self, rngs):
        self.layers = nnx.List([nnx.Linear(3, 4, rngs=rngs), nnx.Linear(4, 2, rngs=rngs)])
        self.norm = nnx.BatchNorm(4, rngs=rngs)
        self.dropout = nnx.Dropout(0.5, rngs=rngs)

    def __call__(self, x):
        return self.layers[1](self.dropout(self.norm(self.layers[0](x))))


def test_round_trip_keeps_typed_keys_list_entries_and_optimizer_state(tmp_path):
    x = jnp.ones((2, 3))
    model = WithDropout(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    loss_grad = nnx.value_and_grad(lambda m: jnp.sum(m(x) ** 2))
    for _ in range(2):
        _, grads = loss_grad(model)
        optimizer.update(model, grads)
    save_nnx_checkpoint(tmp_path / "nnx", model, optimizer)

    other = WithDropout(nnx.Rngs(7))
    other_optimizer = nnx.Optimizer(other, optax.adam(1e-2), wrt=nnx.Param)
    restore_nnx_checkpoint(tmp_path / "nnx", other, other_optimizer)
    key = other.dropout.rngs.key[...]
    assert jnp.issubdtype(key.dtype, jax.dtypes.prng_key)  # still a typed key
    np.testing.assert_array_equal(jax.random.key_data(key), jax.random.key_data(model.dropout.rngs.key[...]))
    assert int(other.dropout.rngs.count[...]) == int(model.dropout.rngs.count[...]) > 0
    np.testing.assert_array_equal(other.layers[1].kernel[...], model.layers[1].kernel[...])
    np.testing.assert_array_equal(other.norm.var[...], model.norm.var[...])
    np.testing.assert_array_equal(other_optimizer.opt_state[0].nu["layers"][0]["kernel"][...],
                                  optimizer.opt_state[0].nu["layers"][0]["kernel"][...])
    assert int(other_optimizer.step[...]) == 2
    # both continue identically, dropout masks included
    np.testing.assert_array_equal(other(x), model(x))


def test_a_model_alone_restores_from_a_checkpoint_with_optimizer_state(tmp_path):
    model = WithDropout(nnx.Rngs(0))
    save_nnx_checkpoint(tmp_path / "nnx", model, nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param))
    other = WithDropout(nnx.Rngs(5))
    restore_nnx_checkpoint(tmp_path / "nnx", other)
    np.testing.assert_array_equal(other.layers[0].kernel[...], model.layers[0].kernel[...])
