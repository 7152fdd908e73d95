"""Correct ports pass: rewrite-style classes built by the harness and hand-written instances."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from nnx_migrate.equivalence import AmbiguousMappingError, compare

X_VEC = jax.random.normal(jax.random.key(1), (3, 10))
X_IMG = jax.random.normal(jax.random.key(2), (2, 6, 6, 3))
X_SEQ = jax.random.normal(jax.random.key(3), (2, 4, 8))
TOKENS = jax.random.randint(jax.random.key(4), (2, 5), 0, 20)


def test_rewrite_class_is_built_and_mapped_automatically(linen, ports):
    result = compare(linen.MLP(features=16, out=4), ports.MLPRewrite, X_VEC)
    assert result.ok, str(result)
    assert result.max_abs_diff == 0.0
    assert isinstance(result.nnx_module, ports.MLPRewrite)
    # built with the Linen field values and the input size learnt from the input
    assert result.nnx_module.dense_0.kernel.shape == (10, 16)
    assert {p.nnx_name for p in result.weight_map.pairs} == {
        "dense_0.kernel", "dense_0.bias", "dense_1.kernel", "dense_1.bias"}
    # the NNX module really holds the Linen weights
    linen_kernel = result.linen_variables["params"]["Dense_1"]["kernel"]
    assert jnp.array_equal(result.nnx_module.dense_1.kernel[...], linen_kernel)
    names = {check.name for check in result.checks}
    assert "outputs (forward)" in names and "gradients (forward)" in names


def test_hand_written_instance_is_matched_by_structure(linen, ports):
    port = ports.HandMLP(10, 16, 4, rngs=nnx.Rngs(7))
    result = compare(linen.MLP(features=16, out=4), port, X_VEC)
    assert result.ok, str(result)
    assert result.nnx_module is port
    assert {p.linen_name: p.nnx_name for p in result.weight_map.pairs}["params/Dense_0/kernel"] == "hidden.kernel"


@pytest.fixture(scope="module")
def cnn_result(linen, ports):
    port = ports.HandCNN(3, 6, 6, rngs=nnx.Rngs(0))
    return compare(linen.CNN(), port, X_IMG, train_steps=2)


def test_cnn_with_batchnorm_and_dropout_passes_in_both_modes_and_training(cnn_result):
    assert cnn_result.ok, str(cnn_result)
    names = [check.name for check in cnn_result.checks]
    assert names == [
        "outputs (forward)",
        "gradients (forward)",
        "state after forward",
        "outputs (train-mode forward)",
        "state after train-mode forward",
        "loss at each of 2 optimizer steps",
        "parameters and state after 2 optimizer steps",
    ]
    # train mode really moved the statistics (so the state check compared something)
    stats = cnn_result.linen_variables["batch_stats"]["BatchNorm_0"]
    assert jnp.array_equal(cnn_result.nnx_module.norm.mean[...], stats["mean"])  # restored after the passes
    assert cnn_result.nnx_module.norm.mean[...].shape == (6,)


def test_twin_layernorms_are_placed_by_the_outputs_and_the_report_says_so(linen, ports):
    block = linen.TransformerBlock()
    port = ports.HandTransformerBlock(8, rngs=nnx.Rngs(0))
    result = compare(block, port, X_SEQ)
    assert result.ok, str(result)
    pairs = {p.linen_name: p.nnx_name for p in result.weight_map.pairs}
    assert pairs["params/LayerNorm_0/scale"] == "ln1.scale" and pairs["params/LayerNorm_1/bias"] == "ln2.bias"
    assert "placed by the outputs: LayerNorm_0 -> ln1, LayerNorm_1 -> ln2" in str(result)


def test_twin_layernorms_placed_the_other_way_round_by_a_port_that_applies_them_so(linen, ports):
    # the port's `ln2` is the first norm applied: the outputs pick the crossed placement
    result = compare(linen.TransformerBlock(), ports.HandTransformerBlockCrossedNames(8, rngs=nnx.Rngs(0)), X_SEQ)
    assert result.ok, str(result)
    assert {p.linen_name: p.nnx_name for p in result.weight_map.pairs}["params/LayerNorm_0/scale"] == "ln2.scale"


def test_twin_layers_whose_placements_all_agree_stay_ambiguous():
    # y = a(x) + b(x): either placement gives the same outputs, so neither is proven
    class Parallel(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(4)(x) + nn.Dense(4)(x)

    class ParallelPort(nnx.Module):
        def __init__(self, rngs):
            self.a = nnx.Linear(10, 4, rngs=rngs)
            self.b = nnx.Linear(10, 4, rngs=rngs)

        def __call__(self, x):
            return self.a(x) + self.b(x)

    with pytest.raises(AmbiguousMappingError, match="agree under 2 of them"):
        compare(Parallel(), ParallelPort(nnx.Rngs(0)), X_VEC)


def test_transformer_block_accepts_an_override_for_twin_layernorms(linen, ports):
    block = linen.TransformerBlock()
    port = ports.HandTransformerBlock(8, rngs=nnx.Rngs(0))
    result = compare(block, port, X_SEQ, mapping={"LayerNorm_0": "ln1", "LayerNorm_1": "ln2"})
    assert result.ok, str(result)
    pairs = {p.linen_name: p.nnx_name for p in result.weight_map.pairs}
    assert pairs["params/MultiHeadDotProductAttention_0/query/kernel"] == "attn.query.kernel"
    assert any(check.name == "outputs (train-mode forward)" for check in result.checks)


def test_embed_model_rewrite_and_hand_port(linen, ports):
    model = linen.EmbedClassifier()
    assert compare(model, ports.EmbedClassifierRewrite, TOKENS).ok
    hand = compare(model, ports.HandEmbedClassifier(20, 8, 3, rngs=nnx.Rngs(0)), TOKENS)
    assert hand.ok, str(hand)
    assert {p.linen_name: p.nnx_name for p in hand.weight_map.pairs}["params/Embed_0/embedding"] == "tokens.embedding"


def test_setup_list_maps_to_nnx_list_indices(linen, ports):
    result = compare(linen.Stack(), ports.StackRewrite, X_VEC)
    assert result.ok, str(result)
    pairs = {p.linen_name: p.nnx_name for p in result.weight_map.pairs}
    assert pairs["params/layers_2/kernel"] == "layers[2].kernel"
    assert pairs["params/head/bias"] == "head.bias"


def test_raw_param_custom_collection_and_dataclass_output(linen, ports):
    result = compare(linen.Counting(), ports.CountingRewrite, X_VEC)
    assert result.ok, str(result)
    pairs = {p.linen_name: p.nnx_name for p in result.weight_map.pairs}
    assert pairs == {"params/w": "w", "counters/calls": "calls"}
    outputs = next(c for c in result.checks if c.name == "outputs (forward)")
    assert [leaf.name for leaf in outputs.leaves] == [".hidden", ".pooled"]
    state = next(c for c in result.checks if c.name == "state after forward")
    assert [leaf.name for leaf in state.leaves] == ["counters/calls"]


def test_second_input_size_is_passed_as_argname_in_features(linen, ports):
    context = jax.random.normal(jax.random.key(5), (3, 7))
    result = compare(linen.TwoInputs(), ports.TwoInputsRewrite, X_VEC, context)
    assert result.ok, str(result)
    assert result.nnx_module.context_proj.kernel.shape == (7, 5)


def test_other_methods_are_compared(linen, ports):
    x = X_VEC[:, :6]
    result = compare(linen.AutoEncoder(), ports.AutoEncoderRewrite, x, method="encode", init_inputs=(x,))
    assert result.ok, str(result)
    assert result.checks[0].name == "outputs (method encode)"
    assert result.nnx_module.decoder.kernel.shape == (3, 6)  # filled from the __call__ init


def test_port_without_a_mode_flag_is_switched_with_train_and_eval(linen, ports):
    port = ports.HandCNNModeSwitched(3, 6, 6, rngs=nnx.Rngs(0))
    assert port.dropout.deterministic is False  # built in train mode, as nnx.Dropout is by default
    result = compare(linen.CNN(), port, X_IMG, train_steps=1)
    assert result.ok, str(result)
    assert {c.name for c in result.checks} >= {"outputs (train-mode forward)", "state after train-mode forward"}
    assert port.dropout.deterministic is False and port.norm.use_running_average is False  # put back
    wrong = compare(linen.CNN(), ports.HandCNNModeSwitched(3, 6, 6, momentum=0.5, rngs=nnx.Rngs(0)), X_IMG)
    assert not next(c for c in wrong.checks if c.name == "state after train-mode forward").ok
    assert next(c for c in wrong.checks if c.name == "outputs (forward)").ok  # eval mode really used


def test_given_linen_variables_are_used_instead_of_init(linen, ports):
    model = linen.MLP()
    checkpoint = model.init(jax.random.key(42), X_VEC)
    result = compare(model, ports.MLPRewrite, X_VEC, variables=checkpoint)
    assert result.ok
    assert jnp.array_equal(result.nnx_module.dense_0.kernel[...], checkpoint["params"]["Dense_0"]["kernel"])
    assert not jnp.array_equal(checkpoint["params"]["Dense_0"]["kernel"],
                               model.init(jax.random.key(0), X_VEC)["params"]["Dense_0"]["kernel"])
