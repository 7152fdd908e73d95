"""Wrong ports are caught, each by the check that should catch it.

Every test here fails if the harness stops noticing its bug.
"""

import jax
from flax import nnx

from nnx_migrate.equivalence import compare

X_VEC = jax.random.normal(jax.random.key(1), (3, 10))
X_SQUARE = jax.random.normal(jax.random.key(11), (3, 8))
X_IMG = jax.random.normal(jax.random.key(2), (2, 6, 6, 3))
X_SEQ = jax.random.normal(jax.random.key(3), (2, 4, 8))
TWIN_NORMS = {"LayerNorm_0": "ln1", "LayerNorm_1": "ln2"}


def _check(result, name):
    return next(check for check in result.checks if check.name == name)


def test_wrong_activation_is_caught_and_located(linen, ports):
    result = compare(linen.MLP(), ports.MLPWrongActivation, X_VEC)
    assert not result.ok
    assert not _check(result, "outputs (forward)").ok
    assert result.max_abs_diff > 1e-3
    divergence = result.divergences[0]
    assert (divergence.linen_path, divergence.nnx_path) == ("Dense_1", "dense_1")
    assert divergence.last_agreeing == "Dense_0 (NNX dense_0)"
    assert "first diverging submodule in forward: Dense_1 (NNX dense_1)" in str(result)


def test_two_layers_swapped_is_caught(linen, ports):
    model = linen.SquareMLP()
    assert compare(model, ports.SquareMLPRewrite, X_SQUARE).ok  # the same model, right order
    result = compare(model, ports.SquareMLPSwapped, X_SQUARE)
    assert not result.ok
    assert not _check(result, "outputs (forward)").ok
    assert result.divergences[0].nnx_path == "dense_1"  # the first call that differs


def test_transposed_kernel_is_caught(linen, ports):
    result = compare(linen.SquareMLP(), ports.SquareMLPTransposedKernel, X_SQUARE)
    assert not result.ok
    assert not _check(result, "outputs (forward)").ok
    assert not _check(result, "gradients (forward)").ok


def test_kernel_stored_transposed_is_a_shape_mismatch_unless_mapped_with_a_transform(linen, ports):
    model = linen.MLP(features=16, out=4)
    port = ports.HandMLPTorchLayout(10, 16, 4, rngs=nnx.Rngs(0))
    result = compare(model, port, X_VEC, mapping={"Dense_0": "hidden", "Dense_1": "head"})
    assert not result.ok
    assert any("params/Dense_0/kernel" in item and "(10, 16)" in item for item in result.weight_map.unplaced
               + result.weight_map.mismatched)
    transposed = compare(model, port, X_VEC, mapping={
        "Dense_0/kernel": ("hidden.weight", lambda k: k.T), "Dense_0/bias": "hidden.bias",
        "Dense_1/kernel": ("head.weight", lambda k: k.T), "Dense_1/bias": "head.bias"})
    assert transposed.ok, str(transposed)
    assert _check(transposed, "gradients (forward)").ok  # gradients moved with the transform


def test_wrong_layernorm_epsilon_is_caught_with_default_tolerances(linen, ports):
    block = linen.TransformerBlock()
    right = compare(block, ports.HandTransformerBlock(8, rngs=nnx.Rngs(0)), X_SEQ, mapping=TWIN_NORMS)
    assert right.ok, str(right)
    wrong = compare(block, ports.HandTransformerBlock(8, epsilon=1e-5, rngs=nnx.Rngs(0)), X_SEQ,
                    mapping=TWIN_NORMS)
    assert not wrong.ok
    assert not _check(wrong, "outputs (forward)").ok
    assert wrong.max_abs_diff < 1e-3  # a small difference: the default tolerances must be tight
    assert wrong.divergences[0].nnx_path == "ln1"


def test_missing_bias_leaves_a_linen_leaf_without_a_home(linen, ports):
    result = compare(linen.MLP(), ports.MLPMissingBias, X_VEC)
    assert not result.ok
    assert result.checks == []  # nothing is compared on half-copied weights
    assert len(result.weight_map.unplaced) == 1
    assert result.weight_map.unplaced[0].startswith("params/Dense_1/bias (4,)")
    assert "Linen leaf with no NNX counterpart: params/Dense_1/bias" in str(result)


