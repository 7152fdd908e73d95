"""Sizes left as constructor arguments, weights moved off their init values, and every
floating dtype compared as floats with its own tolerances."""

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from nnx_migrate.equivalence import compare, default_tolerances
from nnx_migrate.equivalence.leaf_comparison import compare_leaf
from nnx_migrate.equivalence.perturbation import perturbed

X_IMG = jax.random.normal(jax.random.key(5), (2, 3, 2))
X_VEC = jax.random.normal(jax.random.key(6), (3, 8))


def test_a_size_left_as_an_argument_is_read_off_the_linen_shapes(linen, ports):
    result = compare(linen.Flatten(features=4), ports.FlattenRewrite, X_IMG)
    assert result.ok, str(result)
    assert result.nnx_module.dense_0.kernel.shape == (6, 4)  # 3 * 2 flattened


def test_init_values_hide_swapped_twins_and_perturbed_weights_reveal_them(linen, ports):
    model = linen.NormedPair()
    assert compare(model, ports.NormedPairRewrite, X_VEC).ok
    # fresh LayerNorms are interchangeable: on init values the swap goes unseen
    blind = compare(model, ports.NormedPairSwapped, X_VEC, perturb=False, gradients=False)
    assert blind.ok
    caught = compare(model, ports.NormedPairSwapped, X_VEC, gradients=False)
    assert not caught.ok
    assert not next(c for c in caught.checks if c.name == "outputs (forward)").ok


def test_perturbation_moves_every_float_leaf_keeps_signs_and_integers():
    variables = {"params": {"scale": jnp.ones((4,)), "bias": jnp.zeros((4,), jnp.bfloat16)},
                 "counters": {"calls": jnp.array(3, jnp.int32)}, "batch_stats": {"var": jnp.full((4,), 1e-3)}}
    moved = perturbed(variables, seed=0)
    assert not np.any(np.asarray(moved["params"]["scale"]) == 1.0)
    assert len(set(np.asarray(moved["params"]["scale"]).tolist())) == 4  # no two elements equal
    assert moved["params"]["bias"].dtype == jnp.bfloat16 and np.any(np.asarray(moved["params"]["bias"]) != 0)
    assert np.all(np.asarray(moved["batch_stats"]["var"]) > 0)
    assert moved["counters"]["calls"] is variables["counters"]["calls"]
    again = perturbed(variables, seed=0)
    np.testing.assert_array_equal(again["params"]["scale"], moved["params"]["scale"])


def test_a_bfloat16_model_pair_is_compared_with_bfloat16_tolerances(linen, ports):
    model = linen.HalfPrecisionMLP()
    result = compare(model, ports.HalfPrecisionMLPRewrite, X_VEC)
    assert result.ok, str(result)
    leaf = next(c for c in result.checks if c.name == "gradients (forward)").leaves[0]
    assert np.isfinite(leaf.max_abs_diff)  # compared as floats, not as integers
    assert "bfloat16 rtol=0.05" in str(result)
    wrong = compare(model, ports.HalfPrecisionMLPWrongActivation, X_VEC)
    assert not wrong.ok
    outputs = next(c for c in wrong.checks if c.name == "outputs (forward)")
    assert not outputs.ok and np.isfinite(outputs.max_abs_diff)


def test_one_bfloat16_ulp_is_a_finite_difference_within_the_default_tolerance():
    value = np.array([1.0, 3.0], ml_dtypes.bfloat16)
    next_up = np.array([1.0078125, 3.015625], ml_dtypes.bfloat16)  # one ulp above each
    default = compare_leaf("x", "x", value, next_up, None, None)
    assert default.ok and default.max_abs_diff == pytest.approx(0.015625)
    exact = compare_leaf("x", "x", value, next_up, 0.0, 0.0)
    assert not exact.ok and np.isfinite(exact.max_abs_diff)


@pytest.mark.parametrize("dtype", ["float8_e4m3fn", "float8_e5m2", "float16", "bfloat16"])
def test_low_precision_floats_get_tolerances_of_a_few_ulps(dtype):
    eps = float(jnp.finfo(jnp.dtype(dtype)).eps)
    rtol, atol = default_tolerances(dtype)
    assert eps <= rtol <= 16 * eps  # a few ulps of the format, not float32 nor infinite
    one = np.array([1.0], jnp.dtype(dtype))
    assert compare_leaf("x", "x", one, (one.astype(np.float32) * (1 + eps)).astype(jnp.dtype(dtype)), None, None).ok
    assert not compare_leaf("x", "x", one, (one.astype(np.float32) * 2).astype(jnp.dtype(dtype)), None, None).ok


def test_tree_mode_says_a_shared_module_cannot_run_there():
    """A port that holds one layer twice (Linen's weight sharing) runs in graph mode; in
    NNX's tree mode the harness says why it cannot, instead of failing inside Flax."""
    import flax.linen as nn
    from flax import nnx

    from nnx_migrate.equivalence.errors import EquivalenceSetupError

    class Tied(nn.Module):
        def setup(self):
            self.dense = nn.Dense(3)

        def __call__(self, x):
            return self.dense(x)

    class TiedPort(nnx.Module):
        def __init__(self, *, in_features: int, rngs: nnx.Rngs):
            self.dense = nnx.Linear(in_features, 3, rngs=rngs)
            self.alias = nnx.List([self.dense])

        def __call__(self, x):
            return self.dense(x)

    x = jnp.ones((2, 3))
    assert compare(Tied(), TiedPort, x, gradients=False).ok
    with nnx.set_graph_mode(False), nnx.set_graph_updates(False):
        with pytest.raises(EquivalenceSetupError, match="tree mode") as info:
            compare(Tied(), TiedPort, x, gradients=False)
    assert ".alias[0]" in str(info.value) and ".dense." in str(info.value)
