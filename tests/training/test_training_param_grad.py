"""The gradient helper written into converted programs (rewrite/training/param_grad.py):
in graph mode and in tree mode it gives what graph mode's `nnx.value_and_grad(f)(model)`
gives (gradients over the Params only, as an `nnx.State`), and the model's other state
changes (BatchNorm statistics, the Dropout's RNG count) reach the model."""

from __future__ import annotations

import numpy as np
import pytest

from nnx_migrate.rewrite.training import param_grad


def _model_and_loss():
    import jax.numpy as jnp
    from flax import nnx

    class Model(nnx.Module):
        def __init__(self, rngs):
            self.linear = nnx.Linear(3, 4, rngs=rngs)
            self.norm = nnx.BatchNorm(4, rngs=rngs)
            self.dropout = nnx.Dropout(0.5, rngs=rngs)

        def __call__(self, x):
            return self.dropout(self.norm(self.linear(x)))

    x = jnp.linspace(-1.0, 1.0, 15).reshape(5, 3)
    return Model(nnx.Rngs(0)), lambda model, scale: (scale * jnp.mean(model(x) ** 2), model(x).shape)


def _flat(state):
    from flax import nnx

    return {path: np.asarray(v.get_value()) for path, v in nnx.to_flat_state(state)}


def test_param_grad_matches_graph_mode_grad_in_both_modes(nnx_mode):
    from flax import nnx

    namespace = {"nnx": nnx}
    exec(param_grad.SOURCE.format(name=param_grad.NAME), namespace)
    helper = namespace[param_grad.NAME]

    with nnx.set_graph_mode(True), nnx.set_graph_updates(True):
        expected_model, loss = _model_and_loss()
        (expected_value, _), expected = nnx.value_and_grad(loss, has_aux=True)(expected_model, 2.0)
    model, loss = _model_and_loss()
    (value, aux), grads = helper(nnx.value_and_grad, loss, has_aux=True)(model, 2.0)

    assert aux == (5, 4) and float(value) == pytest.approx(float(expected_value), rel=1e-6)
    assert isinstance(grads, nnx.State)
    flat, expected_flat = _flat(grads), _flat(expected)
    assert sorted(flat) == sorted(expected_flat) and all(k[-1] in ("kernel", "bias", "scale") for k in flat)
    for path, value in expected_flat.items():
        np.testing.assert_allclose(flat[path], value, rtol=1e-6, atol=1e-7, err_msg=str(path))
    # the step's state changes reached the model, as in graph mode
    np.testing.assert_allclose(np.asarray(model.norm.mean[...]), np.asarray(expected_model.norm.mean[...]), rtol=1e-6)
    assert int(model.dropout.rngs.count[...]) == int(expected_model.dropout.rngs.count[...]) == 2