def test_batchnorm_momentum_difference_is_caught_in_train_mode_only(linen, ports):
    port = ports.HandCNN(3, 6, 6, momentum=0.99, rngs=nnx.Rngs(0))
    result = compare(linen.CNN(momentum=0.9), port, X_IMG)
    assert not result.ok
    assert _check(result, "outputs (forward)").ok
    assert _check(result, "gradients (forward)").ok
    assert _check(result, "outputs (train-mode forward)").ok  # batch statistics are used, not the running ones
    state = _check(result, "state after train-mode forward")
    assert not state.ok
    assert {leaf.name for leaf in state.leaves if not leaf.ok} == {
        "batch_stats/BatchNorm_0/mean", "batch_stats/BatchNorm_0/var"}
    assert (result.divergences[0].linen_path, result.divergences[0].nnx_path) == ("BatchNorm_0", "norm")
    assert "its state batch_stats/BatchNorm_0/mean differs; every output agrees" in str(result)


def test_dropout_rate_difference_is_caught_in_train_mode_only(linen, ports):
    port = ports.HandCNN(3, 6, 6, dropout_rate=0.3, rngs=nnx.Rngs(0))
    result = compare(linen.CNN(dropout_rate=0.5), port, X_IMG)
    assert not result.ok
    assert _check(result, "outputs (forward)").ok
    assert not _check(result, "outputs (train-mode forward)").ok
    assert result.divergences[0].linen_path == "Dropout_0"
    assert result.divergences[0].nnx_path == "dropout"


def test_wrong_method_is_caught(linen, ports):
    x = X_VEC[:, :6]
    model = linen.AutoEncoder()
    assert compare(model, ports.AutoEncoderWrongEncode, x).ok  # __call__ alone looks right
    result = compare(model, ports.AutoEncoderWrongEncode, x, method="encode", init_inputs=(x,))
    assert not result.ok
    assert not _check(result, "outputs (method encode)").ok


def test_custom_collection_update_difference_is_caught(linen, ports):
    result = compare(linen.Counting(), ports.CountingTwice, X_VEC)
    assert not result.ok
    assert _check(result, "outputs (forward)").ok
    state = _check(result, "state after forward")
    assert [leaf.ok for leaf in state.leaves] == [False]
    assert "integer values differ" in state.leaves[0].problem
    assert result.divergences[0].linen_path == "<root>"  # the counter lives on the model itself


def test_wrong_port_fails_the_training_comparison(linen, ports):
    result = compare(linen.MLP(), ports.MLPWrongActivation, X_VEC, train_steps=2)
    losses = _check(result, "loss at each of 2 optimizer steps")
    assert [leaf.name for leaf in losses.leaves] == ["step 1", "step 2"]
    assert not losses.ok
    assert not _check(result, "parameters and state after 2 optimizer steps").ok


def test_attention_dropout_gets_identical_masks_and_a_different_rate_is_caught(linen, ports):
    block = linen.TransformerBlock(attention_dropout=0.5)
    right = compare(block, ports.HandTransformerBlock(8, attention_dropout=0.5, rngs=nnx.Rngs(0)), X_SEQ,
                    mapping=TWIN_NORMS)
    assert right.ok, str(right)
    wrong = compare(block, ports.HandTransformerBlock(8, attention_dropout=0.2, rngs=nnx.Rngs(0)), X_SEQ,
                    mapping=TWIN_NORMS)
    assert _check(wrong, "outputs (forward)").ok
    assert not _check(wrong, "outputs (train-mode forward)").ok
    # the attention weights are internal: the first submodule to finish differently is
    # the output projection that consumes them
    divergence = wrong.divergences[0]
    assert (divergence.linen_path, divergence.nnx_path) == ("MultiHeadDotProductAttention_0/out", "attn.out")
    assert divergence.last_agreeing == "MultiHeadDotProductAttention_0/value (NNX attn.value)"
